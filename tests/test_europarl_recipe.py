"""The Europarl-ST ASR recipe (egs/europarl/asr1) end to end on a fixture laid out like the release.

The fixture is a v1.1 tree (en/audios/<speech>.{m4a,wav}, en/de/{train,dev,test}/segments.lst +
segments.en) with a few seconds of audio per speech, plus TED-LIUM .stm files. ffmpeg is not
needed: the one .m4a speech holds WAV bytes and a stand-in `ffmpeg` on PATH copies its -i file
to stdout, so the wav.scp pipe is exercised as on the real corpus. The recipe runs in a
temporary tree (symlinks to utils/ and egs/TEMPLATE/, a copy of egs/europarl/asr1 whose db.sh
points at the fixture) with a tiny BPE and a 2-step model; the real configs are checked to build.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "europarl" / "asr1"
DB_VARS = ("EUROPARL_ST", "TEDLIUM_TRAIN_STM")

# speech id -> (audio format, split, [(start, end, transcript)])
SPEECHES = {
    "en.20080924.3.3-029": ("m4a", "train", [
        (0.50, 2.50, "Mr President, I would like to thank the rapporteur."),
        (2.60, 4.80, "This report is very important for Europe's citizens!"),
        (2.60, 4.80, "This report is very important for Europe's citizens!"),  # listed twice in segments.lst
    ]),
    "en.20081008.12.3-154": ("wav", "train", [
        (0.00, 2.00, "We cannot accept the co-operation of \"some\" Member States."),
        (2.10, 3.00, "..."),  # nothing left once punctuation is stripped
        (3.10, 5.50, "The Commission's proposal: 3.5 million euro, no more."),
    ]),
    "en.20090114.21.3-201": ("wav", "dev", [(0.20, 2.40, "I agree with the honourable Member."),
                                            (2.50, 4.90, "Thank you, Madam President.")]),
    "en.20090311.9.3-077": ("wav", "test", [(0.00, 2.20, "The vote will take place tomorrow."),
                                            (2.30, 4.60, "The debate is closed.")]),
}
STM = """;; TED-LIUM style transcripts
TalkOne 1 TalkOne 0.00 3.20 <o,f0,male> and it 's a <unk> good idea
TalkOne 1 TalkOne 3.20 5.00 <o,f0,male> ignore_time_segment_in_scoring
TalkOne 1 TalkOne 5.00 8.10 <o,f0,male> we don 't know what they 've seen
"""


def write_wav(path: Path, seconds: float, seed: int) -> None:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    audio = 0.1 * np.sin(2 * np.pi * (200 + 50 * seed) * t) + 0.01 * rng.standard_normal(t.size)
    sf.write(path, audio.astype(np.float32), 16000, format="WAV", subtype="PCM_16")


def make_release(root: Path) -> Path:
    """``root``/v1.1 in the release layout; returns that directory."""
    v11 = root / "v1.1"
    audios = v11 / "en" / "audios"
    audios.mkdir(parents=True)
    lines = {split: ([], []) for split in ("train", "dev", "test")}
    for seed, (speech, (fmt, split, segs)) in enumerate(SPEECHES.items()):
        write_wav(audios / f"{speech}.{fmt}", max(end for _, end, _ in segs) + 0.5, seed)
        for start, end, text in segs:
            lines[split][0].append(f"{speech} {start:.2f} {end:.2f}")
            lines[split][1].append(text)
    for split, (lst, texts) in lines.items():
        d = v11 / "en" / "de" / split
        d.mkdir(parents=True)
        (d / "segments.lst").write_text("\n".join(lst) + "\n")
        (d / "segments.en").write_text("\n".join(texts) + "\n")
        (d / "segments.de").write_text("\n".join(f"übersetzung {i}" for i in range(len(texts))) + "\n")
    return v11


def fake_ffmpeg(bin_dir: Path) -> None:
    """`ffmpeg ... -i FILE ... -` that writes FILE (already a 16 kHz WAV) to stdout."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "ffmpeg"
    script.write_text('#!/usr/bin/env bash\nwhile [[ $# -gt 0 ]]; do [[ $1 == -i ]] && exec cat "$2"; shift; done\nexit 1\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def env(extra_path: Path | None = None) -> dict:
    e = {k: v for k, v in os.environ.items() if k not in DB_VARS}
    paths = [os.path.dirname(sys.executable), e.get("PATH", "")]
    if extra_path is not None:
        paths.insert(0, str(extra_path))
    e["PATH"] = os.pathsep.join(paths)
    e["OMP_NUM_THREADS"] = "1"
    return e


def run(cwd: Path, *args: str, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", *args], cwd=cwd, env=env(extra_path), capture_output=True, text=True, timeout=600)


def copy_recipe(root: Path) -> Path:
    (root / "egs" / "europarl").mkdir(parents=True)
    os.symlink(ROOT / "utils", root / "utils")
    os.symlink(ROOT / "egs" / "TEMPLATE", root / "egs" / "TEMPLATE")
    asr = root / "egs" / "europarl" / "asr1"
    shutil.copytree(RECIPE, asr, ignore=shutil.ignore_patterns("data", "exp", "RESULTS.md", "__pycache__"))
    return asr


TINY_LEGO = {
    "model": [
        {"name": "encoder", "type": "lego_encoder", "target": "en", "conf": {
            "input": {"type": "conv2d", "input_dim": "dim:input", "channels": [8, 8]},
            "d_model": 32, "heads": 2, "d_ff": 64, "layers": 1, "dropout": 0.0,
            "olc": {"factor": "1/2", "max_len": 130, "layers": 1}, "ctc_vocab_size": "vocab:en"}},
        {"name": "decoder", "type": "lego_decoder", "target": "en", "conf": {
            "vocab_size": "vocab:en", "ingestor": {"type": "wemb", "vocab_size": "vocab:en", "rf": 1, "layers": 1},
            "d_model": 32, "heads": 2, "d_ff": 64, "layers": 1, "dropout": 0.0}},
    ],
    "data": {"train": "data/train", "valid": "data/dev",
             "input": {"file": "feats.scp", "cmvn": "data/train/cmvn.ark"},
             "targets": {"en": {"file": "text", "vocab": "data/lang/en.model"}},
             "specaug": {"freq_masks": 1, "freq_width": 10, "time_masks": 1, "time_width": 20}},
    "batching": {"max_tokens": 4000},
    "optim": {"lr": 1.0e-3},
    "scheduler": {"warmup_steps": 1},
    "trainer": {"max_steps": 2, "valid_every_steps": 1, "keep_best": 2, "log_every_steps": 1},
}


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("europarl_recipe")
    release = make_release(root / "corpus")
    stm = root / "corpus" / "TEDLIUM_release-3" / "legacy" / "train" / "stm"
    stm.mkdir(parents=True)
    (stm / "TalkOne.stm").write_text(STM)
    fake_ffmpeg(root / "bin")
    asr = copy_recipe(root)
    (asr / "db.sh").write_text(f"EUROPARL_ST={release}\nTEDLIUM_TRAIN_STM={stm}\n")
    (asr / "conf" / "tiny_lego.yaml").write_text(yaml.safe_dump(TINY_LEGO, sort_keys=False))
    return asr


def read_table(path: Path) -> dict[str, str]:
    return dict((line.split(" ", 1) + [""])[:2] for line in path.read_text(encoding="utf-8").splitlines())


def test_europarl_recipe_end_to_end(recipe: Path):
    asr = recipe
    proc = run(asr, "run.sh", "--nj", "1",
               "--vocabs", "en:bpe:60:data/local/en_bpe/text:data/test/text phn:tokens:0:data/train/text.phn",
               "--experiments", "lego:conf/tiny_lego.yaml", "--avg_num", "2",
               "--decodes", "lego@test", "--relative", "", "--decode_opts", "--beam 2",
               extra_path=asr.parent.parent.parent / "bin")
    assert proc.returncode == 0, f"run.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    data = asr / "data"

    # data dirs: the release's segments, one speaker per speech, the .m4a read through the ffmpeg pipe
    wav = read_table(data / "train" / "wav.scp")
    assert wav["en.20080924.3.3-029"].startswith("ffmpeg -nostdin -v error -i ")
    assert wav["en.20080924.3.3-029"].endswith("en.20080924.3.3-029.m4a -f wav -ar 16000 -ac 1 - |")
    assert wav["en.20081008.12.3-154"].endswith("en.20081008.12.3-154.wav")
    segments = read_table(data / "train" / "segments")
    assert segments["en.20081008.12.3-154_0000310_0000550"] == "en.20081008.12.3-154 3.10 5.50"
    text = read_table(data / "train" / "text")
    assert list(text) == sorted(text) and len(text) == 4, "the duplicate and the punctuation-only segments go"
    assert text["en.20080924.3.3-029_0000050_0000250"] == "mr president i would like to thank the rapporteur"
    assert text["en.20081008.12.3-154_0000000_0000200"] == "we cannot accept the co-operation of some member states"
    assert text["en.20081008.12.3-154_0000310_0000550"] == "the commission's proposal 3.5 million euro no more"
    utt2spk = read_table(data / "train" / "utt2spk")
    assert utt2spk == {u: u.rsplit("_", 2)[0] for u in text}
    assert len(read_table(data / "dev" / "text")) == 2 and len(read_table(data / "test" / "text")) == 2
    phn = read_table(data / "test" / "text.phn")
    assert set(phn) == set(read_table(data / "test" / "text")) and "DH" in phn["en.20090311.9.3-077_0000230_0000460"]
    assert read_table(data / "test_phn" / "text") == phn
    # TED-LIUM joins the BPE text, normalised the same way
    tedlium = read_table(data / "local" / "tedlium_train" / "text")
    assert sorted(tedlium.values()) == ["and it's a good idea", "we don't know what they've seen"]
    assert len(read_table(data / "local" / "en_bpe" / "text")) == 4 + 2

    # features (the m4a speech's segments too), vocabularies, stages 4-8
    feats = read_table(data / "train" / "feats.scp")
    assert set(feats) == set(text) and (data / "train" / "cmvn.ark").is_file()
    report = json.loads((data / "lang" / "en.report.json").read_text())
    assert report["train_texts"] == ["data/local/en_bpe/text"] and report["train_sentences"] == 6
    assert "AH" in (data / "lang" / "phn.tokens.txt").read_text().split()
    exp = asr / "exp" / "lego"
    assert (exp / "averaged.pt").is_file() and (exp / "modules" / "encoder" / "module.json").is_file()
    score = json.loads((exp / "decode_test" / "score.json").read_text())
    assert score["n_utts"] == 2 and "wer" in score and "bleu" not in score
    results = (asr / "RESULTS.md").read_text()
    assert "| lego | test | text |" in results and "| lego | test | ctc_encoder |" in results

    # Table VI's fine-tuning config layers over what `legonn compose` writes (here composing the
    # tiny model's own modules): the transcripts become the target stream, the paper's settings hold
    from legonn.config import resolve

    subprocess.run([os.path.join(os.path.dirname(sys.executable), "legonn"), "compose", "--modules",
                    "exp/lego/modules/encoder", "exp/lego/modules/decoder", "--out", "exp/plug"],
                   cwd=asr, env=env(), check=True, capture_output=True)
    config = resolve([asr / "exp" / "plug" / "finetune.yaml", asr / "conf" / "finetune_asr_transfer.yaml"])
    assert config["data"]["targets"]["en"]["file"] == "text"
    assert config["data"]["targets"]["en"]["vocab"].endswith(".model")
    assert config["data"]["input"]["file"] == "feats.scp" and config["data"]["train"] == "data/train"
    assert set(config["trainer"]["init_modules"]) == {"encoder", "decoder"}
    assert (config["optim"]["lr"], config["scheduler"]["warmup_steps"], config["trainer"]["max_steps"]) == (1.0e-4, 1000, 20000)


def test_unset_corpus_and_missing_audio_stop_with_one_line(tmp_path: Path):
    asr = copy_recipe(tmp_path)
    proc = run(asr, "local/data.sh")
    assert proc.returncode != 0 and proc.stderr.strip().splitlines() == [
        "local/data.sh: EUROPARL_ST is not set in db.sh (Europarl-ST's v1.1 directory; see README.md)"]
    staged = run(asr, "run.sh", "--stop_stage", "1")
    assert staged.returncode != 0 and "EUROPARL_ST is not set in db.sh" in staged.stderr

    release = make_release(tmp_path / "corpus")
    (asr / "db.sh").write_text(f"EUROPARL_ST={release}\n")
    # .m4a audio and no ffmpeg: PATH holds only a python wrapper (so no ffmpeg, whatever the machine has)
    bare_bin = tmp_path / "bare_bin"
    bare_bin.mkdir()
    (bare_bin / "python").write_text(f'#!{shutil.which("bash")}\nexec {sys.executable} "$@"\n')
    (bare_bin / "python").chmod(0o755)
    proc = subprocess.run([shutil.which("bash"), "local/data.sh"], cwd=asr, env=dict(env(), PATH=str(bare_bin)),
                          capture_output=True, text=True)
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "ffmpeg, which is not on PATH" in proc.stderr

    (release / "en" / "audios" / "en.20090311.9.3-077.wav").unlink()
    fake_ffmpeg(tmp_path / "bin")
    proc = run(asr, "local/data.sh", extra_path=tmp_path / "bin")
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1
    assert "en.20090311.9.3-077.m4a (or .wav) not found" in proc.stderr and "test/segments.lst" in proc.stderr
    assert not (asr / "data").exists(), "nothing is written before every input is found"


@pytest.mark.parametrize("conf", sorted(p.name for p in (RECIPE / "conf").glob("train_*.yaml")))
def test_real_configs_build(conf):
    """The paper-sized configs resolve and build (on the meta device: no memory, no time)."""
    import torch

    from legonn.config import resolve
    from legonn.engine.experiment import build_model

    config = resolve(RECIPE / "conf" / conf)
    with torch.device("meta"):
        model = build_model(config, {"dim:input": 80, "vocab:en": 2000, "vocab:phn": 42})
    encoder = model.blocks["encoder"]
    assert encoder.d_model == 512 and len(encoder.encoder.layers) == 12
    assert config["scheduler"]["type"] == "tristage" and config["trainer"]["max_steps"] == 80000
    assert config["data"]["specaug"] and config["data"]["valid"] == "data/dev"
    olc = {"train_asr_enconly.yaml": ("1/3.5", 130), "train_asr_lego_wemb.yaml": ("1/3.5", 130),
           "train_asr_phn.yaml": ("1/1.2", 365)}.get(conf)
    if olc is None:
        assert encoder.olc is None
    else:
        assert (encoder.olc.factor_spec, encoder.olc.max_len) == olc

