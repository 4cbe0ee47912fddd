#!/usr/bin/env bash
# TED-LIUM release 3 as Kaldi data dirs:
#
#   data/train      TEDLIUM_release-3/data (the full 452 h training set; --train_set legacy:
#                   legacy/train, TED-LIUM 2's 207 h)
#   data/dev        TEDLIUM_release-3/legacy/dev
#   data/test       TEDLIUM_release-3/legacy/test
#   data/dev_phn, data/test_phn   dev and test with the phoneme transcripts as 'text' (what the
#                   phoneme recogniser is scored against)
#
# Every set has 'text' (normalised words, local/prepare_tedlium.py) and 'text.phn' (ARPAbet
# without stress, from 'legonn phonemize': CMU dictionary + g2p_en's neural G2P, offline).
# The corpus location: db.sh (TEDLIUM3).
#
#   --train_set full|legacy   which training set (default full)
#   --sph2pipe P   the sph2pipe program, a name on PATH or a path (default sph2pipe). When it is
#                  not installed, wav.scp names the .sph files and legonn reads them itself.
set -euo pipefail
train_set=full
sph2pipe=sph2pipe
. ../../../utils/parse_options.sh
. ./db.sh

log() { echo "local/data.sh: $*" >&2; }

if [[ -z $TEDLIUM3 ]]; then
    log "TEDLIUM3 is not set: set it in db.sh (or export TEDLIUM3=...) to the TEDLIUM_release-3 directory"
    exit 1
fi
if [[ ! -d $TEDLIUM3 ]]; then
    log "TEDLIUM3=$TEDLIUM3 (db.sh): no such directory (the TEDLIUM_release-3 directory)"
    exit 1
fi
root=$TEDLIUM3
if [[ -d $root/TEDLIUM_release-3 ]]; then root=$root/TEDLIUM_release-3; fi
case $train_set in
    full) train_dir=$root/data ;;
    legacy) train_dir=$root/legacy/train ;;
    *) log "--train_set $train_set: full or legacy"; exit 1 ;;
esac
for dir in "$train_dir" "$root/legacy/dev" "$root/legacy/test"; do
    if [[ ! -d $dir/stm || ! -d $dir/sph ]]; then
        log "$dir: expected stm/ and sph/ directories (TEDLIUM3=$TEDLIUM3 in db.sh should be TEDLIUM_release-3)"
        exit 1
    fi
done

mkdir -p data
python local/prepare_tedlium.py --set_dir "$train_dir" --out data/train --sph2pipe "$sph2pipe"
for set in dev test; do
    python local/prepare_tedlium.py --set_dir "$root/legacy/$set" --out "data/$set" --sph2pipe "$sph2pipe"
done

for set in train dev test; do
    legonn phonemize --in "data/$set/text" --out "data/$set/text.phn" --quiet
done

# dev and test again, with phoneme references as 'text'.
for set in dev test; do
    rm -rf "data/${set}_phn.tmp" "data/${set}_phn"
    mkdir "data/${set}_phn.tmp"
    cp "data/$set"/{wav.scp,segments,utt2spk,spk2utt,text.phn} "data/${set}_phn.tmp/"
    cp "data/$set/text.phn" "data/${set}_phn.tmp/text"
    mv "data/${set}_phn.tmp" "data/${set}_phn"
done

for set in train dev test dev_phn test_phn; do
    legonn datadir validate "data/$set"
done
