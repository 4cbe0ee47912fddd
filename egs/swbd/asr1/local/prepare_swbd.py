#!/usr/bin/env python3
"""Switchboard-1 Release 2 and HUB5 Eval2000 as Kaldi data dirs (called by local/data.sh).

  prepare_swbd.py train --audio_dir SWBD --transcripts MS98_DIR --out data/train_all
  prepare_swbd.py eval2000 --audio_dir EVAL2000_SPEECH --stm STM [--glm GLM] --out data/eval2000

Ids follow Kaldi's swbd recipe: a recording is one conversation side ("sw02001-A": channel 1
is side A, channel 2 side B), its speaker is the side, an utterance is
"<side>_<start>-<end>" with times in 10 ms ("sw02001-A_000098-001156"). ``eval2000`` also
writes ``<out>_swbd`` (conversations sw_*) and ``<out>_callhome`` (en_*).

Audio: every wav.scp entry is ``SPH2PIPE -f wav -p -c N FILE |``, which picks the side's
channel. With sph2pipe installed it runs; without it legonn's reader reads the file with
libsndfile and takes channel N itself (PCM and mu-law SPHERE only: LDC's shorten-compressed
files need the real sph2pipe, which is checked here from the headers). The reader resamples
the 8 kHz audio to 16 kHz.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Iterable, Optional

from legonn.speech.audio import sphere_header
from legonn.speech.datadir import write_data_dir as write_tables
from legonn.errors import LegonnError

PROG = "local/prepare_swbd.py"
CHANNEL = {"A": 1, "B": 2}
# Tags for non-speech events: mapped to nothing (the models learn no noise symbols).
NOISE_TAGS = {"[noise]", "[laughter]", "[vocalized-noise]", "[silence]"}
ASIDE_TAGS = {"<b_aside>", "<e_aside>"}
# Eval2000 is split by conversation name (Kaldi's score_sclite.sh): sw_* Switchboard, en_* CallHome.
EVAL2000_SUBSETS = {"swbd": "sw_", "callhome": "en_"}


def fail(message: str) -> None:
    sys.exit(f"{PROG}: error: {message}")


# --------------------------------------------------------------------------- transcripts


_LAUGHTER_WORD = re.compile(r"^\[laughter-(.+)\](-?)$")  # [laughter-yeah] -> yeah
_MISPRONOUNCED = re.compile(r"^\[(.+)/[^/]+\](-?)$")  # [bocket/bucket] -> bocket (what was said)
_PARTIAL_START = re.compile(r"^-?\[[^][]+\](.+)$")  # -[an]y -> -y (bracketed part not spoken)
_PARTIAL_END = re.compile(r"^(.+?)\[[^][]+\]-?$")  # ab[solute]- -> ab-
_INNER_GAP = re.compile(r"^([^][]+)\[[^][]+\]([^][]+)$")  # ammu[n]it- -> ammu-it-
_COINAGE = re.compile(r"^\{(.+)\}$")  # {yuppiedom} -> yuppiedom
_SENSE_SUFFIX = re.compile(r"_\d$")  # them_1 -> them


def map_word(word: str) -> str:
    """One lowercased ms98 token -> its training spelling ('' drops it).

    The Mississippi State conventions (as Kaldi's swbd1_map_words.pl reads them): laughter-
    words keep the word, mispronunciations keep what was said, partial words keep the spoken
    part with a hyphen where the rest is missing, {coinages} lose their braces, and word-sense
    suffixes (_1) go.
    """
    if word in NOISE_TAGS or word in ASIDE_TAGS:
        return ""
    m = _LAUGHTER_WORD.match(word)
    if m:
        word = m.group(1) + m.group(2)
    m = _MISPRONOUNCED.match(word)
    if m:
        word = m.group(1) + m.group(2)
    m = _PARTIAL_START.match(word)
    if m:
        word = "-" + m.group(1)
    m = _PARTIAL_END.match(word)
    if m:
        word = m.group(1) + "-"
    m = _INNER_GAP.match(word)
    if m:
        word = f"{m.group(1)}-{m.group(2)}"
    m = _COINAGE.match(word)
    if m:
        word = m.group(1)
    word = _SENSE_SUFFIX.sub("", word)
    if word in NOISE_TAGS or "[" in word or "]" in word:  # an unknown tag: not a word
        return ""
    return word


def normalise_ms98(words: Iterable[str]) -> list[str]:
    """ms98 transcript tokens -> training words: lowercase, noise/aside tags removed, words mapped."""
    out = []
    for token in words:
        word = map_word(token.lower())
        if word:
            out.append(word)
    return out


def normalise_stm(words: Iterable[str]) -> list[str]:
    """Eval2000 stm tokens -> reference words, as ESPnet's swbd recipe prepares them.

    Hesitation tags ((%HESITATION), %HESITATION) and <...> markers go; parentheses, which mark
    optionally deletable words and partial words for sclite, are removed and the word kept;
    then the ms98 mapping (noise tags etc.).
    """
    out = []
    for token in words:
        word = token.lower()
        if word.lstrip("(").startswith("%") or (word.startswith("<") and word.endswith(">")):
            continue
        out.extend(normalise_ms98([word.replace("(", "").replace(")", "")]))
    return out


# --------------------------------------------------------------------------- SPHERE files


def read_sph_header(path: Path) -> dict[str, str]:
    """The SPHERE header fields (legonn.speech.audio.sphere_header); a bad file ends the preparation."""
    try:
        fields = sphere_header(path)
    except LegonnError as exc:
        fail(str(exc))
    if not fields.get("channel_count", "").isdigit():
        fail(f"{path}: SPHERE header has no valid channel_count")
    return fields


def duration(header: dict[str, str]) -> float:
    return int(header["sample_count"]) / int(header["sample_rate"])


def find_sph(root: Path, name_pattern: str) -> dict[str, Path]:
    """{name: path} of the .sph files under ``root`` (any depth, any case) whose stem matches."""
    pattern = re.compile(name_pattern)
    found: dict[str, Path] = {}
    for dirpath, _, files in os.walk(root, followlinks=True):
        for file in files:
            stem, ext = os.path.splitext(file)
            if ext.lower() == ".sph" and pattern.fullmatch(stem.lower()):
                found.setdefault(stem.lower(), Path(dirpath, file).resolve())
    return found


def sph2pipe_command(program: str, headers: dict[Path, dict[str, str]]) -> str:
    """The sph2pipe to write into wav.scp; without it, check libsndfile can read every file."""
    installed = shutil.which(program)
    if installed:
        return installed
    for path, header in headers.items():
        coding = header.get("sample_coding", "pcm")
        if "shorten" in coding:
            fail(f"{path} is shorten-compressed (sample_coding {coding}), which only sph2pipe decodes, and "
                 f"'{program}' is not installed: put sph2pipe on PATH (e.g. Kaldi's tools/sph2pipe_v2.5) or pass "
                 f"--sph2pipe /path/to/sph2pipe")
    print(f"{PROG}: {program} is not installed: legonn reads the SPHERE files with libsndfile "
          f"(the wav.scp entries still name sph2pipe, which the reader emulates)", file=sys.stderr)
    return program


# --------------------------------------------------------------------------- data dirs


def centiseconds(seconds: float) -> int:
    return int(round(seconds * 100))


def write_data_dir(out: Path, utts: list[tuple[str, str, int, int, str]], wav: dict[str, str]) -> None:
    """utts: (utt, recording, start_cs, end_cs, text); the recording is the speaker. Atomic."""
    utts = sorted(utts, key=lambda u: u[0].encode())
    recordings = sorted({u[1] for u in utts}, key=str.encode)
    by_recording: dict[str, list[str]] = {r: [] for r in recordings}
    for utt, rec, *_ in utts:
        by_recording[rec].append(utt)
    tables = {
        "wav.scp": [f"{r} {wav[r]}" for r in recordings],
        "segments": [f"{u} {r} {s / 100:.2f} {e / 100:.2f}" for u, r, s, e, _ in utts],
        "text": [f"{u} {t}" for u, _, _, _, t in utts],
        "utt2spk": [f"{u} {r}" for u, r, _, _, _ in utts],
        "spk2utt": [f"{r} {' '.join(by_recording[r])}" for r in recordings],
        "reco2file_and_channel": [f"{r} {r.rsplit('-', 1)[0]} {r.rsplit('-', 1)[1]}" for r in recordings],
    }
    write_tables(out, tables)


def clip_segments(rows, durations: dict[str, float], dropped: Counter):
    """Drop segments past the end of their recording, clip the ones running over it."""
    for utt, rec, start, end, text in rows:
        last = centiseconds(durations[rec])
        if start >= last:
            dropped["starting after the end of the audio"] += 1
            continue
        yield utt, rec, start, min(end, last), text


def summary(out: Path, rows: list, dropped: Counter) -> str:
    sides = len({r[1] for r in rows})
    text = f"{out}: {len(rows)} utterances from {sides} conversation sides"
    if dropped:
        text += "; dropped " + ", ".join(f"{n} {why}" for why, n in dropped.most_common())
    return text


# --------------------------------------------------------------------------- train


_MS98_FILE = re.compile(r"sw\d{4}[AB]-ms98-a-trans\.text")
_MS98_ID = re.compile(r"^sw(\d{4})([AB])-ms98-a-\d+$")


def read_ms98(root: Path) -> list[tuple[Path, int, list[str]]]:
    """(file, line number, fields) of every line of ROOT/??/????/sw????[AB]-ms98-a-trans.text."""
    files = sorted(p for p in root.glob("??/????/*") if _MS98_FILE.fullmatch(p.name))
    if not files:
        fail(f"{root}: no ms98 transcripts (expected ??/????/sw????[AB]-ms98-a-trans.text, e.g. 20/2001/sw2001A-ms98-a-trans.text)")
    lines = []
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    lines.append((path, n, line.split()))
    return lines


def prepare_train(args) -> None:
    sph = find_sph(Path(args.audio_dir), r"sw0\d{4}")
    if not sph:
        fail(f"{args.audio_dir}: no Switchboard audio (sw0NNNN.sph files at any depth)")
    headers = {name: read_sph_header(path) for name, path in sph.items()}
    program = sph2pipe_command(args.sph2pipe, {sph[n]: h for n, h in headers.items()})
    durations, wav, rows, seen = {}, {}, [], set()
    dropped: Counter = Counter()
    for path, n, fields in read_ms98(Path(args.transcripts)):
        if len(fields) < 3:
            fail(f"{path}:{n}: expected 'sw2001A-ms98-a-0001 START END words...'")
        m = _MS98_ID.match(fields[0])
        try:
            start, end = centiseconds(float(fields[1])), centiseconds(float(fields[2]))
        except ValueError:
            m = None
        if m is None:
            fail(f"{path}:{n}: expected 'sw2001A-ms98-a-0001 START END words...', got '{' '.join(fields[:3])}'")
        conv, side = f"sw0{m.group(1)}", m.group(2)
        rec = f"{conv}-{side}"
        words = normalise_ms98(fields[3:])
        if conv not in sph:
            dropped["without audio"] += 1
            continue
        if not words:
            dropped["empty after normalisation"] += 1
            continue
        if end <= start:
            dropped["of zero length"] += 1
            continue
        utt = f"{rec}_{start:06d}-{end:06d}"
        if utt in seen:
            dropped["repeating an utterance id"] += 1
            continue
        seen.add(utt)
        if rec not in wav:
            wav[rec] = f"{program} -f wav -p -c {CHANNEL[side]} {sph[conv]} |"
            durations[rec] = duration(headers[conv])
        rows.append((utt, rec, start, end, " ".join(words)))
    rows = list(clip_segments(rows, durations, dropped))
    if not rows:
        fail(f"{args.transcripts}: no usable utterance for the audio under {args.audio_dir}")
    out = Path(args.out)
    write_data_dir(out, rows, wav)
    print(summary(out, rows, dropped) + f" ({len(sph)} .sph files found)")


# --------------------------------------------------------------------------- eval2000


def prepare_eval2000(args) -> None:
    sph = find_sph(Path(args.audio_dir), r"(sw|en)_\d+")
    if not sph:
        fail(f"{args.audio_dir}: no HUB5 Eval2000 audio (sw_NNNN.sph / en_NNNN.sph files)")
    headers = {name: read_sph_header(path) for name, path in sph.items()}
    program = sph2pipe_command(args.sph2pipe, {sph[n]: h for n, h in headers.items()})
    stm = Path(args.stm)
    durations, wav, rows, seen = {}, {}, [], set()
    dropped: Counter = Counter()
    with open(stm, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip() or line.startswith(";;"):
                continue
            fields = line.split()
            try:
                conv, side, start, end = fields[0].lower(), fields[1].upper(), float(fields[3]), float(fields[4])
            except (IndexError, ValueError):
                fail(f"{stm}:{n}: expected 'en_4156 A en_4156_A START END <label> words...'")
            if side not in CHANNEL:
                fail(f"{stm}:{n}: channel '{fields[1]}' is not A or B")
            text = fields[6:] if len(fields) > 5 and fields[5].startswith("<") else fields[5:]
            if any(w.lower() == "ignore_time_segment_in_scoring" for w in text):
                dropped["ignored in scoring"] += 1
                continue
            words = normalise_stm(text)
            if conv not in sph:
                dropped["without audio"] += 1
                continue
            if not words:
                dropped["empty after normalisation"] += 1
                continue
            start_cs, end_cs = centiseconds(start), centiseconds(end)
            if end_cs <= start_cs:
                dropped["of zero length"] += 1
                continue
            rec = f"{conv}-{side}"
            utt = f"{rec}_{start_cs:06d}-{end_cs:06d}"
            if utt in seen:
                fail(f"{stm}:{n}: a second segment {start}-{end} of {conv} side {side} (utterance id {utt})")
            seen.add(utt)
            if rec not in wav:
                wav[rec] = f"{program} -f wav -p -c {CHANNEL[side]} {sph[conv]} |"
                durations[rec] = duration(headers[conv])
            rows.append((utt, rec, start_cs, end_cs, " ".join(words)))
    rows = list(clip_segments(rows, durations, dropped))
    if not rows:
        fail(f"{stm}: no usable segment for the audio under {args.audio_dir}")
    out = Path(args.out)
    write_data_dir(out, rows, wav)
    shutil.copyfile(stm, out / "stm")  # for sclite/hubscr scoring outside the recipe
    if args.glm:
        shutil.copyfile(args.glm, out / "glm")
    print(summary(out, rows, dropped))
    for name, prefix in EVAL2000_SUBSETS.items():
        part = [r for r in rows if r[1].startswith(prefix)]
        if not part:
            fail(f"{stm}: no {name} segments (conversations {prefix}*) with audio under {args.audio_dir}")
        sub = out.with_name(f"{out.name}_{name}")
        write_data_dir(sub, part, {r: e for r, e in wav.items() if r.startswith(prefix)})
        print(summary(sub, part, Counter()))


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="corpus", required=True)
    train = sub.add_parser("train", help="Switchboard-1 Release 2 with the ms98 transcripts")
    train.add_argument("--audio_dir", required=True, help="LDC97S62: searched for sw0NNNN.sph at any depth")
    train.add_argument("--transcripts", required=True, help="swb_ms98_transcriptions (??/????/*-trans.text)")
    ev = sub.add_parser("eval2000", help="HUB5 Eval2000, and its Switchboard and CallHome halves")
    ev.add_argument("--audio_dir", required=True, help="LDC2002S09's english/ directory (sw_*.sph, en_*.sph)")
    ev.add_argument("--stm", required=True, help="LDC2002T43's reference/hub5e00.english.000405.stm")
    ev.add_argument("--glm", help="its en20000405_hub5.glm, copied along for sclite")
    for sp in (train, ev):
        sp.add_argument("--out", required=True, help="data dir to write")
        sp.add_argument("--sph2pipe", default="sph2pipe", help="sph2pipe program (name on PATH or path)")
    args = p.parse_args(argv)
    if args.corpus == "train":
        prepare_train(args)
    else:
        prepare_eval2000(args)


if __name__ == "__main__":
    main()
