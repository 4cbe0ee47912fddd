#!/usr/bin/env bash
# TED-LIUM 3 ASR with LegoNN modules (paper §V-C Table V, Appendix A-B): a phoneme recogniser,
# a pronunciation model (phonemes -> BPE, reading the phoneme recogniser's marginals through a
# WEmb ingestor) trained with it, and a BPE encoder-decoder baseline. The pronunciation model
# is the module the paper carries over to Europarl.
#
#   edit db.sh (TEDLIUM3=), then
#   ./run.sh                                  # everything
#   ./run.sh --stage 2 --stop_stage 3
#   ./run.sh --data_opts "--train_set legacy"  # TED-LIUM 2's training set instead of the full 452 h
set -euo pipefail
cd "$(dirname "$0")"

# Data: local/data.sh writes data/{train,dev,test} (text + text.phn) and data/{dev,test}_phn
# (phoneme references as 'text') from the corpus named in db.sh. See local/data.sh for its options.
data_opts=""
feats_sets="train dev test dev_phn test_phn"
# name:kind:size:train_texts[:eval_texts]. The paper trains its 2000 BPE units on Europarl and
# TED-LIUM text together (Appendix A-B), so that the pronunciation model's output can feed the
# De-En MT decoder: add the other texts here (comma-separated) for that.
vocabs="bpe2000:bpe:2000:data/train/text:data/dev/text
phn:tokens:0:data/train/text.phn:data/dev/text.phn"
# exp_name:config — exp dirs are named here, never derived from options.
experiments="ted_bpe_baseline:conf/train_bpe_baseline.yaml
ted_phn:conf/train_phn.yaml
ted_pron:conf/train_pron.yaml"
avg_num=1       # the paper decodes its last model (configs keep it: trainer.keep_last)
avg_mode=last
decodes="ted_bpe_baseline@dev ted_bpe_baseline@test
ted_phn@dev_phn ted_phn@test_phn
ted_pron@dev ted_pron@test"
# Paper's ASR setting. '--ctc_modules' with no names: only the final output is written and scored
# (ted_pron's phoneme module would otherwise be scored against words).
decode_opts="--beam 20 --length_penalty 1.0 --ctc_modules"
ref_file=text
score_opts="--metric wer"   # on *_phn sets: the phoneme error rate
results_title="TED-LIUM 3"

# "; exit" on the same line: bash reads a running script as it goes, so without it an edit
# made to this file while the recipe runs would be read (half a line) once the stages return.
. ../../TEMPLATE/legonn.sh "$@"; exit
