#!/usr/bin/env bash
# Kaldi's utils/fix_data_dir.sh, via 'legonn datadir fix': sorts every table (LC_ALL=C
# order), keeps only utterances present in all of them (audio, text, utt2spk, feats.scp,
# text.*, utt2*), rebuilds spk2utt (a text-only dir gets no utt2spk/spk2utt); the originals are
# kept in <data-dir>/.backup/.
#   utils/fix_data_dir.sh data/train
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -x "$root/.venv/bin/legonn" ]]; then legonn="$root/.venv/bin/legonn"; else legonn=legonn; fi
if [[ $# -ne 1 ]]; then
    echo "usage: $0 <data-dir>" >&2
    exit 2
fi
exec "$legonn" datadir fix "$1"
