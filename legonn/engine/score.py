"""Scoring of hypotheses against references: WER/CER (jiwer), BLEU and chrF (sacrebleu).

Both sides are Kaldi-style ``text`` files (``utt_id text`` per line) matched
by utterance id, so the order of lines does not matter.  :func:`score_files`
returns a plain dict (see :func:`score_texts`); :func:`write_json` and
:func:`write_alignments` write it out.

Normalisation (``lowercase``, ``remove_punct``) is off by default and applies
to WER/CER.  ``lowercase`` also applies to BLEU/chrF, but through sacrebleu's
own option so that the signature records it (``case:lc``); ``remove_punct``
never touches BLEU/chrF because the signature could not record it.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from typing import Iterable, Mapping, Sequence

from legonn.errors import LegonnError
from legonn.fileio import read_table, write_atomic
from legonn.version import __version__

METRICS = ("wer", "bleu", "chrf")
_SHOW_IDS = 5  # how many ids an id-mismatch error lists

# tensor2tensor / fairseq get_ende_bleu.sh: perl -ple 's{(\S)-(\S)}{$1 ##AT##-##AT## $2}g'.
# re.sub, like perl's s///g, does not rescan overlapping matches ("a-b-c" ->
# "a ##AT##-##AT## b-c"), so scores stay comparable with published numbers.
_COMPOUND = re.compile(r"(\S)-(\S)")


# --- reading ------------------------------------------------------------------


def read_text(path: str | os.PathLike, what: str = "text") -> dict[str, str]:
    """A Kaldi ``text`` file as an insertion-ordered ``{utt_id: text}`` (text may be empty;
    inner whitespace collapsed). Format errors name the file and line (legonn.fileio)."""
    table = read_table(path, what=f"{what} file", allow_empty=True)
    return {utt: " ".join(text.split()) for utt, text in table.items()}


def _ids(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:_SHOW_IDS])
    return shown + (", ..." if len(ids) > _SHOW_IDS else "")


def match(
    refs: Mapping[str, str],
    hyps: Mapping[str, str],
    allow_missing: bool = False,
    ref_name: str = "reference",
    hyp_name: str = "hypothesis",
) -> tuple[list[str], list[str], list[str], list[str]]:
    """Pair hypotheses with references by id, in reference order.

    Returns ``(ids, ref_texts, hyp_texts, missing_ids)``.  Reference ids
    missing from ``hyps`` are an error unless ``allow_missing`` (then they
    score as empty hypotheses); hypothesis ids not in ``refs`` always are.
    """
    if not refs:
        raise LegonnError(f"{ref_name} has no utterances")
    missing = [u for u in refs if u not in hyps]
    extra = [u for u in hyps if u not in refs]
    problems = []
    if missing and not allow_missing:
        problems.append(
            f"{len(missing)} of {len(refs)} utterance(s) in {ref_name} missing from {hyp_name}: "
            f"{_ids(missing)} (use --allow_missing to score them as empty)"
        )
    if extra:
        problems.append(f"{len(extra)} utterance(s) in {hyp_name} not in {ref_name}: {_ids(extra)}")
    if problems:
        raise LegonnError("; ".join(problems))
    ids = list(refs)
    return ids, [refs[u] for u in ids], [hyps.get(u, "") for u in ids], missing


# --- normalisation --------------------------------------------------------------


def normalise(text: str, lowercase: bool = False, remove_punct: bool = False) -> str:
    if lowercase:
        text = text.lower()
    if remove_punct:
        # Unicode punctuation (categories P*), like jiwer.RemovePunctuation; then
        # re-split so punctuation-only words vanish instead of leaving gaps.
        text = " ".join("".join(c for c in text if not unicodedata.category(c).startswith("P")).split())
    return text


def compound_split(text: str) -> str:
    """``a-b`` -> ``a ##AT##-##AT## b``, as get_ende_bleu.sh does for WMT En-De."""
    return _COMPOUND.sub(r"\1 ##AT##-##AT## \2", text)


# --- WER / CER --------------------------------------------------------------------

_OPS = {"equal": "C", "substitute": "S", "delete": "D", "insert": "I"}


def error_rate(ids: Sequence[str], refs: Sequence[str], hyps: Sequence[str], unit: str = "word") -> dict:
    """Corpus WER (``unit='word'``) or CER (``unit='char'``) with per-utterance alignments.

    ``score`` is a percentage.  ``utterances`` holds, per id, the counts and
    the aligned ``[ref_token, hyp_token, op]`` triples (op in S/D/I/C, None
    for a gap).  CER counts spaces as characters (as ESPnet's ``<space>``).
    """
    import jiwer  # deferred: the CLI's --help should not pay for it

    out = (jiwer.process_words if unit == "word" else jiwer.process_characters)(list(refs), list(hyps))
    n_ref = sum(len(r) for r in out.references)
    if n_ref == 0:
        raise LegonnError(f"the reference has no {unit}s, so the {unit} error rate is undefined")
    utts = []
    for utt, ref, hyp, r, h, chunks in zip(ids, refs, hyps, out.references, out.hypotheses, out.alignments):
        pairs: list[list] = []
        for c in chunks:
            op = _OPS[c.type]
            rs, hs = r[c.ref_start_idx : c.ref_end_idx], h[c.hyp_start_idx : c.hyp_end_idx]
            if op == "D":
                pairs += [[t, None, op] for t in rs]
            elif op == "I":
                pairs += [[None, t, op] for t in hs]
            else:  # C and S chunks cover equally many tokens on both sides
                pairs += [[a, b, op] for a, b in zip(rs, hs)]
        counts = {k: sum(p[2] == k for p in pairs) for k in "CSDI"}
        n_err = counts["S"] + counts["D"] + counts["I"]
        utts.append({"id": utt, "ref": ref, "hyp": hyp, **counts, "errors": n_err, "pairs": pairs})
    errors = out.substitutions + out.deletions + out.insertions
    n_err_utts = sum(u["errors"] > 0 for u in utts)
    return {
        "score": 100.0 * errors / n_ref,
        "unit": unit,
        "substitutions": out.substitutions,
        "deletions": out.deletions,
        "insertions": out.insertions,
        "hits": out.hits,
        "ref_len": n_ref,
        "hyp_len": sum(len(h) for h in out.hypotheses),
        "utts_with_errors": n_err_utts,
        "ser": 100.0 * n_err_utts / len(utts),
        "utterances": utts,
    }


# --- BLEU / chrF --------------------------------------------------------------------


def bleu(refs: Sequence[str], hyps: Sequence[str], lowercase: bool = False) -> dict:
    """Detokenized corpus BLEU (sacrebleu defaults, tokenize='13a') with its signature."""
    from sacrebleu.metrics import BLEU

    metric = BLEU(lowercase=lowercase)
    res = metric.corpus_score(list(hyps), [list(refs)])
    return {
        "score": res.score,
        "signature": str(metric.get_signature()),
        "precisions": res.precisions,
        "bp": res.bp,
        "sys_len": res.sys_len,
        "ref_len": res.ref_len,
    }


def tok_bleu(refs: Sequence[str], hyps: Sequence[str], lowercase: bool = False, split_compounds: bool = False) -> dict:
    """"Tokenized BLEU" as reported in papers: multi-bleu.perl on tokenized text.

    Both sides are tokenized with sacrebleu's 13a tokenizer, optionally
    compound-split (:func:`compound_split`), then scored on whitespace tokens
    (tokenize='none', which is what multi-bleu.perl does).
    """
    from sacrebleu.metrics import BLEU
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    tok = Tokenizer13a()

    def prep(s: str) -> str:
        s = tok(s)
        return compound_split(s) if split_compounds else s

    metric = BLEU(lowercase=lowercase, tokenize="none", force=True)  # force: input is tokenized on purpose
    res = metric.corpus_score([prep(h) for h in hyps], [[prep(r) for r in refs]])
    return {
        "score": res.score,
        "signature": str(metric.get_signature()),
        "pre_tokenize": "13a",
        "compound_split": split_compounds,
        "precisions": res.precisions,
        "bp": res.bp,
        "sys_len": res.sys_len,
        "ref_len": res.ref_len,
    }


def chrf(refs: Sequence[str], hyps: Sequence[str], lowercase: bool = False) -> dict:
    """Corpus chrF (sacrebleu defaults) with its signature."""
    from sacrebleu.metrics import CHRF

    metric = CHRF(lowercase=lowercase)
    res = metric.corpus_score(list(hyps), [list(refs)])
    return {"score": res.score, "signature": str(metric.get_signature())}


# --- all together ---------------------------------------------------------------------


def score_texts(
    refs: Mapping[str, str],
    hyps: Mapping[str, str],
    metrics: Iterable[str] = METRICS,
    *,
    cer: bool = False,
    lowercase: bool = False,
    remove_punct: bool = False,
    compound_split: bool = False,
    allow_missing: bool = False,
    ref_name: str = "reference",
    hyp_name: str = "hypothesis",
) -> dict:
    """Score ``{utt_id: text}`` hypotheses against references.

    ``metrics`` is a subset of :data:`METRICS`; ``cer`` adds CER.  The result
    has ``n_utts``, ``n_missing`` (scored as empty), the options, and one
    sub-dict per metric (``wer``, ``cer``, ``bleu`` plus ``bleu_tok``, ``chrf``),
    each with a ``score``.
    """
    metrics = set(metrics)
    unknown = metrics - set(METRICS)
    if unknown:
        raise LegonnError(f"unknown metric(s) {sorted(unknown)}; choose from {list(METRICS)}")
    ids, r, h, missing = match(refs, hyps, allow_missing, ref_name, hyp_name)
    result: dict = {
        "legonn_version": __version__,
        "ref": ref_name,
        "hyp": hyp_name,
        "n_utts": len(ids),
        "n_missing": len(missing),
        "missing": missing,
        "options": {"lowercase": lowercase, "remove_punct": remove_punct, "compound_split": compound_split},
    }
    if "wer" in metrics or cer:
        nr = [normalise(t, lowercase, remove_punct) for t in r]
        nh = [normalise(t, lowercase, remove_punct) for t in h]
        if "wer" in metrics:
            result["wer"] = error_rate(ids, nr, nh, "word")
        if cer:
            result["cer"] = error_rate(ids, nr, nh, "char")
    if "bleu" in metrics:
        result["bleu"] = bleu(r, h, lowercase)
        result["bleu_tok"] = tok_bleu(r, h, lowercase, compound_split)
    if "chrf" in metrics:
        result["chrf"] = chrf(r, h, lowercase)
    return result


def score_files(ref: str | os.PathLike, hyp: str | os.PathLike, metrics: Iterable[str] = METRICS, **options) -> dict:
    """:func:`score_texts` on two Kaldi ``text`` files (options as there)."""
    refs = read_text(ref, "reference")
    hyps = read_text(hyp, "hypothesis")
    return score_texts(refs, hyps, metrics, ref_name=os.fspath(ref), hyp_name=os.fspath(hyp), **options)


def summary_line(result: Mapping) -> str:
    """One line, e.g. ``WER 12.34 % [S=1 D=2 I=3 / N=50] | BLEU 23.4 (tok 24.1) | chrF 50.2 | 500 utts``."""
    parts = []
    for key in ("wer", "cer"):
        if key in result:
            m = result[key]
            parts.append(
                f"{key.upper()} {m['score']:.2f} % [S={m['substitutions']} D={m['deletions']} "
                f"I={m['insertions']} / N={m['ref_len']}]"
            )
    if "bleu" in result:
        parts.append(f"BLEU {result['bleu']['score']:.1f} (tok {result['bleu_tok']['score']:.1f})")
    if "chrf" in result:
        parts.append(f"chrF {result['chrf']['score']:.1f}")
    utts = f"{result['n_utts']} utts"
    if result["n_missing"]:
        utts += f" ({result['n_missing']} missing, scored as empty)"
    return " | ".join(parts + [utts])


def signature_lines(result: Mapping) -> list[str]:
    """The sacrebleu signatures, one line per metric, for pasting into papers."""
    lines = []
    if "bleu" in result:
        lines.append(f"BLEU signature: {result['bleu']['signature']}")
        t = result["bleu_tok"]
        pre = "13a-tokenized" + (", compound-split" if t["compound_split"] else "")
        lines.append(f"tok BLEU signature ({pre}): {t['signature']}")
    if "chrf" in result:
        lines.append(f"chrF signature: {result['chrf']['signature']}")
    return lines


# --- writing ----------------------------------------------------------------------------


def write_json(result: Mapping, path: str | os.PathLike, details: bool = False) -> None:
    """Write ``result`` as JSON atomically; per-utterance details only if ``details``.

    (The details go to result.txt; in JSON they would dwarf the summary.)
    """
    if not details:
        result = {k: ({kk: vv for kk, vv in v.items() if kk != "utterances"} if isinstance(v, dict) else v)
                  for k, v in result.items()}
    write_atomic(path, json.dumps(result, indent=2, ensure_ascii=False) + "\n")


def _width(s: str) -> int:
    # East-Asian wide characters take two columns; keeps CJK alignments straight.
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def _pad(s: str, w: int) -> str:
    return s + " " * (w - _width(s))


def format_alignment(utt: Mapping) -> str:
    """One utterance in sclite "pralign" style (gaps as ``***``)."""
    ref, hyp, ev = [], [], []
    for r, h, op in utt["pairs"]:
        r = "*" * 3 if r is None else r
        h = "*" * 3 if h is None else h
        w = max(_width(r), _width(h), 1)
        ref.append(_pad(r, w))
        hyp.append(_pad(h, w))
        ev.append(_pad("" if op == "C" else op, w))
    return "\n".join(
        [
            f"id: ({utt['id']})",
            f"Scores: (#C #S #D #I) {utt['C']} {utt['S']} {utt['D']} {utt['I']}",
            ("REF:  " + " ".join(ref)).rstrip(),
            ("HYP:  " + " ".join(hyp)).rstrip(),
            ("Eval: " + " ".join(ev)).rstrip(),
        ]
    )


def format_alignments(result: Mapping, key: str = "wer") -> str:
    """The whole result.txt: a summary header, then every utterance's alignment."""
    m = result[key]
    head = [
        f"legonn score: {m['unit']} alignments (legonn {result['legonn_version']})",
        f"ref file: {result['ref']}",
        f"hyp file: {result['hyp']}",
        f"{key.upper()} {m['score']:.2f} % [S={m['substitutions']} D={m['deletions']} I={m['insertions']} "
        f"/ N={m['ref_len']}, C={m['hits']}]; utterances with errors {m['utts_with_errors']}"
        f"/{result['n_utts']} ({m['ser']:.2f} %)",
    ]
    if result["n_missing"]:
        head.append(f"{result['n_missing']} utterance(s) missing from hyp, scored as empty")
    return "\n\n".join(["\n".join(head)] + [format_alignment(u) for u in m["utterances"]]) + "\n"


def write_alignments(result: Mapping, path: str | os.PathLike, key: str = "wer") -> None:
    """Write :func:`format_alignments` to ``path`` atomically."""
    write_atomic(path, format_alignments(result, key))


def write_results(result: Mapping, out_dir: str | os.PathLike) -> None:
    """``score.json`` and, for WER, sclite-style ``result.txt`` alignments in ``out_dir``."""
    try:
        write_json(result, os.path.join(out_dir, "score.json"))
        if "wer" in result:
            write_alignments(result, os.path.join(out_dir, "result.txt"))
    except OSError as exc:  # an unwritable --out_dir is a user problem, not a bug
        raise LegonnError(f"cannot write results to {out_dir}: {exc}") from exc
