#!/usr/bin/env bash
# Switchboard 300 h ASR with LegoNN modules (paper §IV-A, Table II): the baseline
# encoder-decoder, LegoNN encoder + WEmb / BeamConv decoders, and the encoder trained alone,
# tested on the Switchboard and CallHome halves of HUB5 Eval2000.
#
#   edit db.sh (SWBD=, EVAL2000=, ...), then
#   ./run.sh                                  # everything
#   ./run.sh --stage 2 --stop_stage 3
#   ./run.sh --stage 4 --ngpu 4 --device cuda --train_opts "--optim.accum_grad 1"
set -euo pipefail
cd "$(dirname "$0")"

# Data: local/data.sh writes data/{train_all,train_dev,train_nodev,eval2000,eval2000_swbd,
# eval2000_callhome} from the corpora named in db.sh. See local/data.sh for its options.
data_opts=""
feats_sets="train_nodev train_dev eval2000_swbd eval2000_callhome"
# SentencePiece units trained on the 300 h text (paper §IV-A): 100 (the LegoNN encoders' CTC
# interface) and 2000 (the decoders' output). name:kind:size:train_texts[:eval_texts]
vocabs="bpe100:bpe:100:data/train_nodev/text:data/train_dev/text
bpe2000:bpe:2000:data/train_nodev/text:data/train_dev/text"
# exp_name:config — exp dirs are named here, never derived from options.
experiments="swbd_baseline:conf/train_baseline.yaml
swbd_lego_wemb:conf/train_lego_wemb.yaml
swbd_lego_beamconv:conf/train_lego_beamconv.yaml
swbd_enconly:conf/train_enconly.yaml"
avg_num=1       # the paper decodes its last model (configs keep it: trainer.keep_last)
avg_mode=last
decodes="swbd_baseline@eval2000_swbd swbd_baseline@eval2000_callhome
swbd_lego_wemb@eval2000_swbd swbd_lego_wemb@eval2000_callhome
swbd_lego_beamconv@eval2000_swbd swbd_lego_beamconv@eval2000_callhome
swbd_enconly@eval2000_swbd swbd_enconly@eval2000_callhome"
decode_opts="--beam 20 --length_penalty 1.0"   # paper's ASR setting, no LM, no joint CTC decoding
ref_file=text
# Plain WER against the normalised stm text (see README.md: not sclite's GLM scoring).
score_opts="--metric wer"
results_title="Switchboard 300 h (HUB5 Eval2000)"

# "; exit" on the same line: bash reads a running script as it goes, so without it an edit
# made to this file while the recipe runs would be read (half a line) once the stages return.
. ../../TEMPLATE/legonn.sh "$@"; exit
