#!/usr/bin/env bash
# Kaldi-style data dirs (data/<task>_{train,valid,test}/text.<lang>, + text = the reference on
# valid/test) from the raw WMT files whose directories db.sh names. See README.md for the files.
#
#   --tasks ende,roen,asr   which of the paper's setups (comma-separated)
#     ende  WMT14 En->De (Table I): raw cased text; pairs over 250 tokens dropped
#           -> data/ende_{train,valid,test} (+ ende_newstest20XX, one per year)
#     roen  Ro-En transfer (Table III), lowercased and tokenized (Appendix A-A); pairs over
#           80 tokens dropped -> data/deen19_* (WMT19 De-En) and data/roen_* (WMT16 Ro-En)
#     asr   ASR-MT transfer (Table IV): WMT19 De-En lowercased, tokenized, punctuation
#           stripped like the Europarl-ST transcripts (Appendix A-B) -> data/deen19asr_*,
#           and egs/europarl/asr1's English BPE copied to data/lang/asr_en.*
#   --ratio 1.5             drop training pairs whose token ratio is larger, either way
#   --ende_train/--deen19_train/--roen_train LIST   training corpora (comma-separated names;
#                           "X" = files X.<src> + X.<tgt>, "X.de-en.tsv" = a two-column TSV)
#   --asr_lang DIR          where egs/europarl/asr1 wrote en.model (../../europarl/asr1/data/lang)
#
# Every input is checked before anything is written; a problem stops with one line.
set -euo pipefail
tasks=ende,roen,asr
ratio=1.5
ende_train=europarl-v7.de-en,commoncrawl.de-en,news-commentary-v11.de-en
deen19_train=europarl-v9.de-en.tsv,commoncrawl.de-en,news-commentary-v14.de-en.tsv,wikititles-v1.de-en.tsv,rapid2019.de-en
roen_train=europarl-v8.ro-en,SETIMES2.en-ro
asr_lang=../../europarl/asr1/data/lang
. ./db.sh
. ../../../utils/parse_options.sh

log() { echo "local/data.sh: $*" >&2; }

# need_dir TASK VAR: the db.sh variable VAR must name a directory.
need_dir() {
    local value=${!2:-}
    if [[ -z $value ]]; then
        log "$2 is not set in db.sh (the raw corpus for --tasks $1; see README.md)"
        exit 1
    fi
    [[ -d $value ]] || { log "$2=$value (db.sh) is not a directory"; exit 1; }
}

# The jobs: "name db_variable src tgt train valid tests max_len options".
jobs=()
for task in ${tasks//,/ }; do
    case $task in
        ende)
            need_dir ende WMT14_ENDE
            jobs+=("ende WMT14_ENDE en de $ende_train newstest2013 newstest2011,newstest2012,newstest2014,newstest2015,newstest2016 250 -")
            ;;
        roen)
            need_dir roen WMT19_DEEN
            need_dir roen WMT16_ROEN
            jobs+=("deen19 WMT19_DEEN de en $deen19_train newstest2018 newstest2019 80 --lowercase,--tokenize")
            jobs+=("roen WMT16_ROEN ro en $roen_train newsdev2016 newstest2016 80 --lowercase,--tokenize")
            ;;
        asr)
            need_dir asr WMT19_DEEN
            if [[ ! -f $asr_lang/en.model ]]; then
                log "$asr_lang/en.model is missing: --tasks asr decodes into egs/europarl/asr1's English BPE; run its stages 1-3 first"
                exit 1
            fi
            jobs+=("deen19asr WMT19_DEEN de en $deen19_train newstest2018 newstest2019 80 --lowercase,--tokenize,--no_punct")
            ;;
        *)
            log "unknown task '$task' in --tasks (ende, roen, asr)"
            exit 1
            ;;
    esac
done

run_job() {  # run_job JOB [--check_only]
    local name var src tgt train valid tests max_len opts
    read -r name var src tgt train valid tests max_len opts <<<"$1"
    shift
    [[ $opts == - ]] && opts=""
    # shellcheck disable=SC2086
    python local/prepare_wmt.py --name "$name" --label "$var" --corpus_dir "${!var}" --src "$src" --tgt "$tgt" \
        --train "$train" --valid "$valid" --tests "$tests" --max_len "$max_len" --ratio "$ratio" ${opts//,/ } "$@"
}

for job in "${jobs[@]}"; do run_job "$job" --check_only; done
for job in "${jobs[@]}"; do
    run_job "$job"
    # the job's data dirs (text.<lang>, + text on valid/test), checked as the speech recipes check theirs
    for dir in "data/${job%% *}"_*/; do legonn datadir validate --no_wav --no_text "${dir%/}"; done
done

# The ASR-transfer De-En models decode into the Europarl English BPE: the same model file, its
# path and sha256 recorded, and how well it covers the WMT English (paper: 0.096% OOV).
if [[ ,$tasks, == *,asr,* ]]; then
    mkdir -p data/lang
    for ext in model tokens.txt report.json; do
        if [[ -f $asr_lang/en.$ext ]]; then cp "$asr_lang/en.$ext" "data/lang/asr_en.$ext"; fi
    done
    echo "$(cd "$asr_lang" && pwd)/en.model $(sha256sum < "$asr_lang/en.model" | cut -d' ' -f1)" > data/lang/asr_en.source
    python local/coverage.py --model data/lang/asr_en.model --report "$asr_lang/en.report.json" \
        --recipe "$asr_lang/../.." --eval data/deen19asr_train/text.en --out data/lang/asr_en.wmt_coverage.json
fi
