#!/usr/bin/env python
"""legonn beside ESPnet2 on the same work in the same run (`make bench-peer`).

    .venv/bin/python bench/peer/run.py [--threads N] [--precision fp32|bf16] [--out FILE] [--quick] [--no-readme]

Builds bench/peer/.venv (setup.sh), runs bench/bench.py with this Python (legonn's venv) and then
bench/peer/espnet_bench.py in the peer venv with the same options, writes both reports and their
ratios to one JSON (default bench/peer/results.json) and the ratio table into bench/README.md
between the bench-peer markers. Standard library only.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PEER = Path(__file__).resolve().parent
BENCH = PEER.parent
REPO = BENCH.parent
PEER_PYTHON = PEER / ".venv" / "bin" / "python"
LEGONN_WORKLOADS = "mt_train_baseline,mt_train_legonn,asr_train,mt_decode_baseline,mt_decode_legonn"
BEGIN, END = "<!-- bench-peer:begin -->", "<!-- bench-peer:end -->"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# ------------------------------------------------------------------------------------ ratios

def rows(legonn: dict, espnet: dict) -> list[tuple[str, str, float | None, float | None, float]]:
    """(measure, unit, legonn baseline, LegoNN, ESPnet2) for each compared figure."""
    lw, ew = legonn["workloads"], espnet["workloads"]
    dec = ew["mt_decode_baseline"]["batch_1_sentences_per_second"]

    def get(name: str, key: str) -> float | None:
        return lw[name][key] if name in lw else None

    return [
        ("MT training", "target tok/s", get("mt_train_baseline", "target_tokens_per_second"),
         get("mt_train_legonn", "target_tokens_per_second"), ew["mt_train_baseline"]["target_tokens_per_second"]),
        ("ASR training", "frames/s", get("asr_train", "frames_per_second"), None, ew["asr_train"]["frames_per_second"]),
        ("MT decoding, batch 1", "sent/s", get("mt_decode_baseline", "batch_1_sentences_per_second"),
         get("mt_decode_legonn", "batch_1_sentences_per_second"), dec),
        ("MT decoding, legonn's best batch vs ESPnet2's batch 1", "sent/s",
         get("mt_decode_baseline", "best_sentences_per_second"), get("mt_decode_legonn", "best_sentences_per_second"), dec),
    ]


def ratios(legonn: dict, espnet: dict) -> dict:
    """legonn / ESPnet2 for each row: above 1 means legonn does the same work faster."""
    return {measure: {"unit": unit, "legonn_baseline": base, "legonn_lego": lego, "espnet2": esp,
                      "baseline_over_espnet2": base / esp if base is not None else None,
                      "lego_over_espnet2": lego / esp if lego is not None else None}
            for measure, unit, base, lego, esp in rows(legonn, espnet)}


def ratio_table(legonn: dict, espnet: dict) -> str:
    """The README section: the ratio table and the system it was measured on."""
    def fig(x: float | None) -> str:
        return "—" if x is None else f"{x:.2f}" if x < 100 else f"{x:.0f}"

    def ratio(x: float | None, y: float) -> str:
        return "—" if x is None else f"**{x / y:.2f}×**"

    ls, es = legonn["system"], espnet["system"]
    decodes = {k: legonn["workloads"][k] for k in ("mt_decode_baseline", "mt_decode_legonn") if k in legonn["workloads"]}
    lines = [
        f"`make bench-peer`, {ls['date']}, git `{(ls.get('git_commit') or '?')[:7]}`"
        f"{' (uncommitted changes)' if ls.get('git_dirty') else ''}, {ls['cpu']}, {ls['threads']} thread(s), "
        f"precision {legonn['precision']}, torch {ls['torch']} (legonn) / {es['torch']} (ESPnet2 {es['espnet']}), "
        f"load average {ls['load_average_1min_at_start']:.2f} / {es['load_average_1min_at_start']:.2f} at the two starts"
        f"{' — QUICK SMOKE RUN, NOT A MEASUREMENT' if legonn.get('quick') or espnet.get('quick') else ''}.",
        "",
        "| measure | legonn baseline | legonn LegoNN | ESPnet2 | baseline / ESPnet2 | LegoNN / ESPnet2 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for measure, unit, base, lego, esp in rows(legonn, espnet):
        lines.append(f"| {measure} ({unit}) | {fig(base)} | {fig(lego)} | {fig(esp)} | {ratio(base, esp)} | {ratio(lego, esp)} |")
    if ls["load_average_1min_at_start"] >= 1:  # the espnet start's figure includes legonn's own run just before
        lines += ["", "**The machine was busy** (load average ≥ 1 before legonn's run): medians are noisy, see the "
                  "min–max spreads in the JSON; rerun on an idle machine before reading much into a ratio."]
    if decodes:
        tried = ", ".join(k for k in next(iter(decodes.values()))["batch_sizes"] if k != "1")
        lines += ["", "legonn's best batch size (of " + tried + "): "
                  + ", ".join(f"{k.removeprefix('mt_decode_')} {r['best_batch_size']}" for k, r in decodes.items())
                  + "; ESPnet2's beam search takes one sentence at a time."]
    return "\n".join(lines) + "\n"


def replace_section(text: str, body: str) -> str:
    """text with what lies between the bench-peer markers replaced by body."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no '{BEGIN}' ... '{END}' section")
    return text[: start + len(BEGIN)] + "\n" + body + text[end:]


# --------------------------------------------------------------------------------------- run

def run(cmd: list[str], what: str, report_on_stdout: bool = True) -> None:
    """Run cmd, its progress on the terminal; a benchmark's JSON on stdout is dropped (it has --out)."""
    print(f"[bench-peer] {what}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    if subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL if report_on_stdout else None).returncode != 0:
        sys.exit(f"bench-peer: error: {what} failed (see above)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, help="torch.set_num_threads for both (default: PyTorch's choice)")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--out", type=Path, default=PEER / "results.json", help="the combined JSON (default: %(default)s)")
    ap.add_argument("--readme", type=Path, default=BENCH / "README.md", help="where the ratio table goes (default: %(default)s)")
    ap.add_argument("--no-readme", action="store_true", help="leave the README alone (--quick always does)")
    ap.add_argument("--quick", action="store_true", help="tiny shapes: a smoke test, not a measurement")
    args = ap.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        ap.error("--threads must be at least 1")

    common = ["--precision", args.precision, *(["--threads", str(args.threads)] if args.threads else []),
              *(["--quick"] if args.quick else [])]
    run(["bash", str(PEER / "setup.sh")], "ESPnet2 environment", report_on_stdout=False)
    with tempfile.TemporaryDirectory() as tmp:
        legonn_json, espnet_json = Path(tmp, "legonn.json"), Path(tmp, "espnet.json")
        run([sys.executable, str(BENCH / "bench.py"), "--only", LEGONN_WORKLOADS, "--out", str(legonn_json), *common],
            "legonn (bench/bench.py)")
        run([str(PEER_PYTHON), str(PEER / "espnet_bench.py"), "--out", str(espnet_json), *common],
            "ESPnet2 (bench/peer/espnet_bench.py)")
        legonn, espnet = (json.loads(p.read_text(encoding="utf-8")) for p in (legonn_json, espnet_json))

    combined = {"legonn": legonn, "espnet2": espnet, "legonn_over_espnet2": ratios(legonn, espnet)}
    write_atomic(args.out, json.dumps(combined, indent=2) + "\n")
    table = ratio_table(legonn, espnet)
    sys.stdout.write(table)
    print(f"[bench-peer] combined report: {args.out}", file=sys.stderr)
    if not (args.quick or args.no_readme):
        try:
            write_atomic(args.readme, replace_section(args.readme.read_text(encoding="utf-8"), table))
        except (OSError, ValueError) as exc:
            sys.exit(f"bench-peer: error: {args.readme}: {exc}")
        print(f"[bench-peer] ratio table written to {args.readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
