#!/usr/bin/env python3
"""Europarl-ST English speech as Kaldi data dirs (called by local/data.sh).

Reads the release's <root>/en/audios/<speech>.m4a (or .wav) and, for each split,
<root>/en/<tgt>/<split>/segments.lst ("speech_id start end", seconds) with segments.en (one
transcript per line, aligned with segments.lst). Writes data/{train,dev,test} with wav.scp
(.m4a through an ffmpeg pipe, .wav as a path), segments, text (lowercased, 13a-tokenized, no
punctuation: utils/text_norm.py, the normalisation egs/wmt/mt1 applies to the WMT English), utt2spk
(the speech: one speaker each) and spk2utt. Utterance ids are <speech>_<start>_<end> in
centiseconds. With --tedlium_stm, TED-LIUM training transcripts normalised the same way go to
data/local/tedlium_train/text (extra English BPE text, paper Appendix A-B).

Every input is checked before anything is written; a problem stops with one line naming the
file. Each data dir appears complete or not at all (written under a temporary name).
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "utils"))
from text_norm import make_normaliser  # noqa: E402

from legonn.speech.datadir import sort_key, write_data_dir  # noqa: E402

SPLITS = ("train", "dev", "test")
AUDIO_EXTS = (".m4a", ".wav")
FFMPEG = "ffmpeg -nostdin -v error -i {path} -f wav -ar 16000 -ac 1 - |"


class PrepError(Exception):
    """One line for the user: what is wrong, naming the file."""


def read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise PrepError(f"{path}: not found")
    try:
        with open(path, encoding="utf-8", newline="\n") as f:
            return [line.rstrip("\n") for line in f]
    except UnicodeDecodeError as exc:
        raise PrepError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


def centiseconds(value: str, where: str) -> int:
    try:
        seconds = float(value)
    except ValueError:
        raise PrepError(f"{where}: '{value}' is not a time in seconds") from None
    return round(seconds * 100)


def read_split(seg_dir: Path) -> list[tuple[str, str, str, int, int, str]]:
    """(speech, start, end, start_cs, end_cs, transcript) per line of segments.lst/segments.en."""
    lst, texts = read_lines(seg_dir / "segments.lst"), read_lines(seg_dir / "segments.en")
    if len(lst) != len(texts):
        raise PrepError(f"{seg_dir / 'segments.en'}: {len(texts)} lines, but segments.lst has {len(lst)}; "
                        "they must be line-aligned")
    rows = []
    for n, (line, text) in enumerate(zip(lst, texts), 1):
        fields = line.split()
        where = f"{seg_dir / 'segments.lst'}:{n}"
        if len(fields) != 3:
            raise PrepError(f"{where}: expected 'speech_id start end', got {line!r}")
        speech, start, end = fields
        a, b = centiseconds(start, where), centiseconds(end, where)
        if not 0 <= a < b:
            raise PrepError(f"{where}: segment ends ({end}) before it starts ({start})")
        rows.append((speech, start, end, a, b, text))
    if not rows:
        raise PrepError(f"{seg_dir / 'segments.lst'}: no segments")
    return rows


def find_audio(audio_dir: Path, speech: str, where: Path) -> Path:
    for ext in AUDIO_EXTS:
        path = audio_dir / f"{speech}{ext}"
        if path.is_file():
            return path.resolve()
    raise PrepError(f"{audio_dir / speech}.m4a (or .wav) not found; {where} refers to it")


def wav_entry(path: Path) -> str:
    return FFMPEG.format(path=shlex.quote(str(path))) if path.suffix == ".m4a" else str(path)


def write_dir(out: Path, name: str, tables: dict[str, list[tuple[str, str]]]) -> None:
    write_data_dir(out / name, {table: [f"{k} {v}" for k, v in sorted(rows, key=lambda r: sort_key(r[0]))]
                                for table, rows in tables.items()})


def prepare_split(name: str, rows, audio: dict[str, Path], normalise, out: Path) -> None:
    utts, seen, dropped_empty, duplicates = {}, set(), 0, 0
    for speech, start, end, a, b, text in rows:
        utt = f"{speech}_{a:07d}_{b:07d}"
        if utt in seen:
            duplicates += 1
            continue
        seen.add(utt)
        text = normalise(text)
        if not text:
            dropped_empty += 1
            continue
        utts[utt] = (speech, start, end, text)
    speeches = sorted({u[0] for u in utts.values()}, key=sort_key)
    spk2utt = defaultdict(list)
    for utt in sorted(utts, key=sort_key):
        spk2utt[utts[utt][0]].append(utt)
    write_dir(out, name, {
        "wav.scp": [(s, wav_entry(audio[s])) for s in speeches],
        "segments": [(u, f"{s} {start} {end}") for u, (s, start, end, _) in utts.items()],
        "text": [(u, t) for u, (_, _, _, t) in utts.items()],
        "utt2spk": [(u, s) for u, (s, _, _, _) in utts.items()],
        "spk2utt": [(s, " ".join(us)) for s, us in spk2utt.items()],
    })
    notes = [f"{n} {what}" for n, what in ((duplicates, "duplicate segments"), (dropped_empty, "empty transcripts"))
             if n]
    print(f"data/{name}: {len(utts)} utterances from {len(speeches)} speeches"
          + (f" ({', '.join(notes)} left out)" if notes else ""), flush=True)


def tedlium_rows(stm_dir: Path, normalise) -> list[tuple[str, str]]:
    """Training transcripts of TED-LIUM .stm files ("talk channel speaker start end <label> words")."""
    files = sorted(stm_dir.rglob("*.stm"))
    if not files:
        raise PrepError(f"TEDLIUM_TRAIN_STM={stm_dir}: no .stm files below it")
    rows = {}
    for path in files:
        for n, line in enumerate(read_lines(path), 1):
            if not line.strip() or line.startswith(";;"):
                continue
            fields = line.split(maxsplit=6)
            if len(fields) < 6:
                raise PrepError(f"{path}:{n}: expected 'talk channel speaker start end <label> words'")
            words = fields[6] if len(fields) == 7 else ""
            if words.strip() == "ignore_time_segment_in_scoring":
                continue
            # TED-LIUM writes <unk> for unknown words and splits clitics ("it 's"): undo both
            words = re.sub(r"\s+'", "'", " ".join(w for w in words.split() if w != "<unk>"))
            text = normalise(words)
            if text:
                key = f"{re.sub(r'[^A-Za-z0-9._-]', '_', fields[0])}-{centiseconds(fields[3], f'{path}:{n}'):07d}"
                rows[f"{key}-{centiseconds(fields[4], f'{path}:{n}'):07d}"] = text
    return list(rows.items())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, type=Path, help="the release's v1.1 directory (EUROPARL_ST in db.sh)")
    p.add_argument("--tgt", default="de", help="whose <tgt>/<split>/segments.* give the English segments")
    p.add_argument("--tedlium_stm", type=Path, help="TED-LIUM training .stm directory (optional)")
    p.add_argument("--out", type=Path, default=Path("data"))
    p.add_argument("--check_only", action="store_true")
    args = p.parse_args()
    try:
        en = args.root / "en"
        audio_dir = en / "audios"
        if not audio_dir.is_dir():
            raise PrepError(f"EUROPARL_ST={args.root}: {audio_dir} is missing (expected the release's v1.1 directory)")
        splits, audio = {}, {}
        for split in SPLITS:
            seg_dir = en / args.tgt / split
            splits[split] = read_split(seg_dir)
            for speech, *_ in splits[split]:
                if speech not in audio:
                    audio[speech] = find_audio(audio_dir, speech, seg_dir / "segments.lst")
        if any(path.suffix == ".m4a" for path in audio.values()) and shutil.which("ffmpeg") is None:
            raise PrepError(f"{audio_dir}: .m4a audio is read through ffmpeg, which is not on PATH "
                            "(install ffmpeg, or convert the audio to 16 kHz .wav files of the same names)")
        if args.tedlium_stm is not None and not args.tedlium_stm.is_dir():
            raise PrepError(f"TEDLIUM_TRAIN_STM={args.tedlium_stm}: not a directory")
        if args.check_only:
            return 0
        normalise = make_normaliser(lowercase=True, tokenize=True, no_punct=True)
        tedlium = tedlium_rows(args.tedlium_stm, normalise) if args.tedlium_stm is not None else None
        for split, rows in splits.items():
            prepare_split(split, rows, audio, normalise, args.out)
        if tedlium is not None:
            write_dir(args.out / "local", "tedlium_train", {"text": tedlium})
            print(f"data/local/tedlium_train: {len(tedlium)} TED-LIUM transcripts", flush=True)
    except PrepError as exc:
        print(f"local/data.sh: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
