#!/usr/bin/env bash
# Kaldi's utils/validate_data_dir.sh, via 'legonn datadir validate'.
#   utils/validate_data_dir.sh [--no-text] [--no-wav] [--no-file-check] data/train
# Prints each problem (file:line: message) and a summary line; exits 1 if there is any.
# A text-only (MT) dir, text.<lang> files only: --no-wav --no-text; its first text.* lists the utterances.
# Kaldi's --no-feats, --non-print and --no-spk-sort are accepted and ignored.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -x "$root/.venv/bin/legonn" ]]; then legonn="$root/.venv/bin/legonn"; else legonn=legonn; fi
opts=()
while [[ $# -gt 0 && $1 == --* ]]; do
    case "$1" in
        --no-text|--no_text) opts+=(--no_text) ;;
        --no-wav|--no_wav) opts+=(--no_wav) ;;
        --no-file-check|--no_file_check) opts+=(--no_file_check) ;;
        --no-feats|--non-print|--no-spk-sort) ;;
        *) echo "$0: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [[ $# -ne 1 ]]; then
    echo "usage: $0 [--no-text] [--no-wav] [--no-file-check] <data-dir>" >&2
    exit 2
fi
exec "$legonn" datadir validate "${opts[@]}" "$1"
