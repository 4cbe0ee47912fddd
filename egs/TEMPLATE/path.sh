# Put the project's venv (made by `make install`) first on PATH, so `legonn` and `python`
# are the project's. Sourced by legonn.sh; a recipe may source it to run commands by hand.
_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ -x "$_root/.venv/bin/legonn" ]]; then
    export PATH="$_root/.venv/bin:$PATH"
elif ! command -v legonn >/dev/null 2>&1; then
    echo "legonn is not installed: run 'make install' in $_root" >&2
    return 1
fi
export PYTHONUNBUFFERED=1
unset _root
