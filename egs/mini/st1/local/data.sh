#!/usr/bin/env bash
# Synthesised German speech for the mini De-En corpus, as Kaldi data dirs data/{train,valid,test}
# (+ data/train_10pct, the pairs the fine-tuned composition and its end-to-end rival may use).
#
# Text: De-En pairs of the MT recipe (../mt1/data/deen_{train,valid,test}, local/select_pairs.py):
# train from its training set, valid and test from its valid and test sets, German of
# --min_words..--max_words words. Speech: ../asr1/local/synth.py with espeak-ng's German voice
# (voice variants x rates x pitches as speakers); voice families are disjoint between train, valid
# and test, so the test voices are held out. Each data dir has:
#   text      the German transcript (what was spoken)     text.de  the same (the ASR module's target)
#   text.en   the English translation (ST reference)      text.phn espeak-ng's German phonemes
# BPEs: SHARED with the MT recipe: ../mt1/data/lang/{de,en}.* -> data/lang/ (the German BPE is the
# interface between the recogniser and the marginal-reading MT encoder; the English one the
# decoder's). Run the MT recipe's stages 1-3 first (cd ../mt1 && ./run.sh --stop_stage 3).
#
#   --train_utts N / --eval_utts N   training / valid and test pairs (6000 / 300)
#   --voices_train N / --voices_valid N / --voices_test N   speakers per set (24 / 3 / 6; espeak-ng
#                   1.52 has 33 German voice families)
#   --min_words N / --max_words N   German sentence length window (4 / 16)
#   --espeak_backend auto|lib|cli   --nj N (synthesis processes, 2)   --seed N (1)
#   --mt_data DIR   the MT recipe's data/ (../mt1/data)    --bpe "NAME ..."  BPEs to share ("de en")
#   --lowres_percents "P ..."   data/train_<P>pct subsets ("10")
set -euo pipefail
train_utts=6000
eval_utts=300
voices_train=24
voices_valid=3
voices_test=6
min_words=4
max_words=16
espeak_backend=auto
nj=2
seed=1
mt_data=../mt1/data
bpe="de en"
lowres_percents="10"
. ../../../utils/parse_options.sh

synth=../asr1/local/synth.py
log() { echo "local/data.sh: $*" >&2; }

# The shared BPEs: check them before spending time on synthesis.
mkdir -p data/lang data/local
for name in $bpe; do
    if [[ ! -f $mt_data/lang/$name.model ]]; then
        log "$mt_data/lang/$name.model is missing. The ST recipe shares the MT recipe's BPEs:"
        log "  run its stages 1-3 first:  (cd ../mt1 && ./run.sh --stop_stage 3)"
        exit 1
    fi
    for ext in model tokens.txt report.json; do
        if [[ -f $mt_data/lang/$name.$ext ]]; then cp "$mt_data/lang/$name.$ext" "data/lang/$name.$ext"; fi
    done
    echo "$(cd "$mt_data/lang" && pwd)/$name.model $(sha256sum < "$mt_data/lang/$name.model" | cut -d' ' -f1)" > "data/lang/$name.source"
    log "BPE shared with the MT recipe: $mt_data/lang/$name.model -> data/lang/$name.model"
done

# 1. Pairs: data/local/sents.<set> (German) and data/local/en.<set> (English).
python local/select_pairs.py --mt_data "$mt_data" --counts "train:$train_utts,valid:$eval_utts,test:$eval_utts" \
    --min_words "$min_words" --max_words "$max_words" --seed "$seed" --out_dir data/local

# 2. German voices, disjoint families per set.
python "$synth" --espeak_backend "$espeak_backend" voices --language de --engines espeak --seed "$seed" \
    --split "train:$voices_train,valid:$voices_valid,test:$voices_test" --out_dir data/local

# 3. Speech + Kaldi data dirs, and the other views of each transcript.
for set in train valid test; do
    rm -rf "data/wav/$set" "data/$set"
    python "$synth" --espeak_backend "$espeak_backend" synth --text "data/local/sents.$set" \
        --voices "data/local/voices.$set" --wav_dir "data/wav/$set" --data_dir "data/$set" --nj "$nj" --seed "$seed"
    cp "data/$set/text" "data/$set/text.de"
    # utterance ids are "<speaker>-<sentence id>"; speaker ids have no '-'
    awk 'NR == FNR { en[$1] = substr($0, length($1) + 2); next }
         { sid = substr($1, index($1, "-") + 1); if (!(sid in en)) { print "no English for " $1 > "/dev/stderr"; exit 1 }
           print $1 " " en[sid] }' "data/local/en.$set" "data/$set/text" > "data/$set/text.en"
    python "$synth" --espeak_backend "$espeak_backend" phonemes --language de --in "data/$set/text" --out "data/$set/text.phn"
done

# 4. Low-resource subsets of data/train: evenly spaced utterances, every training voice stays in;
#    the CMVN statistics remain data/train's (stage 2).
lowres_sets=$(../../../utils/percent_subsets.sh data/train "$lowres_percents")

for set in train valid test $lowres_sets; do
    legonn datadir validate "data/$set"
done
