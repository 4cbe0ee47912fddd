"""Filterbank features (legonn/speech/fbank.py) and the ``legonn features`` command."""

from __future__ import annotations

import math
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf

from legonn import cli
from legonn.speech.audio import resample, to_int16
from legonn.data.dataset import FeatureStream, GlobalCMVN, StreamSpec
from legonn.errors import LegonnError
from legonn.speech.fbank import FbankConfig, compute_fbank, compute_features


def reference_fbank(x16: np.ndarray, rate: int = 16000, num_bins: int = 80, low: float = 20.0) -> np.ndarray:
    """Kaldi's compute-fbank-feats, written out in numpy (snip_edges, no dither, power, natural log)."""
    flen, fshift = int(rate * 0.025), int(rate * 0.010)
    nfft = 1 << (flen - 1).bit_length()
    n_frames = 1 + (len(x16) - flen) // fshift
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(flen) / (flen - 1))) ** 0.85  # povey
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731
    mel_lo, mel_hi = mel(low), mel(rate / 2)
    delta = (mel_hi - mel_lo) / (num_bins + 1)
    fft_mel = mel(np.arange(nfft // 2) * rate / nfft)  # Kaldi uses bins 0 .. nfft/2 - 1
    banks = np.zeros((num_bins, nfft // 2 + 1))
    for b in range(num_bins):
        left, center, right = mel_lo + b * delta, mel_lo + (b + 1) * delta, mel_lo + (b + 2) * delta
        up = (fft_mel - left) / (center - left)
        down = (right - fft_mel) / (right - center)
        w = np.where((fft_mel > left) & (fft_mel < right), np.where(fft_mel <= center, up, down), 0.0)
        banks[b, : nfft // 2] = w
    out = np.zeros((n_frames, num_bins))
    for i in range(n_frames):
        frame = x16[i * fshift : i * fshift + flen].astype(np.float64)
        frame = frame - frame.mean()  # remove DC
        frame = np.concatenate([[frame[0] - 0.97 * frame[0]], frame[1:] - 0.97 * frame[:-1]])  # pre-emphasis
        power = np.abs(np.fft.rfft(frame * window, nfft)) ** 2
        out[i] = np.log(np.maximum(banks @ power, np.finfo(np.float32).eps))
    return out


def test_fbank_matches_numpy_reference():
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 16000
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(8000)
    x16 = to_int16(x.astype(np.float32))
    ours = compute_fbank(x16.astype(np.float32) / 32768.0)
    ref = reference_fbank(x16)
    assert ours.shape == ref.shape == (1 + (8000 - 400) // 160, 80)
    np.testing.assert_allclose(ours, ref, atol=2e-3, rtol=1e-4)


def test_fbank_matches_reference_for_other_bins_and_rate():
    rng = np.random.default_rng(1)
    x16 = (rng.standard_normal(4000) * 2000).astype(np.int16)
    ours = compute_fbank(x16 / 32768.0, FbankConfig(num_mel_bins=40, sample_rate=8000))
    np.testing.assert_allclose(ours, reference_fbank(x16, rate=8000, num_bins=40), atol=2e-3, rtol=1e-4)


def test_fbank_basic_properties():
    t = np.arange(16000) / 16000
    x = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    feats = compute_fbank(x)
    assert feats.dtype == np.float32 and feats.shape == (98, 80)
    mel = lambda f: 1127.0 * math.log(1 + f / 700)  # noqa: E731
    expected_bin = (mel(1000) - mel(20)) / ((mel(8000) - mel(20)) / 81) - 1
    assert abs(int(np.argmax(feats[50])) - expected_bin) <= 1
    assert compute_fbank(np.zeros(300, np.float32)).shape == (0, 80)  # shorter than a frame
    louder = compute_fbank(2 * x)  # log power: doubling the signal adds log(4)
    np.testing.assert_allclose((louder - feats)[:, 5:40].mean(), math.log(4), atol=1e-3)


# --- legonn features ---------------------------------------------------------------------


def make_speech_dir(tmp_path: Path, entries=None) -> Path:
    d = tmp_path / "data" / "train"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    wavs = []
    for i, (u, rate) in enumerate((("u1", 16000), ("u2", 8000), ("u3", 16000))):
        p = tmp_path / f"{u}.wav"
        sf.write(p, (rng.standard_normal(int(rate * (0.3 + 0.1 * i))) * 3000).astype(np.int16), rate)
        wavs.append((u, p))
    lines = entries or [f"u1 {wavs[0][1]}", f"u2 cat {wavs[1][1]} |", f"u3 {wavs[2][1]}"]
    (d / "wav.scp").write_text("\n".join(lines) + "\n")
    (d / "text").write_text("u1 a\nu2 b\nu3 c\n")
    (d / "utt2spk").write_text("u1 s\nu2 s\nu3 s\n")
    (d / "spk2utt").write_text("s u1 u2 u3\n")
    return d


def test_features_end_to_end(tmp_path, capsys):
    d = make_speech_dir(tmp_path)
    assert cli.main(["features", "--data_dir", str(d), "--nj", "2", "--progress", "false"]) == 0
    assert "3 utterance(s)" in capsys.readouterr().out
    assert sorted(p.name for p in (d / "data").iterdir()) == ["feats.1.ark", "feats.2.ark"]
    assert (d / "feat_dim").read_text().strip() == "80"
    frames = dict(line.split() for line in (d / "utt2num_frames").read_text().splitlines())
    assert frames == {"u1": "28", "u2": "38", "u3": "48"}  # u2 (8 kHz) resampled to 16 kHz
    scp = (d / "feats.scp").read_text().splitlines()
    assert [s.split()[0] for s in scp] == ["u1", "u2", "u3"]
    assert all(Path(s.split()[1].rsplit(":", 1)[0]).is_absolute() for s in scp)

    stream = FeatureStream(d, StreamSpec("feats.scp", cmvn=str(d / "cmvn.ark")))
    assert stream.lengths == {"u1": 28, "u2": 38, "u3": 48} and stream.dim() == 80
    raw = {u: kaldiio.load_scp(str(d / "feats.scp"))[u] for u in ("u1", "u2", "u3")}
    wave, rate = sf.read(tmp_path / "u1.wav", dtype="float32")
    np.testing.assert_allclose(raw["u1"], compute_fbank(wave), atol=1e-5)

    stats = kaldiio.load_mat(str(d / "cmvn.ark"))
    assert stats.shape == (2, 81) and stats.dtype == np.float64
    allf = np.concatenate(list(raw.values())).astype(np.float64)
    assert stats[0, -1] == 28 + 38 + 48
    np.testing.assert_allclose(stats[0, :-1], allf.sum(0), rtol=1e-6)
    np.testing.assert_allclose(stats[1, :-1], (allf**2).sum(0), rtol=1e-6)
    normed = np.concatenate([stream.load(u) for u in ("u1", "u2", "u3")])
    np.testing.assert_allclose(normed.mean(0), 0, atol=1e-3)
    np.testing.assert_allclose(normed.std(0), 1, atol=1e-2)
    assert isinstance(stream.cmvn, GlobalCMVN)


def test_features_failing_utterance_stops_cleanly(tmp_path):
    d = make_speech_dir(tmp_path)
    good = (d / "wav.scp").read_text().splitlines()
    (d / "wav.scp").write_text(
        "\n".join([good[0], "u2 sh -c 'echo decoder says disk full >&2; exit 5' |", good[2]]) + "\n"
    )
    with pytest.raises(LegonnError) as err:
        cli.run_command("features", ["--data_dir", str(d), "--nj", "2", "--progress", "false"])
    msg = str(err.value)
    assert "utterance 'u2'" in msg and "exit code 5" in msg and "decoder says disk full" in msg
    assert not (d / "feats.scp").exists() and not (d / "utt2num_frames").exists()
    assert list((d / "data").iterdir()) == []  # no arks, no temp files


def test_features_of_speed_perturbed_dir(tmp_path):
    from legonn.speech import datadir as D

    d = make_speech_dir(tmp_path)
    sp = tmp_path / "data" / "train_sp"
    D.speed_perturb(d, sp, [0.9, 1.0, 1.1])
    assert cli.main(["features", "--data_dir", str(sp), "--nj", "1", "--cmvn", "false", "--progress", "false"]) == 0
    frames = {k: int(v) for k, v in (line.split() for line in (sp / "utt2num_frames").read_text().splitlines())}
    assert len(frames) == 9 and not (sp / "cmvn.ark").exists()
    samples = 16000 * 0.5  # u3: 0.5 s
    for factor, u in ((0.9, "sp0.9-u3"), (1.0, "u3"), (1.1, "sp1.1-u3")):
        assert frames[u] == 1 + (math.ceil(samples / factor) - 400) // 160
    assert D.validate(sp) == []


def test_8khz_speech_labelled_16khz_is_warned(tmp_path, caplog):
    """A 16 kHz header over 8 kHz content (nothing above 4 kHz) is computed as declared, with a
    warning naming an utterance; real 8 kHz files (resampled on purpose) and wideband noise are not."""
    rng = np.random.default_rng(1)
    narrow = resample(rng.standard_normal(8000), 8000, 16000)  # 8 kHz noise upsampled (soxr): band-limited to 4 kHz
    d = tmp_path / "data"
    d.mkdir()
    for name, wave, rate in (("a", narrow, 16000), ("b", rng.standard_normal(16000), 16000), ("c", rng.standard_normal(8000), 8000)):
        sf.write(tmp_path / f"{name}.wav", (wave / np.abs(wave).max() * 3000).astype(np.int16), rate)
    (d / "wav.scp").write_text("".join(f"{u} {tmp_path / u}.wav\n" for u in "abc"))
    with caplog.at_level("WARNING"):
        compute_features(d, progress=False)
    assert "1 utterance(s) have no energy above 4 kHz although their audio declares 16000 Hz or more (e.g. 'a')" in caplog.text
