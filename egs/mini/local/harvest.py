#!/usr/bin/env python3
"""Harvest a small offline corpus of real human translations from Debian packages.

The real WMT corpora cannot be downloaded on the project's machines, but the
Debian archive can be reached, and several Debian packages carry thousands of
human-made translations:

* ``trans-de-en`` -- the Ding / BeoLingus German-English dictionary, whose
  entries contain full example sentences with their English translation;
* ``firefox-esr`` + ``firefox-esr-l10n-{de,ro}`` -- Firefox's English Fluent
  (``.ftl``) and ``.properties`` strings (inside ``omni.ja``) and the German /
  Romanian language packs (``.xpi``), matched by file path + message id;
* gettext catalogues (``usr/share/locale/{de,ro}/LC_MESSAGES/*.mo``) of desktop
  applications: English ``msgid`` -> German / Romanian ``msgstr``.

The catalogues are read with ``polib``, ``fluent.syntax`` and ``jproperties`` (setup.py's
``corpus`` extra, installed by ``make install``).

Stages (``--stage``; ``all`` runs them in order):

``download``  ``apt-get download`` every package of ``local/packages.txt`` into
              ``DOWNLOAD_DIR/debs`` (skipped for packages already there).
``extract``   unpack only the needed files (``dpkg-deb --fsys-tarfile | tar``)
              into ``DOWNLOAD_DIR/extract/PKG``, parse them and write the raw
              pairs ``DOWNLOAD_DIR/raw/{deen,roen}.tsv`` and
              ``DOWNLOAD_DIR/raw/sources.json`` (versions, licences, teams).
``filter``    normalise and filter the raw pairs (one function per rule, see
              ``FILTER_RULES``), de-duplicate; writes
              ``DOWNLOAD_DIR/filtered/{deen,roen}.tsv`` + ``filter_stats.json``.
``split``     deterministic, seeded train/valid/test splits with the
              English-side constraints of :func:`assign_splits`, written to
              ``OUT_DIR`` (``egs/mini/corpus``) with ``STATS.md``,
              ``SOURCES.md`` and ``README.md``.
``domain2``   a second English domain, monolingual: the example sentences of
              WordNet's glosses (package ``wordnet-base``), 4-16 words a TTS
              voice reads as written (the filter of the ASR recipe's
              ``local/data.sh``), disjoint from every split and from
              ``en_heldout.txt``, written to ``OUT_DIR/en_domain2.txt``; adds
              its section to the three documents (see :func:`stage_domain2`).

Run from ``egs/mini``: ``python local/harvest.py --stage all``
(``--stage domain2`` alone reads the committed splits, so it leaves them as they are).
``apt-get update`` must have been run once on the machine (root) before the
download stage.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import logging
import lzma
import random
import re
import shutil
import struct
import subprocess
import sys
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import jproperties
import polib
from fluent.syntax import FluentParser
from fluent.syntax import ast as fluent_ast
from fluent.syntax import serializer as fluent_serializer
from fluent.syntax import visitor as fluent_ast_visitor
from tqdm import tqdm

from legonn.fileio import write_atomic

LOG = logging.getLogger("harvest")

HERE = Path(__file__).resolve().parent  # egs/mini/local
MINI = HERE.parent  # egs/mini
DEFAULT_PACKAGES = HERE / "packages.txt"
DEFAULT_DOWNLOAD_DIR = MINI / "downloads"
DEFAULT_OUT_DIR = MINI / "corpus"

LANGS = ("de", "ro")
PAIRS = {"de": "deen", "ro": "roen"}
KINDS = ("ding", "fluent-en", "fluent-l10n", "gettext")


# =============================================================================
# Package list
# =============================================================================


@dataclass
class PackageSpec:
    name: str
    kind: str
    comment: str = ""


def read_package_list(path: Path) -> List[PackageSpec]:
    """Parse ``packages.txt``: ``PACKAGE KIND  # comment`` (KIND defaults to gettext)."""
    specs: List[PackageSpec] = []
    seen = set()
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        body, _, comment = line.partition("#")
        fields = body.split()
        if not fields:
            continue
        if len(fields) > 2:
            raise ValueError(f"{path}:{lineno}: expected 'PACKAGE [KIND]  # comment', got {line!r}")
        name = fields[0]
        kind = fields[1] if len(fields) == 2 else "gettext"
        if kind not in KINDS:
            raise ValueError(f"{path}:{lineno}: unknown kind {kind!r} (one of {KINDS})")
        if name in seen:
            raise ValueError(f"{path}:{lineno}: package {name} listed twice")
        seen.add(name)
        specs.append(PackageSpec(name, kind, comment.strip()))
    return specs


# =============================================================================
# gettext .mo, Fluent (.ftl) and .properties readers
# =============================================================================


def read_mo(data: bytes) -> Tuple[List[Tuple[Optional[str], str, str]], Dict[str, str]]:
    """The ``(msgctxt, msgid, msgstr)`` triples and the header fields of a binary ``.mo`` file.

    For plural entries only the singular msgid and the first msgstr form are kept; entries
    with an empty translation are skipped.  The charset is the header's (UTF-8 when it names
    none or an unknown one); a catalogue whose strings do not decode in it raises ValueError
    (polib decodes strictly), data that is no .mo file OSError.
    """
    mo = polib.mofile(data)
    out = []
    for e in mo:
        msgstr = e.msgstr_plural.get(0, "") if e.msgid_plural else e.msgstr
        if e.msgid and msgstr:
            out.append((e.msgctxt, e.msgid, msgstr))
    return out, dict(mo.metadata)


def _plain_terms(terms: Dict[str, fluent_ast.Pattern]) -> Dict[str, str]:
    """The terms whose value is plain text (no placeable), as that text."""
    return {name: _ftl_join("".join(e.value for e in pattern.elements))
            for name, pattern in terms.items()
            if all(isinstance(e, fluent_ast.TextElement) for e in pattern.elements)}


def _ftl_join(text: str) -> str:
    """A multi-line pattern as one line: its lines stripped and joined with a space."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


class _InlineText(fluent_ast_visitor.Transformer):
    """Replaces placeables that stand for fixed text: string literals ``{ "x" }`` and simple
    references to plain-text terms ``{ -brand-short-name }`` (also inside select variants).
    Anything else (``{ $var }``, selectors, calls, parametrised terms) stays for the filters."""

    def __init__(self, terms: Dict[str, str]):
        super().__init__()
        self.terms = terms

    def visit_Placeable(self, node):
        expr = node.expression
        # a literal with a \u escape stays: the corpus was built keeping such strings out
        # (they fall to the code filter), and decoding them would add new ones
        if isinstance(expr, fluent_ast.StringLiteral) and "\\u" not in expr.value and "\\U" not in expr.value:
            return fluent_ast.TextElement(expr.parse()["value"])
        if (isinstance(expr, fluent_ast.TermReference) and expr.attribute is None and expr.arguments is None
                and f"-{expr.id.name}" in self.terms):
            return fluent_ast.TextElement(self.terms[f"-{expr.id.name}"])
        return self.generic_visit(node)


def parse_ftl(text: str) -> Dict[str, fluent_ast.Pattern]:
    """The patterns of a Fluent file (parsed with ``fluent.syntax``): ``{"msg-id": pattern,
    "msg-id.attr": pattern, "-term": pattern}``; entries it cannot parse are skipped."""
    out: Dict[str, fluent_ast.Pattern] = {}
    for entry in FluentParser(with_spans=False).parse(text).body:
        if isinstance(entry, (fluent_ast.Message, fluent_ast.Term)):
            name = ("-" if isinstance(entry, fluent_ast.Term) else "") + entry.id.name
            if entry.value is not None:
                out[name] = entry.value
            for attr in entry.attributes:
                out[f"{name}.{attr.id.name}"] = attr.value
    return out


def ftl_text(pattern: fluent_ast.Pattern, terms: Dict[str, str]) -> str:
    """A pattern as one line of text, string literals and plain-text terms (see
    :func:`_plain_terms`) filled in; other placeables stay as Fluent source for the filters."""
    pattern = _InlineText(terms).visit(pattern.clone())
    return _ftl_join("".join(fluent_serializer.serialize_element(e) for e in pattern.elements))


def parse_properties(text: str) -> Dict[str, str]:
    """A Java ``.properties`` file (read with ``jproperties``): its non-empty values by key."""
    props = jproperties.Properties()
    props.load(text, "utf-8")
    return {key: value for key, (value, _meta) in props.items() if value}


def _mozilla_key(name: str, lang_codes: Sequence[str]) -> Tuple[bool, str]:
    """Map an archive member to a language-independent key.

    ``browser/omni.ja: localization/en-US/browser/x.ftl`` and
    ``langpack.xpi: browser/localization/de/browser/x.ftl`` both become
    ``(True, "localization/browser/x.ftl")``.
    """
    parts = name.split("/")
    browser = False
    if parts and parts[0] == "browser":
        browser = True
        parts = parts[1:]
    return browser, "/".join(p for p in parts if p not in lang_codes)


def read_mozilla_archive(data: bytes, lang: str, browser: Optional[bool] = None) -> Dict[Tuple[bool, str, str], str]:
    """All Fluent / .properties strings of a Mozilla zip (omni.ja or langpack .xpi).

    Returns ``{(is_browser, path_key, message_key): value}`` with Fluent term
    references resolved from the archive's own terms.  ``browser`` forces the
    is_browser flag (for ``browser/omni.ja`` whose members lack the prefix).
    """
    codes = {"en-US", lang} if lang == "en-US" else {lang}
    zf = zipfile.ZipFile(io.BytesIO(data))
    ftl: Dict[Tuple[bool, str], Dict[str, str]] = {}
    props: Dict[Tuple[bool, str], Dict[str, str]] = {}
    for name in zf.namelist():
        if not (name.endswith(".ftl") or name.endswith(".properties")):
            continue
        if not any(seg in codes for seg in name.split("/")):
            continue
        is_browser, key = _mozilla_key(name, list(codes))
        if browser is not None:
            is_browser = browser
        text = zf.read(name).decode("utf-8", errors="replace")
        if name.endswith(".ftl"):
            ftl[(is_browser, key)] = parse_ftl(text)
        else:
            props[(is_browser, key)] = parse_properties(text)
    return _resolve_mozilla(ftl, props)


def _resolve_mozilla(ftl, props) -> Dict[Tuple[bool, str, str], str]:
    terms: Dict[str, fluent_ast.Pattern] = {}
    for msgs in ftl.values():
        for k, v in msgs.items():
            if k.startswith("-") and "." not in k:
                terms.setdefault(k, v)
    plain = _plain_terms(terms)
    out: Dict[Tuple[bool, str, str], str] = {}
    for (b, path), msgs in ftl.items():
        for k, v in msgs.items():
            if k.startswith("-"):
                continue
            text = ftl_text(v, plain)
            if text:
                out[(b, path, k)] = text
    for (b, path), msgs in props.items():
        for k, v in msgs.items():
            out[(b, path, k)] = v
    return out


def merge_mozilla(*maps: Dict) -> Dict:
    out: Dict = {}
    for m in maps:
        out.update(m)
    return out


# =============================================================================
# Ding dictionary
# =============================================================================

_DING_ANNOT = re.compile(r"\s*(\{[^{}]*\}|\[[^\[\]]*\]|<[^<>]*>)")
_DING_PLACEHOLDER = re.compile(r"\b(etw|jdn|jdm|jds|jd|sth|sb|sb's)\b\.?", re.I)
_SENT_START = re.compile(r"^[\"'„“‚‘¡¿(]*[A-ZÄÖÜ]")
_SENT_END = re.compile(r"[.!?…][\"'”“’‘)]*$")


def looks_like_sentence(s: str) -> bool:
    """Starts with a capital letter and ends with ``. ! ?`` (quotes allowed around)."""
    s = s.strip()
    return bool(s) and bool(_SENT_START.match(s)) and bool(_SENT_END.search(s))


def _ding_clean(s: str) -> str:
    """Remove ``{..}`` ``[..]`` ``<..>`` annotations; unwrap optional ``(words)``."""
    s = _DING_ANNOT.sub("", s)
    s = re.sub(r"\(([^()]*)\)", r"\1", s)
    s = re.sub(r"\s+([,.!?;:])", r"\1", s)
    return re.sub(r"\s+", " ", s).strip()


def _ding_subalts(alt: str) -> List[str]:
    # sub-alternatives of a sentence example are "Satz eins.; Satz zwei."
    return [p.strip() for p in re.split(r"(?<=[.!?…\"”’])\s*;\s*", alt) if p.strip()]


def parse_ding_line(line: str, stats: Optional[Dict[str, int]] = None) -> List[Tuple[str, str]]:
    """Example-sentence pairs ``(german, english)`` of one ``German :: English`` line.

    The k-th ``|`` alternative of each side is paired only when both sides
    have the same number of alternatives; annotations ``{..}``, ``[..]``,
    ``<..>`` are removed and optional words ``(..)`` unwrapped; only
    alternatives that look like sentences on both sides are kept;
    ``;``-separated sub-alternatives are paired k-th with k-th when their
    counts match, otherwise first with first.  Alternatives with
    placeholders (``etw.``, ``jdn.``, ``sth.``, ``sb.``), word alternatives
    (``help/assist``) or gaps (``…``) are skipped: they are not plain text.
    """
    st = stats if stats is not None else collections.Counter()
    line = line.rstrip("\n")
    if not line or line.startswith("#") or " :: " not in line:
        return []
    st["entries"] += 1
    de, en = line.split(" :: ", 1)
    de_alts = de.split(" | ")
    en_alts = en.split(" | ")
    if len(de_alts) != len(en_alts):
        st["entries_alternative_count_mismatch"] += 1
        return []
    pairs = []
    for d, e in zip(de_alts, en_alts):
        d, e = _ding_clean(d), _ding_clean(e)
        ds, es = _ding_subalts(d), _ding_subalts(e)
        if not ds or not es:
            continue
        cand = list(zip(ds, es)) if len(ds) == len(es) else [(ds[0], es[0])]
        for a, b in cand:
            if not (looks_like_sentence(a) and looks_like_sentence(b)):
                continue  # a word or phrase entry, not an example sentence
            st["example_sentences"] += 1
            if any(_DING_PLACEHOLDER.search(x) or "/" in x or "…" in x or "..." in x for x in (a, b)):
                st["skipped_placeholder_slash_gap"] += 1
                continue
            pairs.append((a, b))
            st["pairs"] += 1
    return pairs


def read_ding(text: str, stats: Optional[Dict[str, int]] = None) -> List[Tuple[str, str]]:
    """All example-sentence pairs of the Ding dictionary file (see :func:`parse_ding_line`)."""
    out = []
    for line in text.splitlines():
        out.extend(parse_ding_line(line, stats))
    return out


# =============================================================================
# Normalisation and filters (one function per rule)
# =============================================================================

CEDILLA_TO_COMMA = str.maketrans({"\u015f": "\u0219", "\u0163": "\u021b", "\u015e": "\u0218", "\u0162": "\u021a"})


def fix_romanian_cedilla(s: str) -> str:
    """ş ţ Ş Ţ (cedilla, U+015F U+0163 U+015E U+0162) -> ș ț Ș Ț (comma below)."""
    return s.translate(CEDILLA_TO_COMMA)


def normalize_whitespace(s: str) -> str:
    """Collapse all whitespace (incl. no-break and zero-width spaces) to single spaces."""
    s = s.replace("\u00ad", "").replace("\u200b", "").replace("\ufeff", "")
    return re.sub(r"\s+", " ", s).strip()


def normalize_text(s: str, lang: str) -> str:
    """Unicode NFC, Romanian comma-below letters, whitespace."""
    s = unicodedata.normalize("NFC", s)
    if lang == "ro":
        s = fix_romanian_cedilla(s)
    return normalize_whitespace(s)


_ACCEL = re.compile(r"(?<![&_~])([_&~])(?=[^\W_])")


def strip_accelerator(s: str) -> Optional[str]:
    """Remove a keyboard-accelerator mark (``_File``, ``&File``, ``Spei_chern``, ``~Open``).

    One mark (``_``, ``&`` or ``~`` directly before a letter/digit) is removed;
    ``&&``/``__`` become a literal character.  Returns ``None`` (drop) when the
    string has several such marks, i.e. it is not a simple label but an
    identifier such as ``file_name_max``.  HTML entities like ``&amp;`` are
    left alone (the markup rule handles them).
    """
    if re.search(r"&(#\d+|#x[0-9a-fA-F]+|[A-Za-z]+);", s):
        return s
    marks = _ACCEL.findall(s)
    if len(marks) > 1:
        return None
    if marks:
        s = _ACCEL.sub("", s, count=1)
    s = s.replace("&&", "&").replace("__", "_")
    return s


_FORMAT_CODE = re.compile(
    r"%(\d+\$)?[-+#0']*(\d+|\*)?(\.(\d+|\*))?(hh|h|ll|l|L|q|j|z|t|I)*[diouxXeEfFgGaAcspnS%]"  # printf
    r"|%\([A-Za-z_][\w]*\)[-+#0 ]*\d*(\.\d+)?[a-zA-Z]"  # python %(name)s
    r"|%[1-9]"  # Qt / Mozilla %1
    r"|\{\s*\$?[A-Za-z0-9_.\-]*\s*\}"  # {name} {0} {} { $var }
    r"|\{\s*[$-]?[A-Za-z][\w-]*\s*(->|\(|\.)"  # Fluent selectors / calls
    r"|\$\{?[A-Za-z0-9_]+\}?"  # $1 ${var} $VAR
    r"|#[1-9]"  # Mozilla plural placeholders #1
    r"|\{\{|\}\}"
)


def has_format_code(s: str) -> bool:
    """printf ``%s %d %1$s %(x)s``, ``{name}``, Fluent ``{ $var }``, ``$1``, ``#1`` ..."""
    return bool(_FORMAT_CODE.search(s))


_URL_EMAIL_PATH = re.compile(
    r"\b(https?|ftp|file|mailto)://"
    r"|\bwww\.[A-Za-z0-9-]+\."
    r"|[\w.+-]+@[\w-]+\.[\w.-]+"
    r"|(^|[\s(\"'])(~?/|\./|\.\./)[\w.-]"  # /usr/bin, ~/Documents, ./foo
    r"|\b[A-Za-z]:\\"  # C:\
    r"|\b[\w-]+\.(txt|png|jpe?g|gif|svg|xml|html?|json|conf|ini|desktop|so|exe|py|sh|ftl|mo|po|deb|rpm|zip|gz|pdf)\b"
)


def has_url_email_path(s: str) -> bool:
    """URLs, e-mail addresses, file-system paths and file names."""
    return bool(_URL_EMAIL_PATH.search(s))


_MARKUP = re.compile(r"</?[A-Za-z][A-Za-z0-9:-]*(\s[^<>]*)?/?>"  # <b> </b> <a href=".."> <br/>
                     r"|&(#\d+|#x[0-9a-fA-F]+|[A-Za-z]+);"  # &amp; &#169;
                     r"|\[/[A-Za-z]+\]")  # BBCode closing tags [/u]


def has_markup(s: str) -> bool:
    """HTML/XML/Pango tags (``<b>``, ``<a href=..>``), entities (``&amp;``), BBCode ``[/u]``."""
    return bool(_MARKUP.search(s))


_CODE = re.compile(
    r"(^|\s)--?[A-Za-z][\w-]*"  # command-line options
    r"|[\\=|]|::|->|=>|\(\)|\[\]"  # code-ish punctuation
    r"|\b[A-Za-z]+_[A-Za-z_]+\b"  # snake_case identifiers
)


_CAMEL = re.compile(r"\b[a-z]{2,}[A-Z][A-Za-z]*\b")  # fooBar (not iPod, vCard, kHz)
CAMEL_CASE_NAMES = {"digiKam", "openSUSE", "macOS"}  # product names, not identifiers


def has_code(s: str) -> bool:
    """Command-line options, identifiers and code-like punctuation (``--help``, ``a=b``, ``fooBar``)."""
    if _CODE.search(s):
        return True
    return any(m.group(0) not in CAMEL_CASE_NAMES for m in _CAMEL.finditer(s))


def has_no_letters(s: str) -> bool:
    """True when the string contains no letter at all."""
    return not any(ch.isalpha() for ch in s)


def _norm_words(s: str) -> List[str]:
    s = unicodedata.normalize("NFKC", s).casefold()
    return re.findall(r"[^\W_]+", s)


def norm_key(s: str) -> str:
    """Comparison key: case-folded words, punctuation and whitespace ignored."""
    return " ".join(_norm_words(s))


def is_identical(src: str, en: str) -> bool:
    """Source equals the English (ignoring case and punctuation): untranslated."""
    return norm_key(src) == norm_key(en)


def english_length_ok(en: str, min_words: int = 3, max_words: int = 40) -> bool:
    """Keep English sides of ``min_words``..``max_words`` whitespace tokens."""
    return min_words <= len(en.split()) <= max_words


def ratio_ok(src: str, en: str, max_ratio: float = 1.5) -> bool:
    """Whitespace-token length ratio at most ``max_ratio`` in both directions."""
    a, b = len(src.split()), len(en.split())
    if a == 0 or b == 0:
        return False
    return max(a / b, b / a) <= max_ratio


_LANG_FEATURES = {
    "de": (
        re.compile(r"[äöüÄÖÜß]|\w\w(ung|ungen|heit|keit|lich|liche|lichen|isch|ische|ieren|iert|schaft)\b"),
        set("der die das den dem des ein eine einen einem einer eines und oder nicht ist sind "
            "wird werden wurde kann können muss soll sie er es wir ihr ich du mit für von zu zum zur "
            "auf aus bei nach über unter vor durch ohne um bitte kein keine keinen diese dieser dieses "
            "wenn dass als auch noch nur schon sich sein haben hat hatte war gibt alle neue neuen "
            "werden datei dateien fenster".split()),
    ),
    "ro": (
        re.compile(r"[ăâîșțĂÂÎȘȚ]|\w\w(ului|ilor|elor|ează|ția|ție|ții|ării|ările|urile|ește)\b"),
        set("și sau nu este sunt fi de la în din pe cu un o unei unui al ale ai lui care ce să se "
            "acest această aceste acesta pentru mai dacă poate fost fișier fișierul fișiere fereastra "
            "toate nou noua".split()),
    ),
}


def has_language_features(src: str, lang: str) -> bool:
    """Target-language looking: typical letters (ä ö ü ß / ă â î ș ț), suffixes or function words."""
    chars, words = _LANG_FEATURES[lang]
    if chars.search(src):
        return True
    return any(w in words for w in _norm_words(src))


def english_overlap(src: str, en: str) -> float:
    """Fraction of source words that also occur (case-folded) in the English side."""
    sw = _norm_words(src)
    if not sw:
        return 1.0
    ew = set(_norm_words(en))
    return sum(w in ew for w in sw) / len(sw)


def language_ok(src: str, en: str, lang: str, max_overlap: float = 0.5) -> bool:
    """Language sanity check for the non-English side.

    Drop when the side shows no German (Romanian) features -- none of the
    language's special letters and none of its common function words -- AND
    at least ``max_overlap`` of its words are words of the English side
    (untranslated or half-translated strings, product names).
    """
    if has_language_features(src, lang):
        return True
    return english_overlap(src, en) < max_overlap


# The filter chain: (name, predicate(src, en, lang) -> True to KEEP).  Each
# pair is counted under the first rule that drops it.  PRE_RULES run before
# the accelerator marks are removed, FILTER_RULES after.
PRE_RULES: List[Tuple[str, Callable[[str, str, str], bool]]] = [
    ("empty", lambda s, e, l: bool(s) and bool(e)),
    ("format_code", lambda s, e, l: not (has_format_code(s) or has_format_code(e))),
    ("url_email_path", lambda s, e, l: not (has_url_email_path(s) or has_url_email_path(e))),
    ("markup", lambda s, e, l: not (has_markup(s) or has_markup(e))),
]
FILTER_RULES: List[Tuple[str, Callable[[str, str, str], bool]]] = [
    ("code", lambda s, e, l: not (has_code(s) or has_code(e))),
    ("no_letters", lambda s, e, l: not (has_no_letters(s) or has_no_letters(e))),
    ("identical", lambda s, e, l: not is_identical(s, e)),
    ("english_length", lambda s, e, l: english_length_ok(e)),
    ("length_ratio", lambda s, e, l: ratio_ok(s, e)),
    ("language", lambda s, e, l: language_ok(s, e, l)),
]
RULE_NAMES = [n for n, _f in PRE_RULES] + ["accelerator"] + [n for n, _f in FILTER_RULES]


def clean_pair(src: str, en: str, lang: str) -> Tuple[Optional[Tuple[str, str]], Optional[str]]:
    """Normalise one pair and run the filter chain.

    Order: :func:`normalize_text`; the rules of ``PRE_RULES`` (on the text as
    it came); :func:`strip_accelerator` (drop as ``accelerator`` if it cannot
    be removed simply); the rules of ``FILTER_RULES``.  Returns
    ``((src, en), None)`` when kept, ``(None, rule_name)`` when dropped.
    """
    src = normalize_text(src, lang)
    en = normalize_text(en, "en")
    for name, keep in PRE_RULES:
        if not keep(src, en, lang):
            return None, name
    s2, e2 = strip_accelerator(src), strip_accelerator(en)
    if s2 is None or e2 is None:
        return None, "accelerator"
    src, en = normalize_whitespace(s2), normalize_whitespace(e2)
    for name, keep in FILTER_RULES:
        if not keep(src, en, lang):
            return None, name
    return (src, en), None


def dedup_pairs(pairs: Iterable[Tuple[str, str, str]], max_per_english: int = 2,
                stats: Optional[Dict[str, Dict[str, int]]] = None) -> List[Tuple[str, str, str]]:
    """De-duplicate ``(src, en, origin)`` pairs, first occurrence wins.

    * ``duplicate``: same normalised (:func:`norm_key`) source + English as a kept pair;
    * ``max_targets_per_english``: the normalised English already has
      ``max_per_english`` different translations.

    Drops are counted in ``stats[origin][reason]`` when ``stats`` is given.
    """
    seen = set()
    per_en: Dict[str, int] = collections.Counter()
    kept = []
    for src, en, origin in pairs:
        ek = norm_key(en)
        k = (norm_key(src), ek)
        if k in seen:
            reason = "duplicate"
        elif per_en[ek] >= max_per_english:
            reason = "max_targets_per_english"
        else:
            seen.add(k)
            per_en[ek] += 1
            kept.append((src, en, origin))
            continue
        if stats is not None:
            stats[origin][reason] += 1
    return kept


def filter_pairs(raw: Iterable[Tuple[str, str, str]], lang: str, max_per_english: int = 2):
    """Normalise + filter (:func:`clean_pair`) + de-duplicate (:func:`dedup_pairs`).

    Returns ``(kept, stats)`` where ``stats[origin][rule]`` counts drops and
    ``stats[origin]["raw"]`` / ``["kept"]`` the totals.
    """
    stats: Dict[str, Dict[str, int]] = collections.defaultdict(collections.Counter)
    cleaned = []
    for src, en, origin in raw:
        stats[origin]["raw"] += 1
        pair, rule = clean_pair(src, en, lang)
        if pair is None:
            stats[origin][rule] += 1
        else:
            cleaned.append((pair[0], pair[1], origin))
    kept = dedup_pairs(cleaned, max_per_english, stats)
    for _s, _e, origin in kept:
        stats[origin]["kept"] += 1
    return kept, {o: dict(c) for o, c in stats.items()}


# =============================================================================
# Splits
# =============================================================================

_SPEAKABLE = re.compile(r"^[A-Z][A-Za-z ,.'’?!]*[.?!]$")


def heldout_eligible(en: str, min_words: int = 4, max_words: int = 12) -> bool:
    """A short, speakable English sentence: 4-12 words, ASCII letters and , . ' ’ ? ! only."""
    n = len(en.split())
    return min_words <= n <= max_words and bool(_SPEAKABLE.match(en))


def assign_splits(
    data: Dict[str, List[Tuple[str, str, str]]],
    seed: int = 1234,
    n_valid: int = 1000,
    n_test: int = 1000,
    n_heldout: int = 1500,
    order: Sequence[str] = ("roen", "deen"),
) -> Tuple[Dict[str, Dict[str, List[Tuple[str, str, str]]]], List[str], Dict[str, Dict[str, int]]]:
    """Deterministic train/valid/test splits with English-side constraints.

    ``data`` maps a language pair (``"deen"``, ``"roen"``) to its filtered
    ``(src, en, origin)`` pairs.  Sentences are grouped by their normalised
    English (:func:`norm_key`: case and punctuation ignored), and each group
    gets ONE label shared by all language pairs, so near-duplicates always
    fall into the same split:

    * ``heldout``: ``n_heldout`` groups with a short speakable English
      sentence (:func:`heldout_eligible`), drawn first; used by no pair;
    * ``(valid|test, owner)``: for each pair of ``order`` in turn, groups
      drawn uniformly (seeded shuffle) among that pair's still unlabelled
      groups until it has ``n_valid`` (``n_test``) pairs; the group's
      pairs of OTHER language pairs are set aside (used nowhere), which
      keeps every test set a uniform sample of its own pair's data;
    * everything else is ``train``.

    Hence (1) no Ro-En valid/test English occurs in De-En train, (2) no
    valid/test English occurs in any train set, (3) the held-out pool occurs
    in no split.  Returns ``(splits, heldout_sentences, set_aside)`` with
    ``splits[pair][split] = [(src, en, origin), ...]`` and
    ``set_aside[pair] = {"heldout": n, "other_pair_eval": n}``.
    """
    by_key: Dict[str, Dict[str, int]] = collections.defaultdict(collections.Counter)
    first_en: Dict[str, str] = {}
    for lp, pairs in data.items():
        for src, en, origin in pairs:
            k = norm_key(en)
            by_key[k][lp] += 1
            first_en.setdefault(k, en)
    all_keys = sorted(by_key)

    def shuffled(phase: str) -> List[str]:
        # a fresh seeded order per phase, so that every draw is uniform over
        # the groups still unlabelled (a shared order would bias later draws)
        keys = list(all_keys)
        random.Random(f"{seed}/{phase}").shuffle(keys)
        return keys

    label: Dict[str, Tuple[str, Optional[str]]] = {}
    heldout: List[str] = []
    for k in shuffled("heldout"):
        if len(heldout) >= n_heldout:
            break
        if heldout_eligible(first_en[k]):
            label[k] = ("heldout", None)
            heldout.append(first_en[k])

    lps = [lp for lp in order if lp in data] + [lp for lp in data if lp not in order]
    for lp in lps:
        for split, target in (("valid", n_valid), ("test", n_test)):
            count = 0
            for k in shuffled(f"{lp}/{split}"):
                if count >= target:
                    break
                if k in label or not by_key[k].get(lp):
                    continue
                label[k] = (split, lp)
                count += by_key[k][lp]

    splits: Dict[str, Dict[str, List[Tuple[str, str, str]]]] = {}
    set_aside: Dict[str, Dict[str, int]] = {}
    for lp, pairs in data.items():
        splits[lp] = {"train": [], "valid": [], "test": []}
        aside = collections.Counter({"heldout": 0, "other_pair_eval": 0})
        for p in pairs:
            split, owner = label.get(norm_key(p[1]), ("train", None))
            if split == "heldout":
                aside["heldout"] += 1
            elif split == "train" or owner == lp:
                splits[lp][split].append(p)
            else:
                aside["other_pair_eval"] += 1
        set_aside[lp] = dict(aside)
    return splits, sorted(heldout, key=lambda s: s.casefold()), set_aside


def check_split_constraints(splits, heldout: Sequence[str]) -> List[str]:
    """Return violations of constraints (1)-(3) (an empty list when all hold)."""
    problems = []
    train_keys = {lp: {norm_key(e) for _s, e, _o in sp.get("train", [])} for lp, sp in splits.items()}
    all_train = set().union(*train_keys.values()) if train_keys else set()
    if "roen" in splits and "deen" in splits:
        for split in ("valid", "test"):
            bad = [e for _s, e, _o in splits["roen"].get(split, []) if norm_key(e) in train_keys["deen"]]
            if bad:
                problems.append(f"(1) {len(bad)} Ro-En {split} English sentences in De-En train, e.g. {bad[0]!r}")
    for lp, sp in splits.items():
        for split in ("valid", "test"):
            bad = [e for _s, e, _o in sp.get(split, []) if norm_key(e) in all_train]
            if bad:
                problems.append(f"(2) {len(bad)} {lp} {split} English sentences in a train set, e.g. {bad[0]!r}")
    bad = [e for e in heldout if norm_key(e) in all_train]
    if bad:
        problems.append(f"(3) {len(bad)} held-out sentences in a train set, e.g. {bad[0]!r}")
    return problems


# =============================================================================
# TSV I/O
# =============================================================================


def write_tsv(path: Path, rows: Iterable[Sequence[str]], header: Optional[Sequence[str]] = None) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    opener = (lambda p: lzma.open(p, "wt", encoding="utf-8", preset=9 | lzma.PRESET_EXTREME)) \
        if path.suffix == ".xz" else (lambda p: open(p, "w", encoding="utf-8"))
    with opener(path) as f:
        if header:
            f.write("\t".join(header) + "\n")
        for row in rows:
            assert not any("\t" in c or "\n" in c for c in row), row
            f.write("\t".join(row) + "\n")
            n += 1
    return n


def read_tsv(path: Path, header: bool = False) -> List[List[str]]:
    opener = (lambda p: lzma.open(p, "rt", encoding="utf-8")) if str(path).endswith(".xz") \
        else (lambda p: open(p, encoding="utf-8"))
    with opener(path) as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if header and lines:
        lines = lines[1:]
    return [ln.split("\t") for ln in lines]


# =============================================================================
# Stage: download
# =============================================================================


def apt_download(names: Sequence[str], debs: Path) -> List[str]:
    """``apt-get download`` the packages of ``names`` not yet in ``debs``; returns those fetched."""
    debs.mkdir(parents=True, exist_ok=True)
    have = {p.name.split("_", 1)[0] for p in debs.glob("*.deb")}
    todo = [name for name in names if name not in have]
    for name in tqdm(todo, desc="apt-get download", unit="pkg"):
        res = subprocess.run(["apt-get", "download", name], cwd=debs, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"apt-get download {name} failed (run `apt-get update` once?):\n{res.stderr}")
    return todo


def stage_download(specs: List[PackageSpec], download_dir: Path) -> None:
    debs = download_dir / "debs"
    todo = apt_download([s.name for s in specs], debs)
    LOG.info("download: %d packages listed, %d were already in %s, %d fetched",
             len(specs), len(specs) - len(todo), debs, len(todo))
    total = sum(p.stat().st_size for p in debs.glob("*.deb"))
    LOG.info("download: %d .deb files, %.1f MB", len(list(debs.glob("*.deb"))), total / 1e6)


def find_deb(download_dir: Path, name: str) -> Path:
    cands = sorted((download_dir / "debs").glob(f"{name}_*.deb"))
    if not cands:
        raise FileNotFoundError(f"no .deb for {name} in {download_dir / 'debs'} (run --stage download)")
    return cands[-1]


# =============================================================================
# Stage: extract
# =============================================================================

EXTRACT_PATTERNS = {
    "ding": ["./usr/share/trans/de-en"],
    "fluent-en": ["./usr/lib/firefox-esr/omni.ja", "./usr/lib/firefox-esr/browser/omni.ja"],
    "fluent-l10n": ["./usr/lib/firefox-esr/browser/extensions/*.xpi"],
    "gettext": [f"*/locale/{lang}/LC_MESSAGES/*.mo" for lang in LANGS],
    "wordnet": [f"./usr/share/wordnet/data.{pos}" for pos in ("noun", "verb", "adj", "adv")],
}


def deb_fields(deb: Path) -> Dict[str, str]:
    out = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version", "Source", "Section", "Homepage"],
                         capture_output=True, text=True, check=True).stdout
    fields = {}
    for line in out.splitlines():
        k, _, v = line.partition(":")
        fields[k.strip()] = v.strip()
    return fields


def extract_deb(deb: Path, dest: Path, kind: str, pkg: str) -> None:
    """Unpack only what the harvest needs (and the copyright file) from a .deb."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    patterns = EXTRACT_PATTERNS[kind] + [f"./usr/share/doc/{pkg}/copyright"]
    p1 = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    res = subprocess.run(["tar", "-x", "-C", str(dest), "--wildcards", "--wildcards-match-slash",
                          *patterns], stdin=p1.stdout, capture_output=True, text=True)
    p1.stdout.close()
    p1.wait()
    # tar exits 2 when a pattern matched nothing (e.g. no copyright file): tolerated
    if res.returncode not in (0, 2):
        raise RuntimeError(f"tar failed on {deb}: {res.stderr}")


_LICENSE_NAMES = [
    ("MPL-2.0", r"Mozilla Public License,? (Version|v\.?) ?2\.0|MPL-2\.0"),
    ("LGPL-2.1+", r"Lesser General Public License[^.]{0,120}version 2\.1[^.]{0,40}or[^.]{0,40}later"),
    ("LGPL-2+", r"Library General Public License[^.]{0,120}version 2[^.]{0,40}or[^.]{0,40}later"),
    ("LGPL-3+", r"Lesser General Public License[^.]{0,120}version 3[^.]{0,40}or[^.]{0,40}later"),
    ("LGPL", r"\bLGPL|Lesser General Public License|Library General Public License"),
    ("GPL-3+", r"GPL-3\+|GNU General Public License[^.]{0,120}version 3[^.]{0,40}or[^.]{0,40}later"),
    ("GPL-2+", r"GPL-2\+|GNU General Public License[^.]{0,120}version 2[^.]{0,40}or[^.]{0,40}later"
               r"|GPL Version 2 or later"),
    ("GPL", r"\bGPL\b|GNU General Public License"),
]


_LICENSE_EXPR = re.compile(r"^[\w.+-]+(\s+(and|or|with)\s+[\w.+-]+(\s+exception)?)*$")


def guess_license(text: str) -> Optional[str]:
    """The licence a free-form copyright text names first (most specific name at that place)."""
    best = None
    for name, pat in _LICENSE_NAMES:
        m = re.search(pat, text)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), name)
    return best[1] if best else None


def summarize_copyright(text: str) -> Dict[str, object]:
    """Main licence of a Debian copyright file (the ``Files: *`` stanza, or a guess)."""
    main = None
    po = None
    upstream = None
    source = None
    if text.startswith("Format:") or "\nFiles:" in text:
        stanzas = re.split(r"\n\s*\n", text)
        for st in stanzas:
            m = re.search(r"^Upstream-Name:\s*(.+)$", st, re.M)
            if m and upstream is None:
                upstream = m.group(1).strip()
            m = re.search(r"^Source:\s*(.+)$", st, re.M)
            if m and source is None and "Files:" not in st:
                source = m.group(1).strip()
            fm = re.search(r"^Files:\s*(.+(?:\n[ \t]+.+)*)", st, re.M)
            lm = re.search(r"^License:\s*(.+)$", st, re.M)
            if fm and lm:
                files = fm.group(1).split()
                if "*" in files and main is None:
                    main = lm.group(1).strip()
                if any(f.startswith("po/") or "/po/" in f or f.startswith("po") for f in files) and po is None:
                    po = lm.group(1).strip()
    if main is None or not _LICENSE_EXPR.match(main):  # e.g. a sentence instead of a short name
        main = guess_license(text) or main
    licenses = sorted({m.strip() for m in re.findall(r"^License:\s*(.+)$", text, re.M)})
    return {
        "license": main or "unknown",
        "po_license": po,
        "upstream_name": upstream,
        "upstream_source": source,
        "all_licenses": licenses,
    }


def stage_extract(specs: List[PackageSpec], download_dir: Path) -> None:
    ext_root = download_dir / "extract"
    raw_dir = download_dir / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    sources: Dict[str, Dict[str, object]] = {}
    raw: Dict[str, List[Tuple[str, str, str]]] = {"de": [], "ro": []}
    fluent_en: Dict = {}
    fluent_l10n: Dict[str, Tuple[str, Dict]] = {}
    for spec in tqdm(specs, desc="extract", unit="pkg"):
        deb = find_deb(download_dir, spec.name)
        dest = ext_root / spec.name
        extract_deb(deb, dest, spec.kind, spec.name)
        info: Dict[str, object] = {"kind": spec.kind, "comment": spec.comment, "deb": deb.name}
        info.update({k.lower(): v for k, v in deb_fields(deb).items()})
        section = str(info.get("section", ""))
        if section.startswith(("non-free", "contrib")):
            # only Debian main (DFSG-free, redistributable) material goes into the corpus
            LOG.error("skip %s: section %s is not Debian main", spec.name, section)
            continue
        cp = dest / "usr/share/doc" / spec.name / "copyright"
        if cp.exists():
            info.update(summarize_copyright(cp.read_text(encoding="utf-8", errors="replace")))
            info["copyright_file"] = f"/usr/share/doc/{spec.name}/copyright"
        else:
            info.update({"license": "unknown (no copyright file in the .deb)"})
        counts = collections.Counter()
        if spec.kind == "ding":
            text = (dest / "usr/share/trans/de-en").read_text(encoding="utf-8", errors="replace")
            ding_stats: Dict[str, int] = collections.Counter()
            for de, en in read_ding(text, ding_stats):
                raw["de"].append((de, en, spec.name))
                counts["de"] += 1
            info["ding_stats"] = dict(ding_stats)
        elif spec.kind == "fluent-en":
            base = dest / "usr/lib/firefox-esr"
            fluent_en = merge_mozilla(
                read_mozilla_archive((base / "omni.ja").read_bytes(), "en-US", browser=False),
                read_mozilla_archive((base / "browser/omni.ja").read_bytes(), "en-US", browser=True),
            )
            counts["en"] = len(fluent_en)
        elif spec.kind == "fluent-l10n":
            xpis = sorted(dest.glob("usr/lib/firefox-esr/browser/extensions/langpack-*.xpi"))
            if not xpis:
                raise FileNotFoundError(f"no langpack .xpi in {spec.name}")
            lang = re.match(r"langpack-([a-zA-Z-]+)@", xpis[0].name).group(1)
            fluent_l10n[spec.name] = (lang, read_mozilla_archive(xpis[0].read_bytes(), lang))
            counts[lang] = len(fluent_l10n[spec.name][1])
        else:
            teams = {}
            for lang in LANGS:
                mos = sorted(dest.glob(f"**/locale/{lang}/LC_MESSAGES/*.mo"))
                for mo in mos:
                    data = mo.read_bytes()
                    try:
                        entries, hdr = read_mo(data)
                    except (OSError, ValueError, struct.error, LookupError) as exc:
                        LOG.warning("skip %s: %s", mo, exc)
                        continue
                    team = hdr.get("Language-Team", "")
                    if team:
                        teams.setdefault(lang, set()).add(team)
                    for _ctx, msgid, msgstr in entries:
                        raw[lang].append((msgstr, msgid, spec.name))
                        counts[lang] += 1
                info.setdefault("mo_files", {})[lang] = [str(m.relative_to(dest)) for m in mos]
            info["language_teams"] = {k: sorted(v)[:5] for k, v in teams.items()}
        info["raw_counts"] = dict(counts)
        sources[spec.name] = info
        LOG.info("extract %-28s %s", spec.name, dict(counts))
    # pair Firefox strings
    if fluent_en:
        for pkg, (lang, msgs) in fluent_l10n.items():
            n = 0
            for key, val in msgs.items():
                en = fluent_en.get(key)
                if en is not None and lang in LANGS:
                    raw[lang].append((val, en, pkg))
                    n += 1
            sources[pkg]["raw_counts"]["pairs"] = n
            LOG.info("firefox %s: %d message pairs", lang, n)
    for lang in LANGS:
        n = write_tsv(raw_dir / f"{PAIRS[lang]}.tsv", ((s, e, o) for s, e, o in
                                                          ((normalize_whitespace(s), normalize_whitespace(e), o)
                                                           for s, e, o in raw[lang]) if s and e))
        LOG.info("extract: %d raw %s pairs -> %s", n, PAIRS[lang], raw_dir / f"{PAIRS[lang]}.tsv")
    (raw_dir / "sources.json").write_text(json.dumps(sources, indent=1, ensure_ascii=False, default=list),
                                          encoding="utf-8")


# =============================================================================
# Stage: filter
# =============================================================================


def stage_filter(download_dir: Path, specs: List[PackageSpec]) -> None:
    raw_dir = download_dir / "raw"
    out_dir = download_dir / "filtered"
    out_dir.mkdir(parents=True, exist_ok=True)
    order = {s.name: i for i, s in enumerate(specs)}
    all_stats = {}
    for lang in LANGS:
        lp = PAIRS[lang]
        rows = read_tsv(raw_dir / f"{lp}.tsv")
        # stable priority: package order of packages.txt, then file order
        rows = [r for _i, r in sorted(enumerate(rows), key=lambda ir: (order.get(ir[1][2], 1 << 30), ir[0]))]
        kept, stats = filter_pairs(tqdm(rows, desc=f"filter {lp}", unit="pair", mininterval=2), lang)
        write_tsv(out_dir / f"{lp}.tsv", kept)
        all_stats[lp] = stats
        LOG.info("filter %s: %d raw -> %d kept", lp, len(rows), len(kept))
    (out_dir / "filter_stats.json").write_text(json.dumps(all_stats, indent=1), encoding="utf-8")


# =============================================================================
# Stage: split (+ documentation)
# =============================================================================

SPLITS = ("train", "valid", "test")


def stage_split(download_dir: Path, out_dir: Path, seed: int, n_valid: int, n_test: int, n_heldout: int) -> None:
    filt = download_dir / "filtered"
    data = {PAIRS[lang]: [tuple(r) for r in read_tsv(filt / f"{PAIRS[lang]}.tsv")] for lang in LANGS}
    splits, heldout, set_aside = assign_splits(data, seed=seed, n_valid=n_valid, n_test=n_test,
                                               n_heldout=n_heldout)
    problems = check_split_constraints(splits, heldout)
    if problems:
        raise RuntimeError("split constraints violated:\n" + "\n".join(problems))
    out_dir.mkdir(parents=True, exist_ok=True)
    for lp, sp in splits.items():
        for split in SPLITS:
            # seeded shuffle, so that the first N lines are a random sample (not one package)
            ordered = list(sp[split])
            random.Random(f"{seed}/order/{lp}/{split}").shuffle(ordered)
            rows = [(f"{lp}-{split}-{i:06d}", s, e, o) for i, (s, e, o) in enumerate(ordered, 1)]
            write_tsv(out_dir / lp / f"{split}.tsv.xz", rows)  # no header line: id, source, en, origin
            LOG.info("split %s %-5s %6d pairs", lp, split, len(rows))
    (out_dir / "en_heldout.txt").write_text("".join(s + "\n" for s in heldout), encoding="utf-8")
    LOG.info("held-out English pool: %d sentences", len(heldout))
    if (out_dir / DOMAIN2_FILE).exists():
        LOG.warning("%s was made against the previous splits: run --stage domain2 (--stage all does next)",
                    out_dir / DOMAIN2_FILE)
    sources = json.loads((download_dir / "raw" / "sources.json").read_text(encoding="utf-8"))
    stats = json.loads((filt / "filter_stats.json").read_text(encoding="utf-8"))
    write_stats_md(out_dir / "STATS.md", splits, heldout, stats, seed, set_aside, sources)
    write_sources_md(out_dir / "SOURCES.md", sources, splits)
    write_readme(out_dir / "README.md", splits, heldout)
    total = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    LOG.info("corpus written to %s (%.2f MB on disk)", out_dir, total / 1e6)


def _md_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines) + "\n"


RULE_DOC = [
    ("empty", "empty side after normalisation (NFC, Romanian comma-below letters, whitespace)"),
    ("format_code", "printf `%s %d %1$s %(x)s`, Qt `%1`, `{name}`, Fluent `{ $var }` / selectors, `$1`, `${x}`, `#1`"),
    ("url_email_path", "URL, e-mail address, file-system path or file name"),
    ("markup", "HTML/XML/Pango tag (`<b>`, `<a href=..>`), entity (`&amp;`), BBCode closing tag (`[/u]`)"),
    ("accelerator", "more than one accelerator mark (`_`, `&`, `~` before a letter): identifier-like "
                    "(a single mark, `_File`, `Spei_chern`, `&Open`, is removed, not dropped)"),
    ("code", "command-line option (`--help`), one of `=` `\\` `\\|` `::` `->` `=>` `()` `[]`, "
             "camelCase or snake_case identifier"),
    ("no_letters", "a side without any letter"),
    ("identical", "both sides equal (ignoring case and punctuation): untranslated"),
    ("english_length", "English side outside 3-40 whitespace tokens"),
    ("length_ratio", "whitespace-token ratio > 1.5 either way"),
    ("language", "source side has no German/Romanian features (special letters, typical suffixes, function "
                 "words) and >= 50 % of its words occur in the English side"),
    ("duplicate", "same normalised source + English already kept (normalised: case-folded, punctuation ignored)"),
    ("max_targets_per_english", "a 3rd or later translation of the same normalised English"),
]


def write_stats_md(path: Path, splits, heldout, stats, seed: int, set_aside=None, sources=None) -> None:
    sources = sources or {}
    out = ["# Corpus statistics\n",
           f"Generated by `local/harvest.py` (split seed {seed}). Counts are sentence pairs.\n"]
    out.append("## Pairs per split\n")
    rows = []
    for lp, sp in splits.items():
        rows.append([lp] + [len(sp[s]) for s in SPLITS] + [sum(len(sp[s]) for s in SPLITS)])
    out.append(_md_table(["pair", *SPLITS, "total"], rows))
    out.append(f"\nHeld-out English pool (`en_heldout.txt`, in no split): {len(heldout)} sentences.\n")
    if set_aside:
        out.append("Filtered pairs set aside by the split (used nowhere): `heldout` = their English is in "
                   "the held-out pool; `other_pair_eval` = their English is in the valid/test set of the "
                   "other language pair.\n")
        out.append(_md_table(["pair", "heldout", "other_pair_eval"],
                             [[lp, a.get("heldout", 0), a.get("other_pair_eval", 0)] for lp, a in set_aside.items()]))
    for lp, sp in splits.items():
        out.append(f"\n## {lp}: pairs per source package and split\n")
        origins = collections.Counter()
        per = {s: collections.Counter(o for _a, _b, o in sp[s]) for s in SPLITS}
        for s in SPLITS:
            origins.update(per[s])
        rows = [[o] + [per[s][o] for s in SPLITS] + [origins[o]] for o, _n in origins.most_common()]
        out.append(_md_table(["origin", *SPLITS, "total"], rows))
    for name, info in sources.items():
        if info.get("ding_stats"):
            ds = info["ding_stats"]
            out.append(f"\n## {name}: example sentences\n")
            out.append(f"Dictionary entries: {ds.get('entries', 0)}; entries whose German and English sides have "
                       f"different numbers of `|` alternatives (not paired): "
                       f"{ds.get('entries_alternative_count_mismatch', 0)}; sentence-like alternative pairs: "
                       f"{ds.get('example_sentences', 0)}; of these skipped for placeholders (`etw.`, `sth.`), "
                       f"word alternatives (`/`) or gaps (`…`): {ds.get('skipped_placeholder_slash_gap', 0)}; "
                       f"raw pairs passed to the filters: {ds.get('pairs', 0)}.\n")
    rules = ["raw"] + RULE_NAMES + ["duplicate", "max_targets_per_english", "kept"]
    for lp, st in stats.items():
        out.append(f"\n## {lp}: filter drop counts per source (each pair counted under the first rule it fails)\n")
        tot = collections.Counter()
        rows = []
        for origin, c in sorted(st.items(), key=lambda kv: -kv[1].get("raw", 0)):
            tot.update(c)
            rows.append([origin] + [c.get(r, 0) for r in rules])
        rows.append(["**total**"] + [f"**{tot.get(r, 0)}**" for r in rules])
        out.append(_md_table(["origin"] + rules, rows))
        out.append("\n`kept` is before the split (see the set-aside counts above).\n")
    out.append("\n## Filter rules\n")
    out.append(_md_table(["rule", "drops a pair when"], RULE_DOC))
    write_doc(path, "\n".join(out))


def write_sources_md(path: Path, sources: Dict[str, Dict], splits) -> None:
    used = collections.Counter()
    for lp, sp in splits.items():
        for s in SPLITS:
            used.update(o for _a, _b, o in sp[s])
    out = ["# Sources\n",
           "Every pair in this corpus is a human translation taken from a package of the Debian "
           "archive (Debian 12 \"bookworm\"). Each pair keeps the licence of the package it came "
           "from (column `origin` of the TSV files); the translations are the work of the upstream "
           "projects' translation teams, credited below. The full copyright statement of a package "
           "is its file `/usr/share/doc/PACKAGE/copyright` (inside the `.deb`).\n",
           "All packages are from Debian `main` (the harvest refuses `contrib` and `non-free`), i.e. "
           "free software under the Debian Free Software Guidelines: redistribution, also of excerpts "
           "and modified text, is allowed under their licences (GPL, LGPL, MPL-2.0, ...). The corpus "
           "is an aggregate of such excerpts; it is NOT covered by the licence of the legonn code. "
           "When redistributing it, keep this file (attribution) and the `origin` column.\n",
           "Licence column: the `License:` of the `Files: *` stanza of the package's machine-readable "
           "copyright file (with the `po/` stanza when it differs), or the licence named in a "
           "free-form copyright file; translations are distributed under the package's licence.\n",
           ]
    rows = []
    for name, info in sources.items():
        lic = info.get("license", "unknown")
        if info.get("po_license") and info.get("po_license") != lic:
            lic = f"{lic} (translations: {info['po_license']})"
        upstream = info.get("homepage") or info.get("upstream_source") or ""
        teams = info.get("language_teams") or {}
        team_s = "; ".join(f"{lang}: {', '.join(v[:2])}" for lang, v in sorted(teams.items()))
        if info.get("kind") == "ding":
            team_s = "Frank Richter and the Ding/BeoLingus contributors (TU Chemnitz)"
        elif info.get("kind", "").startswith("fluent"):
            team_s = "Mozilla and the Mozilla localization communities (de, ro)"
        team_s = re.sub(r"\s*<[^<>]*>", "", team_s).replace("|", "/")  # no e-mail addresses
        n_used = str(used.get(name, 0))
        if info.get("kind") == "fluent-en":
            n_used = "(English side of the Firefox pairs)"
        rows.append([f"`{name}` {info.get('version', '')}", info.get("comment", ""), upstream,
                     lic.replace("|", "/"), team_s or "see copyright file", n_used])
    out.append(_md_table(["package (version)", "provides", "upstream", "licence (`Files: *` of the copyright file)",
                          "translators / attribution", "pairs used"], rows))
    write_doc(path, "\n".join(out))


def write_readme(path: Path, splits, heldout) -> None:
    sizes = {lp: {s: len(sp[s]) for s in SPLITS} for lp, sp in splits.items()}
    text = f"""# egs/mini/corpus: a small offline De-En / Ro-En translation corpus

Real human translations harvested from Debian packages (the WMT corpora cannot be
downloaded on the project's machines): example sentences of the Ding German-English
dictionary (De-En only), Firefox ESR's Fluent strings and language packs, and the
gettext catalogues of desktop applications. See `SOURCES.md` for every package,
its upstream and licence, and `STATS.md` for counts and filter statistics.

| file | contents |
| --- | --- |
| `deen/{{train,valid,test}}.tsv.xz` | German-English, {sizes['deen']['train']} / {sizes['deen']['valid']} / {sizes['deen']['test']} pairs |
| `roen/{{train,valid,test}}.tsv.xz` | Romanian-English, {sizes['roen']['train']} / {sizes['roen']['valid']} / {sizes['roen']['test']} pairs |
| `en_heldout.txt` | {len(heldout)} short English sentences (4-12 words) in no split, reserved for a speech test set |

Each TSV (xz-compressed, UTF-8 NFC, no header line) has four columns:
`id` (e.g. `deen-train-000001`), source sentence (German or Romanian), English
sentence, `origin` (the Debian package). Romanian uses comma-below ș ț.
`local/data.sh` of the MT recipe unpacks them into Kaldi-style data dirs.

Split guarantees (checked by `tests/test_harvest.py`), comparing English sentences
case- and punctuation-insensitively:

1. no English sentence of Ro-En valid/test occurs in De-En train (a De-En decoder
   reused for Ro-En has not seen it);
2. no English sentence of any valid/test set occurs in any train set;
3. no sentence of `en_heldout.txt` occurs in any split.

Regenerate (needs `apt-get update` once, as root; downloads about 0.5 GB of .deb
files into `egs/mini/downloads/`, which git ignores):

```bash
cd egs/mini
../../.venv/bin/python local/harvest.py --stage all
```

The package list is `egs/mini/local/packages.txt`; the result depends on the
package versions in the Debian archive at the time of the harvest (see `SOURCES.md`).
"""
    write_doc(path, text)


# =============================================================================
# Stage: domain2 (a second English domain) + the documents' section about it
# =============================================================================

# The mini ASR recipe's pronunciation model learns from another English domain than the MT text
# and the phoneme recogniser (paper §V-C: TED-LIUM vs Europarl): the example sentences quoted in
# WordNet's glosses, e.g. `... | cause to be calm; "The patient must be sedated before the operation"`.
DOMAIN2_PACKAGE = "wordnet-base"
DOMAIN2_FILE = "en_domain2.txt"
DOMAIN2_WORDS = (4, 16)
# What a TTS voice reads exactly as written: the character filter of egs/mini/asr1/local/data.sh.
_TTS_READABLE = re.compile(r"^[A-Za-z][A-Za-z ,.;:!?'\"()\-‘’“”–—…]*$")
_WN_EXAMPLE = re.compile(r'"([^"]*)"')
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)]*$")
DOMAIN2_RULE_DOC = [
    ("length", f"outside {DOMAIN2_WORDS[0]}-{DOMAIN2_WORDS[1]} whitespace-separated words"),
    ("characters", "a character a TTS voice may not read as written: digits, symbols, non-ASCII letters "
                   "(the filter of `egs/mini/asr1/local/data.sh`)"),
    ("fragment", "starts with a lower-case letter: a phrase (`able to swim`), not a sentence"),
    ("punctuation", "an ASCII dash `--` or unbalanced parentheses"),
    ("duplicate", "the same sentence (case and punctuation ignored) already kept"),
    ("in_corpus", "the sentence (case and punctuation ignored) is in a De-En/Ro-En split or `en_heldout.txt`"),
]


def wordnet_examples(text: str) -> List[str]:
    """The double-quoted examples in the glosses of a WordNet ``data.<pos>`` file.

    A synset line ends with ``| gloss``, whose examples are ``"quoted"``; the licence header
    lines start with two spaces."""
    out = []
    for line in text.splitlines():
        if line.startswith("  ") or " | " not in line:
            continue
        out.extend(normalize_whitespace(m) for m in _WN_EXAMPLE.findall(line.split(" | ", 1)[1]))
    return [s for s in out if s]


def domain2_reject(s: str, words: Tuple[int, int] = DOMAIN2_WORDS) -> Optional[str]:
    """The first rule of ``DOMAIN2_RULE_DOC`` an example fails, or None when it is usable."""
    if not words[0] <= len(s.split()) <= words[1]:
        return "length"
    if not _TTS_READABLE.match(s):
        return "characters"
    if not s[0].isupper():
        return "fragment"
    if "--" in s or s.count("(") != s.count(")"):
        return "punctuation"
    return None


def as_sentence(s: str) -> str:
    """End an example like a sentence: "We don't intermingle much" -> "We don't intermingle much."."""
    s = s.rstrip(",;: ")
    return s if _SENTENCE_END.search(s) else s + "."


def corpus_english_keys(out_dir: Path) -> set:
    """Normalised English of every committed split and of ``en_heldout.txt``."""
    keys = set()
    for lp in PAIRS.values():
        for split in SPLITS:
            path = out_dir / lp / f"{split}.tsv.xz"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing (the second domain must avoid every split: run --stage split first)")
            keys.update(norm_key(row[2]) for row in read_tsv(path))
    heldout = out_dir / "en_heldout.txt"
    if not heldout.is_file():
        raise FileNotFoundError(f"{heldout}: missing (run --stage split first)")
    keys.update(norm_key(s) for s in heldout.read_text(encoding="utf-8").splitlines() if s.strip())
    return keys


def select_domain2(examples: Iterable[str], exclude: set, n: int, seed: int) -> Tuple[List[str], Dict[str, int]]:
    """Usable examples as sentences, deduplicated, none in ``exclude`` (normalised keys), at most
    ``n`` of them drawn with a seeded shuffle (so the file's first lines are a random sample)."""
    stats: Dict[str, int] = collections.Counter()
    kept, seen = [], set()
    for s in examples:
        stats["examples"] += 1
        rule = domain2_reject(s)
        if rule is None:
            key = norm_key(s)
            rule = "duplicate" if key in seen else "in_corpus" if key in exclude else None
            seen.add(key)
        if rule is not None:
            stats[rule] += 1
            continue
        kept.append(as_sentence(s))
    stats["usable"] = len(kept)
    kept.sort()  # the shuffle must not depend on the order of the data files
    random.Random(f"{seed}/domain2").shuffle(kept)
    kept = kept[:n]
    stats["kept"] = len(kept)
    return kept, dict(stats)


DOC_BLOCK = ("<!-- en_domain2: written by local/harvest.py --stage domain2 -->", "<!-- en_domain2: end -->")


def doc_block(text: str) -> Optional[str]:
    """The second-domain section of a document (markers included), if it has one."""
    begin, end = text.find(DOC_BLOCK[0]), text.find(DOC_BLOCK[1])
    return text[begin:end + len(DOC_BLOCK[1])] if 0 <= begin < end else None


def write_doc(path: Path, text: str) -> None:
    """Write a document of the split stage, keeping the section --stage domain2 added to it."""
    block = doc_block(path.read_text(encoding="utf-8")) if path.exists() else None
    write_atomic(path, text.rstrip("\n") + "\n" + (f"\n{block}\n" if block else ""))


def put_doc_block(path: Path, body: str) -> None:
    """Replace (or append) a document's second-domain section."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{DOC_BLOCK[0]}\n{body.strip()}\n{DOC_BLOCK[1]}"
    old = doc_block(text)
    write_atomic(path, text.replace(old, block) if old else text.rstrip("\n") + "\n\n" + block + "\n")


def license_text(copyright_text: str) -> str:
    """The licence paragraph of the ``Files: *`` stanza of a machine-readable copyright file."""
    for stanza in re.split(r"\n\s*\n(?=\S)", copyright_text):
        if re.search(r"^Files:\s*\*\s*$", stanza, re.M):
            m = re.search(r"^License:[^\n]*\n((?:[ \t].*(?:\n|$))+)", stanza, re.M)
            if m:
                lines = [ln.strip() for ln in m.group(1).splitlines()]
                return "\n".join("" if ln == "." else ln for ln in lines).strip()
    return ""


def stage_domain2(download_dir: Path, out_dir: Path, seed: int, n: int) -> None:
    fetched = apt_download([DOMAIN2_PACKAGE], download_dir / "debs")
    deb = find_deb(download_dir, DOMAIN2_PACKAGE)
    LOG.info("domain2: %s (%s)", deb.name, "downloaded" if fetched else "already there")
    dest = download_dir / "extract" / DOMAIN2_PACKAGE
    extract_deb(deb, dest, "wordnet", DOMAIN2_PACKAGE)
    info = {k.lower(): v for k, v in deb_fields(deb).items()}
    if info.get("section", "").startswith(("non-free", "contrib")):
        raise RuntimeError(f"{deb.name}: section {info['section']} is not Debian main")
    copyright_text = (dest / "usr/share/doc" / DOMAIN2_PACKAGE / "copyright").read_text(encoding="utf-8")
    info.update(summarize_copyright(copyright_text))
    per_file, examples = {}, []
    for path in sorted((dest / "usr/share/wordnet").glob("data.*")):
        found = wordnet_examples(path.read_text(encoding="utf-8", errors="replace"))
        per_file[path.name] = len(found)
        examples += found
    if not examples:
        raise RuntimeError(f"{deb.name}: no example sentences in usr/share/wordnet/data.*")
    sentences, stats = select_domain2(examples, corpus_english_keys(out_dir), n, seed)
    write_atomic(out_dir / DOMAIN2_FILE, "".join(s + "\n" for s in sentences))
    LOG.info("domain2: %d examples -> %d usable -> %d written to %s", stats["examples"], stats["usable"],
             len(sentences), out_dir / DOMAIN2_FILE)
    lengths = sorted(len(s.split()) for s in sentences)
    version, lic = info.get("version", "?"), info.get("license", "unknown")

    put_doc_block(out_dir / "README.md", f"""
## Second English domain: `{DOMAIN2_FILE}`

{len(sentences)} English sentences ({DOMAIN2_WORDS[0]}-{DOMAIN2_WORDS[1]} words, one a line, no ids) from another
domain than the translation pairs: the example sentences quoted in the glosses of WordNet 3.0
(Debian package `{DOMAIN2_PACKAGE}` {version}; licence `{lic}`, see `SOURCES.md`). The mini ASR
recipe (`egs/mini/asr1`) synthesises the speech of its pronunciation model from them, as the
paper trains that module on another corpus (TED-LIUM) than the phoneme recogniser (Europarl).
Kept are examples that read as written by a TTS voice (the character filter of
`egs/mini/asr1/local/data.sh`) and that are sentences (capital first letter; a final period is
added where the example has none), deduplicated; see `STATS.md`. A fourth guarantee, checked
by `tests/test_harvest.py`:

4. no sentence of `{DOMAIN2_FILE}` occurs (case- and punctuation-insensitively) in any split
   or in `en_heldout.txt`.

Regenerate it alone with `../../.venv/bin/python local/harvest.py --stage domain2` (in
`egs/mini`; downloads `{DOMAIN2_PACKAGE}`, {deb.stat().st_size / 1e6:.1f} MB, and reads the committed
splits, which it does not change); `--stage all` runs it after the split.
""")
    notice = license_text(copyright_text)
    put_doc_block(out_dir / "SOURCES.md", f"""
## Second English domain (`{DOMAIN2_FILE}`)

English sentences only (no translation): the example sentences of WordNet's glosses.

{_md_table(["package (version)", "provides", "upstream", "licence (`Files: *` of the copyright file)", "sentences used"],
           [[f"`{DOMAIN2_PACKAGE}` {version}", "WordNet 3.0 database (usr/share/wordnet/data.*)",
             info.get("homepage", ""), lic, len(sentences)]])}
The WordNet licence asks that its copyright notice and statements appear on all copies, so here
they are, from `/usr/share/doc/{DOMAIN2_PACKAGE}/copyright`:

{chr(10).join("> " + ln if ln else ">" for ln in notice.splitlines())}
""")
    rows = [[rule, stats.get(rule, 0), doc] for rule, doc in DOMAIN2_RULE_DOC]
    put_doc_block(out_dir / "STATS.md", f"""
## Second English domain (`{DOMAIN2_FILE}`)

Example sentences in the glosses of `{DOMAIN2_PACKAGE}` {version}: """
                  + ", ".join(f"`{name}` {count}" for name, count in per_file.items())
                  + f""" ({stats['examples']} in all). Each example is counted under the first rule it fails:

{_md_table(["rule", "dropped", "drops an example when"], rows)}
{stats['usable']} usable sentences; {len(sentences)} kept (at most {n}, seeded shuffle, seed {seed}).
Words per sentence: mean {sum(lengths) / max(len(lengths), 1):.1f}, median {lengths[len(lengths) // 2] if lengths else 0}.
""")


# =============================================================================
# main
# =============================================================================


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--stage", default="all", choices=["download", "extract", "filter", "split", "domain2", "all"])
    p.add_argument("--packages", type=Path, default=DEFAULT_PACKAGES, help="package list")
    p.add_argument("--download_dir", type=Path, default=DEFAULT_DOWNLOAD_DIR,
                   help="cache of .deb files and intermediate files (git-ignored)")
    p.add_argument("--out_dir", type=Path, default=DEFAULT_OUT_DIR, help="final corpus directory")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--n_valid", type=int, default=1000)
    p.add_argument("--n_test", type=int, default=1000)
    p.add_argument("--n_heldout", type=int, default=1500)
    p.add_argument("--n_domain2", type=int, default=8000, help="sentences of the second English domain (at most)")
    p.add_argument("--verbose", "-v", action="store_true")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    specs = read_package_list(args.packages) if args.stage != "domain2" else []
    stages = ["download", "extract", "filter", "split", "domain2"] if args.stage == "all" else [args.stage]
    for st in stages:
        LOG.info("=== stage %s ===", st)
        if st == "download":
            stage_download(specs, args.download_dir)
        elif st == "extract":
            stage_extract(specs, args.download_dir)
        elif st == "filter":
            stage_filter(args.download_dir, specs)
        elif st == "split":
            stage_split(args.download_dir, args.out_dir, args.seed, args.n_valid, args.n_test, args.n_heldout)
        elif st == "domain2":
            stage_domain2(args.download_dir, args.out_dir, args.seed, args.n_domain2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
