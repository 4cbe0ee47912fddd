#!/usr/bin/env bash
# utils/percent_subsets.sh <data dir> "<P> ..."
# For each P: <data dir>_<P>pct with P % of the dir's utterances, evenly spaced (so every speaker
# stays in; low-resource subsets). Prints the names of the dirs it made, one line.
set -euo pipefail
[[ $# -eq 2 ]] || { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
src=$1
total=$(wc -l < "$src/text")
names=""
for pct in $2; do
    n=$(( total * pct / 100 ))
    [[ $n -gt 0 ]] || { echo "$0: $pct % of $src is no utterance" >&2; exit 1; }
    rm -rf "${src}_${pct}pct"
    "$(dirname "$0")/subset_data_dir.sh" "$src" "$n" "${src}_${pct}pct" >&2
    echo "$0: ${src}_${pct}pct: $n of $total utterances" >&2
    names+=" $(basename "$src")_${pct}pct"
done
echo "$names"
