#!/usr/bin/env bash
# Build the isolated ESPnet2 environment bench/peer/.venv that bench/peer/espnet_bench.py runs in.
# It is never a legonn dependency: legonn's own venv (make install) does not see it.
#
#  * the same CPU torch as tools/install_venv.sh (its TORCH_VERSION, read from that script);
#  * espnet==$ESPNET_VERSION itself with --no-deps, then its requirements (read from the installed
#    metadata, extras left out) minus the setuptools<74 pin, which nothing here needs and which
#    keeps them from resolving beside this torch;
#  * torchaudio==$TORCHAUDIO_VERSION --no-deps with its compiled lib/*.so removed: they are built
#    against another torch and fail to load, and espnet2.tasks only imports the Python package;
#  * records a hash of its inputs in .venv/.installed: a no-op when they are unchanged.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
REPO=$(cd ../.. && pwd)

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
ESPNET_VERSION=202511
TORCHAUDIO_VERSION=2.11.0
TORCH_VERSION=$(sed -n 's/^TORCH_VERSION=//p' "$REPO/tools/install_venv.sh")
STAMP="$VENV/.installed"

fail() { echo "bench/peer/setup.sh: error: $*" >&2; exit 1; }

[[ -n "$TORCH_VERSION" ]] || fail "no TORCH_VERSION= line in tools/install_venv.sh"
command -v "$PYTHON" >/dev/null || fail "$PYTHON not found (set PYTHON=...)"

want=$({ cat setup.sh; echo "torch==$TORCH_VERSION espnet==$ESPNET_VERSION torchaudio==$TORCHAUDIO_VERSION"; } | sha256sum | cut -d' ' -f1)
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    echo "peer setup: bench/peer/$VENV is up to date"
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "peer setup: creating bench/peer/$VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV" || fail "could not create $VENV with $PYTHON"
fi
PY="$VENV/bin/python"

. "$REPO/tools/pip_install.sh"

echo "peer setup: torch==$TORCH_VERSION (CPU build, as tools/install_venv.sh)"
pip_install "torch==$TORCH_VERSION" || fail "pip could not install torch==$TORCH_VERSION"

echo "peer setup: espnet==$ESPNET_VERSION (--no-deps)"
pip_install --no-deps "espnet==$ESPNET_VERSION" || fail "pip could not install espnet==$ESPNET_VERSION"

mapfile -t reqs < <("$PY" - <<'PY'
import re
from importlib.metadata import requires
for line in requires("espnet") or []:
    name = re.match(r"[A-Za-z0-9._-]+", line).group(0)
    if ";" not in line and name.lower() != "setuptools":  # extras carry a marker
        print(line)
PY
)
(( ${#reqs[@]} > 0 )) || fail "could not read espnet's requirements from its metadata"
echo "peer setup: espnet's ${#reqs[@]} requirements (setuptools pin left out), torch kept at $TORCH_VERSION"
pip_install setuptools "${reqs[@]}" "torch==$TORCH_VERSION" || fail "pip could not install espnet's requirements"

echo "peer setup: torchaudio==$TORCHAUDIO_VERSION (--no-deps, compiled extensions removed)"
pip_install --no-deps "torchaudio==$TORCHAUDIO_VERSION" || fail "pip could not install torchaudio==$TORCHAUDIO_VERSION"
ta_dir=$("$PY" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("torchaudio").origin))')
rm -f "$ta_dir"/lib/*.so

got=$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')
[[ "$got" == "$TORCH_VERSION" ]] || fail "expected torch $TORCH_VERSION in $VENV, found $got"
# The modules espnet_bench.py uses (espnet2.tasks.* would also try to fetch NLTK data at import).
"$PY" -c 'import espnet2.mt.espnet_model, espnet2.asr.espnet_model, espnet.nets.batch_beam_search' >/dev/null 2>&1 \
    || fail "espnet2 does not import in $VENV (try: $PY -c 'import espnet2.asr.espnet_model')"

echo "$want" > "$STAMP"
echo "peer setup: done (bench/peer/$VENV, espnet $ESPNET_VERSION, torch $got)"
