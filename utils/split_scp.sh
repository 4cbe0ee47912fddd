#!/usr/bin/env bash
# Kaldi's utils/split_scp.pl, via 'legonn datadir split_scp': split a table into N
# contiguous parts of about equal size; with --utt2spk, a speaker's lines stay together.
#   utils/split_scp.sh [--utt2spk <utt2spk>] <in.scp> <out.1.scp> ... <out.N.scp>
#   utils/split_scp.sh [--utt2spk <utt2spk>] --n N <in.scp> <out.JOB.scp>   (JOB -> 1..N;
#                                            a pattern without JOB gets .1 .. .N appended)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -x "$root/.venv/bin/legonn" ]]; then legonn="$root/.venv/bin/legonn"; else legonn=legonn; fi
opts=()
while [[ $# -gt 0 && $1 == --* ]]; do
    case "$1" in
        --utt2spk=*) opts+=(--utt2spk "${1#*=}") ;;
        --utt2spk) opts+=(--utt2spk "${2:?--utt2spk needs a file}"); shift ;;
        --n=*) opts+=(--n "${1#*=}") ;;
        --n) opts+=(--n "${2:?--n needs a number}"); shift ;;
        *) echo "$0: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [[ $# -lt 2 ]]; then
    echo "usage: $0 [--utt2spk <utt2spk>] [--n N] <in.scp> <out.1.scp> ... <out.N.scp>" >&2
    exit 2
fi
exec "$legonn" datadir split_scp "${opts[@]}" "$@"
