"""The Switchboard recipe (egs/swbd/asr1) on a fixture corpus laid out like the LDC releases.

The fixture has the real names and formats, with tone "speech": LDC97S62's two-channel 8 kHz
mu-law ``swb1/data/sw0NNNN.sph``, the ms98 transcripts
``transcriptions/swb_ms98_transcriptions/??/????/sw????[AB]-ms98-a-trans.text`` (and the
``-word.text`` alignments beside them, which must be ignored), LDC2002S09's
``hub5e_00/english/{sw,en}_NNNN.sph`` and LDC2002T43's
``2000_hub5_eng_eval_tr/reference/hub5e00.english.000405.stm``. sph2pipe is not installed here,
so the reader's emulation of the ``sph2pipe -c N`` entries is what reads the channels.
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

RECIPE = ROOT / "egs" / "swbd" / "asr1"

# ms98 lines of two conversations (sides A and B); times in seconds as the transcripts write them.
MS98 = {
    "sw2001A": [
        (0.0, 0.977625, "[silence]"),
        (0.977625, 4.5, "hi um yeah i'd like to talk about how you dress for work [laughter]"),
        (4.5, 8.25, "and um what do you [laughter-normally] wear to the office"),
        (8.25, 11.0, "well it's a bi[g]- big place so -[a]bout anything goes"),
        (11.0, 11.8, "[noise] [vocalized-noise]"),
    ],
    "sw2001B": [
        (0.5, 4.0, "uh-huh i usually wear a [suit/shirt] and tie"),
        (4.0, 7.5, "i think {yuppiedom} is over these days <b_aside> right <e_aside>"),
        (7.5, 11.5, "we have casual fridays though [laughter]"),
    ],
    "sw2005A": [
        (0.2, 3.9, "okay so what kind of music do you like"),
        (3.9, 7.0, "i like country and some rock and roll"),
        (7.0, 10.6, "my husband listens to jazz all the time"),
    ],
    "sw2005B": [
        (0.1, 3.5, "oh i love classical music"),
        (3.5, 7.2, "we go to the symphony about twice a year"),
        (7.2, 11.2, "the tickets are getting expensive though"),
    ],
}
# A conversation whose audio is not in the fixture: its lines are dropped, with a count.
MS98_NO_AUDIO = {"sw2010A": [(0.0, 2.0, "this side has no audio file")]}

STM = """;;
;; LABEL "O" "Overall" "Overall"
;;
en_4156 A en_4156_A 0.50 3.80 <O,en,F,en-F> HE IS A POLICE OFFICER (%HESITATION) IN THE CITY
en_4156 A en_4156_A 4.00 7.50 <O,en,F,en-F> <B_ASIDE> (TH-) THAT'S RIGHT <E_ASIDE> ((YEAH))
en_4156 B en_4156_B 1.00 2.00 <O,en,M,en-M> IGNORE_TIME_SEGMENT_IN_SCORING
en_4156 B en_4156_B 2.20 6.30 <O,en,M,en-M> SO WHAT DID YOU DO THEN
en_4156 B en_4156_B 7.00 7.60 <O,en,M,en-M> (( ))
sw_4390 A sw_4390_A 0.30 4.10 <O,en,M,en-M> WE WERE TALKING ABOUT THE WEATHER
sw_4390 A sw_4390_A 4.40 8.90 <O,en,M,en-M> IT HAS BEEN (%HESITATION) RAINING ALL WEEK
sw_4390 B sw_4390_B 0.80 5.20 <O,en,F,en-F> YEAH WE NEED THE RAIN [LAUGHTER] THOUGH
"""


def load_prepare():
    spec = importlib.util.spec_from_file_location("prepare_swbd", RECIPE / "local" / "prepare_swbd.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_corpus(root: Path, coding_label: str | None = None) -> dict[str, str]:
    """LDC97S62 (+ ms98), LDC2002S09 and LDC2002T43 under ``root``; returns the db.sh variables."""
    swbd = root / "LDC97S62"
    for i, conv in enumerate(("sw02001", "sw02005")):
        write_sph(swbd / "swb1" / "data" / f"{conv}.sph", tone_speech(12.0, 8000, seed=i, channels=2), 8000,
                  "ulaw", coding_label)
    ms98 = swbd / "transcriptions" / "swb_ms98_transcriptions"
    for side, lines in {**MS98, **MS98_NO_AUDIO}.items():
        conv = side[2:6]
        folder = ms98 / conv[:2] / conv
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{side}-ms98-a-trans.text").write_text(
            "".join(f"{side}-ms98-a-{n:04d} {s:.6f} {e:.6f} {words}\n" for n, (s, e, words) in enumerate(lines, 1)))
        # word alignments sit beside the transcripts in the real release; they must be ignored
        (folder / f"{side}-ms98-a-word.text").write_text(f"{side}-ms98-a-0001 0.000000 0.977625 [silence]\n")
    speech = root / "LDC2002S09" / "hub5e_00"
    for i, conv in enumerate(("en_4156", "sw_4390")):
        write_sph(speech / "english" / f"{conv}.sph", tone_speech(10.0, 8000, seed=10 + i, channels=2), 8000,
                  "ulaw", coding_label)
    (speech / "english" / "hub5e_00.pem").write_text("en_4156 A unknown_speaker 0.50 3.80\n")
    reference = root / "LDC2002T43" / "2000_hub5_eng_eval_tr" / "reference"
    reference.mkdir(parents=True)
    (reference / "hub5e00.english.000405.stm").write_text(STM)
    (reference / "en20000405_hub5.glm").write_text(";; fixture glm\n")
    return {"SWBD": str(swbd), "SWBD_MS98": "", "EVAL2000": str(speech), "EVAL2000_TRANS": str(root / "LDC2002T43")}


# --------------------------------------------------------------------------- the normaliser


@pytest.mark.parametrize("line, expected", [
    ("hi um yeah i'd like to talk [laughter] about it", "hi um yeah i'd like to talk about it"),
    ("[noise] [vocalized-noise] [silence]", ""),
    ("and [laughter-normally] [laughter-you]- know", "and normally you- know"),
    ("a bi[g]- big place -[a]bout that", "a bi- big place -bout that"),
    ("[suit/shirt] and [lem[guini]-/linguini] please", "suit and lem- please"),
    ("{yuppiedom} them_1 <b_aside> right <e_aside>", "yuppiedom them right"),
    ("AMMU[N]IT- Uh-Huh", "ammu-it- uh-huh"),
])
def test_ms98_normaliser(line, expected):
    assert " ".join(load_prepare().normalise_ms98(line.split())) == expected


@pytest.mark.parametrize("line, expected", [
    ("HE IS A POLICE OFFICER (%HESITATION) IN THE CITY", "he is a police officer in the city"),
    ("<B_ASIDE> (TH-) THAT'S RIGHT <E_ASIDE> ((YEAH))", "th- that's right yeah"),
    ("(( )) %HESITATION", ""),
    ("YEAH WE NEED THE RAIN [LAUGHTER] THOUGH", "yeah we need the rain though"),
])
def test_stm_normaliser(line, expected):
    assert " ".join(load_prepare().normalise_stm(line.split())) == expected


# --------------------------------------------------------------------------- errors


@pytest.fixture
def recipe(tmp_path) -> Path:
    return recipe_tree(tmp_path / "tree", "swbd/asr1")


def run_data_sh(recipe: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "local/data.sh", *args], cwd=recipe, env=env, capture_output=True, text=True, timeout=60)


def test_unset_corpus_path_is_one_error_line(recipe, tmp_path):
    env = recipe_env()
    for name in ("SWBD", "SWBD_MS98", "EVAL2000", "EVAL2000_TRANS"):
        env.pop(name, None)
    proc = run_data_sh(recipe, env)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "local/data.sh: SWBD is not set: set it in db.sh (or export SWBD=...) to the Switchboard-1 Release 2 (LDC97S62) directory"]
    assert not (recipe / "data").exists()

    proc = run_data_sh(recipe, {**env, "SWBD": str(tmp_path / "nowhere")})
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "SWBD=" in lines[0] and "nowhere" in lines[0] and "no such directory" in lines[0]


def test_shorten_sph_without_sph2pipe_is_refused(tmp_path):
    paths = make_corpus(tmp_path / "corpus", coding_label="ulaw,embedded-shorten-v2.00")
    out = tmp_path / "data" / "train_all"
    proc = subprocess.run(
        [sys.executable, str(RECIPE / "local" / "prepare_swbd.py"), "train", "--audio_dir", paths["SWBD"],
         "--transcripts", f"{paths['SWBD']}/transcriptions/swb_ms98_transcriptions", "--out", str(out),
         "--sph2pipe", "sph2pipe-not-installed"],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "shorten-compressed" in lines[0] and "sw0200" in lines[0]
    assert not out.exists() and not out.with_name("train_all.tmp").exists()


def test_installed_sph2pipe_is_written_by_its_path(tmp_path):
    """With sph2pipe installed, wav.scp names it by its path, and shorten-compressed files are fine."""
    fake = tmp_path / "bin" / "sph2pipe"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    headers = {tmp_path / "sw02001.sph": {"sample_coding": "ulaw,embedded-shorten-v2.00"}}
    assert load_prepare().sph2pipe_command(str(fake), headers) == str(fake)


# --------------------------------------------------------------------------- end to end


TINY_ENCODER = {"name": "encoder", "type": "lego_encoder", "target": "bpe100", "conf": {
    "input": {"type": "conv2d", "input_dim": "dim:input", "channels": [4, 4]},
    "d_model": 16, "heads": 2, "d_ff": 32, "layers": 1, "dropout": 0.0,
    "olc": {"factor": "1/1.5", "max_len": 230, "layers": 1}, "ctc_vocab_size": "vocab:bpe100"}}
TINY_DECODER = {"name": "decoder", "type": "lego_decoder", "target": "bpe2000", "conf": {
    "vocab_size": "vocab:bpe2000", "ingestor": {"type": "wemb", "vocab_size": "vocab:bpe100", "rf": 1, "layers": 1},
    "d_model": 16, "heads": 2, "d_ff": 32, "layers": 1, "dropout": 0.0}}


def tiny_config() -> dict:
    """The recipe's LegoNN WEmb config with a tiny model and 2 training steps."""
    config = yaml.safe_load((RECIPE / "conf" / "train_lego_wemb.yaml").read_text())
    config["model"] = [TINY_ENCODER, TINY_DECODER]
    config["batching"] = {"max_tokens": 20000}
    config["optim"]["accum_grad"] = 1
    config["scheduler"].update(warmup_steps=1, hold_steps=0, decay_steps=1)
    config["trainer"] = {"max_steps": 2, "max_epochs": 10, "valid_every_steps": 1, "keep_best": 2, "log_every_steps": 1}
    return config


def test_swbd_recipe_end_to_end(recipe, tmp_path):
    env = recipe_env(**make_corpus(tmp_path / "corpus"))
    (recipe / "conf" / "tiny_lego.yaml").write_text(yaml.safe_dump(tiny_config(), sort_keys=False))
    args = [
        "bash", "run.sh", "--nj", "1",
        "--data_opts", "--dev_utts 3",
        # the recipe's vocabulary names (the configs' file names), sized for a dozen sentences
        "--vocabs", "bpe100:bpe:40:data/train_nodev/text:data/train_dev/text bpe2000:bpe:60:data/train_nodev/text",
        "--experiments", "lego:conf/tiny_lego.yaml",
        "--avg_num", "1",
        "--decodes", "lego@eval2000_swbd lego@eval2000_callhome",
        "--decode_opts", "--beam 2 --length_penalty 1.0 --max_len_b 5",
    ]
    proc = subprocess.run(args, cwd=recipe, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"run.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    data = recipe / "data"

    # stage 1: every data dir valid, ids / segments / channels as the corpus says
    for name in ("train_all", "train_dev", "train_nodev", "eval2000", "eval2000_swbd", "eval2000_callhome"):
        check = subprocess.run(["legonn", "datadir", "validate", str(data / name)], env=env, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    text = read_table(data / "train_all" / "text")
    assert len(text) == 12  # 14 lines with audio less the silence- and noise-only ones; the audio-less side dropped
    assert text["sw02001-A_000098-000450"] == "hi um yeah i'd like to talk about how you dress for work"
    assert text["sw02001-A_000825-001100"] == "well it's a bi- big place so -bout anything goes"
    assert text["sw02001-B_000050-000400"] == "uh-huh i usually wear a suit and tie"
    assert text["sw02001-B_000400-000750"] == "i think yuppiedom is over these days right"
    segments = read_table(data / "train_all" / "segments")
    assert segments["sw02001-A_000098-000450"] == "sw02001-A 0.98 4.50"
    wav = read_table(data / "train_all" / "wav.scp")
    assert sorted(wav) == ["sw02001-A", "sw02001-B", "sw02005-A", "sw02005-B"]
    assert wav["sw02001-B"] == f"sph2pipe -f wav -p -c 2 {Path(env['SWBD']).resolve()}/swb1/data/sw02001.sph |"
    assert read_table(data / "train_all" / "utt2spk")["sw02005-B_000010-000350"] == "sw02005-B"
    dev, nodev = read_table(data / "train_dev" / "text"), read_table(data / "train_nodev" / "text")
    assert sorted(dev) == sorted(text)[:3] and sorted(nodev) == sorted(text)[3:]

    ev = read_table(data / "eval2000" / "text")
    assert ev == {
        "en_4156-A_000050-000380": "he is a police officer in the city",
        "en_4156-A_000400-000750": "th- that's right yeah",
        "en_4156-B_000220-000630": "so what did you do then",
        "sw_4390-A_000030-000410": "we were talking about the weather",
        "sw_4390-A_000440-000890": "it has been raining all week",
        "sw_4390-B_000080-000520": "yeah we need the rain though",
    }
    assert sorted(read_table(data / "eval2000_swbd" / "text")) == [u for u in sorted(ev) if u.startswith("sw_")]
    assert sorted(read_table(data / "eval2000_callhome" / "text")) == [u for u in sorted(ev) if u.startswith("en_")]
    assert (data / "eval2000" / "stm").is_file() and (data / "eval2000" / "glm").is_file()

    # stages 2-3: features of the 8 kHz audio resampled to 16 kHz (100 frames/s; 50 if it were read as
    # 16 kHz samples), vocabularies
    frames = read_table(data / "eval2000_swbd" / "utt2num_frames")
    assert abs(int(frames["sw_4390-A_000030-000410"]) - 380) <= 3
    for name in ("bpe100", "bpe2000"):
        assert (data / "lang" / f"{name}.model").is_file()

    # stages 4-8
    exp = recipe / "exp" / "lego"
    assert (exp / "averaged.pt").is_file() and any((exp / "modules").iterdir())
    for subset, n in (("eval2000_swbd", 3), ("eval2000_callhome", 3)):
        dec = exp / f"decode_{subset}"
        assert len(read_table(dec / "text")) == n
        score = json.loads((dec / "score.json").read_text())
        assert score["n_utts"] == n and "wer" in score
        assert (dec / "ctc_encoder" / "score.json").is_file()
    results = (recipe / "RESULTS.md").read_text()
    rows = [line for line in results.splitlines() if line.startswith("| lego |")]
    assert {r.split("|")[2].strip() for r in rows} == {"eval2000_swbd", "eval2000_callhome"}
    assert all(r.split("|")[4].strip().replace(".", "").isdigit() for r in rows)  # a WER in every row


# --------------------------------------------------------------------------- the real configs


def shrink(conf: dict) -> None:
    """Tiny sizes in place, keeping every other key (so the real keys are what gets checked)."""
    for key, value in (("d_model", 16), ("heads", 2), ("d_ff", 32), ("layers", 1), ("embed_dim", 4)):
        if key in conf:
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
    assert config["scheduler"] == {**config["scheduler"], "type": "tristage", "warmup_steps": 35000, "hold_steps": 1000,
                                   "decay_steps": 44000, "init_lr_scale": 1.0e-3, "final_lr_scale": 5.0e-3}
    assert config["trainer"]["max_steps"] == 80000 and config["optim"]["weight_decay"] == 1.0e-6
    assert config["data"]["input"] == {"file": "feats.scp", "cmvn": "data/train_nodev/cmvn.ark"}
    encoder = config["model"][0]["conf"]
    assert (encoder["d_model"], encoder["heads"], encoder["d_ff"], encoder["layers"]) == (1024, 16, 4096, 16)
    assert encoder["input"]["channels"] == [64, 128] and encoder["dropout"] == 0.15
    if config["model"][0]["type"] == "lego_encoder":
        assert encoder["olc"]["factor"] == "1/1.5" and encoder["olc"]["max_len"] == 230
    if len(config["model"]) > 1:
        decoder = config["model"][1]["conf"]
        assert (decoder["d_model"], decoder["layers"]) == (1024, 6)
        ingestor = decoder.get("ingestor", {})
        if ingestor.get("type") == "beamconv":
            assert (ingestor["beam"], ingestor["embed_dim"]) == (10, 100)
    for module in config["model"]:
        shrink(module["conf"])
    model = build_model(config, {"dim:input": 80, "vocab:bpe100": 103, "vocab:bpe2000": 2003}).eval()
    with torch.no_grad():
        outputs = model.encode(torch.randn(2, 120, 80), torch.tensor([120, 97]))
    assert outputs[-1].hidden.shape[0] == 2
