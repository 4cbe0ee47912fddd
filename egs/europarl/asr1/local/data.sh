#!/usr/bin/env bash
# Europarl-ST English speech (the corpus db.sh names) as Kaldi data dirs, paper Appendix A-B:
#   data/{train,dev,test}   wav.scp (+ segments) of the release's en/<tgt>/<split>; text lowercased,
#                           tokenized, punctuation stripped; text.phn: ARPAbet phonemes (legonn phonemize)
#   data/test_phn           the test set with the phonemes as its text (the phoneme recogniser's reference)
#   data/local/en_bpe/text  the English BPE's training text: Europarl train (+ TED-LIUM train when
#                           db.sh names it); stage 3 learns data/lang/en.model from it, which
#                           egs/wmt/mt1 copies for its ASR-transfer De-En models
#
#   --tgt de   which target-language folder's segments to use (they all hold segments.en)
set -euo pipefail
tgt=de
. ./db.sh
. ../../../utils/parse_options.sh

log() { echo "local/data.sh: $*" >&2; }
if [[ -z ${EUROPARL_ST:-} ]]; then
    log "EUROPARL_ST is not set in db.sh (Europarl-ST's v1.1 directory; see README.md)"
    exit 1
fi
[[ -d $EUROPARL_ST ]] || { log "EUROPARL_ST=$EUROPARL_ST (db.sh) is not a directory"; exit 1; }

prepare=(python local/prepare_europarl.py --root "$EUROPARL_ST" --tgt "$tgt" ${TEDLIUM_TRAIN_STM:+--tedlium_stm "$TEDLIUM_TRAIN_STM"})
"${prepare[@]}" --check_only
"${prepare[@]}"

for set in train dev test; do
    legonn phonemize --in "data/$set/text" --out "data/$set/text.phn" --quiet
done

rm -rf data/test_phn
mkdir -p data/test_phn
cp data/test/{wav.scp,segments,utt2spk,spk2utt,text.phn} data/test_phn/
cp data/test/text.phn data/test_phn/text

for set in train dev test test_phn; do
    legonn datadir validate "data/$set"
done

# One file for the BPE to learn from, so the vocab spec in run.sh needs no condition.
mkdir -p data/local/en_bpe
cat data/train/text ${TEDLIUM_TRAIN_STM:+data/local/tedlium_train/text} > data/local/en_bpe/text.tmp
mv data/local/en_bpe/text.tmp data/local/en_bpe/text
