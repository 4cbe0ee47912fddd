"""The TED-LIUM 3 recipe (egs/tedlium/asr1) on a fixture corpus laid out like the release.

The fixture has the real names and formats, with tone "speech": ``TEDLIUM_release-3/data``
(the full training set), ``legacy/{train,dev,test}``, each ``sph/<talk>.sph`` (16 kHz mono
16-bit PCM SPHERE) beside ``stm/<talk>.stm`` with the release's conventions: gap lines
``ignore_time_segment_in_scoring``, ``{NOISE}``-style tags, ``<unk>``, ``<sil>``, split
contractions ("it 's"), pronunciation variants ("read(2)") and, in training stm files, the
utterance name at the end of each line.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from recipe_fixtures import ROOT, read_table, recipe_env, recipe_tree, tone_speech, write_sph

RECIPE = ROOT / "egs" / "tedlium" / "asr1"

# set dir (under TEDLIUM_release-3) -> talk -> (seconds of audio, stm lines after the header)
TALKS = {
    "data": {
        "AaronHuey_2010X": (9.5, [
            "0.45 3.60 <o,f0,male> i 've been photographing the lakota people for years (AaronHuey_2010X-1)",
            "3.60 4.00 <o,,unknown> ignore_time_segment_in_scoring",
            "4.00 7.10 <o,f0,male> it 's a story {NOISE} about <unk> history (AaronHuey_2010X-2)",
            "7.10 9.80 <o,f0,male> we 're going to read(2) it <sil> together (AaronHuey_2010X-3)",
            "9.80 10.40 <o,f0,male> {BREATH} <unk> (AaronHuey_2010X-4)",
        ]),
        "AimeeMullins_2009P": (10.0, [
            "0.30 3.20 <o,f0,female> i would like to share a conversation (AimeeMullins_2009P-1)",
            "3.20 6.50 <o,f0,female> that i had with my friend {COUGH} about words (AimeeMullins_2009P-2)",
            "6.50 9.70 <o,f0,female> she 'd looked up the word in a thesaurus (AimeeMullins_2009P-3)",
        ]),
    },
    "legacy/train": {
        "AaronHuey_2010X": (9.5, ["0.45 3.60 <o,f0,male> i 've been photographing the lakota people for years"]),
    },
    "legacy/dev": {
        "AlGore_2009": (10.0, [
            "0.50 3.90 <o,f0,male> last year i showed these two slides",
            "3.90 7.40 <o,f0,male> so that i could demonstrate that the arctic ice cap",
            "7.40 7.80 <o,,unknown> ignore_time_segment_in_scoring",
            "7.80 9.60 <o,f0,male> has shrunk by forty percent",
        ]),
    },
    "legacy/test": {
        "BillGates_2010": (10.0, [
            "0.20 3.50 <o,f0,male> i 'm going to talk today about energy and climate",
            "3.50 6.80 <o,f0,male> and that might seem a bit surprising",
            "6.80 9.40 <o,f0,male> because my full time work at the foundation",
        ]),
    },
}


def load_prepare():
    spec = importlib.util.spec_from_file_location("prepare_tedlium", RECIPE / "local" / "prepare_tedlium.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_corpus(root: Path) -> Path:
    """``root/TEDLIUM_release-3`` with the fixture talks; returns it."""
    release = root / "TEDLIUM_release-3"
    for seed, (set_dir, talks) in enumerate(TALKS.items()):
        for i, (talk, (seconds, lines)) in enumerate(talks.items()):
            write_sph(release / set_dir / "sph" / f"{talk}.sph", tone_speech(seconds, 16000, seed=10 * seed + i), 16000)
            stm = release / set_dir / "stm" / f"{talk}.stm"
            stm.parent.mkdir(parents=True, exist_ok=True)
            header = ';; LABEL "o" "Overall" "Overall results"\n;; LABEL "f0" "f0" "Wideband channel"\n'
            stm.write_text(header + "".join(
                f"{talk} 1 {'inter_segment_gap' if 'ignore_time' in line else talk} {line}\n" for line in lines))
    return release


# --------------------------------------------------------------------------- the normaliser


@pytest.mark.parametrize("line, expected", [
    ("i 've been photographing the lakota people for years (AaronHuey_2010X-1)",
     "i've been photographing the lakota people for years"),
    ("it 's a story {NOISE} about <unk> history", "it's a story about history"),
    ("we 're going to read(2) it <sil> together", "we're going to read it together"),
    ("{BREATH} <unk> [NOISE]", ""),
    ("she 'd looked up rock 'n' roll , \" right", "she'd looked up rock'n' roll right"),
    ("'cause we can't", "'cause we can't"),
])
def test_tedlium_normaliser(line, expected):
    assert " ".join(load_prepare().normalise_ted(line.split())) == expected


# --------------------------------------------------------------------------- errors


@pytest.fixture
def recipe(tmp_path) -> Path:
    return recipe_tree(tmp_path / "tree", "tedlium/asr1")


def run_data_sh(recipe: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "local/data.sh"], cwd=recipe, env=env, capture_output=True, text=True, timeout=60)


def test_unset_or_wrong_corpus_path_is_one_error_line(recipe, tmp_path):
    env = recipe_env()
    env.pop("TEDLIUM3", None)
    proc = run_data_sh(recipe, env)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "local/data.sh: TEDLIUM3 is not set: set it in db.sh (or export TEDLIUM3=...) to the TEDLIUM_release-3 directory"]
    assert not (recipe / "data").exists()
    for where, says in ((tmp_path / "nowhere", "no such directory"), (tmp_path, "expected stm/ and sph/")):
        proc = run_data_sh(recipe, {**env, "TEDLIUM3": str(where)})
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode != 0 and len(lines) == 1 and says in lines[0] and str(where) in lines[0], lines
    assert not (recipe / "data").exists()


FAKE_SPH2PIPE = """#!{python}
# sph2pipe -f wav -p [-c N] FILE: the SPHERE file as a 16-bit WAV on stdout (a stand-in for the real tool)
import io, sys
import soundfile
args = sys.argv[1:]
channel = int(args[args.index("-c") + 1]) - 1 if "-c" in args else None
data, rate = soundfile.read(args[-1], dtype="int16", always_2d=True)
if channel is not None:
    data = data[:, channel]
buf = io.BytesIO()
soundfile.write(buf, data, rate, format="WAV", subtype="PCM_16")
sys.stdout.buffer.write(buf.getvalue())
"""


def test_sph2pipe_on_path_gives_pipe_entries(recipe, tmp_path):
    release = make_corpus(tmp_path / "corpus")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "sph2pipe"
    fake.write_text(FAKE_SPH2PIPE.format(python=sys.executable))
    fake.chmod(0o755)
    env = recipe_env(TEDLIUM3=str(release))
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    proc = subprocess.run(["bash", "run.sh", "--stop_stage", "2", "--feats_sets", "dev", "--nj", "1"],
                          cwd=recipe, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    wav = read_table(recipe / "data" / "dev" / "wav.scp")
    assert wav == {"AlGore_2009": f"{fake} -f wav -p {release.resolve()}/legacy/dev/sph/AlGore_2009.sph |"}
    frames = read_table(recipe / "data" / "dev" / "utt2num_frames")
    assert abs(int(frames["AlGore_2009-0000050-0000390"]) - 340) <= 3  # 3.4 s at 100 frames/s


# --------------------------------------------------------------------------- end to end


def tiny_encoder(name: str, target: str, input_layer: dict, olc: dict) -> dict:
    return {"name": name, "type": "lego_encoder", "target": target, "conf": {
        "input": input_layer, "d_model": 16, "heads": 2, "d_ff": 32, "layers": 1, "dropout": 0.0,
        "olc": {**olc, "layers": 1}, "ctc_vocab_size": f"vocab:{target}"}}


TINY_PHN = tiny_encoder("phn", "phn", {"type": "conv2d", "input_dim": "dim:input", "channels": [4, 4]},
                        {"factor": "1/1.2", "max_len": 365})
TINY_PRON = tiny_encoder("pron", "bpe2000", {"type": "wemb", "vocab_size": "vocab:phn", "rf": 5, "layers": 0},
                         {"factor": "1.2/3.5", "max_len": 130})


def tiny_config(conf: str, model: list[dict]) -> dict:
    """A recipe config with a tiny model and 2 training steps."""
    config = yaml.safe_load((RECIPE / "conf" / conf).read_text())
    config["model"] = model
    config["batching"] = {"max_tokens": 20000}
    config["optim"]["accum_grad"] = 1
    config["scheduler"].update(warmup_steps=1, hold_steps=0, decay_steps=1)
    config["trainer"].update(max_steps=2, max_epochs=10, valid_every_steps=1, keep_best=2, log_every_steps=1)
    return config


def test_tedlium_recipe_end_to_end(recipe, tmp_path):
    release = make_corpus(tmp_path / "corpus")
    env = recipe_env(TEDLIUM3=str(release.parent))  # the parent of TEDLIUM_release-3 is accepted too
    # The two-module chain covers both targets (phonemes and BPE) and both module kinds; one
    # experiment keeps the test within its time budget (train_phn.yaml's module is its first).
    tiny = tiny_config("train_pron.yaml", [TINY_PHN, TINY_PRON])
    (recipe / "conf" / "tiny_pron.yaml").write_text(yaml.safe_dump(tiny, sort_keys=False))
    args = [
        "bash", "run.sh", "--nj", "1",
        "--vocabs", "bpe2000:bpe:60:data/train/text:data/dev/text phn:tokens:0:data/train/text.phn:data/dev/text.phn",
        "--experiments", "pron:conf/tiny_pron.yaml",
        "--decodes", "pron@test",
        "--decode_opts", "--beam 2 --length_penalty 1.0 --ctc_modules",
    ]
    proc = subprocess.run(args, cwd=recipe, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"run.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    data = recipe / "data"

    # stage 1: valid data dirs, normalised text, stm times (clipped to the audio), phonemes
    for name in ("train", "dev", "test", "dev_phn", "test_phn"):
        check = subprocess.run(["legonn", "datadir", "validate", str(data / name)], env=env, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    text = read_table(data / "train" / "text")
    assert text == {
        "AaronHuey_2010X-0000045-0000360": "i've been photographing the lakota people for years",
        "AaronHuey_2010X-0000400-0000710": "it's a story about history",
        "AaronHuey_2010X-0000710-0000980": "we're going to read it together",
        "AimeeMullins_2009P-0000030-0000320": "i would like to share a conversation",
        "AimeeMullins_2009P-0000320-0000650": "that i had with my friend about words",
        "AimeeMullins_2009P-0000650-0000970": "she'd looked up the word in a thesaurus",
    }
    segments = read_table(data / "train" / "segments")
    assert segments["AaronHuey_2010X-0000045-0000360"] == "AaronHuey_2010X 0.45 3.60"
    assert segments["AaronHuey_2010X-0000710-0000980"] == "AaronHuey_2010X 7.10 9.50"  # the audio ends at 9.5 s
    assert read_table(data / "train" / "utt2spk")["AimeeMullins_2009P-0000030-0000320"] == "AimeeMullins_2009P"
    assert read_table(data / "train" / "wav.scp") == {
        talk: str(release.resolve() / "data" / "sph" / f"{talk}.sph") for talk in TALKS["data"]}
    assert len(read_table(data / "dev" / "text")) == 3 and len(read_table(data / "test" / "text")) == 3
    phn = read_table(data / "test" / "text.phn")
    assert phn["BillGates_2010-0000350-0000680"].split()[:4] == ["AH", "N", "D", "DH"]  # "and that", no stress
    assert read_table(data / "test_phn" / "text") == phn

    # stages 2-3
    assert (data / "train" / "cmvn.ark").is_file() and (data / "test_phn" / "feats.scp").is_file()
    assert (data / "lang" / "bpe2000.model").is_file()
    assert "DH" in (data / "lang" / "phn.tokens.txt").read_text().split()

    # stages 4-8: both modules exported; the chain's output is its pronunciation model's, scored against words
    exp = recipe / "exp" / "pron"
    assert (exp / "averaged.pt").is_file()
    assert (exp / "modules" / "phn").is_dir() and (exp / "modules" / "pron").is_dir()
    dec = exp / "decode_test"
    assert sorted(read_table(dec / "text")) == sorted(read_table(data / "test" / "text"))
    assert not list(dec.glob("ctc_*.text"))  # --ctc_modules with no names: the final output only
    assert json.loads((dec / "score.json").read_text())["n_utts"] == 3
    results = (recipe / "RESULTS.md").read_text()
    rows = [[c.strip() for c in line.split("|")[1:5]] for line in results.splitlines() if line.startswith("| pron |")]
    assert len(rows) == 1 and rows[0][:3] == ["pron", "test", "text"] and float(rows[0][3]) >= 0


# --------------------------------------------------------------------------- the real configs


def shrink(conf: dict) -> None:
    """Tiny sizes in place, keeping every other key (so the real keys are what gets checked)."""
    for key, value in (("d_model", 16), ("heads", 2), ("d_ff", 32), ("layers", 1)):
        if key in conf and conf[key]:
            conf[key] = value
    if "channels" in conf:
        conf["channels"] = [4, 4]
    for sub in conf.values():
        if isinstance(sub, dict):
            shrink(sub)


@pytest.mark.parametrize("conf", sorted(p.name for p in (RECIPE / "conf").glob("train_*.yaml")))
def test_real_configs_have_the_papers_setup_and_build(conf):
    import torch

    from legonn.config import resolve
    from legonn.engine.experiment import build_model

    config = resolve(RECIPE / "conf" / conf)
    assert config["scheduler"]["type"] == "tristage" and config["trainer"]["max_steps"] == 80000
    first = config["model"][0]["conf"]
    assert (first["d_model"], first["heads"], first["d_ff"], first["layers"]) == (512, 8, 2048, 12)
    modules = {m["name"]: m["conf"] for m in config["model"]}
    if "phn" in modules:
        assert modules["phn"]["olc"]["factor"] == "1/1.2" and modules["phn"]["olc"]["max_len"] == 365
    if "pron" in modules:
        pron = modules["pron"]
        assert pron["input"] == {"type": "wemb", "vocab_size": "vocab:phn", "rf": 5, "layers": 0} and pron["layers"] == 6
        assert pron["olc"]["factor"] == "1.2/3.5" and pron["olc"]["max_len"] == 130
    for module in config["model"]:
        shrink(module["conf"])
    model = build_model(config, {"dim:input": 80, "vocab:phn": 42, "vocab:bpe2000": 2003}).eval()
    with torch.no_grad():
        outputs = model.encode(torch.randn(2, 160, 80), torch.tensor([160, 131]))
    if "pron" in modules:  # phoneme positions = frames / 4 / 1.2; BPE positions = those x 1.2 / 3.5
        assert outputs[0].lengths.tolist() == [34, 27] and outputs[1].lengths.tolist() == [12, 10]
