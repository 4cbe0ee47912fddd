#!/usr/bin/env bash
# Mini zero-shot speech translation by composition: German speech -> English text from modules
# trained only on German ASR data and on De-En text, no (speech, translation) pair seen, beside
# the cascade and end-to-end rivals (issue 20; RESULTS.md). Speech: the German side of ../mt1's
# De-En corpus, synthesised (local/data.sh).
#
#   (cd ../mt1 && ./run.sh --stop_stage 3)   # first: the MT recipe's data and BPEs, shared here
#   (cd ../mt1 && ./run.sh --stage 4 --stop_stage 6 --suites zeroshot)   # its marginal-reading MT modules
#   ./run.sh                                  # everything here
#   ./run.sh --data_opts "--train_utts 60 --eval_utts 8" ...   # tiny (the recipe test)
set -euo pipefail
cd "$(dirname "$0")"

data_opts=""
feats_sets="train valid test train_10pct"
# German phonemes (espeak-ng's, local/data.sh): the recogniser's first CTC, under the German BPE.
# name:kind:size:train_texts[:eval_texts]
vocabs="phn:tokens:0:data/train/text.phn:data/test/text.phn"
# The text side, from ../mt1: the De-En model the cascade feeds with the recogniser's 1-best, and
# the MT encoders that read German BPE marginals (two designs of their training input: CTC-shaped
# frames, or one position per token) with the teacher's frozen decoder on top.
mt=../mt1/exp
text_mt=$mt/deen_lego_teacher/modules
zeroshot_mt=$mt/deen_zeroshot_mt_ctc/modules
zeroshot_mt_onehot=$mt/deen_zeroshot_mt_onehot/modules
zeroshot_mt_beamconv=$mt/deen_zeroshot_mt_beamconv/modules
# In order: exp_name:config[,config] (trained) or exp_name=module+module (composed).
#   st_asr        German recogniser: speech -> phonemes (CTC) -> German BPE (CTC), ASR data only
#   ctc_compress_de  weightless: the recogniser's frame marginals -> one position per token
#   st_zeroshot   st_asr's modules + the MT encoder trained on CTC-shaped text + the De-En decoder
#   st_zeroshot_onehot  the same with the MT encoder trained on one position per token (4x fewer
#                 positions than the recogniser emits)
#   st_zeroshot_compress / st_zeroshot_ctc_compress  the one-position / CTC-shaped MT encoder behind
#                 ctc_compress (with the two above: training shape x compression; no ST data)
#   st_zeroshot_beamconv  as st_zeroshot_compress, the MT encoder reading through BeamConv, not WEmb
#   st_zeroshot_ft  st_zeroshot_compress fine-tuned end to end on 10 % of the ST pairs, and
#                 st_zeroshot_ft_frozen: only pron and the MT encoder, at a third of the LR
#   st_e2e_10pct / st_e2e  the same four trained modules from scratch on 10 % / all of the pairs
#   st_text_mt    the text MT model, here to decode the recogniser's 1-best (cascade) and the gold German
#   st_text_mt_{ctc,onehot,beamconv}  each zero-shot MT encoder behind its own text_marginals, on the
#                 gold German: how much of the gap to st_text_mt is the MT side's, how much speech's
asr=exp/st_asr/modules
experiments="st_asr:conf/train_st_asr.yaml
ctc_compress_de=weightless:ctc_compress:data/lang/de.model
st_zeroshot=$asr/encoder+$asr/pron+$zeroshot_mt/encoder+$zeroshot_mt/decoder
st_zeroshot_onehot=$asr/encoder+$asr/pron+$zeroshot_mt_onehot/encoder+$zeroshot_mt_onehot/decoder
st_zeroshot_compress=$asr/encoder+$asr/pron+exp/ctc_compress_de+$zeroshot_mt_onehot/encoder+$zeroshot_mt_onehot/decoder
st_zeroshot_ctc_compress=$asr/encoder+$asr/pron+exp/ctc_compress_de+$zeroshot_mt/encoder+$zeroshot_mt/decoder
st_zeroshot_beamconv=$asr/encoder+$asr/pron+exp/ctc_compress_de+$zeroshot_mt_beamconv/encoder+$zeroshot_mt_beamconv/decoder
st_zeroshot_ft:exp/st_zeroshot_compress/finetune.yaml,conf/finetune_st_10pct.yaml
st_zeroshot_ft_frozen:exp/st_zeroshot_compress/finetune.yaml,conf/finetune_st_10pct.yaml,conf/finetune_st_10pct_frozen.yaml
st_e2e_10pct:conf/train_st_e2e.yaml,conf/data_train_10pct.yaml
st_e2e:conf/train_st_e2e.yaml
st_text_mt=$text_mt/encoder+$text_mt/decoder
st_text_mt_ctc=$zeroshot_mt/text+$zeroshot_mt/encoder+$zeroshot_mt/decoder
st_text_mt_onehot=$zeroshot_mt_onehot/text+$zeroshot_mt_onehot/encoder+$zeroshot_mt_onehot/decoder
st_text_mt_beamconv=$zeroshot_mt_beamconv/text+$zeroshot_mt_beamconv/encoder+$zeroshot_mt_beamconv/decoder"
avg_num=5
# test_cascade: data/test with the recogniser's 1-best German (its BPE CTC best path) as text.de,
# made by stage 7 from st_asr's decode of data/test before it is decoded (see $cascades).
cascades="test_cascade=test:exp/st_asr/decode_test/ctc_pron.text:text.de"
decodes="st_asr@test st_text_mt@test st_text_mt@test_cascade st_zeroshot@test st_zeroshot_onehot@test
st_text_mt_ctc@test st_text_mt_onehot@test st_text_mt_beamconv@test
st_zeroshot_compress@test st_zeroshot_ctc_compress@test st_zeroshot_beamconv@test st_zeroshot_ft@test st_zeroshot_ft_frozen@test st_e2e_10pct@test st_e2e@test"
decode_opts="--beam 5 --length_penalty 0.6 --max_len_a 1.2 --max_len_b 10"   # the MT recipe's
ref_file=text.en
score_opts=""
results_title="Mini zero-shot speech translation (synthesised German speech -> English text)"

# "; exit" on the same line: bash reads a running script as it goes (see ../asr1/run.sh).
. ../../TEMPLATE/legonn.sh "$@"; exit
