#!/usr/bin/env python3
"""One TED-LIUM release 3 set (a sph/ + stm/ pair) as a Kaldi data dir (called by local/data.sh).

  prepare_tedlium.py --set_dir TEDLIUM_release-3/legacy/dev --out data/dev [--sph2pipe sph2pipe]

Each talk ``stm/<talk>.stm`` goes with ``sph/<talk>.sph`` (16 kHz mono). Stm lines are
``talk 1 speaker start end <o,f0,male> words...``; the talk is the recording and the speaker
(as in Kaldi's tedlium recipe), an utterance is ``<talk>-<start>-<end>`` in 10 ms
(``AlGore_2009-0001782-0002881``). Lines whose text is ``ignore_time_segment_in_scoring``
(the gaps between segments) are skipped.

Audio: ``SPH2PIPE -f wav -p FILE |`` when sph2pipe is installed, the plain file path otherwise
(libsndfile reads PCM SPHERE; a shorten-compressed file without sph2pipe is an error naming it).
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Iterable, Optional

from legonn.speech.audio import sphere_header
from legonn.speech.datadir import write_data_dir as write_tables
from legonn.errors import LegonnError

PROG = "local/prepare_tedlium.py"

_VARIANT = re.compile(r"\(\d+\)$")  # read(2): the dictionary's second pronunciation; the word is 'read'
_NOT_WORD_CHARS = re.compile(r"[^\w']+")


def fail(message: str) -> None:
    sys.exit(f"{PROG}: error: {message}")


def normalise_ted(words: Iterable[str]) -> list[str]:
    """TED-LIUM stm tokens -> transcript words.

    Lowercase; ``{NOISE}``/``[NOISE]``-style tags, ``<sil>``, ``<unk>`` (speech the transcriber
    could not make out: no spelling to learn, no pronunciation to predict) and parenthesised
    tokens (the utterance names ending training lines) removed; pronunciation-variant markers
    ``word(2)`` dropped; punctuation other than apostrophes stripped; a token starting with an
    apostrophe joined to the word before it ("it 's" -> "it's", "we 're" -> "we're").
    """
    out: list[str] = []
    for token in words:
        word = _VARIANT.sub("", token.lower())
        if not word or word[0] in "{[<(":
            continue
        word = _NOT_WORD_CHARS.sub("", word)
        if not word.strip("'"):
            continue
        if word.startswith("'") and out:
            out[-1] += word
        else:
            out.append(word)
    return out


def read_sph_header(path: Path) -> dict[str, str]:
    """The SPHERE header fields (legonn.speech.audio.sphere_header); a bad file ends the preparation."""
    try:
        fields = sphere_header(path)
    except LegonnError as exc:
        fail(str(exc))
    return fields


def wav_entry(program: Optional[str], path: Path) -> str:
    return f"{program} -f wav -p {path} |" if program else str(path)


def prepare(set_dir: Path, out: Path, sph2pipe: str) -> None:
    stm_files = sorted((set_dir / "stm").glob("*.stm"))
    if not stm_files:
        fail(f"{set_dir / 'stm'}: no .stm files")
    program = shutil.which(sph2pipe)
    rows, wav, seen = [], {}, set()
    dropped: Counter = Counter()
    for stm in stm_files:
        talk = stm.stem
        sph = (set_dir / "sph" / f"{talk}.sph").resolve()
        if not sph.is_file():
            dropped["talks without audio"] += 1
            continue
        header = read_sph_header(sph)
        coding = header.get("sample_coding", "pcm")
        if not program and "shorten" in coding:
            fail(f"{sph} is shorten-compressed (sample_coding {coding}), which only sph2pipe decodes, and "
                 f"'{sph2pipe}' is not installed: put sph2pipe on PATH or pass --sph2pipe /path/to/sph2pipe")
        last = round(100 * int(header["sample_count"]) / int(header["sample_rate"]))
        with open(stm, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if not line.strip() or line.startswith(";;"):
                    continue
                fields = line.split()
                try:
                    start, end = round(100 * float(fields[3])), round(100 * float(fields[4]))
                except (IndexError, ValueError):
                    fail(f"{stm}:{n}: expected 'talk 1 speaker START END <label> words...'")
                if fields[0] != talk:
                    fail(f"{stm}:{n}: talk '{fields[0]}' in the stm file of talk '{talk}'")
                text = fields[6:] if len(fields) > 5 and fields[5].startswith("<") else fields[5:]
                if [w.lower() for w in text] == ["ignore_time_segment_in_scoring"]:
                    continue
                words = normalise_ted(text)
                if not words:
                    dropped["empty after normalisation"] += 1
                    continue
                if min(end, last) <= start:
                    dropped["of zero length or past the end of the audio"] += 1
                    continue
                utt = f"{talk}-{start:07d}-{end:07d}"  # the stm's times, also when the audio ends sooner
                if utt in seen:  # the release repeats a few segments
                    dropped["repeating a segment"] += 1
                    continue
                seen.add(utt)
                wav[talk] = wav_entry(program, sph)
                rows.append((utt, talk, start, min(end, last), " ".join(words)))
    if not rows:
        fail(f"{set_dir}: no usable segment")
    write_data_dir(out, rows, wav)
    text = f"{out}: {len(rows)} utterances from {len(wav)} talk(s)"
    if dropped:
        text += "; dropped " + ", ".join(f"{k} {why}" for why, k in dropped.most_common())
    print(text)


def write_data_dir(out: Path, rows: list[tuple[str, str, int, int, str]], wav: dict[str, str]) -> None:
    """rows: (utt, talk, start_cs, end_cs, text); the talk is the recording and the speaker. Atomic."""
    rows = sorted(rows, key=lambda r: r[0].encode())
    talks = sorted(wav, key=str.encode)
    by_talk: dict[str, list[str]] = {t: [] for t in talks}
    for utt, talk, *_ in rows:
        by_talk[talk].append(utt)
    tables = {
        "wav.scp": [f"{t} {wav[t]}" for t in talks],
        "segments": [f"{u} {t} {s / 100:.2f} {e / 100:.2f}" for u, t, s, e, _ in rows],
        "text": [f"{u} {x}" for u, _, _, _, x in rows],
        "utt2spk": [f"{u} {t}" for u, t, _, _, _ in rows],
        "spk2utt": [f"{t} {' '.join(by_talk[t])}" for t in talks],
    }
    write_tables(out, tables)


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set_dir", required=True, help="a directory holding sph/ and stm/ (e.g. TEDLIUM_release-3/legacy/dev)")
    p.add_argument("--out", required=True, help="data dir to write")
    p.add_argument("--sph2pipe", default="sph2pipe", help="sph2pipe program (name on PATH or path); plain paths without it")
    args = p.parse_args(argv)
    prepare(Path(args.set_dir), Path(args.out), args.sph2pipe)


if __name__ == "__main__":
    main()
