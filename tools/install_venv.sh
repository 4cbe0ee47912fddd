#!/usr/bin/env bash
# Create/refresh the project virtualenv in .venv (run by `make install`).
#
#  * creates .venv with the system python3 if it is missing;
#  * installs torch==$TORCH_VERSION first: a plain `torch` requirement would pull
#    a multi-GB CUDA build, while this version is a CPU wheel on local disk;
#  * then `pip install -e '.[test,speech,plot,corpus]'`;
#  * upgrades nothing it does not have to (no pip self-upgrade, no --upgrade);
#  * records a hash of its inputs in .venv/.installed and does nothing when they
#    are unchanged, so re-running it is safe and fast.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_VERSION=2.13.0
EXTRAS="test,speech,plot,corpus"
STAMP="$VENV/.installed"

inputs_hash() {
    {
        cat setup.py tools/install_venv.sh legonn/version.py
        echo "torch==$TORCH_VERSION extras=$EXTRAS"
    } | sha256sum | cut -d' ' -f1
}

want=$(inputs_hash)

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    echo "install: $VENV is up to date"
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "install: creating $VENV with $($PYTHON --version 2>&1) ($(command -v "$PYTHON"))"
    "$PYTHON" -m venv "$VENV"
fi

. tools/pip_install.sh

have_torch=$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)
if [[ "$have_torch" != "$TORCH_VERSION" ]]; then
    echo "install: torch==$TORCH_VERSION (CPU build; found: ${have_torch:-none})"
    pip_install "torch==$TORCH_VERSION"
else
    echo "install: torch $have_torch already installed"
fi

echo "install: legonn (editable) with extras [$EXTRAS]"
pip_install -e ".[$EXTRAS]"

# The CPU torch must still be the one installed (nothing may have replaced it).
got=$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')
if [[ "$got" != "$TORCH_VERSION" ]]; then
    echo "install: error: expected torch $TORCH_VERSION, found $got" >&2
    exit 1
fi

echo "$want" > "$STAMP"
echo "install: done ($VENV)"
