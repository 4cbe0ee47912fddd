#!/usr/bin/env bash
# Synthesised English speech from the offline mini corpus (../corpus) as Kaldi data dirs:
# data/{train,valid,test} (+ data/test_phn, the test set with phoneme references) and, for the
# pronunciation model of the three-module chain, data/pron_{train,valid} from a second English
# domain (../corpus/en_domain2.txt) spoken by voices of their own.
#
# Text: ASR train/valid sentences are English sides of the De-En MT *training* set (short ones,
# --min_words..--max_words words; the MT decoder has seen them, as in the paper, whose ASR text
# shares the MT English domain). The ASR test sentences come only from ../corpus/en_heldout.txt
# and are checked to occur in no MT/ASR training text (any that do are dropped, with a warning).
# Speech: local/synth.py (espeak-ng from the espeakng-loader wheel; flite/festival voices join the
# training voices when installed). Voice families are disjoint between train, valid and test.
#
# Second domain (paper §V-C: the pronunciation model learns on another corpus than the phoneme
# recogniser): sentences of ../corpus/en_domain2.txt (WordNet examples; the harvest keeps every
# MT split and en_heldout.txt out of it, checked again here against the MT training English and
# the test sentences), spoken by the second voice pool of synth.py (espeak variants no
# train/valid/test voice uses). Their phonemes must be symbols of data/train's inventory
# (data/lang/phn, the interface the pronunciation model shares with the phoneme recogniser): a
# sentence with another phoneme is not used (the count and the phonemes are logged). A corpus
# without en_domain2.txt gets no pron sets (logged; run.sh then skips them).
#
# English BPE: SHARED with the MT decoder, so the ASR encoder's CTC marginals can feed it. This
# copies ../mt1/data/lang/NAME.{model,tokens.txt,report.json} for each NAME of --bpe (en256: the
# 256-piece one; en: mt1's 1000-piece one, the demo's) to data/lang/ (run the MT
# recipe's stages 1-3 first: cd ../mt1 && ./run.sh --stop_stage 3). --standalone_bpe_size N instead
# trains an N-piece English BPE here when mt1's is missing (the recipe test does; such models
# cannot be plugged onto the MT decoder).
#
#   --train_utts N  ASR training utterances (default 6000)      --eval_utts N  valid/test (300)
#   --voices_train N / --voices_valid N / --voices_test N   speakers per set (40 / 4 / 8)
#   --min_words N / --max_words N   sentence length window (4 / 16)
#   --engines auto|espeak|espeak,flite,...   synthesis engines (auto: espeak + installed extras)
#   --espeak_backend auto|lib|cli   espeak-ng via the PyPI wheel (lib) or the espeak-ng program
#   --nj N          synthesis processes (default 2)     --seed N   selection/voice seed (1)
#   --mt_lang DIR   where the shared English BPE (and the German one, for the OLC measurement) are (../mt1/data/lang)
#   --bpe "NAME ..."  the shared English BPEs: DIR/NAME.model -> data/lang/NAME.model ("en256 en")
#   --mt_config F   the MT LegoNN config whose encoder OLC the length measurement follows
#                   (../mt1/conf/train_deen_lego_wemb_bpe256.yaml; the demo's De-En model on the
#                   1000-piece BPEs has the same OLC factor); written per --bpe name to
#                   data/local/olc_ratio.json (the first) and olc_ratio.NAME.json (the others)
#   --standalone_bpe_size N   >0: an own N-piece English BPE when DIR/NAME.model is missing (0;
#                   only with a single --bpe name)
#   --pron_utts N / --pron_eval_utts N   second-domain training / valid utterances (4000 / 300;
#                   --pron_utts 0: none, then also pass run.sh --feats_sets "train valid test test_phn")
#   --voices_pron N / --voices_pron_valid N   their speakers (24 / 4), from synth.py's second voice pool
#   --lowres_percents "P ..."   data/train_<P>pct subsets for the low-resource transfer ("10 30")
set -euo pipefail
train_utts=6000
eval_utts=300
voices_train=40
voices_valid=4
voices_test=8
min_words=4
max_words=16
engines=auto
espeak_backend=auto
nj=2
seed=1
mt_lang=../mt1/data/lang
standalone_bpe_size=0
bpe="en256 en"
mt_config=../mt1/conf/train_deen_lego_wemb_bpe256.yaml
pron_utts=4000
pron_eval_utts=300
voices_pron=24
voices_pron_valid=4
lowres_percents="10 30"
. ../../../utils/parse_options.sh

corpus=../corpus
log() { echo "local/data.sh: $*" >&2; }
for f in deen/train.tsv.xz deen/valid.tsv.xz deen/test.tsv.xz en_heldout.txt; do
    [[ -f $corpus/$f ]] || { log "$corpus/$f is missing (the offline mini corpus)"; exit 1; }
done
pron_sets="pron_train pron_valid"
if [[ $pron_utts -le 0 ]]; then
    pron_sets=""
elif [[ ! -f $corpus/en_domain2.txt ]]; then
    log "$corpus/en_domain2.txt is missing: no second-domain sets data/{pron_train,pron_valid} (the"
    log "  pronunciation model needs them; make it with: cd .. && python local/harvest.py --stage domain2)"
    pron_sets=""
fi

# The shared English BPEs: check them before spending time on synthesis.
read -r -a bpes <<< "$bpe"
[[ ${#bpes[@]} -gt 0 ]] || { log "--bpe names no English BPE"; exit 1; }
mkdir -p data/lang data/local
for name in "${bpes[@]}"; do
    if [[ -f $mt_lang/$name.model ]]; then
        for ext in model tokens.txt report.json; do
            if [[ -f $mt_lang/$name.$ext ]]; then cp "$mt_lang/$name.$ext" "data/lang/$name.$ext"; fi
        done
        echo "$(cd "$mt_lang" && pwd)/$name.model $(sha256sum < "$mt_lang/$name.model" | cut -d' ' -f1)" > "data/lang/$name.source"
        log "English BPE shared with the MT decoder: $mt_lang/$name.model -> data/lang/$name.model"
    elif [[ $standalone_bpe_size -gt 0 && ${#bpes[@]} -eq 1 ]]; then
        log "WARNING: $mt_lang/$name.model is missing; training a standalone $standalone_bpe_size-piece English BPE"
        log "         (models trained on it cannot be plugged onto the MT decoder)"
    else
        log "$mt_lang/$name.model is missing. The ASR recipe shares the MT decoder's English BPE:"
        log "  run the MT recipe's stages 1-3 first:  (cd ../mt1 && ./run.sh --stop_stage 3)"
        log "  or pass --data_opts \"--bpe $name --standalone_bpe_size 500\" for a standalone (non-pluggable) BPE."
        exit 1
    fi
done

# 1. Sentences: data/local/sents.<set> ("sent_id sentence") and data/local/de.<set> (German side);
#    with pron sets, the second-domain candidates in a seeded order (data/local/pron_candidates).
python local/select_sentences.py --corpus "$corpus" --train_utts "$train_utts" --eval_utts "$eval_utts" \
    --min_words "$min_words" --max_words "$max_words" --seed "$seed" ${pron_sets:+--with_pron}

# 2. Voices: disjoint voice families per set.
python local/synth.py --espeak_backend "$espeak_backend" voices --engines "$engines" --seed "$seed" \
    --split "train:$voices_train,valid:$voices_valid,test:$voices_test" --out_dir data/local

# 3. Speech + Kaldi data dirs.
for set in train valid test; do
    rm -rf "data/wav/$set" "data/$set"
    python local/synth.py --espeak_backend "$espeak_backend" synth --text "data/local/sents.$set" \
        --voices "data/local/voices.$set" --wav_dir "data/wav/$set" --data_dir "data/$set" --nj "$nj" --seed "$seed"
done

# 4. Other views of the transcripts: text.en (= text: the MT decoder's English, for plugging it
#    on later), text.lc (lowercase, no punctuation), text.phn (ARPAbet, no stress), text.de (the
#    German side of each De-En pair, train/valid only).
views() {
    local d=$1
    cp "$d/text" "$d/text.en"
    python local/text_views.py "$d"
    legonn phonemize --in "$d/text" --out "$d/text.phn" --quiet
}
for set in train valid test; do
    views "data/$set"
done

# 4b. The second domain: candidates whose phonemes are all in data/train's inventory (what the
#     phoneme recogniser can emit, the symbols of data/lang/phn.tokens.txt made from
#     data/train/text.phn in stage 3), valid first, then train; own voices; the same views.
if [[ -n $pron_sets ]]; then
    legonn phonemize --in data/local/pron_candidates --out data/local/pron_candidates.phn --quiet
    python local/select_pron_sentences.py --pron_utts "$pron_utts" --pron_eval_utts "$pron_eval_utts"
    python local/synth.py --espeak_backend "$espeak_backend" voices --engines espeak --pool pron --seed "$seed" \
        --split "pron_train:$voices_pron,pron_valid:$voices_pron_valid" --out_dir data/local
    for set in $pron_sets; do
        rm -rf "data/wav/$set" "data/$set"
        python local/synth.py --espeak_backend "$espeak_backend" synth --text "data/local/sents.$set" \
            --voices "data/local/voices.$set" --wav_dir "data/wav/$set" --data_dir "data/$set" --nj "$nj" --seed "$seed"
        views "data/$set"
    done
fi

# The test set again, with phoneme references as its 'text' (the phoneme recogniser is scored on it).
rm -rf data/test_phn
mkdir -p data/test_phn
cp data/test/{wav.scp,utt2spk,spk2utt,utt2dur,text.phn} data/test_phn/
cp data/test/text.phn data/test_phn/text

# Low-resource subsets of data/train (paper Appendix F, Table XI): evenly spaced utterances, so
# every training voice stays in; the CMVN statistics remain data/train's (stage 2).
lowres_sets=$(../../../utils/percent_subsets.sh data/train "$lowres_percents")

for set in train valid test test_phn $pron_sets $lowres_sets; do
    legonn datadir validate "data/$set"
done

# 5. Standalone English BPE (only when mt1's is missing and it was asked for).
if [[ ! -f $mt_lang/${bpes[0]}.model ]]; then
    legonn vocab --kind bpe --size "$standalone_bpe_size" --texts data/train/text.en --eval_texts data/test/text.en \
        --out "data/lang/${bpes[0]}"
    echo "standalone $(sha256sum < "data/lang/${bpes[0]}.model" | cut -d' ' -f1)" > "data/lang/${bpes[0]}.source"
fi

# 6. How long the encoder-only model's output must be to look like the MT encoder's (OLC factor),
# per shared BPE: the German BPE of the same size as the English one (en256 -> de256, en -> de).
# With the second domain, also the pronunciation model's OLC (first BPE only, that model's): its
# input is the phoneme marginals, its output should have the length the MT decoder reads (see
# conf/train_asr_pron.yaml).
for i in "${!bpes[@]}"; do
    name=${bpes[$i]}
    out=data/local/olc_ratio.json
    pron_opts=()
    if [[ $i -gt 0 ]]; then
        out=data/local/olc_ratio.$name.json
    elif [[ -n $pron_sets ]]; then
        pron_opts=(--pron_data_dir data/pron_train --pron_config conf/train_asr_pron.yaml)
    fi
    python local/olc_ratio.py --data_dir data/train --en_model "data/lang/$name.model" \
        --de_model "$mt_lang/de${name#en}.model" --mt_config "$mt_config" --out "$out" "${pron_opts[@]}"
done
