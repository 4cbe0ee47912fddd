#!/usr/bin/env bash
# Kaldi's utils/subset_data_dir.sh, via 'legonn datadir subset'.
#   utils/subset_data_dir.sh <src> <num-utt> <dst>              N evenly spaced utterances
#   utils/subset_data_dir.sh --first|--last <src> <num-utt> <dst>
#   utils/subset_data_dir.sh --speakers <src> <num-utt> <dst>   whole speakers, >= N utterances
#   utils/subset_data_dir.sh --utt-list <file> <src> <dst>
#   utils/subset_data_dir.sh --spk-list <file> <src> <dst>
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -x "$root/.venv/bin/legonn" ]]; then legonn="$root/.venv/bin/legonn"; else legonn=legonn; fi
usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
mode=n list=
while [[ $# -gt 0 && $1 == --* ]]; do
    case "$1" in
        --first) mode=first ;;
        --last) mode=last ;;
        --speakers) mode=speakers ;;
        --utt-list|--utt_list) mode=utt_list; list=${2:?--utt-list needs a file}; shift ;;
        --spk-list|--spk_list) mode=spk_list; list=${2:?--spk-list needs a file}; shift ;;
        *) echo "$0: unknown option $1" >&2; usage ;;
    esac
    shift
done
case "$mode" in
    utt_list|spk_list)
        [[ $# -eq 2 ]] || usage
        exec "$legonn" datadir subset "$1" "$2" "--$mode" "$list" ;;
    speakers)
        [[ $# -eq 3 ]] || usage
        exec "$legonn" datadir subset "$1" "$3" --n "$2" --by_speaker ;;
    *)
        [[ $# -eq 3 ]] || usage
        exec "$legonn" datadir subset "$1" "$3" "--$mode" "$2" ;;
esac
