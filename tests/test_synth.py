"""egs/mini/asr1/local/synth.py: speech synthesis for the mini ASR recipe.

The primary engine is espeak-ng from the espeakng-loader wheel (PyPI only, no Debian package);
the espeak-ng program, flite and festival are optional and their tests skip when absent.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / "egs" / "mini" / "asr1" / "local"
sys.path.insert(0, str(LOCAL))  # on sys.path (not just loaded by path) so spawned workers can import it

import synth  # noqa: E402

SENTENCE = "The quick brown fox jumps over the lazy dog."


def read_wav(path):
    import soundfile as sf

    info = sf.info(str(path))
    x, rate = sf.read(str(path), dtype="float32")
    return x, rate, info


def log_spectrum(x: np.ndarray, n_fft: int = 512) -> np.ndarray:
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::160] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    voiced = power.sum(axis=1) > 1e-3 * power.sum(axis=1).max()
    return np.log(power[voiced].mean(axis=0) + 1e-10)


@pytest.fixture(autouse=True)
def fresh_engines():
    synth._init_worker("auto")
    yield
    synth._init_worker("auto")


def test_two_voices_give_16khz_mono_speech_of_plausible_length(tmp_path):
    a = synth.Voice("spk_a", "espeak", "en-us+m3", 160, 50, "espeak:m3")
    b = synth.Voice("spk_b", "espeak", "en-gb-scotland+f2", 150, 60, "espeak:f2")
    sents = [("s1", SENTENCE), ("s2", "How are you today?")]
    r = synth.synthesise(sents, [a, b], str(tmp_path / "wav"), str(tmp_path / "data"), nj=1, progress=False)
    assert r["utterances"] == 2 and r["speakers"] == 2 and "espeak" in r["engines"]
    for line in (tmp_path / "data" / "wav.scp").read_text().splitlines():
        utt, path = line.split(" ", 1)
        x, rate, info = read_wav(path)
        assert rate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
        words = 9 if utt.endswith("s1") else 4
        seconds = x.shape[0] / rate
        assert 0.15 * words < seconds < 0.9 * words + 1.0, (utt, seconds)
        assert np.abs(x).max() > 0.05  # not silence
    data = tmp_path / "data"
    text = dict(line.split(" ", 1) for line in (data / "text").read_text().splitlines())
    utt2spk = dict(line.split() for line in (data / "utt2spk").read_text().splitlines())
    assert sorted(text.values()) == sorted(s for _, s in sents)  # original case and punctuation
    assert all(utt.startswith(spk + "-") for utt, spk in utt2spk.items())
    from legonn.speech.datadir import check

    assert check(str(data)).total == 0


def test_voices_differ():
    voices = [("en-us+m3", 160, 50), ("en-us+f2", 160, 50), ("en-gb-x-rp+m3", 180, 30)]
    spectra = []
    for name, rate, pitch in voices:
        spectra.append(log_spectrum(synth.render(SENTENCE, synth.Voice("s", "espeak", name, rate, pitch, "espeak:x"))))
    for i in range(len(spectra)):
        for j in range(i + 1, len(spectra)):
            assert np.abs(spectra[i] - spectra[j]).mean() > 0.3, (voices[i], voices[j])
    # a slower rate gives longer speech
    slow = synth.render(SENTENCE, synth.Voice("s", "espeak", "en-us+m3", 140, 50, "espeak:m3"))
    fast = synth.render(SENTENCE, synth.Voice("s", "espeak", "en-us+m3", 190, 50, "espeak:m3"))
    assert slow.shape[0] > 1.15 * fast.shape[0]


def test_no_engine_fails_clearly(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # import fails as if not installed
    monkeypatch.setattr(shutil, "which", lambda name: None)     # and no espeak-ng/flite/festival program
    with pytest.raises(synth.SynthError, match="pip install espeakng-loader"):
        synth.available_engines("auto")
    with pytest.raises(synth.SynthError, match="no espeak-ng available"):
        synth.render(SENTENCE, synth.Voice("s", "espeak", "en-us+m3", 160, 50, "espeak:m3"))
    assert synth.main(["say", SENTENCE, "/dev/null"]) == 1
    assert "pip install espeakng-loader" in capsys.readouterr().err


def test_unknown_voice_is_an_error():
    with pytest.raises(synth.SynthError, match="no voice 'xx-nowhere'"):
        synth.render("Hello.", synth.Voice("s", "espeak", "xx-nowhere", 160, 50, "espeak:x"))


def test_voice_splits_are_disjoint_in_family_and_deterministic():
    engines = {"espeak": synth.open_espeak("lib")}
    families, extra = synth.voice_pool(engines, seed=1)
    assert len(families) >= 30 and not extra
    counts = [("train", 40), ("valid", 4), ("test", 8)]
    splits = synth.split_voices(families, extra, counts, seed=1)
    assert {k: len(v) for k, v in splits.items()} == dict(counts)
    fam = {k: {v.family for v in vs} for k, vs in splits.items()}
    assert not (fam["train"] & fam["test"]) and not (fam["train"] & fam["valid"]) and not (fam["valid"] & fam["test"])
    assert len({v.name.split("+")[0] for v in splits["train"]}) == len(synth.ACCENTS)  # every accent in training
    assert len(fam["test"]) >= 2 and len({v.spk for v in splits["test"]}) == 8
    again = synth.split_voices(*synth.voice_pool(engines, seed=1), counts, seed=1)
    assert again == splits
    for v in splits["train"]:
        assert synth.RATE_RANGE[0] <= v.rate <= synth.RATE_RANGE[1]
        assert synth.PITCH_RANGE[0] <= v.pitch <= synth.PITCH_RANGE[1]
        assert synth.Voice.parse(v.line()) == v


def test_second_domain_voices_are_a_disjoint_pool():
    """The pronunciation model's speakers (--pool pron) share no voice family with the ASR sets,
    and their own train/valid split is family-disjoint too."""
    engines = {"espeak": synth.open_espeak("lib")}
    asr, _ = synth.voice_pool(engines, seed=1)
    pron, extra = synth.voice_pool(engines, seed=1, pool="pron")
    assert not extra and len(pron) >= 15 and {g for _, g, _ in pron} == {"m", "f"}
    assert not ({f for f, _, _ in asr} & {f for f, _, _ in pron})
    assert not ({v.spk for _, _, vs in asr for v in vs} & {v.spk for _, _, vs in pron for v in vs})
    counts = [("pron_train", 24), ("pron_valid", 4)]
    splits = synth.split_voices(pron, extra, counts, seed=1)
    assert {k: len(v) for k, v in splits.items()} == dict(counts)
    assert not ({v.family for v in splits["pron_train"]} & {v.family for v in splits["pron_valid"]})
    with pytest.raises(synth.SynthError, match="unknown voice pool"):
        synth.voice_pool(engines, pool="other")


def test_synthesis_is_deterministic_for_any_nj(tmp_path):
    voices = [synth.Voice(f"spk{i}", "espeak", n, 160, 50, f"espeak:{n}") for i, n in enumerate(["en-us+m1", "en+f1"])]
    sents = [(f"s{i}", s) for i, s in enumerate(["One two three four.", "Five six seven eight.", "Nine ten eleven."])]
    synth.synthesise(sents, voices, str(tmp_path / "w1"), str(tmp_path / "d1"), nj=1, progress=False)
    synth.render(SENTENCE, voices[0])  # what this process spoke before must not matter
    synth.synthesise(sents, voices, str(tmp_path / "w2"), str(tmp_path / "d2"), nj=2, progress=False)
    for name in ("text", "utt2spk", "spk2utt", "utt2dur"):
        assert (tmp_path / "d1" / name).read_text() == (tmp_path / "d2" / name).read_text()
    for p1 in sorted((tmp_path / "w1").rglob("*.wav")):
        p2 = tmp_path / "w2" / p1.relative_to(tmp_path / "w1")
        assert np.array_equal(read_wav(p1)[0], read_wav(p2)[0])


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the espeak-ng program is not installed (optional)")
def test_espeak_cli_backend(tmp_path):
    eng = synth.open_espeak("cli")
    x, rate = eng.synth(SENTENCE, "en-us+f3", 160, 50)
    assert rate == 22050 and x.dtype == np.int16 and 1.0 < x.shape[0] / rate < 6.0


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed (optional)")
def test_flite_voices_join_the_training_split():
    engines = synth.available_engines("espeak,flite")
    families, extra = synth.voice_pool(engines)
    assert extra and all(v.engine == "flite" for v in extra)
    splits = synth.split_voices(families, extra, [("train", 10), ("test", 2)])
    assert set(extra) <= set(splits["train"]) and not set(extra) & set(splits["test"])
    x = synth.render("Hello there.", extra[0])
    assert x.shape[0] > 8000


def test_command_line(tmp_path):
    sents = tmp_path / "sents"
    sents.write_text("a1 Good morning everyone.\na2 See you later.\n")
    run = [sys.executable, str(LOCAL / "synth.py"), "--espeak_backend", "lib"]
    subprocess.run(run + ["voices", "--engines", "espeak", "--split", "train:3,test:2", "--out_dir", str(tmp_path)],
                   check=True, capture_output=True)
    out = subprocess.run(run + ["synth", "--text", str(sents), "--voices", str(tmp_path / "voices.test"),
                                "--wav_dir", str(tmp_path / "wav"), "--data_dir", str(tmp_path / "test")],
                         check=True, capture_output=True, text=True).stdout
    assert "2 utterances, 2 speakers" in out
    assert len((tmp_path / "test" / "spk2voice").read_text().splitlines()) == 2


def test_german_voices_speak_german_and_split_by_family(tmp_path):
    """--language de: espeak-ng's one German voice x the variants, each speaker its own rate and
    pitch; splits stay disjoint in family; the English pools are as they were."""
    engines = {"espeak": synth.open_espeak("lib")}
    families, extra = synth.voice_pool(engines, seed=1, language="de")
    assert len(families) >= 30 and not extra and all(len(voices) == 1 for _, _, voices in families)
    counts = [("train", 24), ("valid", 3), ("test", 6)]
    splits = synth.split_voices(families, extra, counts, seed=1)
    fam = {k: {v.family for v in vs} for k, vs in splits.items()}
    assert {k: len(v) for k, v in splits.items()} == dict(counts)
    assert not (fam["train"] & fam["test"]) and not (fam["valid"] & fam["test"]) and not (fam["train"] & fam["valid"])
    assert all(v.name.startswith("de+") and v.spk.startswith("esp_de_") for vs in splits.values() for v in vs)
    assert synth.voice_pool(engines, seed=1) == synth.voice_pool(engines, seed=1, language="en")
    x = synth.render("Guten Morgen, wie geht es Ihnen?", splits["test"][0])
    assert x.dtype == np.float32 and 0.8 < x.shape[0] / synth.TARGET_RATE < 5.0 and np.abs(x).max() > 0.05
    with pytest.raises(synth.SynthError, match="unknown language 'fr'"):
        synth.voice_pool(engines, language="fr")


def test_german_phonemes_are_what_espeak_says(tmp_path):
    """synth.py phonemes: espeak-ng's German phoneme names per utterance (what the German speech of
    the ST recipe says: digits spoken as words), stress and pause marks dropped, vowel length kept."""
    text = tmp_path / "text"
    text.write_text("u1 Ich danke Ihnen, Herr Präsident.\nu2 Das war 1999.\n", encoding="utf-8")
    out = subprocess.run([sys.executable, str(LOCAL / "synth.py"), "--espeak_backend", "lib", "phonemes", "--in", str(text),
                          "--out", str(tmp_path / "text.phn")], check=True, capture_output=True, text=True).stdout
    assert "2 utterances" in out
    phn = dict(line.split(" ", 1) for line in (tmp_path / "text.phn").read_text(encoding="utf-8").splitlines())
    assert phn["u1"].startswith("I C d a N k @ i: n @ n h E r")  # "Ich danke Ihnen, Herr"
    assert "t aU z @ n t" in phn["u2"]  # 1999 as spoken: "tausend neunhundert..."
    symbols = {s for line in phn.values() for s in line.split()}
    assert not any(c in s for s in symbols for c in "'_,!|") and ":" not in symbols
    assert synth.phoneme_symbols("_!'aI_n _:_: h_'E_r") == ["aI", "n", "h", "E", "r"]
