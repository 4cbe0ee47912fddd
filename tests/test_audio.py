"""Reading wav.scp entries (legonn/speech/audio.py): files, SPHERE, pipes, segments, resampling, speed."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from legonn.speech import audio as A
from legonn.speech import wavscp as W
from legonn.errors import LegonnError


def write_sphere(path: Path, payload: bytes, *, rate: int, channels: int, count: int, coding: str, nbytes: int) -> None:
    fields = [
        "database_id -s7 testing",
        f"sample_count -i {count}",
        f"channel_count -i {channels}",
        f"sample_rate -i {rate}",
        f"sample_n_bytes -i {nbytes}",
        f"sample_coding -s{len(coding)} {coding}",
    ]
    if coding == "pcm":
        fields.append("sample_byte_format -s2 01")
    header = ("NIST_1A\n   1024\n" + "\n".join(fields) + "\nend_head\n").encode("ascii")
    assert len(header) <= 1024
    path.write_bytes(header.ljust(1024, b" ") + payload)


def lin2ulaw(x: np.ndarray) -> np.ndarray:
    """G.711 mu-law encoding of int16 samples."""
    x = x.astype(np.int32)
    sign = (x < 0).astype(np.int32)
    mag = np.minimum(np.abs(x), 32635) + 0x84
    exp = np.floor(np.log2(mag)).astype(np.int32) - 7
    mant = (mag >> (exp + 3)) & 0x0F
    return (~((sign << 7) | (exp << 4) | mant) & 0xFF).astype(np.uint8)


def ulaw2lin(u: np.ndarray) -> np.ndarray:
    u = ~u.astype(np.int32) & 0xFF
    mag = ((((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 7)) - 0x84
    return np.where(u & 0x80, -mag, mag).astype(np.int16)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * rate / len(x))


def sine(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture
def stereo_sph(tmp_path):
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((800, 2)) * 3000).astype(np.int16)
    data[:, 1] //= 4  # tell the channels apart
    path = tmp_path / "conv.sph"
    write_sphere(path, data.astype("<i2").tobytes(), rate=8000, channels=2, count=800, coding="pcm", nbytes=2)
    return path, data


def test_sphere_pcm_two_channels(stereo_sph):
    path, data = stereo_sph
    raw, rate = A.read_entry(str(path))
    assert rate == 8000 and raw.shape == (800, 2)
    np.testing.assert_array_equal(A.to_int16(raw), data)
    mono = A.read_audio(str(path), rate=8000)  # no channel chosen: mixed down
    np.testing.assert_allclose(mono, data.astype(np.float32).mean(1) / 32768, atol=1e-6)
    assert len(A.read_audio(str(path))) == 1600  # resampled to 16 kHz


def test_sphere_header_fields_and_errors(stereo_sph, tmp_path):
    path, _ = stereo_sph
    fields = A.sphere_header(path)
    assert (fields["sample_rate"], fields["channel_count"], fields["sample_count"]) == ("8000", "2", "800")
    assert fields["sample_coding"] == "pcm"
    not_sph = tmp_path / "x.sph"
    not_sph.write_bytes(b"RIFF....WAVEfmt ")
    with pytest.raises(LegonnError, match=r"x.sph: not a NIST SPHERE file"):
        A.sphere_header(not_sph)
    with pytest.raises(LegonnError, match=r"missing.sph: cannot read its SPHERE header"):
        A.sphere_header(tmp_path / "missing.sph")


def test_sph2pipe_entry_selects_channel(stereo_sph, monkeypatch):
    path, data = stereo_sph
    real_which = shutil.which  # pretend sph2pipe is not installed: read the file in-process
    monkeypatch.setattr(A.shutil, "which", lambda name: None if "sph2pipe" in name else real_which(name))
    for ch in (1, 2):
        x = A.read_audio(f"sph2pipe -f wav -p -c {ch} {path} |", utt="sw1", rate=8000)
        np.testing.assert_array_equal(A.to_int16(x), data[:, ch - 1])
    x = A.read_audio(f"/opt/kaldi/tools/sph2pipe -f wav -p -c 2 -t 0.01:0.05 {path} |", rate=8000)
    np.testing.assert_array_equal(A.to_int16(x), data[80:400, 1])
    with pytest.raises(LegonnError, match="channel 2 .* has 1"):
        mono = path.parent / "mono.sph"
        write_sphere(mono, data[:, 0].astype("<i2").tobytes(), rate=8000, channels=1, count=800, coding="pcm", nbytes=2)
        A.read_audio(f"sph2pipe -f wav -p -c 2 {mono} |")


def test_sphere_ulaw(tmp_path):
    pcm = (sine(440, 8000, 0.1) * 20000).astype(np.int16)
    codes = lin2ulaw(pcm)
    path = tmp_path / "u.sph"
    write_sphere(path, codes.tobytes(), rate=8000, channels=1, count=len(codes), coding="ulaw", nbytes=1)
    x = A.read_audio(str(path), rate=8000)
    np.testing.assert_array_equal(A.to_int16(x), ulaw2lin(codes))
    assert np.abs(A.to_int16(x).astype(int) - pcm).max() < 700  # mu-law quantisation


def test_pipe_entry(tmp_path):
    x = sine(300, 16000, 0.2)
    sf.write(tmp_path / "a.wav", A.to_int16(x), 16000)
    y = A.read_audio(f"cat {tmp_path / 'a.wav'} |", utt="u1")
    np.testing.assert_allclose(y, x, atol=1 / 32768)


def test_failing_pipe_reports_command_exit_code_and_stderr(tmp_path):
    value = "sh -c 'echo first line >&2; echo codec exploded on frame 7 >&2; exit 3' |"
    with pytest.raises(LegonnError) as err:
        A.read_audio(value, utt="utt42")
    msg = str(err.value)
    assert "utterance 'utt42'" in msg and "exit code 3" in msg and "codec exploded on frame 7" in msg
    assert "sh -c" in msg
    # pipefail: a failing first stage is not hidden by a succeeding last one
    with pytest.raises(LegonnError, match="exit code 1.*No such file"):
        A.read_audio(f"cat {tmp_path}/missing.wav | cat |", utt="u")
    with pytest.raises(LegonnError, match="not readable|cannot read audio"):
        A.read_audio("echo this is not audio |", utt="u")


def test_corrupt_and_truncated_files(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(LegonnError, match=f"utterance 'u7': cannot read audio file {bad}"):
        A.read_audio(str(bad), utt="u7")
    good = tmp_path / "good.wav"
    sf.write(good, np.zeros(8000, np.int16), 16000)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(LegonnError, match="u8.*cut.wav"):
        A.read_audio(str(cut), utt="u8")
    with pytest.raises(LegonnError, match="u9.*not found"):
        A.read_audio(str(tmp_path / "nope.wav"), utt="u9")


def test_segments_cut_by_time(tmp_path):
    ramp = (np.arange(32000) % 30000).astype(np.int16)
    rec = tmp_path / "rec.wav"
    sf.write(rec, ramp, 16000)
    d = tmp_path / "data"
    d.mkdir()
    (d / "wav.scp").write_text(f"r1 {rec}\nr2 cat {rec} |\n")
    (d / "segments").write_text("a r1 0.5 1.0\nb r1 1.25 2.0\nc r2 0.5 1.0\nd r2 0 0.25\n")
    reader = A.AudioReader(d)
    assert reader.utts == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(A.to_int16(reader.read("a")), ramp[8000:16000])
    np.testing.assert_array_equal(A.to_int16(reader.read("b")), ramp[20000:32000])
    np.testing.assert_array_equal(A.to_int16(reader.read("c")), ramp[8000:16000])  # piped: cut after
    np.testing.assert_array_equal(A.to_int16(reader.read("d")), ramp[:4000])
    (d / "segments").write_text("a r1 0.5 3.0\n")  # 1 s past the end
    with pytest.raises(LegonnError, match="'a'.*past the end"):
        A.AudioReader(d).read("a")


def test_resample_8k_to_16k_keeps_frequency_and_length():
    x = sine(1000, 8000, 0.5)
    y = A.resample(x, 8000, 16000)
    assert len(y) == 2 * len(x)
    assert abs(peak_hz(y, 16000) - 1000) <= 2
    # the band-limited interpolation puts no image at 8000 - 1000 Hz
    spec = np.abs(np.fft.rfft(y[400:-400]))
    f = np.fft.rfftfreq(len(y) - 800, 1 / 16000)
    assert spec[np.abs(f - 7000) < 50].max() < 1e-3 * spec.max()
    # and it is the sine itself, away from the edges
    t = np.arange(len(y)) / 16000
    np.testing.assert_allclose(y[200:-200], 0.5 * np.sin(2 * np.pi * 1000 * t[200:-200]), atol=2e-3)


def test_resample_down_and_stereo():
    x = np.stack([sine(440, 44100, 0.2), sine(880, 44100, 0.2)], axis=1)
    y = A.resample(x, 44100, 16000)
    assert y.shape == (3200, 2)
    assert abs(peak_hz(y[:, 0], 16000) - 440) <= 5 and abs(peak_hz(y[:, 1], 16000) - 880) <= 5


# Outputs of the numpy Kaiser-sinc resampler legonn.speech.audio had before it called libsoxr (made
# once at commit be393f1): the input is a 3000-sample chirp (50 Hz -> 6 kHz at 22050 Hz) plus
# noise low-passed to 6 kHz, so every case below stays inside both filters' passband.
OLD_RESAMPLER = Path(__file__).parent / "data" / "resample_old.npz"


def snr_db(ref: np.ndarray, y: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ref.astype(np.float64) - y) ** 2)))


@pytest.mark.parametrize("key, call", [
    ("r22050_16000", lambda x: A.resample(x, 22050, 16000)),
    ("r8000_16000", lambda x: A.resample(x, 8000, 16000)),
    ("speed0_9", lambda x: A.change_speed(x, 0.9)),
    ("speed1_1", lambda x: A.change_speed(x, 1.1)),
])
def test_resample_agrees_with_the_old_resampler(key, call):
    """Same length; measured with soxr 1.1 (HQ): SNR 56.7-63.7 dB over the whole output (max
    |diff| 7.5e-3; the filters' transition bands differ, which shows at the abrupt start and
    end), 80.6-97.9 dB 64 samples away from the edges (max |diff| 9e-4)."""
    ref = np.load(OLD_RESAMPLER)
    y = call(ref["x"])
    assert y.dtype == np.float32 and y.shape == ref[key].shape
    assert snr_db(ref[key], y) > 50
    assert snr_db(ref[key][64:-64], y[64:-64]) > 75


def test_speed_changes_tempo_and_pitch(tmp_path):
    x = sine(1000, 16000, 0.5)
    path = tmp_path / "a.wav"
    sf.write(path, A.to_int16(x), 16000)
    for factor in (0.9, 1.1):
        value = W.speed_entry(str(path), factor)
        assert value == f"sox -t wav {path} -t wav - speed {factor} |"
        y = A.read_audio(value)  # applied in-process, sox not needed
        assert abs(len(y) - len(x) / factor) <= 1
        assert abs(peak_hz(y, 16000) - 1000 * factor) <= 3
    piped = W.speed_entry(f"cat {path} |", 0.9)
    assert piped == f"cat {path} | sox -t wav - -t wav - speed 0.9 |"
    assert W.parse_wav_entry(piped) == W.WavEntry("pipe", f"cat {path}", 0.9)
    np.testing.assert_allclose(A.read_audio(piped), A.read_audio(W.speed_entry(str(path), 0.9)), atol=1e-6)


def test_parse_entries_and_conversions():
    assert W.parse_wav_entry("/a b.wav") == W.WavEntry("file", "/a b.wav")
    assert W.parse_wav_entry("sox 'a b.flac' -t wav - speed 1.1 |") == W.WavEntry("file", "a b.flac", 1.1)
    assert W.parse_wav_entry("sox a.wav -t wav - remix 1 |").kind == "pipe"  # not a speed change: run it
    assert W.parse_wav_entry("x.ark:123") == W.WavEntry("ark", "x.ark", 1.0, 123)
    assert W.entry_files("sph2pipe -f wav -p -c 1 /d/sw0001.sph |") == ["/d/sw0001.sph"]
    i16 = np.array([-32768, -1, 0, 1, 32767], np.int16)
    np.testing.assert_array_equal(A.to_int16(A.to_float32(i16)), i16)
    assert A.to_float32(np.array([0, 255], np.uint8)).tolist() == [-1.0, 127 / 128]
    assert A.to_int16(np.array([2.0, -2.0], np.float32)).tolist() == [32767, -32768]
    np.testing.assert_allclose(A.to_float32(np.array([2**30], np.int32)), [0.5])


def test_wav_bytes_and_module_main(tmp_path, capsysbinary):
    x = sine(500, 16000, 0.1)
    path = tmp_path / "a.wav"
    path.write_bytes(A.wav_bytes(x, 16000))
    assert A.main([str(path), "--speed", "1.1"]) == 0
    out = capsysbinary.readouterr().out
    y, rate = sf.read(io.BytesIO(out), dtype="float32")
    assert rate == 16000 and abs(len(y) - len(x) / 1.1) <= 1
