#!/usr/bin/env bash
# Unpack the committed mini corpus (../corpus/{deen,roen}/{train,valid,test}.tsv.xz) into
# Kaldi-style data dirs: data/<pair>_<split>/{text.<src>,text.en}, checked by legonn datadir validate.
#
#   --train_pairs N  keep only the first N training pairs (0 = all; tests use a few hundred)
#   --eval_pairs N   likewise for valid and test
#   --norm none|lc_rm   lc_rm: lowercase and strip punctuation on every side (the paper's
#                       ASR-MT transfer setting, Appendix A-B)
set -euo pipefail
train_pairs=0
eval_pairs=0
norm=none
. ../../../utils/parse_options.sh

corpus=../corpus
for pair in deen roen; do
    for split in train valid test; do
        [[ -f $corpus/$pair/$split.tsv.xz ]] || { echo "local/data.sh: $corpus/$pair/$split.tsv.xz is missing" >&2; exit 1; }
    done
done

python - "$corpus" "$train_pairs" "$eval_pairs" "$norm" <<'PY'
import lzma, os, re, sys, unicodedata
from pathlib import Path

corpus, train_pairs, eval_pairs, norm = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
punct = re.compile(r"[^\w\s']|_", re.UNICODE)

def normalise(text):
    if norm == "lc_rm":
        text = " ".join(punct.sub(" ", text.lower()).split())
    return text

for pair, src in (("deen", "de"), ("roen", "ro")):
    for split in ("train", "valid", "test"):
        limit = train_pairs if split == "train" else eval_pairs
        rows = []
        path = corpus / pair / f"{split}.tsv.xz"
        try:
            with lzma.open(path, "rt", encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    fields = line.rstrip("\n").split("\t")
                    if len(fields) < 3:
                        sys.exit(f"local/data.sh: {path}:{n}: expected id<TAB>source<TAB>english")
                    rows.append(fields[:3])
        except (EOFError, lzma.LZMAError, UnicodeDecodeError) as exc:
            sys.exit(f"local/data.sh: {path}: corrupt or truncated ({exc})")
        if limit:
            rows = rows[:limit]
        out = Path("data") / f"{pair}_{split}"
        out.mkdir(parents=True, exist_ok=True)
        rows.sort(key=lambda r: r[0])
        for lang, column in ((src, 1), ("en", 2)):
            tmp = out / f".text.{lang}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                for row in rows:
                    f.write(f"{pair}_{row[0]} {normalise(row[column])}\n")
            os.replace(tmp, out / f"text.{lang}")
        print(f"{out}: {len(rows)} pairs")
PY

# Text-only data dirs: text.<src> and text.en must hold the same ids, sorted, with no empty line.
for pair in deen roen; do
    for split in train valid test; do
        legonn datadir validate --no_wav --no_text "data/${pair}_$split"
    done
done
