# Where the corpus is on this machine (sourced by local/data.sh). Empty means "not here":
# stage 1 then stops and says so. A variable exported in the environment wins over the value
# written here (TEDLIUM3=/data/TEDLIUM_release-3 ./run.sh).

# TED-LIUM release 3: the TEDLIUM_release-3 directory (holding data/ and legacy/), or its parent.
TEDLIUM3=${TEDLIUM3:-}
