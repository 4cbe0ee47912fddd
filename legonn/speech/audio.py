"""Read an utterance's waveform from a Kaldi ``wav.scp`` entry (plus optional ``segments``).

``wav.scp`` values (Kaldi "rxfilenames"):

* a plain path: ``rec /data/a.wav`` (anything libsndfile reads: ``.wav``, ``.flac``,
  NIST SPHERE ``.sph`` with PCM or mu-law samples, ...);
* a command whose standard output is a WAV stream: ``rec sph2pipe -f wav -p -c 1 a.sph |``.
  It runs under ``bash -o pipefail``; if it fails, the :class:`LegonnError` names the
  utterance, the command, its exit status and the last lines of its stderr, so the cause
  reaches the main log instead of hiding in a per-job log;
* a Kaldi wave archive entry ``rec wav.ark:1234`` (read with kaldiio).

Channels.  A multi-channel recording is mixed down to mono, unless a channel is chosen.
The Kaldi way to choose one is a ``sph2pipe -f wav -p -c N FILE |`` entry (N counts from 1;
Switchboard conversation sides are channels 1 and 2).  When ``sph2pipe`` is not installed,
such an entry is emulated in-process: the file is read with libsndfile and channel N (and
``-t``/``-s`` ranges) taken from the command, with a one-time log note.  (libsndfile does
not read LDC's shorten-compressed SPHERE files; those need the real ``sph2pipe``.)

Speed perturbation.  ``legonn datadir speed_perturb`` writes Kaldi's own form
(as ``utils/perturb_data_dir_speed.sh`` does)::

    sp0.9-rec sox -t wav /data/a.wav -t wav - speed 0.9 |
    sp0.9-rec sph2pipe -f wav -p -c 1 a.sph | sox -t wav - -t wav - speed 0.9 |

Any Kaldi tool can read these through ``sox``; this module recognises the trailing
``sox ... speed F |`` and applies the speed change itself (no ``sox`` needed, same result
everywhere): resampling by ``1/F``, so tempo and pitch change together, like ``sox speed``.

All resampling (to 16 kHz, speed changes) is libsoxr's (:func:`resample`, the ``soxr`` package).

``python -m legonn.speech.audio 'WAV.SCP VALUE' > out.wav`` writes what the reader sees (16-bit).
"""
from __future__ import annotations

import argparse
import io
import logging
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional

import numpy as np

from legonn.errors import LegonnError
from legonn.speech.datadir import read_segments, read_wav_scp
from legonn.speech.wavscp import WavEntry, parse_wav_entry

log = logging.getLogger(__name__)

TARGET_RATE = 16000
MAX_SEGMENT_OVERSHOOT = 0.5  # seconds a segment may run past the end of its recording (Kaldi's default)

_noted: set[str] = set()


def _soundfile():
    try:
        import soundfile
    except ImportError:
        raise LegonnError("reading audio needs the 'soundfile' package: pip install 'legonn[speech]'") from None
    return soundfile


def _note_once(key: str, msg: str, *args) -> None:
    if key not in _noted:
        _noted.add(key)
        log.info(msg, *args)


# --------------------------------------------------------------------------- conversions


def to_float32(x: np.ndarray) -> np.ndarray:
    """Integer PCM (int16/int32/uint8) or float samples -> float32 in [-1, 1]."""
    x = np.asarray(x)
    if x.dtype == np.int16:
        return x.astype(np.float32) / 32768.0
    if x.dtype == np.int32:
        return (x.astype(np.float64) / 2147483648.0).astype(np.float32)
    if x.dtype == np.uint8:  # 8-bit WAV is unsigned
        return (x.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(x.dtype, np.floating):
        return x.astype(np.float32, copy=False)
    raise TypeError(f"unsupported sample type {x.dtype}")


def to_int16(x: np.ndarray) -> np.ndarray:
    """float samples in [-1, 1] -> int16 (rounded, clipped); int16 passes through."""
    x = np.asarray(x)
    if x.dtype == np.int16:
        return x
    x = to_float32(x)
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def wav_bytes(x: np.ndarray, rate: int) -> bytes:
    """16-bit PCM WAV file contents of ``x`` (1-D mono or (T, C))."""
    sf = _soundfile()

    buf = io.BytesIO()
    sf.write(buf, to_int16(x), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


# --------------------------------------------------------------------------- resampling


def _soxr():
    try:
        import soxr
    except ImportError:
        raise LegonnError("resampling audio needs the 'soxr' package: pip install 'legonn[speech]'") from None
    return soxr


def resample(x: np.ndarray, orig_rate: float | Fraction, new_rate: float | Fraction) -> np.ndarray:
    """Band-limited resampling along axis 0 with libsoxr (1-D or (T, C) float input; float32 out).

    The output has ``ceil(len * new_rate / orig_rate)`` samples.
    """
    x = to_float32(x)
    ratio = Fraction(new_rate) / Fraction(orig_rate)
    if ratio <= 0:
        raise ValueError(f"bad resampling ratio {new_rate}/{orig_rate}")
    if ratio == 1:
        return x.copy()
    out_len = math.ceil(x.shape[0] * ratio)
    # soxr returns ceil(len * ratio) or one sample less: a little silence after the end (the
    # samples a filter sees there anyway) makes it at least out_len, then it is cut to that
    pad = np.zeros((math.ceil(2 / ratio),) + x.shape[1:], np.float32)
    y = _soxr().resample(np.concatenate([x, pad]), float(orig_rate), float(new_rate), quality="HQ")
    return y[:out_len]


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Speed up by ``factor`` like ``sox speed``: tempo and pitch together; length / factor."""
    if factor == 1.0:
        return to_float32(x)
    return resample(x, Fraction(str(factor)).limit_denominator(1000), 1)


def _convert(x: np.ndarray, rate: int, speed: float, target: int) -> np.ndarray:
    """Apply speed (at the native rate) and resample to ``target``, in one pass."""
    speed_f = Fraction(str(speed)).limit_denominator(1000)
    if Fraction(target) == Fraction(rate) * speed_f:
        return to_float32(x)
    return resample(x, rate * speed_f, target)


# --------------------------------------------------------------------------- reading


def _unreadable(utt: str, path: str, exc: BaseException) -> LegonnError:
    hint = ""
    if path.lower().endswith((".sph", ".nist")):
        hint = (
            " (libsndfile reads SPHERE PCM and mu-law only; a shorten-compressed LDC file needs "
            "sph2pipe: write the wav.scp entry as 'sph2pipe -f wav -p -c 1 FILE |')"
        )
    return LegonnError(f"utterance '{utt}': cannot read audio file {path}: {exc}{hint}")


def _read_file(path: str, utt: str, start: Optional[float], end: Optional[float], byte_source=None):
    """(float32 (T, C), rate) of ``path`` (or file-like ``byte_source``), optionally the [start, end) part."""
    sf = _soundfile()

    if byte_source is None and not os.path.isfile(path):
        raise LegonnError(f"utterance '{utt}': audio file {path} not found")
    try:
        with sf.SoundFile(byte_source if byte_source is not None else path) as f:
            rate, total = f.samplerate, f.frames
            if byte_source is None:
                _check_truncated(f, path, utt)
            a, b = _sample_range(rate, total, start, end, utt, path)
            if a:
                f.seek(a)
            data = f.read(b - a, dtype="float32", always_2d=True)
    except LegonnError:
        raise
    except Exception as exc:  # noqa: BLE001 - libsndfile raises several types for corrupt data
        raise _unreadable(utt, path, exc) from None
    if data.shape[0] < b - a:
        raise LegonnError(
            f"utterance '{utt}': audio file {path} is truncated: its header promises {total} samples "
            f"but samples {a + data.shape[0]}..{b} could not be read"
        )
    return data, rate


_DATA_SIZE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.M)


def _check_truncated(f, path: str, utt: str) -> None:
    """libsndfile quietly shortens a WAV whose data chunk is cut off; Kaldi refuses it, so do we.

    (Streamed WAVs, e.g. from sox to a pipe, carry a placeholder size and are not flagged.)
    """
    m = _DATA_SIZE.search(getattr(f, "extra_info", "") or "")
    if m:
        promised, actual = int(m.group(1)), int(m.group(2))
        if actual < promised < 0x7F000000:
            raise LegonnError(
                f"utterance '{utt}': audio file {path} is truncated: its header promises {promised} bytes "
                f"of samples but only {actual} are there"
            )


def _sample_range(rate: int, total: int, start, end, utt: str, path: str) -> tuple[int, int]:
    a = 0 if start is None else int(round(start * rate))
    b = total if end is None else int(round(end * rate))
    if start is not None and a >= total:
        raise LegonnError(
            f"utterance '{utt}': segment starts at {start:.2f} s but {path} is only {total / rate:.2f} s long"
        )
    if b > total:
        over = (b - total) / rate
        if end is not None and over > MAX_SEGMENT_OVERSHOOT:
            raise LegonnError(
                f"utterance '{utt}': segment ends at {end:.2f} s, {over:.2f} s past the end of {path} "
                f"({total / rate:.2f} s long)"
            )
        b = total
    return a, b


def _shell() -> list[str]:
    bash = shutil.which("bash")
    return [bash, "-o", "pipefail", "-c"] if bash else ["/bin/sh", "-c"]


def run_pipe(command: str, utt: str, tail: int = 5) -> bytes:
    """Run a wav.scp command and return its stdout; a failure raises with exit code and stderr tail."""
    try:
        proc = subprocess.run([*_shell(), command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    except OSError as exc:
        raise LegonnError(f"utterance '{utt}': cannot run wav.scp command `{command} |`: {exc}") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        last = " / ".join(line.strip() for line in err[-tail:] if line.strip()) or "(no stderr output)"
        raise LegonnError(
            f"utterance '{utt}': wav.scp command failed with exit code {proc.returncode}: "
            f"`{command} |`; its stderr ends: {last}"
        )
    if not proc.stdout:
        raise LegonnError(f"utterance '{utt}': wav.scp command `{command} |` wrote no audio to stdout")
    return proc.stdout


def sphere_header(path: str | os.PathLike) -> dict[str, str]:
    """The fields of a NIST SPHERE header ({'sample_rate': '8000', 'sample_coding': 'ulaw', ...}),
    read without the samples: recipes use it to list channels, durations and codings (LDC's
    shorten-compressed files, 'pcm,embedded-shorten-v2.00', need sph2pipe)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
            if not head.startswith(b"NIST_1A"):
                raise LegonnError(f"{path}: not a NIST SPHERE file (no NIST_1A header)")
            size = int(head.split(b"\n", 2)[1].strip())
            if size > len(head):
                head += f.read(size - len(head))
    except (OSError, ValueError, IndexError) as exc:
        raise LegonnError(f"{path}: cannot read its SPHERE header ({exc})") from None
    fields = {}
    for line in head[:size].decode("latin-1").splitlines()[2:]:
        parts = line.split(None, 2)
        if parts and parts[0] == "end_head":
            break
        if len(parts) == 3:
            fields[parts[0]] = parts[2].strip()
    for key in ("sample_count", "sample_rate"):
        if not fields.get(key, "").isdigit():
            raise LegonnError(f"{path}: SPHERE header has no valid {key}")
    return fields


def _sph2pipe_args(command: str) -> Optional[dict]:
    """The file/channel/range of a lone ``sph2pipe`` command, or None if it is something else."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not words or os.path.basename(words[0]) != "sph2pipe" or any(w in ("|", ";", "&&", ">") for w in words):
        return None
    opts: dict = {"channel": None, "range": None, "file": None}
    i, positional = 1, []
    while i < len(words):
        w = words[i]
        if w in ("-p", "-u"):  # force PCM / mu-law output: libsndfile always gives us linear samples
            i += 1
        elif w in ("-f", "-c", "-t", "-s", "-h") and i + 1 < len(words):
            val = words[i + 1]
            if w == "-c":
                if val not in ("1", "2"):
                    return None
                opts["channel"] = int(val) - 1
            elif w in ("-t", "-s"):
                beg, _, fin = val.partition(":")
                try:
                    opts["range"] = (w, float(beg) if beg else None, float(fin) if fin else None)
                except ValueError:
                    return None
            elif w == "-h":
                return None  # external header: not emulated
            i += 2
        elif w.startswith("-") and len(w) > 1:
            return None
        else:
            positional.append(w)
            i += 1
    if len(positional) != 1:  # an output file argument means it does not write to stdout
        return None
    opts["file"] = positional[0]
    opts["program"] = words[0]
    return opts


def read_entry(value: str, *, utt: str = "?", start: Optional[float] = None, end: Optional[float] = None):
    """Raw samples of a ``wav.scp`` value: (float32 (T, C), rate), before speed/resampling.

    ``start``/``end`` (seconds) cut a segment, in the timeline of the *unperturbed* audio.
    """
    entry = parse_wav_entry(value)
    return _read_parsed(entry, utt, start, end)


def _read_parsed(entry: WavEntry, utt: str, start, end):
    if entry.kind == "file":
        return _read_file(entry.source, utt, start, end)
    if entry.kind == "ark":
        import kaldiio

        try:
            rate, data = kaldiio.load_mat(f"{entry.source}:{entry.offset}")
        except Exception as exc:  # noqa: BLE001
            raise LegonnError(f"utterance '{utt}': cannot read {entry.source}:{entry.offset}: {exc}") from None
        data = to_float32(np.asarray(data))
        data = data[:, None] if data.ndim == 1 else data
        a, b = _sample_range(rate, data.shape[0], start, end, utt, entry.source)
        return data[a:b], int(rate)
    # pipe
    command = entry.source
    sph = _sph2pipe_args(command)
    if sph is not None and shutil.which(sph["program"]) is None:
        _note_once(
            "sph2pipe",
            "sph2pipe is not installed: reading SPHERE files directly with libsndfile, taking the "
            "channel and range from the sph2pipe command (first: %s)",
            command,
        )
        data, rate = _read_file(sph["file"], utt, None, None)
        if sph["channel"] is not None:
            if sph["channel"] >= data.shape[1]:
                raise LegonnError(
                    f"utterance '{utt}': `{command}` asks for channel {sph['channel'] + 1} "
                    f"but {sph['file']} has {data.shape[1]}"
                )
            data = data[:, sph["channel"] : sph["channel"] + 1]
        if sph["range"] is not None:
            unit, beg, fin = sph["range"]
            scale = rate if unit == "-t" else 1
            a = 0 if beg is None else int(round(beg * scale))
            b = data.shape[0] if fin is None else int(round(fin * scale))
            data = data[a:b]
        a, b = _sample_range(rate, data.shape[0], start, end, utt, sph["file"])
        return data[a:b], rate
    out = run_pipe(command, utt)
    return _read_file(f"output of `{command} |`", utt, start, end, byte_source=io.BytesIO(out))


def mix(data: np.ndarray, channel: Optional[int] = None, *, utt: str = "?") -> np.ndarray:
    """(T, C) -> (T,): channel ``channel`` (0-based), or the mean of all channels."""
    if data.ndim == 1:
        return data
    if channel is not None:
        if channel >= data.shape[1]:
            raise LegonnError(f"utterance '{utt}': channel {channel} requested but the audio has {data.shape[1]}")
        return data[:, channel]
    if data.shape[1] > 1:
        _note_once("mixdown", "mixing %d-channel audio down to mono (first: utterance '%s')", data.shape[1], utt)
    return data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]


def read_audio(value: str, **options: Any) -> np.ndarray:
    """Mono float32 waveform of a ``wav.scp`` value (``options``: those of :func:`read_audio_native`)."""
    return read_audio_native(value, **options)[0]


def read_audio_native(
    value: str,
    *,
    utt: str = "?",
    start: Optional[float] = None,
    end: Optional[float] = None,
    rate: int = TARGET_RATE,
    speed: float = 1.0,
    channel: Optional[int] = None,
) -> tuple[np.ndarray, int]:
    """Mono float32 waveform of a ``wav.scp`` value at ``rate``, speed changes applied, and the
    sample rate the audio itself declares.

    ``start``/``end`` are segment times in the timeline of the entry as written (i.e. of the
    perturbed audio for a speed-perturbed entry).  ``speed`` multiplies the entry's own factor.
    """
    entry = parse_wav_entry(value)
    total_speed = entry.speed * speed
    s = None if start is None else start * total_speed
    e = None if end is None else end * total_speed
    data, native = _read_parsed(entry, utt, s, e)
    x = mix(data, channel, utt=utt)
    return _convert(x, native, total_speed, rate), native


def narrowband(wave: np.ndarray, rate: int, cutoff: float = 4600.0, floor_db: float = -40.0) -> bool:
    """Whether ``wave`` (at ``rate``) holds no energy above ``cutoff`` Hz: its share of the power
    spectrum is below ``floor_db``. 8 kHz speech stored as 16 kHz looks like this (nothing above
    its 4 kHz Nyquist band; the cutoff leaves room for a resampler's roll-off, which lets through
    about -40 dB at 4.4 kHz); wideband speech has fricatives far above it (-10 to -20 dB)."""
    if rate <= 2 * cutoff or wave.size < rate // 4:
        return False
    power = np.abs(np.fft.rfft(wave.astype(np.float64))) ** 2
    total = power.sum()
    if total <= 0:
        return False
    high = power[int(len(power) * cutoff / (rate / 2)):].sum()
    return 10 * np.log10(max(high / total, 1e-30)) < floor_db


class AudioReader:
    """The utterances of a data dir (``wav.scp`` + optional ``segments``) as 16 kHz mono float32."""

    def __init__(self, data_dir: str | os.PathLike, rate: int = TARGET_RATE, speed: float = 1.0, channel: Optional[int] = None):
        self.dir = Path(data_dir)
        self.rate, self.speed, self.channel = rate, speed, channel
        self.wav = read_wav_scp(self.dir / "wav.scp")
        seg_path = self.dir / "segments"
        self.segments = read_segments(seg_path) if seg_path.is_file() else None
        if self.segments is not None:
            unknown = [(u, r) for u, (r, _, _) in self.segments.items() if r not in self.wav]
            if unknown:
                u, r = unknown[0]
                raise LegonnError(f"{seg_path}: utterance '{u}' refers to recording '{r}', which is not in wav.scp")
        self.utts = sorted(self.segments if self.segments is not None else self.wav, key=lambda k: k.encode("utf-8", "surrogateescape"))
        self._cache: tuple[str, np.ndarray, int] | None = None  # last piped recording

    def __len__(self) -> int:
        return len(self.utts)

    def read(self, utt: str) -> np.ndarray:
        return self.read_native(utt)[0]

    def read_native(self, utt: str) -> tuple[np.ndarray, int]:
        """The utterance at ``self.rate``, and the sample rate its audio declares."""
        if self.segments is None:
            if utt not in self.wav:
                raise LegonnError(f"{self.dir}: no wav.scp entry for utterance '{utt}'")
            return read_audio_native(self.wav[utt], utt=utt, rate=self.rate, speed=self.speed, channel=self.channel)
        if utt not in self.segments:
            raise LegonnError(f"{self.dir}: no segments entry for utterance '{utt}'")
        rec, start, end = self.segments[utt]
        value = self.wav[rec]
        entry = parse_wav_entry(value)
        if entry.kind != "pipe":  # files seek to the segment; no need to cache
            return read_audio_native(value, utt=utt, start=start, end=end, rate=self.rate, speed=self.speed, channel=self.channel)
        # a command produces the whole recording: run it once for all of its segments
        if self._cache is None or self._cache[0] != value:
            self._cache = None
            data, native = _read_parsed(entry, utt, None, None)
            self._cache = (value, data, native)
        _, data, native = self._cache
        total_speed = entry.speed * self.speed
        a, b = _sample_range(native, data.shape[0], start * total_speed, end * total_speed, utt, f"recording '{rec}'")
        x = mix(data[a:b], self.channel, utt=utt)
        return _convert(x, native, total_speed, self.rate), native


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m legonn.speech.audio", description="Write a wav.scp entry's audio as 16-bit WAV to stdout.")
    p.add_argument("value", help="a wav.scp value: a path, or 'command |'")
    p.add_argument("--rate", type=int, default=TARGET_RATE)
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--channel", type=int, default=None, help="0-based channel (default: mix down)")
    p.add_argument("--start", type=float)
    p.add_argument("--end", type=float)
    args = p.parse_args(argv)
    try:
        x = read_audio(args.value, utt="-", start=args.start, end=args.end, rate=args.rate, speed=args.speed, channel=args.channel)
    except LegonnError as exc:
        print(f"legonn.speech.audio: error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(wav_bytes(x, args.rate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
