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
#   5 average   legonn average of $avg_num checkpoints ($avg_mode: best or last kept)
#   6 export    legonn export: module folders under exp/<name>/modules; legonn compose for
#               the composition entries of $experiments, legonn assemble for the assembly entries
#   7 decode    legonn decode of every "<exp>@<set>" in $decodes
#   8 score     legonn score of every decode, RESULTS.md (+ the $relative table and its plot)
#
# $experiments is an ordered list; stages 4-6 run entry by entry, so an entry may use the
# modules of an earlier one (model inventory, paper Fig. 1):
#   name:conf/a.yaml[,conf/b.yaml]   trained from the configs (later files override earlier ones)
#   name=dir1+dir2[+dir3]            composed from module folders into exp/<name> (no training);
#                                    a later entry may fine-tune it with
#                                    name_ft:exp/name/finetune.yaml,conf/finetune_x.yaml
#   name=assemble:phase:module:ratio[:strategy]
#                                    module folder exp/<name> assembled from the modular layers of
#                                    the trained entry <phase> (a config with a `modular` section,
#                                    Modular Transformers; its stage 6 exports nothing), <ratio>
#                                    times fewer stack layers than the teacher's module; a later
#                                    composition uses it like any module folder
#   name=shrink:folder:ratio         module folder exp/<name>: the module in <folder> with <ratio>
#                                    times fewer of its own stack layers (the baseline without
#                                    modular layers; a later entry may fine-tune it)
#   name=weightless:type:vocab       module folder exp/<name>: an interface module without weights
#                                    over the vocabulary file <vocab> (e.g. ctc_compress, which
#                                    shortens a recogniser's marginals to one position per token)
# $cascades lists "<set>=<source set>:<hypothesis file>:<stream>" test sets that stage 7 makes
# before decoding into them: data/<source set> with <stream> replaced by a decode's output (e.g.
# a recogniser's 1-best as the text an MT model reads: a cascade), remade when that file changes.
# $relative lists "<exp>@<set>=<reference exp>" rows for the modularity table of stage 8: the
# score of a swapped/plugged model as a percentage of the unswapped reference (paper Fig. 4).
#
# Options (any recipe variable can be set the same way): --stage N --stop_stage M
# --force true (redo finished stages; stage 4 moves exp/<name> aside and trains afresh)
# --device cpu|cuda --ngpu N (torchrun processes)
# --cmd_backend local|slurm (egs/TEMPLATE/cmd.sh: where training, decoding and feature jobs run)
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
avg_mode=${avg_mode:-best}             # best (by the validation metric) or last kept checkpoints
decodes=${decodes:-}                   # "exp_name@test_set" ...
decode_opts=${decode_opts:-}           # e.g. "--beam 5 --length_penalty 0.6"
ref_file=${ref_file:-text}             # reference file in each test set's data dir
score_opts=${score_opts:-}
results_title=${results_title:-Results}
results_file=${results_file:-RESULTS.md}  # notes come from <name>.notes.md, plots go to <name>_*.png
relative=${relative:-}                 # "<exp>@<set>=<reference exp>" ... (stage 8 modularity table)
cascades=${cascades:-}                 # "<set>=<source set>:<hypothesis file>:<stream>" ... (stage 7)
cmd_backend=${cmd_backend:-local}

help_message="usage: $0 [--stage N] [--stop_stage M] [--force true] [--device cpu|cuda] [--ngpu N] [--<variable> value]"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$root/utils/parse_options.sh"
. "$root/egs/TEMPLATE/path.sh"
. "$root/egs/TEMPLATE/cmd.sh"

mkdir -p exp/logs exp/.done

# The console label names the corpus and the task (mini/mt1), so two recipes' logs do not look alike.
recipe_label="$(basename "$(dirname "$PWD")")/$(basename "$PWD")"
log() { echo "$(date '+%Y-%m-%d %H:%M:%S') [$recipe_label] $*" >&2; }

# need_trained NAME STAGE: stages 5-7 of a trained entry need what stage 4 made.
need_trained() {
    [[ -f exp/$1/config.yaml ]] && return 0
    log "stage $2 ($1): exp/$1 holds no trained experiment (no config.yaml); run stage 4 first: $0 --stage 4"
    exit 1
}

# run_stage N NAME ITEM CMD...: run CMD once, logging to exp/logs/, unless already done.
run_stage() {
    local n=$1 name=$2 item=$3; shift 3
    local tag="stage${n}_${name}${item:+.$item}"
    local marker="exp/.done/$tag" logfile="exp/logs/$tag.log"
    # Stages 4-8 work on exp/<experiment>: a marker outlives a deleted experiment dir, so a
    # missing dir means the stage is redone, not skipped.
    local exp_dir="exp/${item%%@*}"
    if [[ -f "$marker" && "$force" != true ]]; then
        if [[ $n -lt 4 || -d $exp_dir ]]; then
            log "stage $n ($name${item:+ $item}): already done ($marker); --force true redoes it"
            return 0
        fi
        log "stage $n ($name${item:+ $item}): $exp_dir is gone; redoing the stage despite $marker"
    fi
    # What an experiment's later stages made came from what this stage is about to replace.
    if [[ $n -ge 4 ]]; then
        local later number
        for later in exp/.done/stage*_*."${item%%@*}" exp/.done/stage*_*."${item%%@*}"@*; do
            number=${later#exp/.done/stage}
            [[ -f $later && ${number%%_*} -gt $n ]] && rm -f "$later"
        done
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

# check_trained NAME CONFS: an experiment trained before continues only with the config it was
# started with (exp/NAME/config.yaml). A changed budget (trainer.max_steps, max_epochs, patience)
# continues its training; any other change stops here, naming the changed keys. Stopping, not
# retraining, because a retraining costs hours and moves the old experiment's results aside:
# the user decides, by moving exp/NAME aside or with --force true.
check_trained() {
    local name=$1 confs=$2 changes rc=0
    # shellcheck disable=SC2086
    changes=$(legonn train --config ${confs//,/ } --exp_dir "exp/$name" --check_config $train_opts) || rc=$?
    if [[ $rc == 0 && -n $changes ]]; then
        log "stage 4 (train $name): continuing with a new budget: ${changes//$'\n'/; }"
        rm -f "exp/.done/stage4_train.$name"
    elif [[ $rc == 3 ]]; then
        log "stage 4 (train $name): its config changed since exp/$name was trained:"
        sed 's/^/    /' <<<"$changes" >&2
        log "stage 4 (train $name): to retrain it, mv exp/$name exp/$name.old and rerun $0 --stage 4" \
            "(--force true moves every trained experiment aside and retrains all), or undo the change"
        exit 1
    elif [[ $rc != 0 ]]; then
        log "stage 4 (train $name): checking its config against exp/$name/config.yaml failed (above)"
        exit 1
    fi
}

# move_aside DIR: --force true trains afresh; the old experiment stays as DIR.old-<time>.
move_aside() {
    local old
    old=$1.old-$(date +%Y%m%d-%H%M%S)
    while [[ -e $old ]]; do old+=_; done  # a second --force within the same second
    mv "$1" "$old"
    log "stage 4 (train ${1#exp/}): --force true: moved $1 aside to $old; training afresh"
}

# job PREFIX LOG CMD...: the local backend runs CMD here, its progress on the console (and in
# the stage log); another backend gets "$PREFIX [resources] LOG CMD" and its job log is LOG.
job() {
    local prefix=$1 logfile=$2; shift 2
    if [[ $cmd_backend == local ]]; then
        "$@"
    else
        # shellcheck disable=SC2086
        $prefix --num_threads "$num_threads" --gpu "$ngpu" "$logfile" "$@"
    fi
}

threads=()
[[ $num_threads -gt 0 ]] && threads=(env OMP_NUM_THREADS="$num_threads")

if in_stage 1; then
    [[ -x local/data.sh || -f local/data.sh ]] || { log "local/data.sh is missing"; exit 1; }
    # shellcheck disable=SC2086
    run_stage 1 data "" bash local/data.sh $data_opts
fi

if in_stage 2; then
    for set in $feats_sets; do
        run_stage 2 features "$set" job "$cmd" "exp/logs/stage2_features.$set.job.log" \
            legonn features --data_dir "data/$set" --nj "$nj"
    done
fi

if in_stage 3; then
    for spec in $vocabs; do
        IFS=: read -r name kind size texts evals <<<"$spec"
        run_stage 3 vocab "$name" legonn vocab --kind "$kind" --size "$size" --texts "$texts" \
            ${evals:+--eval_texts "$evals"} --out "data/lang/$name"
    done
fi

for spec in $experiments; do
    if [[ $spec == *=assemble:* ]]; then  # a module assembled from a modular phase
        name=${spec%%=*}
        IFS=: read -r _ phase module ratio strategy <<< "${spec#*=}"
        if in_stage 6; then
            if [[ -f exp/.done/stage6_assemble.$name && exp/$phase/averaged.pt -nt exp/.done/stage6_assemble.$name ]]; then
                log "stage 6 (assemble $name): exp/$phase/averaged.pt is newer than the assembly; assembling again"
                rm -f "exp/.done/stage6_assemble.$name"
            fi
            need_trained "$phase" 6
            run_stage 6 assemble "$name" legonn assemble --exp_dir "exp/$phase" --checkpoint "exp/$phase/averaged.pt" \
                --module "$module" --ratio "$ratio" --strategy "${strategy:-size-first}" --out "exp/$name"
        fi
        continue
    fi
    if [[ $spec == *=shrink:* ]]; then  # a module with fewer of its own layers
        name=${spec%%=*}
        IFS=: read -r _ folder ratio <<< "${spec#*=}"
        if in_stage 6; then
            if [[ -f exp/.done/stage6_shrink.$name && $folder -nt exp/.done/stage6_shrink.$name ]]; then
                log "stage 6 (shrink $name): $folder is newer than the shrunk module; shrinking again"
                rm -f "exp/.done/stage6_shrink.$name"
            fi
            run_stage 6 shrink "$name" legonn assemble --teacher "$folder" --ratio "$ratio" --out "exp/$name"
        fi
        continue
    fi
    if [[ $spec == *=weightless:* ]]; then  # an interface module that needs no training
        name=${spec%%=*}
        IFS=: read -r _ type vocab <<< "${spec#*=}"
        if in_stage 6; then
            run_stage 6 weightless "$name" legonn export --weightless "$type" --vocab "$vocab" --out_dir "exp/$name"
        fi
        continue
    fi
    if [[ $spec == *=* ]]; then  # a composition of module folders
        name=${spec%%=*}; parts=${spec#*=}
        if in_stage 6; then
            # A part re-exported since (its experiment retrained) makes the composition stale.
            for part in ${parts//+/ }; do
                if [[ -f exp/.done/stage6_compose.$name && $part -nt exp/.done/stage6_compose.$name ]]; then
                    log "stage 6 (compose $name): $part is newer than the composition; composing again"
                    rm -f "exp/.done/stage6_compose.$name"
                fi
            done
            # shellcheck disable=SC2086
            run_stage 6 compose "$name" legonn compose --modules ${parts//+/ } --out "exp/$name"
        fi
        continue
    fi
    name=${spec%%:*}; confs=${spec#*:}
    if in_stage 4; then
        if [[ $force == true && -e exp/$name ]]; then
            move_aside "exp/$name"
        elif [[ -f exp/$name/config.yaml ]]; then
            check_trained "$name" "$confs"
        fi
        launcher=(legonn)
        if [[ $ngpu -gt 1 ]]; then
            launcher=(python -m torch.distributed.run --standalone --nproc_per_node "$ngpu" -m legonn)
        fi
        # shellcheck disable=SC2086
        run_stage 4 train "$name" job "$train_cmd" "exp/logs/stage4_train.$name.job.log" "${threads[@]}" \
            "${launcher[@]}" train --config ${confs//,/ } --exp_dir "exp/$name" --device "$device" $train_opts
    fi
    if in_stage 5; then
        need_trained "$name" 5
        run_stage 5 average "$name" legonn average --exp_dir "exp/$name" --num "$avg_num" --mode "$avg_mode" \
            --out "exp/$name/averaged.pt"
    fi
    if in_stage 6 && grep -q '^modular:$' "exp/$name/config.yaml" 2>/dev/null; then
        log "stage 6 ($name): a modular phase; its modules are built by the assemble entries of \$experiments"
    elif in_stage 6; then
        need_trained "$name" 6
        run_stage 6 export "$name" legonn export --exp_dir "exp/$name" --checkpoint "exp/$name/averaged.pt" \
            --out_dir "exp/$name/modules"
    fi
done

# cascade_set SET: for a set of $cascades, (re)make data/SET from its source set and hypothesis
# file when that file is newer (then its decodes are redone); other sets are left alone.
cascade_set() {
    local spec src hyp stream
    for spec in $cascades; do
        [[ ${spec%%=*} == "$1" ]] || continue
        IFS=: read -r src hyp stream <<< "${spec#*=}"
        if [[ ! -f $hyp ]]; then
            log "stage 7 (cascade $1): $hyp is missing: an earlier entry of \$decodes must make it"
            exit 1
        fi
        [[ -f data/$1/$stream && ! $hyp -nt data/$1/$stream ]] && return 0
        rm -rf "data/$1.tmp"
        cp -r "data/$src" "data/$1.tmp"
        cp "$hyp" "data/$1.tmp/$stream"
        legonn datadir validate "data/$1.tmp" > /dev/null || { log "stage 7 (cascade $1): $hyp does not fit data/$src"; exit 1; }
        rm -rf "data/$1"
        mv "data/$1.tmp" "data/$1"
        rm -f exp/.done/stage[78]_*@"$1" exp/.done/stage8_*@"$1".*
        log "stage 7 (cascade $1): data/$src with $stream from $hyp"
    done
}

if in_stage 7; then
    for spec in $decodes; do
        name=${spec%%@*}; set=${spec#*@}
        cascade_set "$set"
        if [[ -f exp/$name/composed.json ]]; then
            model=(--modules "exp/$name")
        else
            need_trained "$name" 7
            model=(--exp_dir "exp/$name" --checkpoint "exp/$name/averaged.pt")
        fi
        # shellcheck disable=SC2086
        run_stage 7 decode "$name@$set" job "$decode_cmd" "exp/logs/stage7_decode.$name@$set.job.log" \
            "${threads[@]}" legonn decode "${model[@]}" --data_dir "data/$set" --out_dir "exp/$name/decode_$set" \
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
            # A module's best path is scored against the file it learnt to emit (decode names it
            # in ctc_<module>.ref, e.g. text.phn), else against the recipe's reference.
            ctc_ref=$ref_file
            [[ -f $dir/$module.ref ]] && ctc_ref=$(<"$dir/$module.ref")
            [[ -f data/$set/$ctc_ref ]] || ctc_ref=$ref_file
            # shellcheck disable=SC2086
            run_stage 8 score "$name@$set.$module" legonn score --ref "data/$set/$ctc_ref" --hyp "$ctc" \
                --out_dir "$dir/$module" $score_opts
        done
    done
    base=${results_file%.md}
    python "$root/utils/plot_curves.py" --experiments "$experiments" --out "${base}_curves.png"
    relative_opts=()
    [[ -n $relative ]] && relative_opts=(--relative "$relative" --relative_plot "${base}_modularity.png")
    python "$root/utils/results_table.py" --title "$results_title" --decodes "$decodes" \
        --curves "${base}_curves.png" --notes "$base.notes.md" "${relative_opts[@]}" > "$results_file.tmp"
    mv "$results_file.tmp" "$results_file"
    log "results: $PWD/$results_file"
fi
