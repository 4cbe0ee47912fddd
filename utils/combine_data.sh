#!/usr/bin/env bash
# Kaldi's utils/combine_data.sh, via 'legonn datadir combine'.
#   utils/combine_data.sh <dest-data-dir> <src-data-dir1> <src-data-dir2> ...
# An utterance id found in two sources is an error (Kaldi would silently keep one).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -x "$root/.venv/bin/legonn" ]]; then legonn="$root/.venv/bin/legonn"; else legonn=legonn; fi
while [[ $# -gt 0 && $1 == --* ]]; do
    case "$1" in
        --skip-fix|--extra-files|--extra_files) [[ $1 == --skip-fix ]] || shift ;;  # Kaldi options: not needed
        *) echo "$0: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [[ $# -lt 2 ]]; then
    echo "usage: $0 <dest-data-dir> <src-data-dir1> [<src-data-dir2> ...]" >&2
    exit 2
fi
exec "$legonn" datadir combine "$@"
