#!/usr/bin/env bash
# The mini-corpus demo (`make demo`): the LegoNN story end to end on 2 CPU cores.
#
#   1. mt1: a De-En LegoNN model (WEmb decoder) and a Ro-En encoder-only module, both speaking
#      CTC marginals over one shared English BPE (mt1's 1000 pieces);
#   2. asr1: an English ASR encoder-only model over the same BPE (synthesised speech), two
#      modules trained together: phoneme CTC, then BPE CTC over the phoneme marginals;
#   3. the De-En decoder plugged onto the Ro-En and the ASR encoders, with no fine-tuning
#      (paper Tables III and IV); 4. scores, a paper-style table, RESULTS files and plots.
#
# Trainings run in two lanes at once (one torch thread each). Finished stages leave .done
# markers, so modules trained by an earlier run are reused and a second run only re-scores.
#
#   ./demo.sh                  # the demo's experiments of mt1 and asr1 (~25 min)
#   ./demo.sh --mode tiny      # the same stages with smoke-test data and configs (minutes)
#   ./demo.sh --mode full      # every experiment of both recipes' run.sh (many CPU hours)
#
# Each recipe writes RESULTS.<mode>.md and this script the combined RESULTS.<mode>.md here.
set -euo pipefail
# The body is one { ... } group: bash parses it whole before running it, so editing this file
# while a demo runs cannot feed the running shell half a line.
{
cd "$(dirname "$0")"

mode=demo
lanes=2                  # trainings at once (each with one torch thread)
help_message="usage: $0 [--mode demo|tiny|full] [--lanes N]"
. ../../utils/parse_options.sh

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') [demo] $*" >&2; }

case $mode in
    demo)
        mt_opts=()
        asr_opts=()
        ;;
    tiny)
        mt_opts=(--data_opts "--train_pairs 300 --eval_pairs 20"
                 --vocabs "en:bpe:200:data/deen_train/text.en,data/roen_train/text.en:data/deen_test/text.en,data/roen_test/text.en de:bpe:200:data/deen_train/text.de ro:bpe:200:data/roen_train/text.ro"
                 --avg_num 2 --decode_opts "--beam 2 --max_len_a 1.2 --max_len_b 5")
        asr_opts=(--data_opts "--train_utts 40 --eval_utts 8 --voices_train 4 --voices_valid 2 --voices_test 2 --bpe en --mt_config ../mt1/conf/tiny/deen_lego_wemb.yaml"
                  --avg_num 2 --decode_opts "--beam 2")
        ;;
    full)
        log "full mode: every experiment of mt1/run.sh, then of asr1/run.sh (see their README.md)"
        (cd mt1 && ./run.sh --num_threads "$(nproc)")
        (cd asr1 && ./run.sh --num_threads "$(nproc)")
        python local/demo_table.py --mode full --out RESULTS.full.md
        exit 0
        ;;
    *)
        log "unknown --mode '$mode' (demo, tiny or full)"
        exit 1
        ;;
esac

# The demo's models are experiments of the mini recipes (their run.sh lists them too, so a full
# run reuses what the demo trained); tiny mode names its own, smoke-test sized, after them.
deen=deen_lego_demo
roen=roen_enconly_demo
asr=asr_enconly_demo
deen_conf=conf/train_$deen.yaml
roen_conf=conf/train_$roen.yaml
asr_conf=conf/train_$asr.yaml
if [[ $mode == tiny ]]; then
    deen=tiny_$deen; roen=tiny_$roen; asr=tiny_$asr
    deen_conf=conf/tiny/deen_lego_wemb.yaml
    roen_conf=conf/tiny/roen_enconly.yaml
    asr_conf=conf/tiny/asr_enconly.yaml
fi
roen_plug=${roen/enconly/plug}
asr_plug=${asr/enconly/plug}
mt_experiments="$deen:$deen_conf
$roen:$roen_conf
$roen_plug=exp/$roen/modules/encoder+exp/$deen/modules/decoder"
asr_experiments="$asr:$asr_conf
$asr_plug=exp/$asr/modules/encoder+exp/$asr/modules/pron+../mt1/exp/$deen/modules/decoder"
common=(--num_threads 1 --results_file "RESULTS.$mode.md" --relative "")

# Data and vocabularies first (the ASR recipe shares mt1's English BPEs).
log "MT data and vocabularies (mt1 stages 1-3)"
(cd mt1 && ./run.sh "${mt_opts[@]}" "${common[@]}" --stop_stage 3)

# Lane A trains the De-En model; lane B the Ro-En encoder, then the ASR data and encoder.
mkdir -p mt1/exp/logs
lane_a_log=mt1/exp/logs/demo_lane_a.$mode.log
log "lane A: De-En LegoNN ($deen) in the background, log $lane_a_log"
(cd mt1 && ./run.sh "${mt_opts[@]}" "${common[@]}" --stage 4 --stop_stage 6 \
    --experiments "$deen:$deen_conf") > "$lane_a_log" 2>&1 &
lane_a=$!
# If the demo stops early (a failure, Ctrl-C), lane A's training stops with it.
kill_tree() {
    local child
    for child in $(pgrep -P "$1" || true); do kill_tree "$child"; done
    kill "$1" 2>/dev/null || true
}
trap 'kill_tree "$lane_a"' EXIT
[[ $lanes -gt 1 ]] || wait "$lane_a"
log "lane B: Ro-En encoder-only ($roen), then the ASR data and encoder-only model ($asr)"
(cd mt1 && ./run.sh "${mt_opts[@]}" "${common[@]}" --stage 4 --stop_stage 6 \
    --experiments "$roen:$roen_conf")
(cd asr1 && ./run.sh "${asr_opts[@]}" "${common[@]}" --stop_stage 6 --experiments "$asr:$asr_conf")
if ! wait "$lane_a"; then
    log "lane A failed; the end of $lane_a_log:"
    tail -n 5 "$lane_a_log" >&2
    exit 1
fi
trap - EXIT

log "plugging the De-En decoder onto the Ro-En and ASR encoders (no fine-tuning), decoding, scoring"
(cd mt1 && ./run.sh "${mt_opts[@]}" "${common[@]}" --num_threads "$lanes" --stage 6 \
    --experiments "$mt_experiments" \
    --decodes "$deen@deen_test $roen@roen_test $roen_plug@roen_test" \
    --results_title "Mini MT, $mode mode")
(cd asr1 && ./run.sh "${asr_opts[@]}" "${common[@]}" --num_threads "$lanes" --stage 6 \
    --experiments "$asr_experiments" \
    --decodes "$asr@test $asr_plug@test" \
    --results_title "Mini ASR, $mode mode")
python local/demo_table.py --mode "$mode" --out "RESULTS.$mode.md"
exit
}
