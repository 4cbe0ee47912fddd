# Where the raw corpora are (README.md lists the files). Empty = not on this machine: local/data.sh
# then stops with one line naming the variable. A variable already set in the environment wins:
# EUROPARL_ST=/data/europarl-st/v1.1 ./run.sh
EUROPARL_ST=${EUROPARL_ST:-}              # Europarl-ST's v1.1 directory (holding en/audios, en/<tgt>/...)
TEDLIUM_TRAIN_STM=${TEDLIUM_TRAIN_STM:-}  # optional: TED-LIUM training .stm files, extra English BPE text
                                          # (e.g. TEDLIUM_release-3/legacy/train/stm)
