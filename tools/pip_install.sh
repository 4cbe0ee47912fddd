# Sourced by tools/install_venv.sh and bench/peer/setup.sh: pip_install ARGS... into "$VENV",
# quiet, minus the warnings this machine's pip config prints for every package missing from its
# local file:// indexes (harmless noise); pip's own exit status is kept.
pip_install() {
    local status=0
    "$VENV/bin/python" -m pip install -q "$@" 2>&1 \
        | { grep -v "is ignored: it is neither a file nor a directory" || true; } \
        || status=$?
    return "$status"
}
