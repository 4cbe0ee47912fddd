# Where the raw WMT corpora are: one directory per corpus, holding the files README.md lists
# anywhere below it (unpack the WMT archives into it as they come; .gz files are read as they
# are). Empty = not on this machine: local/data.sh then stops with one line naming the variable.
# A variable already set in the environment wins: WMT14_ENDE=/data/wmt14 ./run.sh --tasks ende
WMT14_ENDE=${WMT14_ENDE:-}   # WMT14 En-De, the 4.5M-pair setup (--tasks ende)
WMT19_DEEN=${WMT19_DEEN:-}   # WMT19 De-En without ParaCrawl (--tasks roen, asr)
WMT16_ROEN=${WMT16_ROEN:-}   # WMT16 Ro-En (--tasks roen)
