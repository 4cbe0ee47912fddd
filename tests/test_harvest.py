"""Tests of the Debian-package corpus harvest (egs/mini/local/harvest.py).

Everything runs on small fixtures made here (no network, no apt); the last
tests check the split constraints on the committed corpus in egs/mini/corpus
when it is present.
"""

import gettext
import importlib.util
import io
import random
import sys
import unicodedata
import zipfile
from pathlib import Path

import polib
import pytest

ROOT = Path(__file__).resolve().parents[1]
HARVEST = ROOT / "egs" / "mini" / "local" / "harvest.py"
CORPUS = ROOT / "egs" / "mini" / "corpus"


def _load():
    spec = importlib.util.spec_from_file_location("legonn_harvest", HARVEST)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look the module up
    spec.loader.exec_module(mod)
    return mod


h = _load()


# ----------------------------------------------------------------------------- filters


@pytest.mark.parametrize("s", [
    "Cannot open %s", "%d files", "Copy %1$s to %2$s", "Born in %(place)s", "%-10s left", "%.2f MB",
    "50%% done", "%lu bytes", "Hello {name}", "Item {0} of {1}", "Read { $host }", "{ $n -> [one] x *[other] y }",
    "Use $1 here", "Set ${HOME} now", "Page %1 of %2", "#1 tabs open",
])
def test_format_code_detected(s):
    assert h.has_format_code(s)


@pytest.mark.parametrize("s", ["The file was saved.", "100% sure about it", "Use 50 % of the space", "A, B and C"])
def test_format_code_not_detected(s):
    assert not h.has_format_code(s)


@pytest.mark.parametrize("s", [
    "See https://example.org for more", "Visit www.gnome.org today", "Write to bugs@example.org please",
    "Saved to /usr/share/foo", "Look in ~/Documents first", "Open C:\\Windows now", "Edit the file config.ini now",
])
def test_url_email_path_detected(s):
    assert h.has_url_email_path(s)


@pytest.mark.parametrize("s", ["He / She is late.", "Input/output error occurred", "Save the file as PDF"])
def test_url_email_path_not_detected(s):
    assert not h.has_url_email_path(s)


@pytest.mark.parametrize("s", ["<b>Bold</b> text", "Click <a href=\"x\">here</a> now", "Tom &amp; Jerry",
                               "Line<br/>break", "Use [u]this[/u] tag"])
def test_markup_detected(s):
    assert h.has_markup(s)


@pytest.mark.parametrize("s", ["a < b and c > d", "Tom & Jerry", "Value [px]"])
def test_markup_not_detected(s):
    assert not h.has_markup(s)


@pytest.mark.parametrize("raw, expected", [
    ("_File", "File"), ("Save _As", "Save As"), ("Spei_chern unter", "Speichern unter"), ("&Open", "Open"),
    ("~Open it", "Open it"), ("R&&D team", "R&D team"), ("No mark here", "No mark here"),
    ("Tom &amp; Jerry", "Tom &amp; Jerry"), ("file_name_max", None), ("_Open _Recent", None),
])
def test_strip_accelerator(raw, expected):
    assert h.strip_accelerator(raw) == expected


def test_code_rule():
    assert h.has_code("Use --verbose to see more")
    assert h.has_code("Set a=b first")
    assert h.has_code("Call removeEventListener here")
    assert not h.has_code("Open the digiKam album")
    assert not h.has_code("Sample rate in kHz is shown")
    assert not h.has_code("A well-known e-mail client")


def test_no_letters_and_identical():
    assert h.has_no_letters("1024 × 768 %")
    assert not h.has_no_letters("1024 pixels")
    assert h.is_identical("Mozilla Firefox!", "mozilla firefox")
    assert not h.is_identical("Datei öffnen", "Open file")


def test_english_length():
    assert not h.english_length_ok("Open file")
    assert h.english_length_ok("Open the file")
    assert h.english_length_ok(" ".join(["word"] * 40))
    assert not h.english_length_ok(" ".join(["word"] * 41))


def test_ratio_filter():
    assert h.ratio_ok("eins zwei drei", "one two three")
    assert h.ratio_ok("a b c d e f", "one two three four")  # 1.5 exactly
    assert not h.ratio_ok("a b c d e f g", "one two three four")  # 1.75
    assert not h.ratio_ok("Explosionsgefahr besteht", "There is a danger of explosion")  # 2.5 the other way
    assert not h.ratio_ok("", "x")


def test_cedilla_and_nfc_normalisation():
    src = "Aplica\u0163ia \u015fi \u015e\u0162 fi\u015fierul"
    out = h.normalize_text(src, "ro")
    assert out == "Aplica\u021bia \u0219i \u0218\u021a fi\u0219ierul"
    assert not any(c in out for c in "\u015f\u0163\u015e\u0162")
    decomposed = "Ma\u0306rime  a\u0302  i\u0302n\t\u00a0 dosar"  # combining breve / circumflex, odd spaces
    out = h.normalize_text(decomposed, "ro")
    assert out == "M\u0103rime \u00e2 \u00een dosar"
    assert unicodedata.is_normalized("NFC", out)
    # German text is not touched by the Romanian rule
    assert h.normalize_text("\u015f", "de") == "\u015f"


def test_language_sanity():
    assert h.language_ok("Die Datei wurde gespeichert.", "The file was saved.", "de")
    assert h.language_ok("Fișierul a fost salvat.", "The file was saved.", "ro")
    # untranslated / half-translated, no German features
    assert not h.language_ok("Status Tray Items", "Status Tray Items", "de")
    assert not h.language_ok("Firefox Sync Server Setup", "Firefox Sync server settings", "de")
    # many shared words but clearly German (function words / umlauts) -> kept
    assert h.language_ok("Firefox Sync ist aktiv", "Firefox Sync is active", "de")
    assert h.has_language_features("Verschiebung in Y", "de")
    assert h.has_language_features("Decodor video pentru fișier", "ro")
    assert not h.has_language_features("Video Decoder", "ro")


def test_clean_pair_chain():
    pair, rule = h.clean_pair("Datei _speichern unter", "Save _File As", "de")
    assert rule is None and pair == ("Datei speichern unter", "Save File As")
    assert h.clean_pair("%s öffnen", "Open %s now", "de") == (None, "format_code")
    assert h.clean_pair("<b>Fett</b> schreiben", "<b>Write</b> bold text", "de") == (None, "markup")
    assert h.clean_pair("Öffnen", "Open", "de") == (None, "english_length")
    assert h.clean_pair("Open the file now", "Open the file now", "de") == (None, "identical")
    assert h.clean_pair("a_b_c d", "the a_b_c thing", "de") == (None, "accelerator")
    pair, rule = h.clean_pair("Deschide fi\u015fierul \u0219i dosarul", "Open  the file\nand folder", "ro")
    assert pair == ("Deschide fi\u0219ierul \u0219i dosarul", "Open the file and folder")


def test_dedup_and_max_targets():
    pairs = [
        ("Datei öffnen jetzt", "Open the file now", "a"),
        ("Datei  öffnen jetzt!", "Open the file now.", "b"),  # duplicate after normalisation
        ("Öffne die Datei jetzt", "open the file now", "c"),  # 2nd translation: kept
        ("Die Datei jetzt öffnen", "Open the file now", "d"),  # 3rd translation: dropped
        ("Etwas anderes hier", "Something else here", "e"),
    ]
    stats = h.collections.defaultdict(h.collections.Counter)
    kept = h.dedup_pairs(pairs, max_per_english=2, stats=stats)
    assert [o for _s, _e, o in kept] == ["a", "c", "e"]
    assert stats["b"]["duplicate"] == 1 and stats["d"]["max_targets_per_english"] == 1
    kept, st = h.filter_pairs(pairs, "de")
    assert len(kept) == 3 and st["a"]["kept"] == 1 and st["b"]["duplicate"] == 1


# ----------------------------------------------------------------------------- source readers


def test_ding_parser():
    line = ("Sonnenbrand {m} [med.] | Sonnenbrand bekommen | Haben Sie etwas gegen Sonnenbrand? :: "
            "sunburn | to get sunburn | Have you anything for sunburn?")
    assert h.parse_ding_line(line) == [("Haben Sie etwas gegen Sonnenbrand?", "Have you anything for sunburn?")]
    # alternative counts differ: nothing is paired
    assert h.parse_ding_line("A | Er kam. | Sie ging. :: a | He came.") == []
    # sub-alternatives: k-th with k-th; annotations removed, optional words unwrapped
    line = "x | Da ist (noch) nichts verloren.; Es geht noch. [ugs.] :: x | Nothing is lost yet.; It is still possible."
    assert h.parse_ding_line(line) == [("Da ist noch nichts verloren.", "Nothing is lost yet."),
                                       ("Es geht noch.", "It is still possible.")]
    # word alternatives, gaps and placeholders are skipped
    assert h.parse_ding_line("x | Ich helfe/unterstütze dich. :: x | I help you.") == []
    assert h.parse_ding_line("x | Wenn der Preis keine Rolle spielt, … :: x | If price is no matter, …") == []
    assert h.parse_ding_line("x | Er hat etw. getan. :: x | He did sth.") == []
    assert h.parse_ding_line("# comment :: line") == []
    stats = h.collections.Counter()
    h.read_ding("x | Er kam. | Ich helfe/unterstütze dich. :: x | He came. | I help you.\nA | B :: a\n", stats)
    assert stats == {"entries": 2, "entries_alternative_count_mismatch": 1, "example_sentences": 2,
                     "skipped_placeholder_slash_gap": 1, "pairs": 1}


def _mozilla_strings(ftl, props):
    """What read_mozilla_archive gives for one .ftl and one .properties file: {message key: text}."""
    zipped = _zip({"localization/en-US/browser/a.ftl": ftl, "chrome/en-US/locale/en-US/b.properties": props})
    return {key: text for (_b, _path, key), text in h.read_mozilla_archive(zipped, "en-US").items()}


def test_ftl_parser_and_terms():
    text = """# comment
-brand-short-name = Firefox
about = About { -brand-short-name }
multi =
    First line
    second line
button =
    .label = Check for updates
    .accesskey = C
var = Hello { $name }
lit = Keep { "{" } literal
"""
    msgs = h.parse_ftl(text)
    assert "button" not in msgs and "-brand-short-name" in msgs
    terms = h._plain_terms({"-brand-short-name": msgs["-brand-short-name"]})
    assert terms == {"-brand-short-name": "Firefox"}
    assert h.ftl_text(msgs["multi"], terms) == "First line second line"
    assert h.ftl_text(msgs["button.label"], terms) == "Check for updates"
    assert h.ftl_text(msgs["button.accesskey"], terms) == "C"
    assert h.ftl_text(msgs["about"], terms) == "About Firefox"
    assert h.ftl_text(msgs["var"], terms) == "Hello { $name }"
    assert h.ftl_text(msgs["lit"], terms) == "Keep { literal"


def test_properties_parser():
    text = "# c\nkey1 = Hello \\u00e4 world\nkey2=Line one \\\n   continued\n! other\nkey3: x\\ny\nempty =\n"
    assert h.parse_properties(text) == {"key1": "Hello \u00e4 world", "key2": "Line one continued", "key3": "x\ny"}


# Fluent and .properties text exercising what the hand-written readers the libraries replaced
# (fluent.syntax, jproperties) handled: terms (plain, with a placeable, with an attribute or
# arguments), string literals, select expressions, calls, message references, attribute-only
# messages, multi-line patterns, \uXXXX / \n / \t / \= / \: / \\ escapes, continuations.
OLD_READER_FTL = r"""# comment
-brand-short-name = Firefox
-brand-full = { "Mozilla" } Firefox
-vendor = Mozilla
    .gender = masculine
about = About { -brand-short-name }
about-full = About { -brand-full }
multi =
    First line
      second line
button =
    .label = Check for updates
    .accesskey = C
var = Hello { $name }
var2 = Hello {$name}
lit = Keep { "{" } literal
quote = Say { "\"hi\"" } now
uesc = Wait{ "\u00A0" }here please
sel = { $n ->
    [one] One tab
   *[other] { $n } tabs
  }
sel-term = { -vendor.gender ->
    [masculine] His { -brand-short-name }
   *[other] Its { -brand-short-name }
 }
call = { NUMBER($n) } items of { -brand-short-name }
ref = See { about }
attr-only =
    .title = Only a title here
termarg = { -brand-short-name(case: "gen") } settings
## group comment
spaced   =   Lots   of   space
"""
OLD_READER_PROPS = r"""# c
key1 = Hello \u00e4 world
key2=Line one \
   continued
! other
key3: x\ny
key4 = Tab\there
key5 = a \= b \: c
key6 = back\\slash
empty =
key7 = Caf\u00E9 \u00fcber
key8 = Ends with space\u0020
"""
# What the old readers gave (after normalize_whitespace, which the extract stage applies to
# every string): the same text, except that a placeable they could not fill in is now written
# as Fluent source ({$name} -> { $name }); such strings are dropped by the same filter rule.
OLD_READER_TEXT = {
    "key1": "Hello \u00e4 world", "key2": "Line one continued", "key3": "x y", "key4": "Tab here",
    "key5": "a = b : c", "key6": "back\\slash", "key7": "Caf\u00e9 \u00fcber", "key8": "Ends with space",
    "about": "About Firefox", "about-full": "About { -brand-full }", "attr-only.title": "Only a title here",
    "button.accesskey": "C", "button.label": "Check for updates", "call": "{ NUMBER($n) } items of Firefox",
    "lit": "Keep { literal", "multi": "First line second line", "quote": 'Say "hi" now', "ref": "See { about }",
    "sel": "{ $n -> [one] One tab *[other] { $n } tabs }",
    "sel-term": "{ -vendor.gender -> [masculine] His Firefox *[other] Its Firefox }",
    "spaced": "Lots of space", "termarg": '{ -brand-short-name(case: "gen") } settings',
    "uesc": "Wait\\u00A0here please", "var": "Hello { $name }", "var2": "Hello {$name}",
}


def test_library_readers_give_what_the_old_readers_gave():
    new = {k: h.normalize_whitespace(v) for k, v in _mozilla_strings(OLD_READER_FTL, OLD_READER_PROPS).items()}
    assert new.keys() == OLD_READER_TEXT.keys()
    for key, old in OLD_READER_TEXT.items():
        if new[key] != old:
            assert key in ("uesc", "var2"), key
            assert h.clean_pair(new[key], new[key], "de")[1] == h.clean_pair(old, old, "de")[1] is not None


def _zip(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buf.getvalue()


def test_mozilla_archives_pair_by_path_and_id():
    omni = _zip({"localization/en-US/toolkit/a.ftl": "msg = Close the window now\n",
                 "chrome/en-US/locale/en-US/global/b.properties": "k = Print this page\n"})
    browser_omni = _zip({"localization/en-US/browser/c.ftl": "-brand-short-name = Firefox\n"
                                                             "m = { -brand-short-name } is up to date\n"})
    xpi = _zip({"localization/de/toolkit/a.ftl": "msg = Fenster jetzt schließen\n",
                "chrome/de/locale/de/global/b.properties": "k = Diese Seite drucken\n",
                "browser/localization/de/browser/c.ftl": "-brand-short-name = Firefox\n"
                                                         "m = { -brand-short-name } ist aktuell\n"})
    en = h.merge_mozilla(h.read_mozilla_archive(omni, "en-US", browser=False),
                         h.read_mozilla_archive(browser_omni, "en-US", browser=True))
    de = h.read_mozilla_archive(xpi, "de")
    pairs = sorted((de[k], en[k]) for k in de if k in en)
    assert pairs == [("Diese Seite drucken", "Print this page"), ("Fenster jetzt schließen", "Close the window now"),
                     ("Firefox ist aktuell", "Firefox is up to date")]


def _mo(tmp_path, entries, metadata, encoding="utf-8") -> bytes:
    """A .mo file written by polib: entries ``(msgctxt, msgid, msgstr)``, a plural one with
    ``(singular, plural)`` as msgid and a list of forms as msgstr."""
    po = polib.POFile(encoding=encoding)
    po.metadata = metadata
    for ctx, mid, mstr in entries:
        if isinstance(mstr, list):
            po.append(polib.POEntry(msgctxt=ctx, msgid=mid[0], msgid_plural=mid[1], msgstr_plural=dict(enumerate(mstr))))
        else:
            po.append(polib.POEntry(msgctxt=ctx, msgid=mid, msgstr=mstr))
    path = tmp_path / "t.mo"
    po.save_as_mofile(str(path))
    return path.read_bytes()


def test_mo_reader(tmp_path):
    entries = [
        (None, "Open the file", "Datei öffnen"),
        ("menu", "Quit", "Beenden"),
        (None, ("%d file", "%d files"), ["%d Datei", "%d Dateien"]),
        (None, "Untranslated", ""),
    ]
    header = {"Project-Id-Version": "t", "Language-Team": "German <de@example.org>",
              "Content-Type": "text/plain; charset=UTF-8", "Plural-Forms": "nplurals=2; plural=(n != 1);"}
    data = _mo(tmp_path, entries, header)
    # context stripped, first plural form, empty translation skipped (what the old own reader gave)
    got, hdr = h.read_mo(data)
    assert sorted(got, key=lambda t: t[1]) == [(None, "%d file", "%d Datei"), (None, "Open the file", "Datei öffnen"),
                                               ("menu", "Quit", "Beenden")]
    assert hdr["Language-Team"] == "German <de@example.org>"
    # the same file as Python's own gettext (and so GNU gettext) reads it
    with open(tmp_path / "t.mo", "rb") as f:
        tr = gettext.GNUTranslations(f)
    assert tr.pgettext("menu", "Quit") == "Beenden" and tr.ngettext("%d file", "%d files", 3) == "%d Dateien"
    with pytest.raises(OSError):
        h.read_mo(b"\x00" * 40)


@pytest.mark.parametrize("content_type, encoding", [
    ("text/plain; charset=ISO-8859-1", "iso-8859-1"),
    (None, "utf-8"),  # no charset: UTF-8
    ("text/plain; charset=CHARSET", "utf-8"),  # the template's placeholder: UTF-8
])
def test_mo_charset(tmp_path, content_type, encoding):
    header = {"Content-Type": content_type} if content_type else {}
    data = _mo(tmp_path, [(None, "Open the file", "Datei öffnen")], header, encoding)
    assert h.read_mo(data)[0] == [(None, "Open the file", "Datei öffnen")]


def test_summarize_copyright():
    text = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
            "Upstream-Name: foo\nSource: https://example.org/foo\n\n"
            "Files: *\nCopyright: 2020 A\nLicense: GPL-2+\n\n"
            "Files: po/*\nCopyright: 2020 B\nLicense: LGPL-2.1+\n")
    info = h.summarize_copyright(text)
    assert info["license"] == "GPL-2+" and info["po_license"] == "LGPL-2.1+" and info["upstream_name"] == "foo"
    assert h.summarize_copyright("This is licensed under the Mozilla Public License, v. 2.0.")["license"] == "MPL-2.0"


def test_package_list_is_explicit_and_valid():
    specs = h.read_package_list(h.DEFAULT_PACKAGES)
    names = [s.name for s in specs]
    assert len(names) == len(set(names)) and len(names) > 50
    kinds = {s.kind for s in specs}
    assert {"ding", "fluent-en", "fluent-l10n", "gettext"} <= kinds
    assert all(s.comment for s in specs)
    assert not any(n.startswith(("libreoffice", "wesnoth")) for n in names)


def test_package_list_parser_errors(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("foo gettext # a\nfoo gettext # again\n")
    with pytest.raises(ValueError):
        h.read_package_list(p)
    p.write_text("foo nonsense # a\n")
    with pytest.raises(ValueError):
        h.read_package_list(p)


# ----------------------------------------------------------------------------- splits


def _synthetic(seed=0, n=3000):
    rng = random.Random(seed)
    words = "alpha beta gamma delta river stone green quick house table light water paper music".split()
    deen, roen = [], []
    for i in range(n):
        en = " ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) + f" number{i}."
        en = en[0].upper() + en[1:]
        deen.append((f"de {i} satz", en, "pkgA"))
        if i % 2 == 0:  # half of the English also in Ro-En
            roen.append((f"ro {i} fraza", en, "pkgB"))
        if i % 7 == 0:  # a near-duplicate English (case / punctuation) in the other pair
            roen.append((f"ro {i} alt", en.lower().rstrip(".") + "!", "pkgC"))
        if i % 11 == 0:  # short speakable sentences (letters only) for the held-out pool
            name = "".join(chr(97 + int(c)) for c in str(i))
            deen.append((f"de kurz {i}", f"The river {name} is green today.", "pkgD"))
    return {"deen": deen, "roen": roen}


def test_split_constraints_synthetic():
    data = _synthetic()
    splits, heldout, aside = h.assign_splits(data, seed=3, n_valid=100, n_test=120, n_heldout=50)
    assert h.check_split_constraints(splits, heldout) == []
    key = h.norm_key
    de_train = {key(e) for _s, e, _o in splits["deen"]["train"]}
    ro_train = {key(e) for _s, e, _o in splits["roen"]["train"]}
    # (1) Ro-En valid/test English never in De-En train
    for split in ("valid", "test"):
        assert not ({key(e) for _s, e, _o in splits["roen"][split]} & de_train)
    # (2) no valid/test English in any train set
    for lp in ("deen", "roen"):
        for split in ("valid", "test"):
            assert not ({key(e) for _s, e, _o in splits[lp][split]} & (de_train | ro_train))
    # (3) held-out pool: in no split at all, short and speakable
    used = {key(e) for sp in splits.values() for rows in sp.values() for _s, e, _o in rows}
    assert len(heldout) == 50 and not ({key(e) for e in heldout} & used)
    assert all(4 <= len(e.split()) <= 12 for e in heldout)
    # near-duplicates share a split
    where = {}
    for lp, sp in splits.items():
        for split, rows in sp.items():
            for _s, e, _o in rows:
                where.setdefault(key(e), set()).add(split)
    assert all(len(v) == 1 for v in where.values())
    # sizes close to the targets
    for lp in ("deen", "roen"):
        assert 100 <= len(splits[lp]["valid"]) <= 102
        assert 120 <= len(splits[lp]["test"]) <= 122
    # nothing lost except what the split sets aside
    for lp in ("deen", "roen"):
        total = sum(len(r) for r in splits[lp].values()) + aside[lp]["heldout"] + aside[lp]["other_pair_eval"]
        assert total == len(data[lp])


def test_split_is_deterministic():
    data = _synthetic(1, 800)
    a = h.assign_splits(data, seed=7, n_valid=50, n_test=50, n_heldout=10)
    b = h.assign_splits(data, seed=7, n_valid=50, n_test=50, n_heldout=10)
    c = h.assign_splits(data, seed=8, n_valid=50, n_test=50, n_heldout=10)
    assert a == b
    assert a[0]["roen"]["test"] != c[0]["roen"]["test"]


def test_check_split_constraints_reports_violations():
    splits = {
        "deen": {"train": [("x", "The same sentence here.", "p")], "valid": [], "test": []},
        "roen": {"train": [], "valid": [], "test": [("y", "the same sentence here", "p")]},
    }
    problems = h.check_split_constraints(splits, ["The same sentence here!"])
    assert any(p.startswith("(1)") for p in problems)
    assert any(p.startswith("(2)") for p in problems)
    assert any(p.startswith("(3)") for p in problems)


def test_tsv_roundtrip(tmp_path):
    rows = [("1", "Grüße", "Greetings to you", "pkg"), ("2", "ș ț", "s t x", "pkg")]
    p = tmp_path / "x.tsv.xz"
    assert h.write_tsv(p, rows, header=("id", "de", "en", "origin")) == 2
    assert h.read_tsv(p, header=True) == [list(r) for r in rows]


# ----------------------------------------------------------------------------- second English domain

WORDNET_DATA = """  1 This software and database is being provided to you, the LICENSEE, "AS IS"
00022316 29 v 05 sedate 0 calm 0 009 @ 00019448 v 0000 01 + 09 00 | cause to be calm; "The patient must be sedated before the operation"  
00001740 00 a 01 able 0 005 = 05200169 n 0000 | having the means; "able to swim"; "she was able to program her computer"; "We were at last able to buy a car"  
00023646 29 v 04 faint 0 conk 0 003 @ 00023868 v 0000 01 + 02 00 | pass out from weakness  
00100001 29 v 01 count 0 000 | say numbers; "He counted to 10 slowly"; "I had the feeling that he was waiting--serenely"; "The Caf\u00e9 opened at noon"
"""


def test_wordnet_examples_are_the_quoted_parts_of_glosses():
    assert h.wordnet_examples(WORDNET_DATA) == [
        "The patient must be sedated before the operation", "able to swim", "she was able to program her computer",
        "We were at last able to buy a car", "He counted to 10 slowly", "I had the feeling that he was waiting--serenely",
        "The Caf\u00e9 opened at noon"]


@pytest.mark.parametrize("example, rule", [
    ("The patient must be sedated before the operation", None), ("We don't intermingle much", None),
    ("She never sat a horse!", None), ("Go", "length"), ("one two three four five six seven eight nine ten eleven "
                                                        "twelve thirteen fourteen fifteen sixteen seventeen", "length"),
    ("He counted to 10 slowly", "characters"), ("The Caf\u00e9 opened at noon", "characters"),
    ("she was able to program her computer", "fragment"), ("I was waiting--serenely patient", "punctuation"),
    ("He left (for good without a word", "punctuation"),
])
def test_domain2_rules(example, rule):
    assert h.domain2_reject(example) == rule


def test_as_sentence():
    assert h.as_sentence("We don't intermingle much") == "We don't intermingle much."
    assert h.as_sentence("Have you stuffed the turkey yet?") == "Have you stuffed the turkey yet?"
    assert h.as_sentence("He said, 'go away.'") == "He said, 'go away.'"
    assert h.as_sentence("The list goes on;") == "The list goes on."


def test_select_domain2_dedups_excludes_and_caps_deterministically():
    examples = [f"The river number {w} is green today" for w in "one two three four five six seven eight".split()]
    examples += ["The river number ONE is green today!", "able to swim in the sea", "The MT corpus has this sentence"]
    exclude = {h.norm_key("The MT corpus has this sentence.")}
    kept, stats = h.select_domain2(examples, exclude, n=5, seed=3)
    assert len(kept) == 5 and all(s.endswith("today.") for s in kept)
    assert stats == {"examples": 11, "duplicate": 1, "fragment": 1, "in_corpus": 1, "usable": 8, "kept": 5}
    distinct = examples[:8]  # the same sentences in another file order: the same sample
    assert h.select_domain2(distinct[::-1], exclude, n=5, seed=3)[0] == h.select_domain2(distinct, exclude, n=5, seed=3)[0]
    assert h.select_domain2(examples, exclude, n=5, seed=4)[0] != kept


def test_documents_keep_the_second_domain_section(tmp_path):
    doc = tmp_path / "STATS.md"
    h.write_doc(doc, "# Corpus statistics\n\nsplit tables\n")
    h.put_doc_block(doc, "## Second English domain\n\n8000 sentences\n")
    h.put_doc_block(doc, "## Second English domain\n\n7000 sentences\n")  # replaced, not appended
    h.write_doc(doc, "# Corpus statistics\n\nnew split tables\n")  # the split stage again
    text = doc.read_text()
    assert text.startswith("# Corpus statistics\n\nnew split tables\n")
    assert text.count(h.DOC_BLOCK[0]) == 1 and "7000 sentences" in text and "8000" not in text


def test_license_text_of_the_files_star_stanza():
    text = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            "Files: *\nCopyright: 2006 Princeton\nLicense: WordNet3.0\n Permission to use.\n .\n Copyright 2006.\n\n"
            "Files: debian/*\nLicense: GPL-2+\n GPL text\n")
    assert h.license_text(text) == "Permission to use.\n\nCopyright 2006."


# ----------------------------------------------------------------------------- committed corpus


def _corpus_files():
    return {(lp, split): CORPUS / lp / f"{split}.tsv.xz" for lp in ("deen", "roen") for split in ("train", "valid", "test")}


@pytest.mark.skipif(not (CORPUS / "deen" / "train.tsv.xz").exists(), reason="corpus not built")
def test_committed_corpus_constraints():
    rows = {}
    for (lp, split), path in _corpus_files().items():
        with h.lzma.open(path, "rt", encoding="utf-8") as f:
            rows[(lp, split)] = [line.rstrip("\n").split("\t") for line in f]
        # id, source, english, origin; no header line
        assert all(len(r) == 4 for r in rows[(lp, split)])
        assert rows[(lp, split)][0][0] == f"{lp}-{split}-000001"
        assert len({r[0] for r in rows[(lp, split)]}) == len(rows[(lp, split)])
    key = h.norm_key
    keys = {k: {key(r[2]) for r in v} for k, v in rows.items()}
    de_train, ro_train = keys[("deen", "train")], keys[("roen", "train")]
    for split in ("valid", "test"):
        assert 900 <= len(rows[("deen", split)]) and 900 <= len(rows[("roen", split)])
        # (1)
        assert not (keys[("roen", split)] & de_train)
        # (2)
        for lp in ("deen", "roen"):
            assert not (keys[(lp, split)] & (de_train | ro_train))
    assert not (keys[("deen", "valid")] & keys[("deen", "test")])
    assert not (keys[("roen", "valid")] & keys[("roen", "test")])
    # (3) the held-out English pool is in no split
    heldout = (CORPUS / "en_heldout.txt").read_text(encoding="utf-8").splitlines()
    assert len(heldout) >= 1000
    used = set().union(*keys.values())
    assert not ({key(e) for e in heldout} & used)
    # Romanian uses comma-below letters only
    ro_text = "".join(r[1] for k, v in rows.items() if k[0] == "roen" for r in v)
    assert not any(c in ro_text for c in "\u015f\u0163\u015e\u0162")
    assert (CORPUS / "SOURCES.md").exists() and (CORPUS / "STATS.md").exists()


@pytest.mark.skipif(not (CORPUS / h.DOMAIN2_FILE).exists(), reason="second domain not built")
def test_committed_second_domain():
    """(4) en_domain2.txt: 6000-8000 readable 4-16 word sentences, none in a split or en_heldout.txt."""
    sentences = (CORPUS / h.DOMAIN2_FILE).read_text(encoding="utf-8").splitlines()
    assert 6000 <= len(sentences) <= 8000
    assert all(h.domain2_reject(s) is None and s == h.as_sentence(s) for s in sentences)
    keys = [h.norm_key(s) for s in sentences]
    assert len(set(keys)) == len(keys)
    assert not (set(keys) & h.corpus_english_keys(CORPUS))
    for doc in ("README.md", "SOURCES.md", "STATS.md"):
        assert h.doc_block((CORPUS / doc).read_text(encoding="utf-8")), f"{doc} lacks the second-domain section"
