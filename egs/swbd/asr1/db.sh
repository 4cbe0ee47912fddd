# Where the corpora are on this machine (sourced by local/data.sh). Empty means "not here":
# stage 1 then stops and says which one to set. A variable exported in the environment
# wins over the value written here (SWBD=/data/LDC97S62 ./run.sh).

# Switchboard-1 Release 2 (LDC97S62): searched for its sw0NNNN.sph files at any depth
# (swb1/data/, swb1_d1..d4/data/, ...).
SWBD=${SWBD:-}
# The Mississippi State ms98 word transcriptions (swb_ms98_transcriptions/, holding
# ??/????/sw????[AB]-ms98-a-trans.text). Empty: $SWBD/transcriptions/swb_ms98_transcriptions
# or $SWBD/swb_ms98_transcriptions.
SWBD_MS98=${SWBD_MS98:-}
# HUB5 2000 English evaluation speech (LDC2002S09): the directory holding english/*.sph
# (hub5e_00/), or its parent.
EVAL2000=${EVAL2000:-}
# Its transcripts (LDC2002T43): the directory holding reference/hub5e00.english.000405.stm,
# or 2000_hub5_eng_eval_tr/reference/... Empty: look in $EVAL2000.
EVAL2000_TRANS=${EVAL2000_TRANS:-}
