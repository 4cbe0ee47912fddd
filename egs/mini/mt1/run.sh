#!/usr/bin/env bash
# Mini De-En / Ro-En MT with LegoNN modules, on the offline corpus in ../corpus.
# Mirrors the paper's WMT setups at CPU scale (Table I: baseline vs LegoNN WEmb/BeamConv;
# the Ro-En encoder-only CTC model whose modules later meet the De-En decoder, Table III).
#
#   ./run.sh                      # everything
#   ./run.sh --stage 4 --stop_stage 4
#   ./run.sh --data_opts "--train_pairs 300 --eval_pairs 30" --experiments "deen_baseline:conf/tiny.yaml"
set -euo pipefail
cd "$(dirname "$0")"

# Data: local/data.sh unpacks ../corpus into data/{deen,roen}_{train,valid,test}.
data_opts=""
# One English BPE for every task that shares the De-En decoder (paper §III-A2);
# source-side BPEs per language. name:kind:size:train_texts[:eval_texts]
vocabs="en:bpe:1000:data/deen_train/text.en,data/roen_train/text.en:data/deen_test/text.en,data/roen_test/text.en
de:bpe:1000:data/deen_train/text.de:data/deen_test/text.de
ro:bpe:1000:data/roen_train/text.ro:data/roen_test/text.ro"
# exp_name:config — exp dirs are named here, never derived from options.
experiments="deen_baseline:conf/train_deen_baseline.yaml
deen_lego_wemb:conf/train_deen_lego_wemb.yaml
deen_lego_beamconv:conf/train_deen_lego_beamconv.yaml
roen_baseline:conf/train_roen_baseline.yaml
roen_enconly:conf/train_roen_enconly.yaml"
avg_num=3
decodes="deen_baseline@deen_test deen_lego_wemb@deen_test deen_lego_beamconv@deen_test
roen_baseline@roen_test roen_enconly@roen_test"
decode_opts="--beam 5 --length_penalty 0.6 --max_len_a 1.2 --max_len_b 10"   # paper's MT setting
ref_file=text.en
results_title="Mini MT (De-En, Ro-En)"

. ../../TEMPLATE/legonn.sh "$@"
