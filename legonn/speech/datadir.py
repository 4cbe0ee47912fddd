"""Kaldi data directories: validate, fix, subset, combine, split tables, speed-perturb.

A data directory holds "tables", one ``id value`` line each, sorted by id in C-locale byte
order (what ``LC_ALL=C sort`` gives):

==================  =========================================================================
``wav.scp``         ``rec path`` or ``rec command args |`` (keyed by utterance if there
                    is no ``segments`` file); see :mod:`legonn.speech.audio`
``segments``        ``utt rec start end`` (seconds)
``text``            ``utt words ...``; ``text.*`` (``text.bpe``, ``text.en``, ...) likewise
``utt2spk``         ``utt speaker``: the list of utterances
``spk2utt``         ``speaker utt1 utt2 ...`` (derived from ``utt2spk``)
``feats.scp``,      other utterance-keyed tables (``utt2num_frames``, ``utt2dur``, ``utt2uniq``,
``utt2*``           ...) are kept in sync when present
``reco2*``          recording-keyed (``reco2dur``, ``reco2file_and_channel``)
``spk2*``           speaker-keyed (``spk2gender``), and Kaldi's per-speaker ``cmvn.scp``
==================  =========================================================================

A text-only data dir (MT: ``text.<lang>`` per language, no ``segments``, ``wav.scp`` or
``feats.scp``) needs no ``utt2spk``: its first text table in C-locale name order (``text``,
then ``text.de``, ``text.en``, ...) lists the utterances, every other table must have the same
ids, and :func:`fix` writes no ``utt2spk``/``spk2utt`` for it.  A speech dir without
``utt2spk`` is a problem; :func:`fix` gives it Kaldi's ``utt utt`` speakers.

:func:`validate` lists problems, each naming the file and line; :func:`fix` sorts the
tables, keeps the utterances that are complete everywhere and rebuilds ``spk2utt``;
:func:`subset`, :func:`combine`, :func:`split_scp` and :func:`speed_perturb` make new
directories / tables.  Files are written to temporary names and renamed into place.
"""
from __future__ import annotations

import logging
import math
import os
import random
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

from legonn.errors import LegonnError
from legonn.fileio import Line, atomic_dir, parse_table, text_lines, unique, write_atomic
from legonn.speech.wavscp import entry_files, format_factor, speed_entry

log = logging.getLogger(__name__)

MAX_PER_KIND = 20  # problems of one kind in one file listed before "... and N more"

_AUDIO = ("segments", "wav.scp", "feats.scp")  # a data dir with one of these is speech

# files that are copied along by subset / combine-free operations (not tables)
_PLAIN_FILES = ("feat_dim", "cmvn.ark", "frame_shift")


def sort_key(key: str) -> bytes:
    """C-locale (byte) order, as ``LC_ALL=C sort``."""
    return key.encode("utf-8")


def table_kind(name: str) -> Optional[str]:
    """What a data-dir file is keyed by, or None if it is not a table this module manages."""
    if name.startswith(".") or name.endswith(("~", ".tmp", ".bak")):
        return None
    if name in ("wav.scp", "segments", "utt2spk", "spk2utt"):
        return name
    if name == "text" or name.startswith("text."):
        return "text"
    if name == "feats.scp" or name.startswith("utt2"):
        return "utt"
    if name.startswith("reco2"):
        return "reco"
    if name.startswith("spk2") or name == "cmvn.scp":
        return "spk"
    return None


# (min fields, max fields or None, description, value type of field 2 (index 1) or None)
_RULES: dict[str, tuple[int, Optional[int], str, Optional[type]]] = {
    "segments": (4, 4, "'utt recording start end'", None),
    "utt2spk": (2, 2, "'utt speaker'", None),
    "spk2utt": (2, None, "'speaker utt1 utt2 ...'", None),
    "wav.scp": (2, None, "'id path' or 'id command |'", None),
    "utt2num_frames": (2, 2, "'utt number_of_frames'", int),
    "utt2dur": (2, 2, "'utt seconds'", float),
    "reco2dur": (2, 2, "'recording seconds'", float),
}


def _rule(name: str, kind: str):
    if name in _RULES:
        return _RULES[name]
    if kind == "text":
        return (1, None, "'utt text ...'", None)
    return (2, None, "'id value'", None)


@dataclass
class Table:
    name: str
    kind: str
    path: Path
    lines: list[Line] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (category, message)

    def first(self) -> dict[str, Line]:
        """The first line of each id."""
        out: dict[str, Line] = {}
        for line in self.lines:
            out.setdefault(line.key, line)
        return out


def read_lines(path: str | os.PathLike, name: Optional[str] = None, kind: Optional[str] = None) -> Table:
    """Parse a table, collecting (not raising) problems with its lines; bad lines are left out."""
    path = Path(path)
    name = name or path.name
    kind = kind or table_kind(name) or "utt"
    lo, hi, desc, vtype = _rule(name, kind)

    def check(fields: list[str]) -> Optional[str]:
        if len(fields) < lo or (hi is not None and len(fields) > hi):
            want = f"{lo}" if lo == hi else f"at least {lo}"
            return f"malformed line: expected {want} fields {desc}, got {len(fields)}"
        try:
            if name == "segments":
                float(fields[2]), float(fields[3])
            elif vtype is not None:
                vtype(fields[1])
        except ValueError:
            if name == "segments":
                return "malformed line: start/end times must be numbers"
            return f"malformed line: '{fields[1]}' is not {'an integer' if vtype is int else 'a number'}"
        return None

    return Table(name, kind, path, *parse_table(path, check))


def load_tables(data_dir: str | os.PathLike) -> dict[str, Table]:
    """Every table file of a data dir, parsed leniently."""
    d = Path(data_dir)
    if not d.is_dir():
        raise LegonnError(f"{d}: data directory not found")
    tables = {}
    for p in sorted(d.iterdir()):
        kind = table_kind(p.name)
        if kind is not None and p.is_file():
            tables[p.name] = read_lines(p, p.name, kind)
    return tables


def utterance_table(names: Iterable[str]) -> Optional[str]:
    """Which of a data dir's tables lists its utterances: ``utt2spk``, or in a text-only dir
    without one, its first text table in C-locale name order; None if there is neither."""
    names = sorted(names, key=sort_key)
    if "utt2spk" in names:
        return "utt2spk"
    if any(n in names for n in _AUDIO):
        return None
    return next((n for n in names if table_kind(n) == "text"), None)


def _strict(path: Path, name: str) -> dict[str, Line]:
    t = read_lines(path, name, table_kind(name))
    if t.problems:
        raise LegonnError(f"{t.problems[0][1]} (run utils/validate_data_dir.sh {path.parent})")
    return {line.key: line for line in unique(path, t.lines)}


def read_ids(path: str | os.PathLike) -> list[str]:
    """The first field of each non-empty line: a list of utterances or speakers."""
    return [line.split()[0] for line in text_lines(path) if line.strip()]


def count_utterances(data_dir: str | os.PathLike) -> int:
    """The lines of the table that lists the utterances (:func:`utterance_table`; 0 without one)."""
    d = Path(data_dir)
    name = utterance_table(p.name for p in d.iterdir() if p.is_file() and table_kind(p.name) is not None)
    return len(read_lines(d / name).lines) if name is not None else 0


def read_wav_scp(path: str | os.PathLike) -> dict[str, str]:
    """``wav.scp`` -> {id: value}, raising on malformed lines and duplicates."""
    return {k: line.value for k, line in _strict(Path(path), "wav.scp").items()}


def read_segments(path: str | os.PathLike) -> dict[str, tuple[str, float, float]]:
    """``segments`` -> {utt: (recording, start, end)}, raising on malformed lines, duplicates, end <= start."""
    path = Path(path)
    out = {}
    for k, line in _strict(path, "segments").items():
        rec, start, end = line.fields[1], float(line.fields[2]), float(line.fields[3])
        if end <= start or start < 0:
            raise LegonnError(f"{path}:{line.no}: segment '{k}' has start {start} and end {end}")
        out[k] = (rec, start, end)
    return out


# --------------------------------------------------------------------------- validation


class _Problems:
    def __init__(self, cap: int = MAX_PER_KIND):
        self.cap = cap
        self.items: list[str] = []
        self.counts: Counter = Counter()
        self.total = 0
        self.warnings: list[str] = []  # allowed, but worth a look: printed, not counted as problems

    def add(self, category: str, message: str) -> None:
        self.total += 1
        self.counts[category] += 1
        if self.counts[category] <= self.cap:
            self.items.append(message)

    def lines(self) -> list[str]:
        more = [
            f"... and {n - self.cap} more problem(s) of the kind '{cat}'" for cat, n in self.counts.items() if n > self.cap
        ]
        return self.items + more


def _warn_overlaps(path: Path, segments: dict[str, Line], probs: _Problems) -> None:
    """Segments of one recording that overlap: allowed (overlapping speakers, a meeting recorded
    once), but their audio is then in the data twice; one warning per recording."""
    by_recording: dict[str, list[tuple[float, float, str, int]]] = {}
    for u, line in segments.items():
        try:
            start, end = float(line.fields[2]), float(line.fields[3])
        except ValueError:
            continue
        by_recording.setdefault(line.fields[1], []).append((start, end, u, line.no))
    for rec, spans in sorted(by_recording.items()):
        spans.sort()
        pairs = [(a, b) for a, b in zip(spans, spans[1:]) if b[0] < a[1]]
        if pairs:
            (_, a_end, a, a_no), (b_start, _, b, b_no) = pairs[0]
            probs.warnings.append(
                f"{path}:{b_no}: segment '{b}' starts at {b_start:g} s, before segment '{a}' (line {a_no}) of recording "
                f"'{rec}' ends at {a_end:g} s ({len(pairs)} overlapping pair(s) in that recording; allowed, the audio is used twice)")


def _check_order(t: Table, probs: _Problems) -> None:
    seen: dict[str, int] = {}
    prev: Optional[Line] = None
    reported_order = False
    for line in t.lines:
        if line.key in seen:
            probs.add(f"{t.name}: duplicate", f"{t.path}:{line.no}: duplicate id '{line.key}' (first on line {seen[line.key]})")
        else:
            seen[line.key] = line.no
            if prev is not None and not reported_order and sort_key(line.key) < sort_key(prev.key):
                probs.add(
                    f"{t.name}: sort",
                    f"{t.path}:{line.no}: not sorted: '{line.key}' comes after '{prev.key}' "
                    f"(tables must be sorted by id as LC_ALL=C sort does; run utils/fix_data_dir.sh)",
                )
                reported_order = True
            prev = line


def validate(
    data_dir: str | os.PathLike, *, require_text: bool = True, require_audio: bool = True, check_files: bool = True
) -> list[str]:
    """Problems with a data dir, one message each naming file and line; empty if it is fine.

    At most :data:`MAX_PER_KIND` problems of one kind per file are listed, then a count.
    ``check_files`` checks that the audio files ``wav.scp`` names (plain paths, and
    audio-looking arguments of commands) exist, relative to the current directory.
    """
    return check(data_dir, require_text=require_text, require_audio=require_audio, check_files=check_files).lines()


def check(
    data_dir: str | os.PathLike, *, require_text: bool = True, require_audio: bool = True, check_files: bool = True
) -> "_Problems":
    """:func:`validate`, returning the collector (``.lines()``, ``.total``)."""
    d = Path(data_dir)
    tables = load_tables(d)
    probs = _Problems()
    for t in tables.values():
        for cat, msg in t.problems:
            probs.add(f"{t.name}: {cat}", msg)
        _check_order(t, probs)
    first = {name: t.first() for name, t in tables.items()}
    segments = first.get("segments")
    wav = first.get("wav.scp")

    # the utterance list
    utt2spk = first.get("utt2spk")
    listing = utterance_table(first)
    if listing is not None and utt2spk is None:  # a text-only dir
        utts = first[listing]
        where = {u: f"{tables[listing].path}:{line.no}" for u, line in utts.items()}
        master = f"{listing} (the utterance list)"
    elif utt2spk is None:
        probs.add(
            "missing",
            f"{d / 'utt2spk'}: missing (a speech data dir needs utt2spk; 'utt utt' lines if speakers are unknown)",
        )
        utts = {}
        where = {}
        for name in ("segments", "text") if segments is not None else ("wav.scp", "text"):
            for k, line in first.get(name, {}).items():
                if k not in utts:
                    utts[k] = line
                    where[k] = f"{tables[name].path}:{line.no}"
        master = "the utterance list"
    else:
        utts = utt2spk
        where = {u: f"{tables['utt2spk'].path}:{line.no}" for u, line in utt2spk.items()}
        master = "utt2spk"

    # speakers
    if utt2spk is not None:
        spk2utt = first.get("spk2utt")
        if spk2utt is None:
            probs.add("missing", f"{d / 'spk2utt'}: missing (run utils/fix_data_dir.sh {d} to create it)")
        else:
            listed: dict[str, str] = {}
            path = tables["spk2utt"].path
            for spk, line in spk2utt.items():
                for u in line.fields[1:]:
                    if u in listed:
                        probs.add("spk2utt", f"{path}:{line.no}: utterance '{u}' is listed twice in spk2utt (utt2spk/spk2utt inconsistent)")
                    elif u not in utt2spk:
                        probs.add("spk2utt", f"{path}:{line.no}: utterance '{u}' of speaker '{spk}' is not in utt2spk (utt2spk/spk2utt inconsistent)")
                    elif utt2spk[u].fields[1] != spk:
                        probs.add(
                            "spk2utt",
                            f"{path}:{line.no}: utterance '{u}' is listed under speaker '{spk}' but utt2spk says "
                            f"'{utt2spk[u].fields[1]}' (utt2spk/spk2utt inconsistent)",
                        )
                    listed.setdefault(u, spk)
            for u, line in utt2spk.items():
                if u not in listed:
                    probs.add("spk2utt", f"{where[u]}: utterance '{u}' (speaker '{line.fields[1]}') is missing from spk2utt (utt2spk/spk2utt inconsistent)")

    # audio
    recordings: Optional[set[str]] = None
    if segments is not None:
        spath = tables["segments"].path
        recordings = set()
        for u, line in segments.items():
            rec, start, end = line.fields[1], float(line.fields[2]), float(line.fields[3])
            recordings.add(rec)
            if wav is None or rec not in wav:
                probs.add("segments: recording", f"{spath}:{line.no}: recording '{rec}' of utterance '{u}' is not in wav.scp")
            if end <= start:
                probs.add("segments: times", f"{spath}:{line.no}: segment '{u}': end time {line.fields[3]} is not after start time {line.fields[2]}")
            elif start < 0:
                probs.add("segments: times", f"{spath}:{line.no}: segment '{u}': negative start time {line.fields[2]}")
            if u not in utts:
                probs.add("segments: extra", f"{spath}:{line.no}: utterance '{u}' is not in {master}")
        for u in utts:
            if u not in segments:
                probs.add("no audio", f"{where[u]}: utterance '{u}' has no audio (not in segments)")
        _warn_overlaps(spath, segments, probs)
        if wav is None:
            probs.add("missing", f"{d / 'wav.scp'}: missing, but segments refer to recordings")
    elif wav is not None:
        wpath = tables["wav.scp"].path
        for u in utts:
            if u not in wav:
                probs.add("no audio", f"{where[u]}: utterance '{u}' has no audio (not in wav.scp)")
        for k, line in wav.items():
            if k not in utts:
                probs.add("wav.scp: extra", f"{wpath}:{line.no}: '{k}' is not in {master} (without segments, wav.scp is keyed by utterance)")
    elif "feats.scp" not in first and require_audio:
        probs.add("missing", f"{d / 'wav.scp'}: missing (a data dir needs wav.scp or feats.scp; --no_wav for text-only dirs)")
    if wav is not None and check_files:
        wpath = tables["wav.scp"].path
        for k, line in wav.items():
            for f in entry_files(line.value):
                if not os.path.exists(f):
                    probs.add("audio file", f"{wpath}:{line.no}: audio file {f} of '{k}' does not exist")

    # text and the other utterance-keyed tables
    if "text" not in first and require_text:
        probs.add("missing", f"{d / 'text'}: missing (validate with --no_text for a data dir without transcripts)")
    for name in sorted(first):
        t = tables[name]
        if t.kind not in ("text", "utt"):
            continue
        table = first[name]
        for u, line in table.items():
            if u not in utts:
                probs.add(f"{name}: extra", f"{t.path}:{line.no}: utterance '{u}' is not in {master}")
            elif t.kind == "text" and not line.value:
                probs.add(f"{name}: empty", f"{t.path}:{line.no}: utterance '{u}' has empty text")
        what = {"text": "has no text (not in text)", "feats.scp": "has no features (not in feats.scp)"}.get(
            name, f"is missing from {name}"
        )
        for u in utts:
            if u not in table:
                probs.add(f"{name}: missing", f"{where[u]}: utterance '{u}' {what}")

    # speaker- and recording-keyed tables
    speakers = {line.fields[1] for line in utt2spk.values()} if utt2spk is not None else None
    for name in sorted(first):
        t = tables[name]
        if t.kind == "spk" and speakers is not None:
            _same_keys(t, first[name], speakers, "speaker", probs)
        elif t.kind == "reco":
            recs = recordings if recordings is not None else (set(wav) if wav is not None else None)
            if recs is not None:
                _same_keys(t, first[name], recs, "recording", probs)
    return probs


def _same_keys(t: Table, table: dict[str, Line], wanted: set[str], what: str, probs: _Problems) -> None:
    for k, line in table.items():
        if k not in wanted:
            probs.add(f"{t.name}: extra", f"{t.path}:{line.no}: {what} '{k}' is not in the data dir")
    missing = sorted(wanted - set(table), key=sort_key)
    for k in missing:
        probs.add(f"{t.name}: missing", f"{t.path}: {what} '{k}' is missing")


# --------------------------------------------------------------------------- selecting & writing


@dataclass
class FixReport:
    kept: int
    dropped: int
    reasons: dict[str, int]
    bad_lines: int = 0

    def summary(self) -> str:
        total = self.kept + self.dropped
        text = f"kept {self.kept} of {total} utterance(s)"
        if self.dropped:
            why = ", ".join(f"{n} {r}" for r, n in sorted(self.reasons.items(), key=lambda kv: -kv[1]))
            text += f"; dropped {self.dropped} ({why})"
        if self.bad_lines:
            text += f"; left out {self.bad_lines} malformed or duplicate line(s)"
        return text


def _ensure_utt2spk(tables: dict[str, Table], d: Path) -> None:
    """Synthesize ``utt utt`` speakers when a speech data dir has no utt2spk (Kaldi's convention);
    a text-only dir keeps its first text table as the utterance list."""
    if utterance_table(tables) is not None:
        return
    base = next((n for n in (*_AUDIO, "text") if n in tables), None)
    if base is None:
        raise LegonnError(f"{d}: no utt2spk, segments, wav.scp, feats.scp or text(.*) to take the utterance list from")
    log.info("%s: no utt2spk; using each utterance as its own speaker", d)
    t = Table("utt2spk", "utt2spk", d / "utt2spk")
    for line in tables[base].first().values():
        t.lines.append(Line(0, line.key, line.key, f"{line.key} {line.key}"))
    tables["utt2spk"] = t


def _select(tables: dict[str, Table]) -> tuple[list[str], Counter]:
    """Utterances complete in every table (audio, text, speaker, ...) and why others are not."""
    first = {name: t.first() for name, t in tables.items()}
    segments = first.get("segments")
    wav = first.get("wav.scp")
    reasons: Counter = Counter()
    keep = []
    for u in first[utterance_table(tables)]:
        why = None
        if segments is not None:
            seg = segments.get(u)
            if seg is None:
                why = "not in segments"
            elif wav is None or seg.fields[1] not in wav:
                why = "recording not in wav.scp"
            elif float(seg.fields[3]) <= float(seg.fields[2]) or float(seg.fields[2]) < 0:
                why = "bad segment times"
        elif wav is not None and u not in wav:
            why = "not in wav.scp"
        if why is None:
            for name in sorted(first):
                if tables[name].kind in ("text", "utt"):
                    line = first[name].get(u)
                    if line is None:
                        why = f"not in {name}"
                        break
                    if tables[name].kind == "text" and not line.value:
                        why = f"empty {name}"
                        break
        if why is None:
            keep.append(u)
        else:
            reasons[why] += 1
    keep.sort(key=sort_key)
    return keep, reasons


def _render(tables: dict[str, Table], keep: Iterable[str]) -> dict[str, list[str]]:
    """The lines of every table restricted to ``keep`` (sorted), with spk2utt rebuilt (if there is a utt2spk)."""
    utts = set(keep)
    first = {name: t.first() for name, t in tables.items()}
    utt2spk = first.get("utt2spk", {})
    segments = first.get("segments")
    recordings = {segments[u].fields[1] for u in utts if u in segments} if segments is not None else None
    speakers = {utt2spk[u].fields[1] for u in utts if u in utt2spk}
    out: dict[str, list[str]] = {}
    for name, t in tables.items():
        if t.kind == "spk2utt":
            continue
        if t.kind in ("text", "utt", "utt2spk", "segments") or (t.kind == "wav.scp" and segments is None):
            wanted = utts
        elif t.kind in ("wav.scp", "reco"):
            wanted = recordings if recordings is not None else utts
        elif t.kind == "spk":
            wanted = speakers
        else:
            continue
        lines = [line for k, line in first[name].items() if k in wanted]
        lines.sort(key=lambda line: sort_key(line.key))
        out[name] = [line.raw for line in lines]
    if not utt2spk:
        return out
    by_spk: dict[str, list[str]] = {}
    for u in utts:
        by_spk.setdefault(utt2spk[u].fields[1], []).append(u)
    out["spk2utt"] = [
        " ".join([spk, *sorted(us, key=sort_key)]) for spk, us in sorted(by_spk.items(), key=lambda kv: sort_key(kv[0]))
    ]
    return out


def write_data_dir(out: str | os.PathLike, tables: dict[str, list[str]]) -> None:
    """Write a complete new data dir (table name -> lines) that replaces ``out`` as a whole: a
    failure halfway leaves no mix of old and new tables."""
    with atomic_dir(out) as tmp:
        for name, lines in tables.items():
            (tmp / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _write_dir(dst: Path, out: dict[str, list[str]], remove_stale: bool = True) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name, lines in out.items():
        write_atomic(dst / name, "".join(line + "\n" for line in lines))
    if remove_stale:
        for p in dst.iterdir():
            if p.is_file() and table_kind(p.name) is not None and p.name not in out:
                log.info("%s: removing %s (no counterpart in the new data dir)", dst, p.name)
                p.unlink()


def _bad_lines(tables: dict[str, Table]) -> int:
    n = 0
    for t in tables.values():
        n += sum(1 for c, _ in t.problems if c == "malformed")
        n += len(t.lines) - len(t.first())
    return n


def fix(data_dir: str | os.PathLike, *, backup: bool = True) -> FixReport:
    """Sort every table, keep the utterances present everywhere, rebuild spk2utt (if there is a utt2spk).

    Malformed and repeated lines are left out (the first line of an id wins); utterances
    with empty text or bad segment times are dropped.  The original files are copied to
    ``<dir>/.backup/`` first.  Missing audio files are not checked (see :func:`validate`).
    """
    d = Path(data_dir)
    tables = load_tables(d)
    if not tables:
        raise LegonnError(f"{d}: no Kaldi tables (wav.scp, text, utt2spk, ...) found")
    _ensure_utt2spk(tables, d)
    keep, reasons = _select(tables)
    report = FixReport(len(keep), sum(reasons.values()), dict(reasons), _bad_lines(tables))
    if not keep:
        raise LegonnError(f"{d}: no utterance is complete in every table ({report.summary()}); nothing written")
    if backup:
        bdir = d / ".backup"
        bdir.mkdir(exist_ok=True)
        for name, t in tables.items():
            if t.path.is_file():
                shutil.copy2(t.path, bdir / name)
    _write_dir(d, _render(tables, keep), remove_stale=False)
    return report


def _complete_source(src: Path, dst: Path, op: str):
    """The tables of ``src`` and its complete utterances, for an operation writing to ``dst``."""
    if dst.resolve() == src.resolve():
        raise LegonnError(f"{op}: destination {dst} is the source directory")
    tables = load_tables(src)
    _ensure_utt2spk(tables, src)
    complete, reasons = _select(tables)
    if reasons:
        log.warning("%s: %d incomplete utterance(s) left out of %s (run utils/fix_data_dir.sh)", src, sum(reasons.values()), op)
    return tables, complete


def subset(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    n: Optional[int] = None,
    first: Optional[int] = None,
    last: Optional[int] = None,
    utts: Optional[Iterable[str]] = None,
    speakers: Optional[Iterable[str]] = None,
    by_speaker: bool = False,
    seed: int = 0,
) -> int:
    """Copy part of a data dir; returns the number of utterances written.

    Exactly one of: ``n`` (evenly spaced utterances, as Kaldi's ``subset_data_dir.sh N``;
    with ``by_speaker``, whole speakers in a seeded random order until at least ``n``),
    ``first``/``last`` (the first/last N in sorted order), ``utts`` (an utterance list) or
    ``speakers`` (a speaker list).  Only complete utterances (see :func:`fix`) are eligible.
    ``feat_dim`` and the global ``cmvn.ark`` are copied along (the set's stats serve its parts).
    """
    src, dst = Path(src), Path(dst)
    chosen = [x is not None for x in (n, first, last, utts, speakers)]
    if sum(chosen) != 1:
        raise LegonnError("subset: give exactly one of n, first, last, an utterance list or a speaker list")
    tables, complete = _complete_source(src, dst, "subset")
    if (by_speaker or speakers is not None) and "utt2spk" not in tables:
        raise LegonnError(f"subset: {src} is a text-only data dir without utt2spk; it has no speakers to select by")
    spk_of = {u: line.fields[1] for u, line in tables["utt2spk"].first().items()} if "utt2spk" in tables else {}
    for count, what in ((n, "n"), (first, "first"), (last, "last")):
        if count is not None and count <= 0:
            raise LegonnError(f"subset: {what} must be positive, got {count}")
    if n is not None and not by_speaker:
        if n >= len(complete):
            log.warning("%s: asked for %d utterances, the data dir has %d; copying all", src, n, len(complete))
            keep = complete
        else:
            keep = [complete[(i * len(complete)) // n] for i in range(n)]
    elif n is not None:
        spks = sorted({spk_of[u] for u in complete}, key=sort_key)
        random.Random(seed).shuffle(spks)
        per = Counter(spk_of[u] for u in complete)
        picked, total = set(), 0
        for s in spks:
            if total >= n:
                break
            picked.add(s)
            total += per[s]
        keep = [u for u in complete if spk_of[u] in picked]
    elif first is not None:
        keep = complete[:first]
    elif last is not None:
        keep = complete[-last:]
    elif utts is not None:
        wanted = {u.strip() for u in utts if u.strip()}
        keep = [u for u in complete if u in wanted]
        if len(keep) < len(wanted):
            log.warning("%s: %d of the %d listed utterance(s) are not (complete) in the data dir", src, len(wanted) - len(keep), len(wanted))
    else:
        wanted = {s.strip() for s in speakers if s.strip()}
        keep = [u for u in complete if spk_of[u] in wanted]
        unknown = wanted - {spk_of[u] for u in complete}
        if unknown:
            log.warning("%s: %d listed speaker(s) not in the data dir (e.g. '%s')", src, len(unknown), sorted(unknown)[0])
    if not keep:
        raise LegonnError(f"subset: no utterance of {src} selected; nothing written")
    _write_dir(dst, _render(tables, keep))
    _copy_plain(src, dst)
    return len(keep)


def _copy_plain(src: Path, dst: Path) -> None:
    for name in _PLAIN_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)


def _merge(sources: Sequence[tuple[str, dict[str, Table]]], dst: Path) -> dict[str, Table]:
    """Concatenate tables of several data dirs, refusing ids claimed twice."""
    has_seg = [("segments" in t) for _, t in sources]
    if any(has_seg) and not all(has_seg):
        with_s = [s for (s, _), h in zip(sources, has_seg) if h]
        without = [s for (s, _), h in zip(sources, has_seg) if not h]
        raise LegonnError(
            f"combine: {with_s[0]} has a segments file but {without[0]} does not; give the latter a "
            f"segments file (one whole-recording segment per utterance) first"
        )
    names = sorted({n for _, t in sources for n in t if t[n].kind != "spk2utt"})
    merged: dict[str, Table] = {}
    for name in names:
        missing = [s for s, t in sources if name not in t]
        if missing:
            log.warning("combine: %s is missing from %s; not combined", name, missing[0])
            continue
        kind = sources[0][1][name].kind
        out = Table(name, kind, dst / name)
        owner: dict[str, tuple[str, str]] = {}
        for src, tables in sources:
            for k, line in tables[name].first().items():
                if k in owner:
                    other, value = owner[k]
                    shared = kind in ("reco", "spk") or (kind == "wav.scp" and has_seg[0])
                    if shared and value == line.value:
                        continue  # e.g. two subsets of one set sharing a recording
                    what = {"reco": "recording", "spk": "speaker", "wav.scp": "id"}.get(kind, "utterance")
                    raise LegonnError(f"combine: {what} '{k}' of {name} is in both {other} and {src}; ids must be unique across the sources")
                owner[k] = (src, line.value)
                out.lines.append(line)
        merged[name] = out
    return merged


def combine(dst: str | os.PathLike, srcs: Sequence[str | os.PathLike]) -> FixReport:
    """Combine data dirs into ``dst``; an utterance id in two sources is an error."""
    dst = Path(dst)
    if not srcs:
        raise LegonnError("combine: no source data dirs given")
    if any(Path(s).resolve() == dst.resolve() for s in srcs):
        raise LegonnError(f"combine: destination {dst} is also a source")
    sources = []
    for s in srcs:
        tables = load_tables(s)
        _ensure_utt2spk(tables, Path(s))
        sources.append((str(s), tables))
    merged = _merge(sources, dst)
    keep, reasons = _select(merged)
    if not keep:
        raise LegonnError(f"combine: no complete utterance in {', '.join(map(str, srcs))}")
    _write_dir(dst, _render(merged, keep))
    dims = {(Path(s) / "feat_dim").read_text().strip() if (Path(s) / "feat_dim").is_file() else None for s in srcs}
    if len(dims) == 1 and None not in dims:
        shutil.copy2(Path(srcs[0]) / "feat_dim", dst / "feat_dim")
    return FixReport(len(keep), sum(reasons.values()), dict(reasons), _bad_lines(merged))


# --------------------------------------------------------------------------- speed perturbation


def _fmt_time(x: float) -> str:
    s = f"{x:.4f}".rstrip("0").rstrip(".")
    return s or "0"


def speed_perturb(src: str | os.PathLike, dst: str | os.PathLike, factors: Sequence[float]) -> FixReport:
    """A data dir holding a copy of ``src`` per speed factor (Kaldi's speed perturbation).

    Factor 1.0 keeps the original ids; factor F prefixes utterance, speaker and recording
    ids with ``spF-`` (``sp0.9-``).  ``wav.scp`` entries get Kaldi's ``sox ... speed F |``
    form, which :mod:`legonn.speech.audio` applies in-process; segment times and durations are
    divided by F; ``utt2uniq`` maps each copy to its original utterance.  Features
    (``feats.scp``, ``utt2num_frames``, ``cmvn.*``) are not copied: compute them again.
    """
    src, dst = Path(src), Path(dst)
    facs = [float(f) for f in factors]
    if not facs or any(f <= 0 or not math.isfinite(f) for f in facs):
        raise LegonnError(f"speed_perturb: factors must be positive numbers, got {list(factors)}")
    if len(set(format_factor(f) for f in facs)) != len(facs):
        raise LegonnError(f"speed_perturb: repeated factor in {list(factors)}")
    tables, keep = _complete_source(src, dst, "speed_perturb")
    if "wav.scp" not in tables:
        raise LegonnError(f"speed_perturb: {src} has no wav.scp")
    rendered = _render(tables, keep)
    rendered.pop("spk2utt")
    skip = {"feats.scp", "utt2num_frames", "cmvn.scp"}
    dropped = sorted(n for n in rendered if n in skip)
    if dropped:
        log.info("speed_perturb: not copying %s (recompute features for %s)", ", ".join(dropped), dst)
    copies = []
    for f in facs:
        pre = "" if format_factor(f) == "1.0" else f"sp{format_factor(f)}-"
        out: dict[str, Table] = {}
        for name, lines in rendered.items():
            if name in skip:
                continue
            kind = tables[name].kind
            t = Table(name, kind, dst / name)
            for raw in lines:
                fields = raw.split()
                key, value = fields[0], raw[len(fields[0]):].strip()
                if name == "utt2spk":
                    value = pre + value
                elif name == "segments":
                    value = f"{pre}{fields[1]} {_fmt_time(float(fields[2]) / f)} {_fmt_time(float(fields[3]) / f)}"
                elif name == "wav.scp" and f != 1.0:
                    value = speed_entry(value, f)
                elif name in ("utt2dur", "reco2dur"):
                    value = _fmt_time(float(value) / f)
                new = pre + key
                t.lines.append(Line(0, new, value, f"{new} {value}"))
            out[name] = t
        if "utt2uniq" not in out:
            t = Table("utt2uniq", "utt", dst / "utt2uniq")
            for u in keep:
                t.lines.append(Line(0, pre + u, u, f"{pre}{u} {u}"))
            out["utt2uniq"] = t
        copies.append((f"{src} x{format_factor(f)}", out))
    merged = _merge(copies, dst)
    keep2, reasons2 = _select(merged)
    _write_dir(dst, _render(merged, keep2))
    return FixReport(len(keep2), sum(reasons2.values()), dict(reasons2), 0)


# --------------------------------------------------------------------------- splitting tables


def split_scp(in_path: str | os.PathLike, out_paths: Sequence[str | os.PathLike], utt2spk: Optional[str | os.PathLike] = None) -> list[int]:
    """Split a table into ``len(out_paths)`` contiguous parts of about equal size.

    With ``utt2spk``, all lines of one speaker go to the same part.  Returns the line counts.
    """
    in_path = Path(in_path)
    if not in_path.is_file():
        raise LegonnError(f"{in_path}: file not found")
    n = len(out_paths)
    if n < 1:
        raise LegonnError("split_scp: no output files given")
    lines = [ln for ln in text_lines(in_path) if ln.strip()]
    if len(lines) < n:
        raise LegonnError(f"split_scp: cannot split {len(lines)} line(s) of {in_path} into {n} non-empty parts")
    if utt2spk is not None:
        spk = {k: line.fields[1] for k, line in _strict(Path(utt2spk), "utt2spk").items()}
        groups_d: dict[str, list[str]] = {}
        for ln in lines:
            key = ln.split()[0]
            if key not in spk:
                raise LegonnError(f"split_scp: '{key}' of {in_path} is not in {utt2spk}")
            groups_d.setdefault(spk[key], []).append(ln)
        groups = list(groups_d.values())
        if len(groups) < n:
            raise LegonnError(f"split_scp: {in_path} has {len(groups)} speaker(s); cannot split them into {n} parts")
    else:
        groups = [[ln] for ln in lines]
    parts: list[list[str]] = [[] for _ in range(n)]
    p, size, done, total = 0, 0, 0, len(lines)
    for gi, g in enumerate(groups):
        if parts[p] and p < n - 1:
            target = (total - done) / (n - p)
            if len(groups) - gi <= n - 1 - p or size + len(g) / 2 > target:
                done += size
                p, size = p + 1, 0
        parts[p].extend(g)
        size += len(g)
    for path, part in zip(out_paths, parts):
        write_atomic(path, "".join(ln + "\n" for ln in part))
    return [len(part) for part in parts]


def job_paths(pattern: str, n: int) -> list[str]:
    """``out.JOB.scp`` -> out.1.scp .. out.N.scp; a pattern without JOB gets ``.1`` .. ``.N`` appended."""
    if n < 1:
        raise LegonnError(f"--n must be at least 1, got {n}")
    if "JOB" in pattern:
        return [pattern.replace("JOB", str(i)) for i in range(1, n + 1)]
    return [f"{pattern}.{i}" for i in range(1, n + 1)]
