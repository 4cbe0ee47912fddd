#!/usr/bin/env bash
# Switchboard-1 Release 2 (300 h, training) and HUB5 Eval2000 (testing) as Kaldi data dirs:
#
#   data/train_all          every usable ms98 segment of both conversation sides
#   data/train_dev          its first $dev_utts utterances in sorted order (held out, as in
#                           ESPnet's swbd recipe: whole conversations at the start of the corpus)
#   data/train_nodev        the rest: the training set
#   data/eval2000           HUB5 Eval2000 segments from the stm (+ stm and glm, for sclite)
#   data/eval2000_swbd      its Switchboard half (conversations sw_*)
#   data/eval2000_callhome  its CallHome half (conversations en_*)
#
# Corpus locations: db.sh (SWBD, SWBD_MS98, EVAL2000, EVAL2000_TRANS). Transcript
# normalisation and ids: local/prepare_swbd.py.
#
#   --dev_utts N     size of train_dev (default 4000)
#   --sph2pipe P     the sph2pipe program, a name on PATH or a path (default sph2pipe). When it
#                    is not installed, legonn reads the .sph files itself (PCM/mu-law only; a
#                    shorten-compressed LDC file is then an error naming the file).
set -euo pipefail
dev_utts=4000
sph2pipe=sph2pipe
. ../../../utils/parse_options.sh
. ./db.sh

log() { echo "local/data.sh: $*" >&2; }

# need_dir NAME WHAT: $NAME must be set (db.sh) and be a directory.
need_dir() {
    local name=$1 what=$2 value=${!1}
    if [[ -z $value ]]; then
        log "$name is not set: set it in db.sh (or export $name=...) to $what"
        exit 1
    fi
    if [[ ! -d $value ]]; then
        log "$name=$value (db.sh): no such directory ($what)"
        exit 1
    fi
}

# first_dir A B ...: the first argument that is a directory (nothing if none is).
first_dir() {
    local d
    for d in "$@"; do
        if [[ -d $d ]]; then echo "$d"; return; fi
    done
}

need_dir SWBD "the Switchboard-1 Release 2 (LDC97S62) directory"
if [[ -n $SWBD_MS98 ]]; then
    need_dir SWBD_MS98 "the swb_ms98_transcriptions directory"
    ms98=$SWBD_MS98
else
    ms98=$(first_dir "$SWBD/transcriptions/swb_ms98_transcriptions" "$SWBD/swb_ms98_transcriptions")
    if [[ -z $ms98 ]]; then
        log "no swb_ms98_transcriptions under SWBD=$SWBD: set SWBD_MS98 in db.sh to the ms98 transcriptions directory"
        exit 1
    fi
fi
need_dir EVAL2000 "the HUB5 Eval2000 speech (LDC2002S09) directory"
speech=$(first_dir "$EVAL2000/english" "$EVAL2000/hub5e_00/english")
if [[ -z $speech ]]; then
    log "EVAL2000=$EVAL2000 (db.sh): no english/ or hub5e_00/english/ directory of .sph files in it"
    exit 1
fi
trans=$EVAL2000
if [[ -n $EVAL2000_TRANS ]]; then
    need_dir EVAL2000_TRANS "the HUB5 Eval2000 transcripts (LDC2002T43) directory"
    trans=$EVAL2000_TRANS
fi
stm=""
for d in "$trans" "$trans/2000_hub5_eng_eval_tr"; do
    if [[ -f $d/reference/hub5e00.english.000405.stm ]]; then stm=$d/reference/hub5e00.english.000405.stm; break; fi
done
if [[ -z $stm ]]; then
    log "no reference/hub5e00.english.000405.stm under $trans (or its 2000_hub5_eng_eval_tr/): set EVAL2000_TRANS in db.sh to LDC2002T43"
    exit 1
fi
glm_opt=()
if [[ -f $(dirname "$stm")/en20000405_hub5.glm ]]; then glm_opt=(--glm "$(dirname "$stm")/en20000405_hub5.glm"); fi

mkdir -p data
python local/prepare_swbd.py train --audio_dir "$SWBD" --transcripts "$ms98" --sph2pipe "$sph2pipe" --out data/train_all
python local/prepare_swbd.py eval2000 --audio_dir "$speech" --stm "$stm" "${glm_opt[@]}" \
    --sph2pipe "$sph2pipe" --out data/eval2000

total=$(wc -l < data/train_all/text)
if [[ $total -le $dev_utts ]]; then
    log "data/train_all has $total utterances: --dev_utts $dev_utts would leave none for training"
    exit 1
fi
legonn datadir subset --first "$dev_utts" data/train_all data/train_dev
legonn datadir subset --last $((total - dev_utts)) data/train_all data/train_nodev

for set in train_all train_nodev train_dev eval2000 eval2000_swbd eval2000_callhome; do
    legonn datadir validate "data/$set"
done
