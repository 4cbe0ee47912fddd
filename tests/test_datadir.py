"""Kaldi data dirs (legonn/speech/datadir.py, legonn datadir, utils/*_data_dir.sh, utils/split_scp.sh)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from legonn import cli
from legonn.speech import datadir as D
from legonn.errors import LegonnError

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def make_dir(root: Path, name: str = "train", utts=(("u1", "s1"), ("u2", "s1"), ("u3", "s2")), prefix: str = "") -> Path:
    """A valid data dir with one short wav per utterance."""
    d = root / name
    d.mkdir(parents=True)
    wavs = root / f"{name}_wav"
    wavs.mkdir()
    wav, text, u2s = [], [], []
    for i, (u, s) in enumerate(utts):
        p = wavs / f"{u}.wav"
        sf.write(p, np.zeros(1600 + 160 * i, np.int16), 16000)
        wav.append(f"{prefix}{u} {p}")
        text.append(f"{prefix}{u} hello number {i}")
        u2s.append(f"{prefix}{u} {prefix}{s}")
    write(d / "wav.scp", "\n".join(wav) + "\n")
    write(d / "text", "\n".join(text) + "\n")
    write(d / "utt2spk", "\n".join(u2s) + "\n")
    spk: dict[str, list[str]] = {}
    for u, s in utts:
        spk.setdefault(prefix + s, []).append(prefix + u)
    write(d / "spk2utt", "".join(f"{s} {' '.join(us)}\n" for s, us in spk.items()))
    return d


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def one_problem(d: Path, *needles: str) -> str:
    problems = D.validate(d)
    assert len(problems) == 1, problems
    for needle in needles:
        assert needle in problems[0], problems
    return problems[0]


# --- validation: one test per defect --------------------------------------------------


def test_valid_dir_has_no_problems(tmp_path):
    assert D.validate(make_dir(tmp_path)) == []


def test_unsorted_table(tmp_path):
    d = make_dir(tmp_path)
    write(d / "text", "u2 b\nu1 a\nu3 c\n")
    one_problem(d, f"{d / 'text'}:2:", "not sorted", "'u1' comes after 'u2'")


def test_sort_order_is_c_locale_bytes(tmp_path):
    # in C order upper case sorts before lower case and '-' before digits
    d = make_dir(tmp_path, utts=(("B-1", "s"), ("a1", "s"), ("a-2", "s")))
    for name in ("wav.scp", "text", "utt2spk"):
        rows = lines(d / name)
        write(d / name, "\n".join(sorted(rows, key=lambda r: r.split()[0].encode())) + "\n")
    write(d / "spk2utt", "s B-1 a-2 a1\n")
    assert D.validate(d) == []


def test_duplicate_id(tmp_path):
    d = make_dir(tmp_path)
    write(d / "text", "u1 a\nu2 b\nu2 again\nu3 c\n")
    one_problem(d, f"{d / 'text'}:3:", "duplicate id 'u2'", "first on line 2")


def test_utterance_without_audio(tmp_path):
    d = make_dir(tmp_path)
    write(d / "wav.scp", "\n".join(lines(d / "wav.scp")[:2]) + "\n")
    one_problem(d, f"{d / 'utt2spk'}:3:", "'u3' has no audio (not in wav.scp)")


def test_utterance_without_segment(tmp_path):
    d = make_dir(tmp_path)
    rec = tmp_path / "rec.wav"
    sf.write(rec, np.zeros(16000, np.int16), 16000)
    write(d / "wav.scp", f"rec {rec}\n")
    write(d / "segments", "u1 rec 0 0.3\nu2 rec 0.3 0.6\n")
    one_problem(d, f"{d / 'utt2spk'}:3:", "'u3' has no audio (not in segments)")


def test_utterance_without_text(tmp_path):
    d = make_dir(tmp_path)
    write(d / "text", "u1 a\nu3 c\n")
    one_problem(d, f"{d / 'utt2spk'}:2:", "'u2' has no text")


def test_empty_text(tmp_path):
    d = make_dir(tmp_path)
    write(d / "text", "u1 a\nu2\nu3 c\n")
    one_problem(d, f"{d / 'text'}:2:", "'u2' has empty text")


def test_utt2spk_spk2utt_inconsistent(tmp_path):
    d = make_dir(tmp_path)
    write(d / "spk2utt", "s1 u1\ns2 u2 u3\n")
    one_problem(d, f"{d / 'spk2utt'}:2:", "'u2' is listed under speaker 's2' but utt2spk says 's1'", "inconsistent")


def test_utterance_missing_from_spk2utt(tmp_path):
    d = make_dir(tmp_path)
    write(d / "spk2utt", "s1 u1 u2\n")
    one_problem(d, f"{d / 'utt2spk'}:3:", "'u3' (speaker 's2') is missing from spk2utt")


def test_segment_with_unknown_recording(tmp_path):
    d = make_dir(tmp_path)
    rec = tmp_path / "rec.wav"
    sf.write(rec, np.zeros(16000, np.int16), 16000)
    write(d / "wav.scp", f"rec {rec}\n")
    write(d / "segments", "u1 rec 0 0.3\nu2 rec 0.3 0.6\nu3 nosuch 0.6 0.9\n")
    one_problem(d, f"{d / 'segments'}:3:", "recording 'nosuch' of utterance 'u3' is not in wav.scp")


def test_segment_end_not_after_start(tmp_path):
    d = make_dir(tmp_path)
    rec = tmp_path / "rec.wav"
    sf.write(rec, np.zeros(16000, np.int16), 16000)
    write(d / "wav.scp", f"rec {rec}\n")
    write(d / "segments", "u1 rec 0 0.3\nu2 rec 0.5 0.5\nu3 rec 0.6 0.9\n")
    one_problem(d, f"{d / 'segments'}:2:", "end time 0.5 is not after start time 0.5")


def test_missing_audio_file(tmp_path):
    d = make_dir(tmp_path)
    os.unlink(tmp_path / "train_wav" / "u2.wav")
    one_problem(d, f"{d / 'wav.scp'}:2:", "u2.wav of 'u2' does not exist")


def test_missing_audio_file_in_a_command(tmp_path):
    d = make_dir(tmp_path)
    rows = lines(d / "wav.scp")
    rows[0] = f"u1 sph2pipe -f wav -p -c 1 {tmp_path}/gone.sph |"
    write(d / "wav.scp", "\n".join(rows) + "\n")
    one_problem(d, f"{d / 'wav.scp'}:1:", "gone.sph of 'u1' does not exist")


def test_malformed_line(tmp_path):
    d = make_dir(tmp_path)
    write(d / "segments", "u1 rec 0.0\n")  # three fields
    problems = D.validate(d)
    assert any(f"{d / 'segments'}:1: malformed line: expected 4 fields" in p for p in problems), problems
    d2 = make_dir(tmp_path, "b")
    write(d2 / "utt2spk", "u1 s1\nu2 s1 extra\nu3 s2\n")
    problems = D.validate(d2)
    assert f"{d2 / 'utt2spk'}:2: malformed line: expected 2 fields 'utt speaker', got 3" in problems[0], problems


def test_missing_required_files(tmp_path):
    d = make_dir(tmp_path)
    os.unlink(d / "spk2utt")
    one_problem(d, "spk2utt: missing")
    os.unlink(d / "text")
    assert any("text: missing" in p for p in D.validate(d))
    assert not any("text" in p for p in D.validate(d, require_text=False))


def test_other_utterance_tables_are_checked(tmp_path):
    d = make_dir(tmp_path)
    write(d / "text.bpe", "u1 ▁he llo\nu3 ▁x\n")
    write(d / "utt2num_frames", "u1 10\nu2 x\nu3 12\n")
    problems = D.validate(d)
    assert any("'u2' is missing from text.bpe" in p for p in problems), problems
    assert any(f"{d / 'utt2num_frames'}:2: malformed line: 'x' is not an integer" in p for p in problems), problems


def test_many_problems_of_a_kind_are_capped(tmp_path):
    utts = tuple((f"u{i:03d}", "s") for i in range(30))
    d = make_dir(tmp_path, utts=utts)
    write(d / "text", "u000 a\n")
    probs = D.check(d)
    assert probs.total == 29
    shown = probs.lines()
    assert len(shown) == D.MAX_PER_KIND + 1 and "and 9 more" in shown[-1]


def test_validate_cli_prints_problems_and_summary(tmp_path, capsys):
    d = make_dir(tmp_path)
    write(d / "text", "u2 b\nu1 a\nu3\n")
    assert cli.main(["datadir", "validate", str(d)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3
    assert "not sorted" in out[0] and "empty text" in out[1]
    assert out[-1].startswith(f"{d}: 2 problem(s)")
    write(d / "text", "u1 a\nu2 b\nu3 c\n")
    assert cli.main(["datadir", "validate", str(d)]) == 0
    assert capsys.readouterr().out.strip() == f"{d}: OK (3 utterances)"


def test_validate_script_wrapper(tmp_path):
    d = make_dir(tmp_path)
    write(d / "text", "u1 a\nu3 c\n")
    proc = subprocess.run(
        ["bash", str(ROOT / "utils/validate_data_dir.sh"), str(d)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1, proc.stderr
    assert "'u2' has no text" in proc.stdout and "1 problem(s)" in proc.stdout


# --- text-only (MT) data dirs: text.<lang> files, no audio, no utt2spk ----------------


def make_mt_dir(root: Path, name: str = "mt", ids=("p1", "p2", "p3")) -> Path:
    d = root / name
    d.mkdir(parents=True)
    write(d / "text.de", "".join(f"{u} hallo {u}\n" for u in ids))
    write(d / "text.en", "".join(f"{u} hello {u}\n" for u in ids))
    return d


def test_text_only_dir_validates(tmp_path, capsys):
    d = make_mt_dir(tmp_path)
    assert D.validate(d, require_text=False, require_audio=False) == []
    assert cli.main(["datadir", "validate", "--no_wav", "--no_text", str(d)]) == 0
    assert capsys.readouterr().out.strip() == f"{d}: OK (3 utterances)"
    # without the flags: audio and 'text' are missing, utt2spk is not asked for
    problems = D.validate(d)
    assert len(problems) == 2 and "wav.scp: missing" in problems[0] and "text: missing" in problems[1], problems
    # a 'text' (the reference of a test set) lists the utterances when there is one
    write(d / "text", "p1 a\np2 b\n")
    problems = D.validate(d, require_audio=False)
    assert problems == [f"{d / 'text.de'}:3: utterance 'p3' is not in text (the utterance list)",
                        f"{d / 'text.en'}:3: utterance 'p3' is not in text (the utterance list)"], problems


def test_text_only_dir_problems_name_the_stream(tmp_path):
    d = make_mt_dir(tmp_path)
    write(d / "text.en", "p2 b\np1 a\np4 d\np2 again\n")  # unsorted, p3 missing, p4 extra, p2 twice
    problems = D.validate(d, require_text=False, require_audio=False)
    en, de = d / "text.en", d / "text.de"
    assert problems == [
        f"{en}:2: not sorted: 'p1' comes after 'p2' (tables must be sorted by id as LC_ALL=C sort does; "
        "run utils/fix_data_dir.sh)",
        f"{en}:4: duplicate id 'p2' (first on line 1)",
        f"{en}:3: utterance 'p4' is not in text.de (the utterance list)",
        f"{de}:3: utterance 'p3' is missing from text.en",
    ], problems


def test_fix_text_only_dir_keeps_utterances_of_every_stream(tmp_path):
    d = make_mt_dir(tmp_path, ids=("p1", "p2", "p3", "p4"))
    write(d / "text.en", "p3 c\np1 a\np5 e\np2 b\np2 again\np4\n")  # p4 empty, p5 not in text.de
    report = D.fix(d)
    assert (report.kept, report.reasons, report.bad_lines) == (3, {"empty text.en": 1}, 1)
    assert lines(d / "text.en") == ["p1 a", "p2 b", "p3 c"]
    assert lines(d / "text.de") == ["p1 hallo p1", "p2 hallo p2", "p3 hallo p3"]
    assert not (d / "utt2spk").exists() and not (d / "spk2utt").exists()
    assert D.validate(d, require_text=False, require_audio=False) == []
    assert D.subset(d, tmp_path / "first", first=2) == 2
    assert lines(tmp_path / "first" / "text.en") == ["p1 a", "p2 b"]
    with pytest.raises(LegonnError, match="text-only data dir without utt2spk"):
        D.subset(d, tmp_path / "byspk", n=2, by_speaker=True)


def test_text_only_dir_script_wrappers(tmp_path):
    d = make_mt_dir(tmp_path)
    write(d / "text.en", "p2 b\np1 a\np3 c\n")

    def sh(script: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(ROOT / "utils" / script), *args, str(d)], capture_output=True, text=True,
                              timeout=120)

    proc = sh("validate_data_dir.sh", "--no-wav", "--no-text")
    assert proc.returncode == 1 and "text.en:2: not sorted" in proc.stdout, proc.stdout + proc.stderr
    proc = sh("fix_data_dir.sh")
    assert proc.returncode == 0 and "kept 3 of 3 utterance(s)" in proc.stdout, proc.stdout + proc.stderr
    proc = sh("validate_data_dir.sh", "--no-wav", "--no-text")
    assert proc.returncode == 0 and proc.stdout.strip() == f"{d}: OK (3 utterances)", proc.stdout + proc.stderr


def test_fix_without_any_utterance_list(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    write(d / "utt2dur", "u1 1.0\n")
    with pytest.raises(LegonnError, match="no utt2spk, segments, wav.scp, feats.scp or text"):
        D.fix(d)


# --- fix / subset / combine -------------------------------------------------------------


def test_fix_sorts_drops_incomplete_and_rebuilds_spk2utt(tmp_path):
    d = make_dir(tmp_path, utts=(("u1", "s1"), ("u2", "s1"), ("u3", "s2"), ("u4", "s2")))
    write(d / "text", "u3 c\nu1 a\nu2 b\nu1 again\n")  # unsorted, u4 has no text, u1 twice
    write(d / "utt2spk", "u4 s2\nu1 s1\nu2 s1\nu3 s2\n")
    os.unlink(d / "spk2utt")
    write(d / "utt2num_frames", "u1 10\nu3 12\nu2 11\nu4 13\n")
    report = D.fix(d)
    assert (report.kept, report.dropped, report.reasons) == (3, 1, {"not in text": 1})
    assert "dropped 1 (1 not in text)" in report.summary()
    assert D.validate(d) == []
    assert lines(d / "text") == ["u1 a", "u2 b", "u3 c"]
    assert lines(d / "spk2utt") == ["s1 u1 u2", "s2 u3"]
    assert lines(d / "utt2num_frames") == ["u1 10", "u2 11", "u3 12"]
    assert len(lines(d / "wav.scp")) == 3
    assert (d / ".backup" / "text").read_text().startswith("u3 c")
    assert not [p for p in d.iterdir() if ".tmp" in p.name]


def test_fix_with_segments_drops_bad_segments_and_unused_recordings(tmp_path):
    d = make_dir(tmp_path)
    rec = tmp_path / "rec.wav"
    sf.write(rec, np.zeros(16000, np.int16), 16000)
    write(d / "wav.scp", f"rec {rec}\nrec2 {rec}\n")
    write(d / "segments", "u1 rec 0 0.3\nu2 rec 0.5 0.4\nu3 rec 0.6 0.9\n")
    report = D.fix(d)
    assert report.reasons == {"bad segment times": 1}
    assert lines(d / "wav.scp") == [f"rec {rec}"]
    assert D.validate(d) == []


def test_subset_modes(tmp_path):
    utts = tuple((f"u{i}", f"s{i % 3}") for i in range(9))
    src = make_dir(tmp_path, utts=utts)
    D.fix(src, backup=False)
    n = D.subset(src, tmp_path / "n3", n=3)
    assert n == 3 and [r.split()[0] for r in lines(tmp_path / "n3/utt2spk")] == ["u0", "u3", "u6"]
    assert D.validate(tmp_path / "n3") == []
    D.subset(src, tmp_path / "first", first=2)
    assert [r.split()[0] for r in lines(tmp_path / "first/text")] == ["u0", "u1"]
    D.subset(src, tmp_path / "list", utts=["u5", "u2", "nosuch"])
    assert lines(tmp_path / "list/spk2utt") == ["s2 u2 u5"]
    D.subset(src, tmp_path / "spk", speakers=["s1"])
    assert [r.split()[0] for r in lines(tmp_path / "spk/utt2spk")] == ["u1", "u4", "u7"]
    D.subset(src, tmp_path / "byspk", n=4, by_speaker=True)
    assert len(lines(tmp_path / "byspk/spk2utt")) == 2  # two whole speakers of 3 utterances
    with pytest.raises(LegonnError, match="exactly one"):
        D.subset(src, tmp_path / "x", n=2, first=1)


def test_subset_script_wrapper(tmp_path):
    src = make_dir(tmp_path)
    proc = subprocess.run(
        ["bash", str(ROOT / "utils/subset_data_dir.sh"), "--first", str(src), "2", str(tmp_path / "sub")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert [r.split()[0] for r in lines(tmp_path / "sub/utt2spk")] == ["u1", "u2"]


def test_combine_and_refuse_duplicate_ids(tmp_path):
    a = make_dir(tmp_path, "a", utts=(("a1", "x"), ("a2", "y")))
    b = make_dir(tmp_path, "b", utts=(("b1", "x"), ("b2", "z")))
    report = D.combine(tmp_path / "ab", [a, b])
    assert report.kept == 4
    assert lines(tmp_path / "ab/spk2utt") == ["x a1 b1", "y a2", "z b2"]
    assert D.validate(tmp_path / "ab") == []
    c = make_dir(tmp_path, "c", utts=(("a2", "q"),))
    with pytest.raises(LegonnError, match="utterance 'a2' of .* is in both"):
        D.combine(tmp_path / "ac", [a, c])


def test_speed_perturb_makes_prefixed_copies(tmp_path):
    d = make_dir(tmp_path)
    rec = tmp_path / "rec.wav"
    sf.write(rec, np.zeros(16000, np.int16), 16000)
    write(d / "wav.scp", f"rec {rec}\n")
    write(d / "segments", "u1 rec 0 0.3\nu2 rec 0.3 0.6\nu3 rec 0.6 0.9\n")
    write(d / "utt2num_frames", "u1 1\nu2 1\nu3 1\n")
    D.speed_perturb(d, tmp_path / "sp", [0.9, 1.0, 1.1])
    sp = tmp_path / "sp"
    u2s = lines(sp / "utt2spk")
    assert len(u2s) == 9 and "sp0.9-u1 sp0.9-s1" in u2s and "u1 s1" in u2s and "sp1.1-u3 sp1.1-s2" in u2s
    assert f"sp0.9-rec sox -t wav {rec} -t wav - speed 0.9 |" in lines(sp / "wav.scp")
    assert f"rec {rec}" in lines(sp / "wav.scp")
    assert "sp1.1-u3 sp1.1-rec 0.5455 0.8182" in lines(sp / "segments")
    assert "sp0.9-u2 u2" in lines(sp / "utt2uniq")
    assert not (sp / "utt2num_frames").exists()  # features must be recomputed
    assert D.validate(sp) == []
    assert lines(sp / "text")[0] == "sp0.9-u1 hello number 0"


def test_speed_perturb_cli_and_pipe_entries(tmp_path, capsys):
    d = make_dir(tmp_path)
    rows = lines(d / "wav.scp")
    rows[1] = "u2 " + rows[1].split()[1].join(["cat ", " |"])
    write(d / "wav.scp", "\n".join(rows) + "\n")
    assert cli.main(["datadir", "speed_perturb", "--factors", "0.9,1.1", str(d), str(tmp_path / "sp")]) == 0
    wav = lines(tmp_path / "sp/wav.scp")
    assert len(wav) == 6 and all(r.startswith("sp") for r in wav)
    assert any(r.startswith("sp1.1-u2 cat ") and r.endswith("| sox -t wav - -t wav - speed 1.1 |") for r in wav)


# --- split_scp -------------------------------------------------------------------------


def test_split_scp_balanced_and_speakers_together(tmp_path):
    scp = tmp_path / "wav.scp"
    write(scp, "".join(f"u{i} /x/{i}.wav\n" for i in range(10)))
    outs = [tmp_path / f"out.{j}.scp" for j in (1, 2, 3)]
    assert D.split_scp(scp, outs) == [3, 4, 3]
    assert sum((lines(o) for o in outs), []) == lines(scp)
    u2s = tmp_path / "utt2spk"
    write(u2s, "".join(f"u{i} s{i // 4}\n" for i in range(10)))  # speakers of 4, 4, 2 utterances
    counts = D.split_scp(scp, outs, utt2spk=u2s)
    assert counts == [4, 4, 2]
    with pytest.raises(LegonnError, match="3 speaker"):
        D.split_scp(scp, outs + [tmp_path / "out.4.scp"], utt2spk=u2s)


def test_split_scp_script_with_job_pattern(tmp_path):
    scp = tmp_path / "feats.scp"
    write(scp, "".join(f"u{i} a.ark:{i}\n" for i in range(5)))
    proc = subprocess.run(
        ["bash", str(ROOT / "utils/split_scp.sh"), "--n", "2", str(scp), str(tmp_path / "split/feats.JOB.scp")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    parts = [lines(tmp_path / f"split/feats.{j}.scp") for j in (1, 2)]
    assert parts[0] + parts[1] == lines(scp) and all(parts)


def test_write_data_dir_replaces_the_whole_dir_or_nothing(tmp_path):
    from legonn.speech.datadir import write_data_dir

    out = tmp_path / "train"
    write_data_dir(out, {"text": ["u1 a b"], "utt2spk": ["u1 s1"], "feats.scp": ["u1 x.ark:1"]})
    write_data_dir(out, {"text": ["u2 c"], "utt2spk": ["u2 s2"]})
    assert sorted(p.name for p in out.iterdir()) == ["text", "utt2spk"]  # no stale feats.scp
    assert (out / "text").read_text() == "u2 c\n"

    class Broken(list):
        def __iter__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_data_dir(out, {"text": ["u3 d"], "utt2spk": Broken()})
    assert (out / "text").read_text() == "u2 c\n"  # the old dir is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train"]  # no temporary left behind


def test_overlapping_segments_are_allowed_but_warned(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "wav.scp").write_text(f"rec1 {tmp_path / 'a.wav'}\n")
    (tmp_path / "a.wav").write_bytes(b"")
    (d / "segments").write_text("u1 rec1 0.0 2.0\nu2 rec1 1.5 3.0\nu3 rec1 3.0 4.0\n")
    (d / "utt2spk").write_text("u1 s\nu2 s\nu3 s\n")
    (d / "spk2utt").write_text("s u1 u2 u3\n")
    (d / "text").write_text("u1 a\nu2 b\nu3 c\n")
    probs = D.check(d)
    assert probs.total == 0 and len(probs.warnings) == 1
    assert "segments:2: segment 'u2' starts at 1.5 s, before segment 'u1' (line 1) of recording 'rec1' ends at 2 s" \
        in probs.warnings[0]
