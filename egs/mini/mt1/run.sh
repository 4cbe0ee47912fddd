#!/usr/bin/env bash
# Mini De-En / Ro-En MT with LegoNN modules, on the offline corpus in ../corpus.
# Mirrors the paper's WMT setups at CPU scale (Table I: baseline vs LegoNN WEmb/BeamConv;
# the Ro-En encoder-only model plugged into the De-En decoder with and without fine-tuning,
# Tables III and VI; modularity stress tests, Fig. 4 and Table X). The *_bpe256 experiments
# repeat the transfer on 256-piece BPEs, the interface the English ASR encoders of ../asr1
# share with that De-En decoder (Table IV), and the modularity stress tests. The *_demo experiments
# are the demo's (../demo.sh): the transfer on the 1000-piece BPEs with the OLC's upsampled queries.
#
#   ./run.sh                      # everything (many CPU hours: 17 trainings; see README.md)
#   ../demo.sh                    # the 30-minute story: De-En LegoNN, Ro-En/ASR plugs (demo configs)
#   ./run.sh --stage 4 --stop_stage 4
#   ./run.sh --data_opts "--train_pairs 300 --eval_pairs 30" --experiments "deen_lego:conf/tiny/deen_lego_wemb.yaml" \
#       --decodes deen_lego@deen_test
#   ./run.sh --suites compress --results_file RESULTS.compress.md   # Modular Transformers only (RESULTS.compress.md)
#   ./run.sh --stage 4 --stop_stage 6 --suites zeroshot   # the MT modules ../st1 composes behind a German recogniser
set -euo pipefail
cd "$(dirname "$0")"

# --suites chooses the experiment lists below: main (the paper's tables), stress (modularity
# stress tests), compress (Modular Transformers: a deeper De-En teacher, one modular phase, its
# assemblies and the baselines), zeroshot (the marginal-reading De-En encoders of ../st1's
# zero-shot speech translation, under the teacher's frozen decoder). Read here as well: the lists depend on it (legonn.sh parses all options).
. ../../../utils/peek_option.sh
suites=$(peek_option suites "$@") || suites="main stress compress zeroshot"

# Modularity stress tests (paper §III-E, Fig. 4, Table X), at the demo's scale (256-piece BPEs,
# 500-token batches, 2500 updates each; the swaps are measured against deen_lego_wemb_bpe256,
# the demo's De-En model): a baseline in two seeds, a second seed of LegoNN WEmb, LegoNN
# BeamConv, a De-En encoder trained alone, and LegoNN without CTC/OLC in two seeds; then swaps:
# random seed (encoder of seed 2 + decoder of seed 1), architecture (the BeamConv model's
# encoder + the WEmb decoder) and decoder plug (the lone encoder + the WEmb decoder).
# (A LegoNN encoder + a baseline decoder is refused by compose: marginals vs hidden states.)
stress_experiments="deen_baseline_bpe256:conf/train_deen_baseline_bpe256.yaml
deen_baseline_bpe256_seed2:conf/train_deen_baseline_bpe256.yaml,conf/seed2.yaml
deen_lego_wemb_bpe256_seed2:conf/train_deen_lego_wemb_bpe256.yaml,conf/seed2.yaml
deen_lego_beamconv_bpe256:conf/train_deen_lego_beamconv_bpe256.yaml
deen_enconly_bpe256:conf/train_deen_enconly_bpe256.yaml
deen_lego_plain_bpe256:conf/train_deen_lego_plain_bpe256.yaml
deen_lego_plain_bpe256_seed2:conf/train_deen_lego_plain_bpe256.yaml,conf/seed2.yaml
swap_seed_baseline=exp/deen_baseline_bpe256_seed2/modules/encoder+exp/deen_baseline_bpe256/modules/decoder
swap_seed_lego=exp/deen_lego_wemb_bpe256_seed2/modules/encoder+exp/deen_lego_wemb_bpe256/modules/decoder
swap_arch_lego=exp/deen_lego_beamconv_bpe256/modules/encoder+exp/deen_lego_wemb_bpe256/modules/decoder
plug_deen_lego=exp/deen_enconly_bpe256/modules/encoder+exp/deen_lego_wemb_bpe256/modules/decoder
swap_seed_plain=exp/deen_lego_plain_bpe256_seed2/modules/encoder+exp/deen_lego_plain_bpe256/modules/decoder"
stress_decodes="deen_baseline_bpe256@deen_test deen_lego_plain_bpe256@deen_test swap_seed_baseline@deen_test
swap_seed_lego@deen_test swap_arch_lego@deen_test plug_deen_lego@deen_test swap_seed_plain@deen_test"
stress_relative="swap_seed_baseline@deen_test=deen_baseline_bpe256 swap_seed_lego@deen_test=deen_lego_wemb_bpe256
swap_arch_lego@deen_test=deen_lego_wemb_bpe256 plug_deen_lego@deen_test=deen_lego_wemb_bpe256
swap_seed_plain@deen_test=deen_lego_plain_bpe256"

# Modular Transformers (RESULTS.compress.md; egs/TEMPLATE/README.md, "Compressing a module"): a
# 6+6-layer De-En teacher, one modular phase for both stacks, then at each compression ratio the
# assembled decoder and encoder (each composed with the teacher's other half) and, side by side,
# (a) the teacher with layers dropped; at 2x also (b) shrink-and-fine-tune and (c) distillation
# into a 3-layer decoder trained from scratch. Last, the 2x decoder
# plugged onto the Ro-En encoder (the demo's), relative to the uncompressed teacher decoder's plug.
teacher=exp/deen_lego_teacher/modules
compress_experiments="deen_lego_teacher:conf/train_deen_lego_teacher.yaml
deen_modular:conf/modular_deen_lego_teacher.yaml"
compress_decodes="deen_lego_teacher@deen_test"
compress_relative=""
for ratio in 1.2 1.5 2 3 6; do
    compress_experiments+="
deen_dec${ratio}x=assemble:deen_modular:decoder:$ratio deen_dec${ratio}x_eval=$teacher/encoder+exp/deen_dec${ratio}x
deen_enc${ratio}x=assemble:deen_modular:encoder:$ratio deen_enc${ratio}x_eval=exp/deen_enc${ratio}x+$teacher/decoder
deen_dec${ratio}x_drop=shrink:$teacher/decoder:$ratio deen_dec${ratio}x_drop_eval=$teacher/encoder+exp/deen_dec${ratio}x_drop
deen_enc${ratio}x_drop=shrink:$teacher/encoder:$ratio deen_enc${ratio}x_drop_eval=exp/deen_enc${ratio}x_drop+$teacher/decoder"
    for model in dec enc; do
        compress_decodes+=" deen_${model}${ratio}x_eval@deen_test deen_${model}${ratio}x_drop_eval@deen_test"
        compress_relative+=" deen_${model}${ratio}x_eval@deen_test=deen_lego_teacher deen_${model}${ratio}x_drop_eval@deen_test=deen_lego_teacher"
    done
done
compress_experiments+="
deen_dec2x_sft:conf/finetune_deen_dec2x_shrink.yaml
deen_dec2x_kd_phase:conf/kd_deen_dec2x_scratch.yaml
deen_dec2x_kd=assemble:deen_dec2x_kd_phase:decoder:2 deen_dec2x_kd_eval=$teacher/encoder+exp/deen_dec2x_kd
roen_plug_teacher=exp/roen_enconly_demo/modules/encoder+$teacher/decoder
roen_plug_dec2x=exp/roen_enconly_demo/modules/encoder+exp/deen_dec2x"
compress_decodes+=" deen_dec2x_sft@deen_test deen_dec2x_kd_eval@deen_test roen_plug_teacher@roen_test roen_plug_dec2x@roen_test"
compress_relative+=" deen_dec2x_sft@deen_test=deen_lego_teacher deen_dec2x_kd_eval@deen_test=deen_lego_teacher
roen_plug_dec2x@roen_test=roen_plug_teacher"

# Zero-shot speech translation (../st1, issue 20): De-En encoders that read marginals over the
# German BPE, trained on text alone behind text_marginals in two designs (CTC-shaped frames, or
# one smoothed position per token) and, as a variant, through BeamConv instead of WEmb, under the
# frozen decoder of the compress suite's teacher.
zeroshot_experiments="deen_zeroshot_mt_ctc:conf/zeroshot_deen_mt_ctc.yaml
deen_zeroshot_mt_onehot:conf/zeroshot_deen_mt_onehot.yaml
deen_zeroshot_mt_beamconv:conf/zeroshot_deen_mt_beamconv.yaml"
if [[ " $suites " != *" compress "* ]]; then  # the teacher is the compress suite's first entry
    zeroshot_experiments="${compress_experiments%%$'\n'*}
$zeroshot_experiments"
fi
zeroshot_decodes="deen_zeroshot_mt_ctc@deen_test deen_zeroshot_mt_onehot@deen_test deen_zeroshot_mt_beamconv@deen_test"
zeroshot_relative="deen_zeroshot_mt_ctc@deen_test=deen_lego_teacher deen_zeroshot_mt_onehot@deen_test=deen_lego_teacher
deen_zeroshot_mt_beamconv@deen_test=deen_lego_teacher"

# Data: local/data.sh unpacks ../corpus into data/{deen,roen}_{train,valid,test}.
data_opts=""
# One English BPE for every task that shares the De-En decoder (paper §III-A2);
# source-side BPEs per language; the *256 ones serve ../asr1's BPE-256 transfer and the stress tests.
# name:kind:size:train_texts[:eval_texts]
vocabs="en:bpe:1000:data/deen_train/text.en,data/roen_train/text.en:data/deen_test/text.en,data/roen_test/text.en
de:bpe:1000:data/deen_train/text.de:data/deen_test/text.de
ro:bpe:1000:data/roen_train/text.ro:data/roen_test/text.ro
en256:bpe:256:data/deen_train/text.en,data/roen_train/text.en:data/deen_test/text.en,data/roen_test/text.en
de256:bpe:256:data/deen_train/text.de:data/deen_test/text.de
ro256:bpe:256:data/roen_train/text.ro:data/roen_test/text.ro"
# In order: exp_name:config[,config] (trained) or exp_name=module+module (composed, no training);
# an entry may use the modules of the entries above it (egs/TEMPLATE/legonn.sh).
# Exp dirs are named here, never derived from options.
main_experiments="deen_baseline:conf/train_deen_baseline.yaml
deen_lego_wemb:conf/train_deen_lego_wemb.yaml
deen_lego_beamconv:conf/train_deen_lego_beamconv.yaml
roen_baseline:conf/train_roen_baseline.yaml
roen_enconly:conf/train_roen_enconly.yaml
roen_plug=exp/roen_enconly/modules/encoder+exp/deen_lego_wemb/modules/decoder
roen_plug_ft:exp/roen_plug/finetune.yaml,conf/finetune_roen_plug.yaml
deen_lego_demo:conf/train_deen_lego_demo.yaml
roen_enconly_demo:conf/train_roen_enconly_demo.yaml
roen_plug_demo=exp/roen_enconly_demo/modules/encoder+exp/deen_lego_demo/modules/decoder
deen_lego_wemb_bpe256:conf/train_deen_lego_wemb_bpe256.yaml
roen_baseline_bpe256:conf/train_roen_baseline_bpe256.yaml
roen_enconly_bpe256:conf/train_roen_enconly_bpe256.yaml
roen_plug_bpe256=exp/roen_enconly_bpe256/modules/encoder+exp/deen_lego_wemb_bpe256/modules/decoder
roen_plug_bpe256_ft:exp/roen_plug_bpe256/finetune.yaml,conf/finetune_roen_plug_bpe256.yaml"
main_decodes="deen_baseline@deen_test deen_lego_wemb@deen_test deen_lego_beamconv@deen_test
roen_baseline@roen_test roen_enconly@roen_test roen_plug@roen_test roen_plug_ft@roen_test
deen_lego_demo@deen_test roen_enconly_demo@roen_test roen_plug_demo@roen_test
deen_lego_wemb_bpe256@deen_test roen_baseline_bpe256@roen_test roen_enconly_bpe256@roen_test roen_plug_bpe256@roen_test roen_plug_bpe256_ft@roen_test"
# The modularity table of stage 8: each model as a percentage of the unswapped reference.
main_relative="roen_enconly@roen_test=roen_baseline roen_plug@roen_test=roen_baseline roen_plug_ft@roen_test=roen_baseline
roen_enconly_bpe256@roen_test=roen_baseline_bpe256 roen_plug_bpe256@roen_test=roen_baseline_bpe256 roen_plug_bpe256_ft@roen_test=roen_baseline_bpe256"
experiments=""
decodes=""
relative=""
done_suites=""
for suite in main stress compress zeroshot $suites; do  # this order (a suite uses an earlier one's modules)
    [[ " $suites " == *" $suite "* && " $done_suites " != *" $suite "* ]] || continue
    done_suites+=" $suite"
    case $suite in
        main|stress|compress|zeroshot)
            lists=("${suite}_experiments" "${suite}_decodes" "${suite}_relative")
            experiments+=" ${!lists[0]}"; decodes+=" ${!lists[1]}"; relative+=" ${!lists[2]}"
            ;;
        *)
            echo "run.sh: unknown suite '$suite' in --suites (main, stress, compress, zeroshot)" >&2
            exit 1
            ;;
    esac
done
avg_num=3
decode_opts="--beam 5 --length_penalty 0.6 --max_len_a 1.2 --max_len_b 10"   # paper's MT setting
ref_file=text.en
results_title="Mini MT (De-En, Ro-En)"

# "; exit" on the same line: bash reads a running script as it goes, so without it an edit
# made to this file while the recipe runs would be read (half a line) once the stages return.
. ../../TEMPLATE/legonn.sh "$@"; exit
