#!/usr/bin/env bash
# WMT MT with LegoNN modules on the real corpora (paper §IV-B, Appendix A). Three setups, chosen
# with --tasks (corpus directories in db.sh, expected files in README.md):
#   ende  WMT14 En->De, 4.5M pairs (Table I): baselines with 12+6 and 18+6 blocks, LegoNN encoder
#         + WEmb / BeamConv decoders, one joint 32k BPE
#   roen  Ro-En transfer (Table III): WMT19 De-En LegoNN models (no ParaCrawl) and the WMT16 Ro-En
#         baseline and encoder-only model, over one 41k BPE learnt from De, Ro and En together
#   asr   ASR-MT transfer (Table IV): WMT19 De-En LegoNN models on lowercased, punctuation-free text
#         whose English BPE is egs/europarl/asr1's (run that recipe's stages 1-3 first)
#
#   ./run.sh                                    # all three
#   ./run.sh --tasks ende                       # Table I only
#   ./run.sh --tasks "ende roen" --stage 4 --stop_stage 4
set -euo pipefail
cd "$(dirname "$0")"

# --tasks is read here as well, since the lists below depend on it (legonn.sh parses all options).
. ../../../utils/peek_option.sh
tasks=$(peek_option tasks "$@") || tasks="ende roen asr"

data_opts="--tasks ${tasks// /,}"
# name:kind:size:train_texts[:eval_texts]; exp_name:config[,config] (trained) or
# exp_name=module+module (composed, no training; egs/TEMPLATE/legonn.sh); exp_name@test_set;
# exp@set=reference_exp (stage 8's table of scores relative to a reference model)
vocabs=""
experiments=""
decodes=""
relative=""
for task in $tasks; do
    case $task in
        ende)
            # one joint BPE for both sides (paper: the shared 32k vocabulary of Vaswani et al.)
            vocabs+=" ende:bpe:32000:data/ende_train/text.en,data/ende_train/text.de:data/ende_test/text.en,data/ende_test/text.de"
            experiments+=" ende_baseline:conf/train_ende_baseline.yaml ende_baseline_18l:conf/train_ende_baseline_18l.yaml"
            experiments+=" ende_lego_wemb:conf/train_ende_lego_wemb.yaml ende_lego_beamconv:conf/train_ende_lego_beamconv.yaml"
            for exp in ende_baseline ende_baseline_18l ende_lego_wemb ende_lego_beamconv; do
                decodes+=" $exp@ende_valid $exp@ende_test"
            done
            # Modular Transformers: one phase on the WEmb model, its decoder and encoder assembled
            # at 2x and 3x, each composed with the teacher's other half (egs/TEMPLATE/README.md)
            experiments+=" ende_modular:conf/modular_ende_lego_wemb.yaml"
            for ratio in 2 3; do
                experiments+=" ende_dec${ratio}x=assemble:ende_modular:decoder:$ratio"
                experiments+=" ende_dec${ratio}x_eval=exp/ende_lego_wemb/modules/encoder+exp/ende_dec${ratio}x"
                experiments+=" ende_enc${ratio}x=assemble:ende_modular:encoder:$ratio"
                experiments+=" ende_enc${ratio}x_eval=exp/ende_enc${ratio}x+exp/ende_lego_wemb/modules/decoder"
                decodes+=" ende_dec${ratio}x_eval@ende_test ende_enc${ratio}x_eval@ende_test"
                relative+=" ende_dec${ratio}x_eval@ende_test=ende_lego_wemb ende_enc${ratio}x_eval@ende_test=ende_lego_wemb"
            done
            ;;
        roen)
            # Appendix A-A: a single 41k BPE over both training sets; its English is shared, so the
            # Ro-En encoder's marginals and the De-En decoder's input are over the same symbols
            vocabs+=" deroen:bpe:41000:data/deen19_train/text.de,data/deen19_train/text.en,data/roen_train/text.ro,data/roen_train/text.en:data/roen_test/text.ro,data/roen_test/text.en"
            experiments+=" deen19_lego_wemb:conf/train_deen19_lego_wemb.yaml deen19_lego_beamconv:conf/train_deen19_lego_beamconv.yaml"
            experiments+=" roen_baseline:conf/train_roen_baseline.yaml roen_enconly:conf/train_roen_enconly.yaml"
            # Table III: the Ro-En encoder-only module + each De-En decoder, composed (no training),
            # and Table VI: the WEmb composition fine-tuned on Ro-En
            experiments+=" roen_transfer_wemb=exp/roen_enconly/modules/encoder+exp/deen19_lego_wemb/modules/decoder"
            experiments+=" roen_transfer_beamconv=exp/roen_enconly/modules/encoder+exp/deen19_lego_beamconv/modules/decoder"
            experiments+=" roen_transfer_wemb_ft:exp/roen_transfer_wemb/finetune.yaml,conf/finetune_roen_transfer.yaml"
            decodes+=" deen19_lego_wemb@deen19_test deen19_lego_beamconv@deen19_test roen_baseline@roen_test roen_enconly@roen_test"
            decodes+=" roen_transfer_wemb@roen_test roen_transfer_beamconv@roen_test roen_transfer_wemb_ft@roen_test"
            for exp in roen_enconly roen_transfer_wemb roen_transfer_beamconv roen_transfer_wemb_ft; do
                relative+=" $exp@roen_test=roen_baseline"
            done
            ;;
        asr)
            # German BPE of its own; the English one is egs/europarl/asr1's (local/data.sh copies it)
            vocabs+=" asr_de:bpe:32000:data/deen19asr_train/text.de:data/deen19asr_test/text.de"
            experiments+=" deen19asr_lego_wemb:conf/train_deen19asr_lego_wemb.yaml deen19asr_lego_beamconv:conf/train_deen19asr_lego_beamconv.yaml"
            decodes+=" deen19asr_lego_wemb@deen19asr_test deen19asr_lego_beamconv@deen19asr_test"
            ;;
        *)
            echo "run.sh: unknown task '$task' in --tasks (ende, roen, asr)" >&2
            exit 1
            ;;
    esac
done
avg_num=10                     # the paper averages 10 checkpoints (here the 10 best by validation loss)
decode_opts="--beam 5 --length_penalty 0.6 --max_len_a 1.2 --max_len_b 10"   # paper's MT setting
ref_file=text                  # local/data.sh writes each valid/test set's target side as 'text'
# SacreBLEU (detokenized, with its signature) and tokenized BLEU with compound splitting, the
# paper's multi-bleu.perl number for En->De. Ro-En/De-En text is already lowercased and tokenized,
# so there SacreBLEU equals tokenized BLEU without compound splitting (the paper's Ro-En number).
score_opts="--metric bleu --compound_split"
results_title="WMT MT (tasks: $tasks)"

# "; exit" on the same line: bash reads a running script as it goes, so without it an edit
# made to this file while the recipe runs would be read (half a line) once the stages return.
. ../../TEMPLATE/legonn.sh "$@"; exit
