#!/usr/bin/env bash
# The stage script every recipe shares. A recipe's run.sh sets its variables (corpus paths,
# sets, vocabularies, experiments), then sources this file with "$@":
#
#   . ../../TEMPLATE/legonn.sh "$@"
#
# Stage table (the same numbers in every recipe; a stage with nothing to do is skipped):
#   1 data      local/data.sh writes Kaldi-style data dirs under data/
#   2 features  80-dim fbank + global CMVN for $feats_sets (speech recipes)
#   3 vocab     sentencepiece models / token lists for $vocabs, with coverage reports
#   4 train     legonn train, one explicitly named exp dir per entry of $experiments
#   5 average   legonn average of the $avg_num best checkpoints
#   6 export    legonn export: module folders under exp/<name>/modules
#   7 decode    legonn decode of every "<exp>@<set>" in $decodes
#   8 score     legonn score of every decode, and RESULTS.md
#
# Options (any recipe variable can be set the same way): --stage N --stop_stage M
# --force true (redo finished stages) --device cpu|cuda --ngpu N (torchrun processes)
# Finished stages leave exp/.done/<stage>[.<item>] markers; each stage logs to exp/logs/.

set -euo pipefail

stage=${stage:-1}
stop_stage=${stop_stage:-100}
force=${force:-false}
device=${device:-cpu}
ngpu=${ngpu:-0}
nj=${nj:-4}
num_threads=${num_threads:-0}          # torch threads per process; 0 = torch's default
data_opts=${data_opts:-}               # extra arguments for local/data.sh
feats_sets=${feats_sets:-}             # data dirs (under data/) that get fbank features
vocabs=${vocabs:-}                     # "name:kind:size:text1,text2[:eval1,eval2]" ...
experiments=${experiments:-}           # "exp_name:conf/train_x.yaml" ...
train_opts=${train_opts:-}             # extra legonn train arguments for every experiment
avg_num=${avg_num:-5}
decodes=${decodes:-}                   # "exp_name@test_set" ...
decode_opts=${decode_opts:-}           # e.g. "--beam 5 --length_penalty 0.6"
ref_file=${ref_file:-text}             # reference file in each test set's data dir
score_opts=${score_opts:-}
results_title=${results_title:-Results}

help_message="usage: $0 [--stage N] [--stop_stage M] [--force true] [--device cpu|cuda] [--ngpu N] [--<variable> value]"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$root/utils/parse_options.sh"
. "$root/egs/TEMPLATE/path.sh"

mkdir -p exp/logs exp/.done

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') [$(basename "$PWD")] $*" >&2; }

# run_stage N NAME ITEM CMD...: run CMD once, logging to exp/logs/, unless already done.
run_stage() {
    local n=$1 name=$2 item=$3; shift 3
    local tag="stage${n}_${name}${item:+.$item}"
    local marker="exp/.done/$tag" logfile="exp/logs/$tag.log"
    if [[ -f "$marker" && "$force" != true ]]; then
        log "stage $n ($name${item:+ $item}): already done ($marker); --force true redoes it"
        return 0
    fi
    log "stage $n ($name${item:+ $item}): $* (log: $logfile)"
    if ! "$@" > >(tee "$logfile") 2> >(tee -a "$logfile" >&2); then
        log "stage $n ($name${item:+ $item}) FAILED; see $logfile. Last lines:"
        tail -n 5 "$logfile" >&2
        exit 1
    fi
    touch "$marker"
}

in_stage() { [[ $1 -ge $stage && $1 -le $stop_stage ]]; }

threads=()
[[ $num_threads -gt 0 ]] && threads=(env OMP_NUM_THREADS="$num_threads")

if in_stage 1; then
    [[ -x local/data.sh || -f local/data.sh ]] || { log "local/data.sh is missing"; exit 1; }
    # shellcheck disable=SC2086
    run_stage 1 data "" bash local/data.sh $data_opts
fi

if in_stage 2; then
    for set in $feats_sets; do
        run_stage 2 features "$set" legonn features --data_dir "data/$set" --nj "$nj"
    done
fi

if in_stage 3; then
    for spec in $vocabs; do
        IFS=: read -r name kind size texts evals <<<"$spec"
        run_stage 3 vocab "$name" legonn vocab --kind "$kind" --size "$size" --texts "$texts" \
            ${evals:+--eval_texts "$evals"} --out "data/lang/$name"
    done
fi

if in_stage 4; then
    for spec in $experiments; do
        name=${spec%%:*}; conf=${spec#*:}
        launcher=(legonn)
        if [[ $ngpu -gt 1 ]]; then
            launcher=(python -m torch.distributed.run --standalone --nproc_per_node "$ngpu" -m legonn)
        fi
        # shellcheck disable=SC2086
        run_stage 4 train "$name" "${threads[@]}" "${launcher[@]}" train --config "$conf" --exp_dir "exp/$name" \
            --device "$device" $train_opts
    done
fi

if in_stage 5; then
    for spec in $experiments; do
        name=${spec%%:*}
        run_stage 5 average "$name" legonn average --exp_dir "exp/$name" --num "$avg_num" --mode best \
            --out "exp/$name/averaged.pt"
    done
fi

if in_stage 6; then
    for spec in $experiments; do
        name=${spec%%:*}
        run_stage 6 export "$name" legonn export --exp_dir "exp/$name" --checkpoint "exp/$name/averaged.pt" \
            --out_dir "exp/$name/modules"
    done
fi

if in_stage 7; then
    for spec in $decodes; do
        name=${spec%%@*}; set=${spec#*@}
        # shellcheck disable=SC2086
        run_stage 7 decode "$name@$set" "${threads[@]}" legonn decode --exp_dir "exp/$name" \
            --checkpoint "exp/$name/averaged.pt" --data_dir "data/$set" --out_dir "exp/$name/decode_$set" \
            --device "$device" $decode_opts
    done
fi

if in_stage 8; then
    for spec in $decodes; do
        name=${spec%%@*}; set=${spec#*@}
        dir="exp/$name/decode_$set"
        # shellcheck disable=SC2086
        run_stage 8 score "$name@$set" legonn score --ref "data/$set/$ref_file" --hyp "$dir/text" \
            --out_dir "$dir" $score_opts
        for ctc in "$dir"/ctc_*.text; do
            [[ -f "$ctc" ]] || continue
            module=$(basename "$ctc" .text)
            # shellcheck disable=SC2086
            run_stage 8 score "$name@$set.$module" legonn score --ref "data/$set/$ref_file" --hyp "$ctc" \
                --out_dir "$dir/$module" $score_opts
        done
    done
    python "$root/utils/plot_curves.py" --experiments "$experiments" --out RESULTS_curves.png
    python "$root/utils/results_table.py" --title "$results_title" --decodes "$decodes" \
        --curves RESULTS_curves.png --notes RESULTS.notes.md > RESULTS.md.tmp
    mv RESULTS.md.tmp RESULTS.md
    log "results: $PWD/RESULTS.md"
fi
