#!/usr/bin/env bash
# Europarl-ST English ASR with LegoNN modules on the real corpus (paper Tables IV and V, Appendix
# A-B). The corpus directory is in db.sh; README.md lists the expected files.
#   asr_baseline   transformer encoder-decoder (12+6 blocks of 512 dims)
#   asr_enconly    LegoNN encoder trained alone with CTC over the 2000-piece English BPE (OLC 1/3.5,
#                  at most 130 positions): Table IV composes it with egs/wmt/mt1's De-En decoders
#   asr_lego_wemb  the same encoder with a WEmb decoder trained on Europarl
#   asr_phn        phoneme recogniser (OLC 1/1.2, at most 365 positions), Table V's first module
#   asr_transfer_{wemb,beamconv}  asr_enconly's encoder + egs/wmt/mt1's De-En decoders (Table IV)
#   asr_transfer_wemb_ft          the WEmb composition fine-tuned on Europarl-ST (Table VI)
#
#   ./run.sh --stop_stage 3           # data, features, the English BPE; then egs/wmt/mt1 --tasks asr
#   ./run.sh --stage 4                # the models, the compositions, decoding, scoring
#   ./run.sh --stage 2 --stop_stage 3
#   ./run.sh --stage 4 --experiments "asr_enconly:conf/train_asr_enconly.yaml"
set -euo pipefail
cd "$(dirname "$0")"

data_opts=""
feats_sets="train dev test test_phn"
# The English BPE is learnt here (Europarl train text, + TED-LIUM's if db.sh names it) and shared
# with egs/wmt/mt1, which copies data/lang/en.model. name:kind:size:train_texts[:eval_texts]
vocabs="en:bpe:2000:data/local/en_bpe/text:data/test/text
phn:tokens:0:data/train/text.phn:data/test/text.phn"
# Table IV composes this recipe's encoder-only module with egs/wmt/mt1's De-En decoders (trained
# on its --tasks asr, on this recipe's English BPE): run that recipe before stage 6 here.
mt_exp=../../wmt/mt1/exp
# In order: exp_name:config[,config] (trained) or exp_name=module+module (composed, no training);
# exp dirs are named here, never derived from options.
experiments="asr_baseline:conf/train_asr_baseline.yaml
asr_enconly:conf/train_asr_enconly.yaml
asr_lego_wemb:conf/train_asr_lego_wemb.yaml
asr_phn:conf/train_asr_phn.yaml
asr_transfer_wemb=exp/asr_enconly/modules/encoder+$mt_exp/deen19asr_lego_wemb/modules/decoder
asr_transfer_beamconv=exp/asr_enconly/modules/encoder+$mt_exp/deen19asr_lego_beamconv/modules/decoder
asr_transfer_wemb_ft:exp/asr_transfer_wemb/finetune.yaml,conf/finetune_asr_transfer.yaml"
# The paper decodes its last checkpoint (the configs keep it: trainer.keep_last).
avg_num=1
avg_mode=last
decodes="asr_baseline@test asr_enconly@test asr_lego_wemb@test asr_phn@test_phn
asr_transfer_wemb@test asr_transfer_beamconv@test asr_transfer_wemb_ft@test"
# Stage 8's table of each model's WER (as word accuracy) relative to the baseline's.
relative="asr_enconly@test=asr_baseline asr_lego_wemb@test=asr_baseline asr_transfer_wemb@test=asr_baseline
asr_transfer_beamconv@test=asr_baseline asr_transfer_wemb_ft@test=asr_baseline"
decode_opts="--beam 20 --length_penalty 1.0"   # paper's ASR setting
ref_file=text
# WER on the lowercased, punctuation-free transcripts (they are normalised in data/*/text already)
score_opts="--metric wer"
results_title="Europarl-ST English ASR"

# "; exit" on the same line: bash reads a running script as it goes, so without it an edit
# made to this file while the recipe runs would be read (half a line) once the stages return.
. ../../TEMPLATE/legonn.sh "$@"; exit
