#!/usr/bin/env bash
# Mini English ASR with LegoNN modules, on speech synthesised from the offline corpus in ../corpus.
# Mirrors the paper's ASR setups at CPU scale: the baseline enc-dec, a LegoNN ASR system whose
# encoder emits CTC marginals over the English BPE the De-En MT decoder reads (so that decoder can
# be plugged on, paper §V / Appendix A-B), the encoder-only model for that transfer, and a phoneme
# recogniser (the first module of a three-module ASR chain).
#
#   (cd ../mt1 && ./run.sh --stop_stage 3)   # first: the MT recipe's English BPE, shared here
#   ./run.sh                                  # everything
#   ./run.sh --stage 2 --stop_stage 3
#   ./run.sh --data_opts "--train_utts 40 --eval_utts 8 --standalone_bpe_size 60" ...   # tiny, standalone
set -euo pipefail
cd "$(dirname "$0")"

# Data: local/data.sh synthesises data/{train,valid,test} (+ data/test_phn: test with phoneme
# references) and copies the MT recipe's 256-piece English BPE to data/lang/en256.model (it fails,
# saying so, when ../mt1/data/lang/en256.model is missing). See local/data.sh for its options.
data_opts=""
feats_sets="train valid test test_phn"
# Only the phoneme inventory is built here: the English BPE is the MT decoder's (not retrained).
# name:kind:size:train_texts[:eval_texts]
vocabs="phn:tokens:0:data/train/text.phn:data/test/text.phn"
# The De-En MT decoder that is plugged onto the ASR encoder (paper Table IV): ../mt1's module on
# the 256-piece BPEs (data/lang/en256.model is a copy of its English BPE).
mt_decoder=../mt1/exp/deen_lego_wemb_bpe256/modules/decoder
# In order: exp_name:config[,config] (trained) or exp_name=module+module (composed);
# exp dirs are named here, never derived from options.
experiments="asr_baseline:conf/train_asr_baseline.yaml
asr_lego_wemb:conf/train_asr_lego_wemb.yaml
asr_enconly:conf/train_asr_enconly.yaml
asr_phn:conf/train_asr_phn.yaml
asr_plug=exp/asr_enconly/modules/encoder+$mt_decoder
asr_plug_ft:exp/asr_plug/finetune.yaml,conf/finetune_asr_plug.yaml"
avg_num=5
decodes="asr_baseline@test asr_lego_wemb@test asr_enconly@test asr_phn@test_phn asr_plug@test asr_plug_ft@test"
# The modularity table of stage 8 (WER compared as word accuracy, 100 % = the baseline).
relative="asr_lego_wemb@test=asr_baseline asr_enconly@test=asr_baseline asr_plug@test=asr_baseline asr_plug_ft@test=asr_baseline"
decode_opts="--beam 20 --length_penalty 1.0"   # paper's ASR setting
ref_file=text
# WER on what is audible: case and punctuation are not (the models still write them).
score_opts="--metric wer --lowercase --remove_punct"
results_title="Mini ASR (synthesised English speech)"

. ../../TEMPLATE/legonn.sh "$@"
