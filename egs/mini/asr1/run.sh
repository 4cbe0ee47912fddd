#!/usr/bin/env bash
# Mini English ASR with LegoNN modules, on speech synthesised from the offline corpus in ../corpus.
# Mirrors the paper's ASR setups at CPU scale: the baseline enc-dec, a LegoNN ASR system whose
# encoder emits CTC marginals over the English BPE the De-En MT decoder reads (so that decoder can
# be plugged on, paper §V / Appendix A-B), the encoder-only model for that transfer, and the
# three-module ASR system of paper Table V: a phoneme recogniser (this data), a pronunciation model
# (phonemes -> English BPE, trained on a second English domain with its own voices) and the De-En
# MT decoder, composed without training, then fine-tuned end to end (Table VI).
#
#   (cd ../mt1 && ./run.sh --stop_stage 3)   # first: the MT recipe's English BPE, shared here
#   ./run.sh                                  # everything
#   ./run.sh --stage 2 --stop_stage 3
#   ./run.sh --data_opts "--train_utts 40 --eval_utts 8 --standalone_bpe_size 60" ...   # tiny, standalone
set -euo pipefail
cd "$(dirname "$0")"

# Data: local/data.sh synthesises data/{train,valid,test} (+ data/test_phn: test with phoneme
# references), data/pron_{train,valid} (the pronunciation model's second English domain,
# ../corpus/en_domain2.txt; not made, with a log line, for a corpus without that file) and copies
# the MT recipe's English BPEs to data/lang/{en256,en}.model (256 and 1000 pieces, the demo's; it
# fails, saying so, when ../mt1/data/lang has not got them). See local/data.sh for its options.
data_opts=""
pron_sets=""
if [[ -f ../corpus/en_domain2.txt ]]; then
    pron_sets="pron_train pron_valid"
fi
# train_{10,30}pct: low-resource subsets of data/train (local/data.sh --lowres_percents).
feats_sets="train valid test test_phn $pron_sets train_10pct train_30pct"
# Only the phoneme inventory is built here: the English BPE is the MT decoder's (not retrained).
# The phoneme recogniser and the pronunciation model share it (their interface): it must come
# from data/train/text.phn alone, whose symbols local/data.sh checks the second domain against.
# name:kind:size:train_texts[:eval_texts]
vocabs="phn:tokens:0:data/train/text.phn:data/test/text.phn"
# The De-En MT decoder that is plugged onto the ASR encoder (paper Table IV): ../mt1's module on
# the 256-piece BPEs (data/lang/en256.model is a copy of its English BPE).
mt_decoder=../mt1/exp/deen_lego_wemb_bpe256/modules/decoder
# Low-resource transfer (paper Appendix F, Table XI): a baseline and an encoder-only module trained
# on 10 % / 30 % of data/train, and that encoder plugged onto the decoder of the LegoNN model
# trained on all of it (no OLC: same data, so the encoder's output lengths already match).
lowres_experiments=""
lowres_decodes=""
lowres_relative=""
for pct in 10 30; do
    lowres_experiments+="asr_baseline_${pct}pct:conf/train_asr_baseline.yaml,conf/data_train_${pct}pct.yaml
asr_enconly_${pct}pct:conf/train_asr_enconly.yaml,conf/data_train_${pct}pct.yaml
asr_lowres_plug_${pct}pct=exp/asr_enconly_${pct}pct/modules/encoder+exp/asr_lego_wemb/modules/decoder
"
    lowres_decodes+=" asr_baseline_${pct}pct@test asr_enconly_${pct}pct@test asr_lowres_plug_${pct}pct@test"
    lowres_relative+=" asr_enconly_${pct}pct@test=asr_baseline_${pct}pct asr_lowres_plug_${pct}pct@test=asr_baseline_${pct}pct"
done
# Modularity stress tests (paper §III-E, Fig. 4, Table X), as ../mt1's, at the phoneme interface
# (conf/train_asr_lego_phn.yaml says why): two seeds of the enc-dec baseline, of LegoNN WEmb and of
# LegoNN without the encoder CTC (Table X), LegoNN BeamConv; swaps: random seed (encoder of seed 2
# + decoder of seed 1), architecture (the BeamConv model's encoder + the WEmb decoder) and decoder
# plug (the phoneme recogniser asr_phn, trained alone with CTC, + the WEmb model's decoder).
stress_experiments="asr_lego_phn:conf/train_asr_lego_phn.yaml
asr_lego_phn_seed2:conf/train_asr_lego_phn.yaml,conf/seed2.yaml
asr_baseline_phn:conf/train_asr_baseline_phn.yaml
asr_baseline_phn_seed2:conf/train_asr_baseline_phn.yaml,conf/seed2.yaml
asr_lego_phn_beamconv:conf/train_asr_lego_phn_beamconv.yaml
asr_lego_phn_plain:conf/train_asr_lego_phn_plain.yaml
asr_lego_phn_plain_seed2:conf/train_asr_lego_phn_plain.yaml,conf/seed2.yaml
asr_swap_seed_baseline=exp/asr_baseline_phn_seed2/modules/encoder+exp/asr_baseline_phn/modules/decoder
asr_swap_seed_lego=exp/asr_lego_phn_seed2/modules/encoder+exp/asr_lego_phn/modules/decoder
asr_swap_arch_lego=exp/asr_lego_phn_beamconv/modules/encoder+exp/asr_lego_phn/modules/decoder
asr_plug_lego=exp/asr_phn/modules/encoder+exp/asr_lego_phn/modules/decoder
asr_swap_seed_plain=exp/asr_lego_phn_plain_seed2/modules/encoder+exp/asr_lego_phn_plain/modules/decoder"
stress_decodes="asr_baseline_phn@test asr_baseline_phn_seed2@test asr_swap_seed_baseline@test
asr_lego_phn@test asr_lego_phn_seed2@test asr_swap_seed_lego@test asr_lego_phn_beamconv@test asr_swap_arch_lego@test
asr_plug_lego@test asr_lego_phn_plain@test asr_lego_phn_plain_seed2@test asr_swap_seed_plain@test"
stress_relative="asr_swap_seed_baseline@test=asr_baseline_phn asr_swap_seed_lego@test=asr_lego_phn
asr_swap_arch_lego@test=asr_lego_phn asr_plug_lego@test=asr_lego_phn asr_swap_seed_plain@test=asr_lego_phn_plain"
# In order: exp_name:config[,config] (trained) or exp_name=module+module (composed);
# exp dirs are named here, never derived from options.
experiments="asr_baseline:conf/train_asr_baseline.yaml
asr_lego_wemb:conf/train_asr_lego_wemb.yaml
asr_enconly:conf/train_asr_enconly.yaml
asr_phn:conf/train_asr_phn.yaml
asr_plug=exp/asr_enconly/modules/encoder+$mt_decoder
asr_plug_ft:exp/asr_plug/finetune.yaml,conf/finetune_asr_plug.yaml
asr_pron:conf/train_asr_pron.yaml
asr_phn_pron=exp/asr_phn/modules/encoder+exp/asr_pron/modules/pron
asr_three=exp/asr_phn/modules/encoder+exp/asr_pron/modules/pron+$mt_decoder
asr_three_ft:exp/asr_three/finetune.yaml,conf/finetune_asr_three.yaml
asr_enconly_demo:conf/train_asr_enconly_demo.yaml
asr_plug_demo=exp/asr_enconly_demo/modules/encoder+exp/asr_enconly_demo/modules/pron+../mt1/exp/deen_lego_demo/modules/decoder
asr_plug_demo_ft:exp/asr_plug_demo/finetune.yaml,conf/finetune_asr_plug.yaml
$lowres_experiments
$stress_experiments"
avg_num=5
# Table V's rows: asr_pron@test (the second domain's recogniser + pronunciation model on this test
# set), asr_phn_pron@test (this data's recogniser + that pronunciation model, CTC output), asr_three.
decodes="asr_baseline@test asr_lego_wemb@test asr_enconly@test asr_phn@test_phn asr_plug@test asr_plug_ft@test
asr_pron@test asr_phn_pron@test asr_three@test asr_three_ft@test
asr_enconly_demo@test asr_plug_demo@test asr_plug_demo_ft@test
$lowres_decodes
$stress_decodes"
# The modularity table of stage 8 (WER compared as word accuracy, 100 % = the baseline).
relative="asr_lego_wemb@test=asr_baseline asr_enconly@test=asr_baseline asr_plug@test=asr_baseline asr_plug_ft@test=asr_baseline
asr_pron@test=asr_baseline asr_phn_pron@test=asr_baseline asr_three@test=asr_baseline asr_three_ft@test=asr_baseline
$lowres_relative
$stress_relative"
decode_opts="--beam 20 --length_penalty 1.0"   # paper's ASR setting
ref_file=text
# WER on what is audible: case and punctuation are not (the models still write them).
score_opts="--metric wer --lowercase --remove_punct"
results_title="Mini ASR (synthesised English speech)"

# "; exit" on the same line: bash reads a running script as it goes, so without it an edit
# made to this file while the recipe runs would be read (half a line) once the stages return.
. ../../TEMPLATE/legonn.sh "$@"; exit
