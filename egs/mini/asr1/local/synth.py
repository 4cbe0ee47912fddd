#!/usr/bin/env python3
"""Synthesise English (or German) sentences as 16 kHz mono 16-bit WAV with many voices ("speakers").

Engines, in order of preference (``--engines auto``):

* ``espeak``: espeak-ng.  Backend ``lib`` (the primary path, needs only PyPI): libespeak-ng and
  its data from the ``espeakng-loader`` wheel (the ``speech`` extra), driven through ctypes in
  synchronous mode with a callback that collects the samples.  Backend ``cli``: the ``espeak-ng``
  program, when installed.  espeak-ng renders at 22050 Hz; ``legonn.speech.audio.resample`` (libsoxr)
  brings that to 16 kHz.  Voices: 8 English accents x ~30 voice variants, each speaker with its own rate
  (140-190 wpm) and pitch (30-70).
* ``flite``: the ``flite`` program's 16 kHz voices (awb, rms, slt, kal16), if installed.
* ``festival``: ``text2wave`` with every voice ``(voice.list)`` reports, if any is installed.

flite and festival are optional: when missing they are skipped with a log line.

Subcommands::

  synth.py voices --split train:40,valid:4,test:8 --out_dir data/local [--engines auto] [--seed 1] [--pool asr]
      [--language en|de]
      writes OUT_DIR/voices.<split>: "spk engine voice rate pitch family" lines.  Splits are
      disjoint in voice *family* (an espeak variant such as m3 or f2, or a flite/festival
      voice), not only in speaker, so test voices have timbres no training voice has.
      Extra-engine (flite/festival) voices all go to the first split (training).
      --pool pron draws from a second set of espeak variants, disjoint from the first: the
      speakers of the second English domain (the pronunciation model's corpus).
  synth.py synth --text SENTS --voices VOICES --wav_dir DIR --data_dir DIR [--nj N]
      SENTS: "sent_id sentence" lines.  Sentences are dealt round-robin to the voices; utterance
      ids are "<spk>-<sent_id>", so sorting keeps a speaker's utterances together.  Writes
      DIR/<spk>/<utt>.wav and the Kaldi data dir: wav.scp, text, utt2spk, spk2utt, utt2dur and
      spk2voice (spk engine voice rate pitch family).
  synth.py phonemes --in DIR/text --out DIR/text.phn [--language de]
      espeak-ng's phoneme names for each utterance (stress and pauses dropped), by the rules of
      the language's voice: the transcripts a phoneme recogniser learns from.
  synth.py say "Some text" out.wav [--voice en-us+f3] [--rate 160] [--pitch 50]
"""
from __future__ import annotations

import argparse
import ctypes
import io
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from legonn.speech.audio import resample

log = logging.getLogger("synth")

TARGET_RATE = 16000
# espeak-ng English accents (voice files lang/gmw/*, names case-insensitive; "en" is British English).
ACCENTS = ["en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc"]
# The accents of each language a corpus can be spoken in: espeak-ng 1.52 has one German voice
# (lang/gmw/de), so German speakers differ by voice variant, rate and pitch only.
LANGUAGES = {"en": ACCENTS, "de": ["de"]}
# espeak-ng voice variants (voices/!v/*) that sound like plain human speakers: no whisper,
# echo-heavy, robot or child voices.  Present in espeak-ng 1.51 (Debian 12) and 1.52 (the wheel).
MALE_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "klatt", "klatt2", "klatt3", "adam", "benjamin",
                 "david", "edward", "Andy", "Gene", "Mario", "Michael", "antonio", "gustave", "norbert", "quincy",
                 "rob", "robert", "victor", "john", "max", "paul"]
FEMALE_VARIANTS = ["f1", "f2", "f3", "f4", "f5", "Andrea", "Annie", "belinda", "linda", "steph", "shelby", "aunty"]
# A second pool, disjoint from the first, for the speakers of the second English domain (the
# pronunciation model's corpus, data/pron_*): other espeak-ng 1.52 variants, chosen by the same
# rule (no whisper, echo, child, elderly-tremor or robot/effect variants; none that sets its own
# language) and measured on one test sentence at rate 160: speaking time, median spectral
# flatness, centroid and periodicity all within the first pool's range (3.6-4.6 s, 0.008-0.28,
# 490-1780 Hz, 0.25-0.80), except anika's periodicity (0.83). Only 3 such female variants exist.
PRON_MALE_VARIANTS = ["Alex", "Denis", "Diogo", "Hugo", "Lee", "Mike", "boris", "edward2", "iven3", "klatt4",
                      "klatt6", "marcelo", "michel", "miguel", "mike2", "pedro", "travis", "Gene2"]
PRON_FEMALE_VARIANTS = ["steph2", "steph3", "anika"]
POOLS = {"asr": (MALE_VARIANTS, FEMALE_VARIANTS), "pron": (PRON_MALE_VARIANTS, PRON_FEMALE_VARIANTS)}
RATE_RANGE = (140, 190)   # words per minute
PITCH_RANGE = (30, 70)    # espeak 0-99, 50 = the variant's own
FLITE_VOICES = ["awb", "rms", "slt", "kal16"]  # the 16 kHz ones (kal is 8 kHz, awb_time a clock-only voice)


# espeak_TextToPhonemes' phonememode: ASCII phoneme names, bits 8-23 = the separator between them.
PHONEME_SEPARATOR = ord("_") << 8
# espeak's stress marks (' , ! before a vowel) and pauses (_: _| between words): no sounds of their own.
STRESS = "',!%="
PAUSE = set(":|")


class SynthError(RuntimeError):
    pass


@dataclass(frozen=True)
class Voice:
    spk: str      # speaker id
    engine: str   # espeak | flite | festival
    name: str     # espeak "en-us+m3", flite "slt", festival "kal_diphone"
    rate: int     # words per minute
    pitch: int    # espeak pitch 0-99 (50 = neutral); ignored by flite/festival
    family: str   # the timbre the splits are disjoint in

    def line(self) -> str:
        return f"{self.spk} {self.engine} {self.name} {self.rate} {self.pitch} {self.family}"

    @classmethod
    def parse(cls, line: str) -> "Voice":
        f = line.split()
        if len(f) != 6:
            raise SynthError(f"bad voice line (want: spk engine voice rate pitch family): {line.strip()!r}")
        return cls(f[0], f[1], f[2], int(f[3]), int(f[4]), f[5])


def read_voices(path: str) -> list[Voice]:
    with open(path, encoding="utf-8") as f:
        voices = [Voice.parse(line) for line in f if line.strip() and not line.startswith("#")]
    if not voices:
        raise SynthError(f"{path}: no voices")
    return voices


# --------------------------------------------------------------------------- espeak-ng


class EspeakLib:
    """libespeak-ng from the espeakng-loader wheel, via ctypes, synchronous mode."""

    backend = "lib"
    AUDIO_OUTPUT_SYNCHRONOUS = 2
    POS_CHARACTER = 1
    CHARS_UTF8 = 1
    RATE, PITCH = 1, 3

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError:
            raise SynthError("the espeakng-loader package is not installed (pip install espeakng-loader, "
                             "part of legonn's 'speech' extra)") from None
        lib_path, self.data_path = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
        try:
            lib = ctypes.CDLL(lib_path)
        except OSError as exc:
            raise SynthError(f"cannot load {lib_path}: {exc}") from None
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        self.rate = lib.espeak_Initialize(self.AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data_path.encode(), 0)
        if self.rate <= 0:
            raise SynthError(f"espeak_Initialize failed for data at {self.data_path}")
        self.version = (lib.espeak_Info(None) or b"?").decode()
        self._chunks: list[np.ndarray] = []
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

        def collect(wav, n, _events):
            if n > 0 and wav:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0  # 0 = continue

        self._callback = callback_type(collect)  # keep a reference: the library calls it later
        lib.espeak_SetSynthCallback(self._callback)
        self.lib = lib

    def has_variant(self, variant: str) -> bool:
        return (Path(self.data_path) / "voices" / "!v" / variant).is_file()

    def reseed(self, seed: int) -> None:
        """Seed the noise generators (espeak-ng's own, and libc rand() which older versions use)."""
        if hasattr(self.lib, "espeak_ng_SetRandSeed"):
            self.lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
        try:
            ctypes.CDLL(None).srand(ctypes.c_uint(seed))
        except (OSError, AttributeError):
            pass

    def synth(self, text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, int]:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise SynthError(f"espeak-ng has no voice '{voice}'")
        self.lib.espeak_SetParameter(self.RATE, rate, 0)
        self.lib.espeak_SetParameter(self.PITCH, pitch, 0)
        self._chunks = []
        data = text.encode("utf-8")
        err = self.lib.espeak_Synth(data, len(data) + 1, 0, self.POS_CHARACTER, 0, self.CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        if err != 0:
            raise SynthError(f"espeak_Synth failed (error {err}) for voice '{voice}'")
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return samples.astype(np.int16, copy=False), self.rate

    def phonemes(self, text: str, voice: str) -> str:
        """espeak's phoneme names for ``text``, '_' between the phonemes of a word (clause by clause)."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise SynthError(f"espeak-ng has no voice '{voice}'")
        buf = ctypes.c_char_p(text.encode("utf-8"))
        clauses = []
        while buf.value:
            clauses.append((self.lib.espeak_TextToPhonemes(ctypes.byref(buf), self.CHARS_UTF8, PHONEME_SEPARATOR) or b"").decode())
        return " ".join(clauses)


class EspeakCli:
    """The espeak-ng program (Debian package espeak-ng), WAV on stdout."""

    backend = "cli"

    def __init__(self):
        self.exe = shutil.which("espeak-ng")
        if not self.exe:
            raise SynthError("the espeak-ng program is not installed")
        out = subprocess.run([self.exe, "--version"], capture_output=True, text=True, check=False).stdout
        m = re.search(r"Data at:\s*(\S+)", out)
        self.data_path = m.group(1) if m else ""
        m = re.search(r"text-to-speech:\s*(\S+)", out)
        self.version = m.group(1) if m else "?"

    def has_variant(self, variant: str) -> bool:
        return not self.data_path or (Path(self.data_path) / "voices" / "!v" / variant).is_file()

    def synth(self, text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, int]:
        proc = subprocess.run([self.exe, "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout"],
                              input=text.encode("utf-8"), capture_output=True, check=False)
        if proc.returncode != 0 or not proc.stdout:
            raise SynthError(f"espeak-ng -v {voice} failed: {proc.stderr.decode(errors='replace').strip()}")
        return _read_wav_bytes(proc.stdout)

    def phonemes(self, text: str, voice: str) -> str:
        proc = subprocess.run([self.exe, "-q", "-x", "--sep=_", "-v", voice], input=text.encode("utf-8"),
                              capture_output=True, check=False)
        if proc.returncode != 0:
            raise SynthError(f"espeak-ng -x -v {voice} failed: {proc.stderr.decode(errors='replace').strip()}")
        return " ".join(proc.stdout.decode().split())


def phoneme_symbols(espeak_phonemes: str) -> list[str]:
    """The phoneme symbols of espeak's output: stress marks and pauses dropped, word boundaries too
    (a recogniser hears neither reliably; the BPE module above it finds the words)."""
    out = []
    for word in espeak_phonemes.split():
        for sym in word.split("_"):
            sym = sym.lstrip(STRESS)
            if sym and not set(sym) <= PAUSE:
                out.append(sym)
    return out


def _read_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    import soundfile as sf

    # espeak-ng --stdout writes a streaming header (size 0x7fffffff); soundfile copes with that.
    x, rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=True)
    return x.mean(axis=1).astype(np.int16) if x.shape[1] > 1 else x[:, 0], rate


def open_espeak(backend: str = "auto"):
    """An espeak-ng backend: 'lib' (espeakng-loader wheel), 'cli' (espeak-ng program) or 'auto'."""
    errors = []
    for name, cls in (("lib", EspeakLib), ("cli", EspeakCli)):
        if backend not in ("auto", name):
            continue
        try:
            return cls()
        except SynthError as exc:
            errors.append(f"{name}: {exc}")
    raise SynthError("no espeak-ng available (" + "; ".join(errors) + "). Install the PyPI wheel: "
                     "pip install espeakng-loader (legonn's 'speech' extra, installed by `make install`)")


# --------------------------------------------------------------------------- flite / festival


class Flite:
    def __init__(self):
        self.exe = shutil.which("flite")
        if not self.exe:
            raise SynthError("flite is not installed")
        out = subprocess.run([self.exe, "-lv"], capture_output=True, text=True, check=False).stdout
        have = set(out.split(":", 1)[-1].split())
        self.voices = [v for v in FLITE_VOICES if v in have]

    def synth(self, text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, int]:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out.wav")
            proc = subprocess.run([self.exe, "-voice", voice, "--setf", f"duration_stretch={175 / rate:.3f}",
                                   "-t", text, "-o", out], capture_output=True, check=False)
            if proc.returncode != 0 or not os.path.isfile(out):
                raise SynthError(f"flite -voice {voice} failed: {proc.stderr.decode(errors='replace').strip()}")
            return _read_wav_bytes(Path(out).read_bytes())


class Festival:
    def __init__(self):
        self.festival, self.text2wave = shutil.which("festival"), shutil.which("text2wave")
        if not (self.festival and self.text2wave):
            raise SynthError("festival/text2wave is not installed")
        proc = subprocess.run([self.festival, "--pipe"], input="(print (voice.list))\n", capture_output=True,
                              text=True, check=False, timeout=60)
        m = re.findall(r"\(([^()]*)\)\s*$", proc.stdout.strip())
        self.voices = [v for v in (m[-1].split() if m else []) if re.fullmatch(r"[A-Za-z0-9_]+", v)]

    def synth(self, text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, int]:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out.wav")
            ev = f"(begin (voice_{voice}) (Parameter.set 'Duration_Stretch {175 / rate:.3f}))"
            proc = subprocess.run([self.text2wave, "-eval", ev, "-o", out], input=text.encode("utf-8"),
                                  capture_output=True, check=False)
            if proc.returncode != 0 or not os.path.isfile(out):
                raise SynthError(f"festival voice {voice} failed: {proc.stderr.decode(errors='replace').strip()}")
            return _read_wav_bytes(Path(out).read_bytes())


# --------------------------------------------------------------------------- voices


def _spk_id(engine: str, accent: str, family: str, rate: int, pitch: int) -> str:
    # Fixed structure (no id is a prefix of another), so utt ids "<spk>-<sent>" sort like spk ids.
    acc = "engb" if accent == "en" else accent.replace("-", "")
    return f"{engine[:3]}_{acc}_{family.split(':', 1)[1].lower()}_{rate:03d}_{pitch:02d}"


def available_engines(engines: str, espeak_backend: str = "auto") -> dict[str, object]:
    """{engine: instance} for the requested engines ('auto' = espeak + whatever else is installed)."""
    wanted = ["espeak", "flite", "festival"] if engines == "auto" else [e.strip() for e in engines.split(",") if e.strip()]
    unknown = set(wanted) - {"espeak", "flite", "festival"}
    if unknown:
        raise SynthError(f"unknown engine(s) {', '.join(sorted(unknown))} (known: espeak, flite, festival)")
    found: dict[str, object] = {}
    for name in wanted:
        try:
            if name == "espeak":
                found[name] = open_espeak(espeak_backend)
            elif name == "flite":
                found[name] = Flite()
            else:
                found[name] = Festival()
        except (SynthError, OSError, subprocess.SubprocessError) as exc:
            if name == "espeak" or engines != "auto":
                raise SynthError(str(exc)) from None
            log.info("optional engine %s skipped: %s", name, exc)
            continue
        if name in ("flite", "festival") and not found[name].voices:
            log.info("optional engine %s skipped: no usable voices installed", name)
            del found[name]
    return found


def voice_pool(engines: dict[str, object], seed: int = 1, pool: str = "asr",
               language: str = "en") -> tuple[list[tuple[str, str, list[Voice]]], list[Voice]]:
    """Families of espeak voices [(family, gender, voices)] and the extra-engine voices.

    Every (accent, variant) pair is a speaker with its own rate and pitch, drawn from a seeded
    RNG in a fixed order, so the pool does not depend on which other engines are installed.
    ``pool``: "asr" (the ASR corpus's voices; flite/festival voices join it) or "pron" (the
    second domain's: other variants, espeak only, drawn from their own RNG so that adding them
    left the "asr" pool exactly as it was). ``language``: a key of LANGUAGES; the flite and
    festival voices are English, so they join English pools only, and another language's draws
    come from an RNG of its own (the English pools stay as they were).
    """
    if pool not in POOLS:
        raise SynthError(f"unknown voice pool '{pool}' (known: {', '.join(POOLS)})")
    if language not in LANGUAGES:
        raise SynthError(f"unknown language '{language}' (known: {', '.join(LANGUAGES)})")
    accents = LANGUAGES[language]
    rng = random.Random((seed if pool == "asr" else f"{seed}/{pool}") if language == "en" else f"{seed}/{pool}/{language}")
    families = []
    espeak = engines.get("espeak")
    male, female = POOLS[pool]
    for gender, variants in (("m", male), ("f", female)):
        for variant in variants:
            draws = [(rng.randint(*RATE_RANGE), rng.randint(*PITCH_RANGE)) for _ in accents]
            if espeak is not None and not espeak.has_variant(variant):
                log.info("espeak-ng %s has no variant '%s'; left out", espeak.version, variant)
                continue
            family = f"espeak:{variant}"
            voices = [Voice(_spk_id("espeak", acc, family, r, p), "espeak", f"{acc}+{variant}", r, p, family)
                      for acc, (r, p) in zip(accents, draws)]
            families.append((family, gender, voices))
    extra = []
    for engine in ("flite", "festival") if pool == "asr" and language == "en" else ():
        if engine in engines:
            for name in engines[engine].voices:
                r = rng.randint(*RATE_RANGE)
                family = f"{engine}:{name}"
                extra.append(Voice(_spk_id(engine, "def", family, r, 50), engine, name, r, 50, family))
    return families, extra


def split_voices(families, extra: list[Voice], counts: list[tuple[str, int]], seed: int = 1) -> dict[str, list[Voice]]:
    """Deal voice families to the splits (last split first: test, valid, then train), then draw each
    split's speakers from its families, alternating genders; extra-engine voices join the first split."""
    rng = random.Random(seed)
    by_gender = {g: [f for f in families if f[1] == g] for g in ("m", "f")}
    for fams in by_gender.values():
        rng.shuffle(fams)
    n_acc = len(families[0][2]) if families else 1  # speakers per family: one per accent of the language
    out: dict[str, list[Voice]] = {}
    for idx, (split, n) in enumerate(reversed(counts)):
        first = idx == len(counts) - 1  # the training split takes every family left
        if first:
            mine = by_gender["m"] + by_gender["f"]
            by_gender = {"m": [], "f": []}
        else:
            # enough families for n speakers at 2 accents per family (1 in a one-accent language),
            # half of them female, at least one of each
            k = max(2, -(-n // min(2, n_acc)))
            k_f = min(len(by_gender["f"]) - 1, max(1, k // 2)) if len(by_gender["f"]) > 1 else 0
            k_m = min(len(by_gender["m"]) - 1, max(1, k - k_f))
            mine = by_gender["f"][:k_f] + by_gender["m"][:k_m]
            by_gender = {"m": by_gender["m"][k_m:], "f": by_gender["f"][k_f:]}
        if not mine:
            raise SynthError(f"no voice families left for split '{split}'")
        # interleave genders, then take speakers accent by accent so a split spans accents and families
        fam_f = [f for f in mine if f[1] == "f"]
        fam_m = [f for f in mine if f[1] == "m"]
        order = []
        while fam_f or fam_m:
            for lst in (fam_f, fam_m):
                if lst:
                    order.append(lst.pop(0))
        candidates = []
        accent_order = list(range(n_acc))
        for round_ in range(n_acc):
            for j, (_, _, voices) in enumerate(order):
                candidates.append(voices[accent_order[(j + round_ * 3) % n_acc]])
        if n > len(candidates):
            raise SynthError(f"split '{split}' wants {n} voices but its {len(mine)} families give {len(candidates)}")
        out[split] = candidates[:n]
    first_split = counts[0][0]
    out[first_split] = out[first_split] + extra
    return {split: sorted(out[split], key=lambda v: v.spk) for split, _ in counts}


# --------------------------------------------------------------------------- synthesis


_ENGINES: dict[str, object] = {}
_BACKEND = "auto"


def _engine(name: str):
    if name not in _ENGINES:
        _ENGINES[name] = open_espeak(_BACKEND) if name == "espeak" else Flite() if name == "flite" else Festival()
    return _ENGINES[name]


def _init_worker(backend: str) -> None:
    global _BACKEND
    _BACKEND = backend
    _ENGINES.clear()


def render(text: str, voice: Voice) -> np.ndarray:
    """16 kHz float32 mono samples of ``text`` spoken by ``voice``."""
    samples, rate = _engine(voice.engine).synth(text, voice.name, voice.rate, voice.pitch)
    if samples.size == 0:
        raise SynthError(f"{voice.engine} voice {voice.name} produced no audio for {text!r}")
    x = samples.astype(np.float32) / 32768.0
    return resample(x, rate, TARGET_RATE) if rate != TARGET_RATE else x


def _job(item: tuple[str, str, Voice, str]) -> tuple[str, int]:
    import soundfile as sf

    utt, text, voice, path = item
    x = render(text, voice)
    tmp = f"{path}.tmp{os.getpid()}.wav"
    sf.write(tmp, np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16), TARGET_RATE, subtype="PCM_16")
    os.replace(tmp, path)
    return utt, int(x.shape[0])


def _speaker_job(args: tuple[str, int, list]) -> list[tuple[str, int]]:
    """One speaker's utterances, in order, in a fresh worker process.

    espeak-ng keeps state between utterances (pitch-flutter phase, noise generators, waveform
    phase), so the same sentence comes out a few samples different depending on what was spoken
    before.  A fresh process per speaker (forked from a parent that never synthesised, or spawned)
    with seeded generators makes every wav depend only on its speaker's list: the same for any --nj.
    """
    global _BACKEND
    backend, seed, items = args
    _BACKEND = backend
    for engine in sorted({voice.engine for _, _, voice, _ in items}):
        if hasattr(_engine(engine), "reseed"):
            _engine(engine).reseed(seed)
    return [_job(item) for item in items]


def read_sentences(path: str) -> list[tuple[str, str]]:
    rows, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            sid, _, text = line.rstrip("\n").partition(" ")
            if not text.strip():
                raise SynthError(f"{path}:{n}: expected 'sent_id sentence'")
            if sid in seen:
                raise SynthError(f"{path}:{n}: sentence id '{sid}' appears twice")
            seen.add(sid)
            rows.append((sid, text.strip()))
    if not rows:
        raise SynthError(f"{path}: no sentences")
    return rows


def write_table(path: Path, rows: list[tuple[str, str]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(f"{k} {v}\n" for k, v in rows), encoding="utf-8")
    os.replace(tmp, path)


def synthesise(sentences: list[tuple[str, str]], voices: list[Voice], wav_dir: str, data_dir: str, nj: int = 1,
               backend: str = "auto", seed: int = 1, progress: Optional[bool] = None) -> dict:
    """Speak every sentence once (voices dealt round-robin in a seeded order); write wavs + data dir."""
    from tqdm import tqdm

    wav_root, data = Path(wav_dir), Path(data_dir)  # wav.scp keeps wav_dir as given (relative stays relative)
    data.mkdir(parents=True, exist_ok=True)
    order = list(voices)
    random.Random(seed).shuffle(order)
    items = []
    for i, (sid, text) in enumerate(sentences):
        voice = order[i % len(order)]
        utt = f"{voice.spk}-{sid}"
        (wav_root / voice.spk).mkdir(parents=True, exist_ok=True)
        items.append((utt, text, voice, str(wav_root / voice.spk / f"{utt}.wav")))
    # open the engines here first, so a missing engine fails once, clearly
    _init_worker(backend)
    for engine in sorted({v.engine for v in voices}):
        _engine(engine)
    t0 = time.time()
    lengths: dict[str, int] = {}
    bar = tqdm(total=len(items), desc=f"synth {data.name}", unit="utt", file=sys.stderr,
               disable=(not sys.stderr.isatty()) if progress is None else not progress)
    jobs: dict[str, list] = {}
    for item in items:
        jobs.setdefault(item[2].spk, []).append(item)
    import multiprocessing as mp

    # forkserver: every worker is forked from a pristine server process (cheap, and nothing it
    # inherits has spoken); where there is none (Windows), spawn: a fresh interpreter each time
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["numpy", "soundfile"])
    else:
        ctx = mp.get_context("spawn")
    with ctx.Pool(max(1, min(nj, len(jobs))), maxtasksperchild=1) as pool:
        for done in pool.imap_unordered(_speaker_job, [(backend, seed, job) for job in jobs.values()]):
            lengths.update(done)
            bar.update(len(done))
    bar.close()
    elapsed = time.time() - t0
    items.sort(key=lambda it: it[0])
    write_table(data / "wav.scp", [(utt, path) for utt, _, _, path in items])
    write_table(data / "text", [(utt, text) for utt, text, _, _ in items])
    write_table(data / "utt2spk", [(utt, v.spk) for utt, _, v, _ in items])
    write_table(data / "utt2dur", [(utt, f"{lengths[utt] / TARGET_RATE:.3f}") for utt, _, _, _ in items])
    spk2utt: dict[str, list[str]] = {}
    for utt, _, v, _ in items:
        spk2utt.setdefault(v.spk, []).append(utt)
    write_table(data / "spk2utt", [(spk, " ".join(utts)) for spk, utts in sorted(spk2utt.items())])
    used = sorted({v for _, _, v, _ in items}, key=lambda v: v.spk)
    write_table(data / "spk2voice", [(v.spk, v.line().split(" ", 1)[1]) for v in used])
    seconds = sum(lengths.values()) / TARGET_RATE
    engine_desc = ", ".join(f"{name} ({getattr(e, 'backend', name)} {getattr(e, 'version', '')})".replace(" )", ")")
                            for name, e in sorted(_ENGINES.items()))
    return {"utterances": len(items), "speakers": len(spk2utt), "audio_seconds": seconds, "wall_seconds": elapsed,
            "engines": engine_desc}


def phonemize(text_file: str, out_file: str, voice: str, backend: str = "auto") -> None:
    """Phonemes of every line of a Kaldi text file by espeak-ng's rules for ``voice`` (what the
    synthesised speech says, numbers and abbreviations expanded as spoken); temp name, then rename."""
    espeak = open_espeak(backend)
    rows = []
    for utt, text in read_sentences(text_file):
        symbols = phoneme_symbols(espeak.phonemes(text, voice))
        if not symbols:
            raise SynthError(f"{text_file}: espeak-ng has no phonemes for utterance '{utt}'")
        rows.append((utt, " ".join(symbols)))
    write_table(Path(out_file), rows)
    print(f"{out_file}: {len(rows)} utterances, {len({s for _, line in rows for s in line.split()})} phonemes ({voice})")


# --------------------------------------------------------------------------- command line


def _counts(text: str) -> list[tuple[str, int]]:
    out = []
    for part in text.split(","):
        name, _, n = part.partition(":")
        if not name or not n.isdigit() or int(n) < 1:
            raise SynthError(f"--split: expected name:count[,name:count...], got {text!r}")
        out.append((name.strip(), int(n)))
    return out


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--espeak_backend", choices=("auto", "lib", "cli"), default="auto",
                   help="espeak-ng through the espeakng-loader wheel (lib) or the espeak-ng program (cli)")
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("voices", help="make the voice pool and split it")
    v.add_argument("--split", required=True, help="name:count,... e.g. train:40,valid:4,test:8 (first = training)")
    v.add_argument("--out_dir", required=True)
    v.add_argument("--engines", default="auto", help="auto (espeak + flite/festival if installed) or a list, e.g. espeak")
    v.add_argument("--seed", type=int, default=1)
    v.add_argument("--pool", choices=sorted(POOLS), default="asr",
                   help="asr: the ASR corpus's voices; pron: the disjoint voices of the second English domain")
    v.add_argument("--language", choices=sorted(LANGUAGES), default="en",
                   help="the language the voices speak (espeak-ng's accents of it; flite/festival: English only)")
    s = sub.add_parser("synth", help="synthesise sentences into wavs + a Kaldi data dir")
    s.add_argument("--text", required=True, help="'sent_id sentence' lines")
    s.add_argument("--voices", required=True, help="voice list from the 'voices' subcommand")
    s.add_argument("--wav_dir", required=True)
    s.add_argument("--data_dir", required=True)
    s.add_argument("--nj", type=int, default=1)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--progress", choices=("auto", "true", "false"), default="auto")
    ph = sub.add_parser("phonemes", help="phoneme transcripts of a Kaldi text file, as espeak-ng speaks them")
    ph.add_argument("--in", dest="inp", required=True, help="'utt_id sentence' lines (a data dir's text)")
    ph.add_argument("--out", required=True, help="'utt_id phoneme phoneme ...' lines (espeak's phoneme names)")
    ph.add_argument("--language", choices=sorted(LANGUAGES), default="de",
                    help="the espeak voice whose pronunciation rules are used (the language's first accent)")
    y = sub.add_parser("say", help="one sentence to one wav (for listening)")
    y.add_argument("text")
    y.add_argument("out")
    y.add_argument("--engine", default="espeak")
    y.add_argument("--voice", default="en-us+m3")
    y.add_argument("--rate", type=int, default=160)
    y.add_argument("--pitch", type=int, default=50)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="synth.py: %(message)s", stream=sys.stderr)
    try:
        if args.cmd == "voices":
            engines = available_engines(args.engines, args.espeak_backend)
            families, extra = voice_pool(engines, args.seed, args.pool, args.language)
            splits = split_voices(families, extra, _counts(args.split), args.seed)
            out = Path(args.out_dir)
            out.mkdir(parents=True, exist_ok=True)
            for split, voices in splits.items():
                (out / f"voices.{split}").write_text("".join(v.line() + "\n" for v in voices), encoding="utf-8")
                fams = sorted({v.family for v in voices})
                print(f"{out}/voices.{split}: {len(voices)} speakers from {len(fams)} voice families")
            es = engines["espeak"]
            print(f"engines: espeak-ng {es.version} ({es.backend})"
                  + "".join(f", {e} ({len(engines[e].voices)} voices)" for e in ("flite", "festival") if e in engines))
        elif args.cmd == "synth":
            progress = None if args.progress == "auto" else args.progress == "true"
            r = synthesise(read_sentences(args.text), read_voices(args.voices), args.wav_dir, args.data_dir,
                           nj=args.nj, backend=args.espeak_backend, seed=args.seed, progress=progress)
            print(f"{args.data_dir}: {r['utterances']} utterances, {r['speakers']} speakers, "
                  f"{r['audio_seconds'] / 3600:.2f} h of audio in {r['wall_seconds']:.1f} s "
                  f"({100 * r['wall_seconds'] / r['utterances']:.2f} s per 100 utterances, nj={args.nj}); "
                  f"engines: {r['engines']}")
        elif args.cmd == "phonemes":
            phonemize(args.inp, args.out, LANGUAGES[args.language][0], args.espeak_backend)
        else:
            import soundfile as sf

            _init_worker(args.espeak_backend)
            voice = Voice("say", args.engine, args.voice, args.rate, args.pitch, f"{args.engine}:{args.voice}")
            x = render(args.text, voice)
            sf.write(args.out, x, TARGET_RATE, subtype="PCM_16")
            print(f"{args.out}: {x.shape[0] / TARGET_RATE:.2f} s")
    except SynthError as exc:
        print(f"synth.py: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
