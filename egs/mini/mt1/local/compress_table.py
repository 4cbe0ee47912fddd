#!/usr/bin/env python3
"""The Modular Transformers trade-off table and plot of RESULTS.compress.md.

Run from egs/mini/mt1 after `./run.sh --suites compress --results_file RESULTS.compress.md` has
scored the compress suite and, for decoding speed, after `--bench` (which times every
composition of the suite at the bench's decode shape, bench/bench.py mt_decode_modules, into
exp/<name>/bench_decode.json; run it on an otherwise idle machine). Writes the table between
the compress-table markers of RESULTS.compress.notes.md (stage 8 copies the notes into
RESULTS.compress.md: rerun stage 8 afterwards) and the plot RESULTS.compress_tradeoff.png.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from safetensors import safe_open  # noqa: E402

from legonn.fileio import write_atomic  # noqa: E402

RATIOS = ("1.2", "1.5", "2", "3", "6")
TEACHER = "deen_lego_teacher"
NOTES = Path("RESULTS.compress.notes.md")
PLOT = Path("RESULTS.compress_tradeoff.png")
BEGIN, END = "<!-- compress-table:begin -->", "<!-- compress-table:end -->"
ROOT = Path(__file__).resolve().parents[4]


def rows() -> list[tuple[str, str, str, str, str, str]]:
    """(method, compressed module, ratio, evaluated model, its compressed module folder, the model
    whose timing it shares: the same architecture decodes at the same speed)."""
    out = [("teacher", "-", "1", TEACHER, f"exp/{TEACHER}/modules/decoder", TEACHER)]
    for module, short in (("decoder", "dec"), ("encoder", "enc")):
        for ratio in RATIOS:
            name = f"deen_{short}{ratio}x_eval"
            out.append(("modular", module, ratio, name, f"exp/deen_{short}{ratio}x", name))
            out.append(("(a) drop", module, ratio, f"deen_{short}{ratio}x_drop_eval", f"exp/deen_{short}{ratio}x_drop", name))
    out.append(("(b) shrink + fine-tune", "decoder", "2", "deen_dec2x_sft", "exp/deen_dec2x_sft/modules/decoder",
                "deen_dec2x_eval"))
    out.append(("(c) KD from scratch", "decoder", "2", "deen_dec2x_kd_eval", "exp/deen_dec2x_kd", "deen_dec2x_eval"))
    return out


def parameters(folder: Path) -> int:
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def score(name: str, test_set: str = "deen_test") -> dict | None:
    path = Path("exp") / name / f"decode_{test_set}" / "score.json"
    return json.loads(path.read_text()) if path.is_file() else None


def speed(name: str) -> dict | None:
    path = Path("exp") / name / "bench_decode.json"
    return json.loads(path.read_text())["workloads"]["mt_decode_modules"] if path.is_file() else None


def decode_folders(name: str) -> list[str]:
    """The module folders of an evaluated model: a composition's folder, or a trained experiment's modules."""
    if (Path("exp") / name / "composed.json").is_file():
        return [f"exp/{name}"]
    return [f"exp/{name}/modules/encoder", f"exp/{name}/modules/decoder"]


def bench(threads: int) -> None:
    """Time every model of the table whose architecture is new (a dropped-layer model has its
    modular twin's shape: same speed)."""
    for _, _, _, name, _, timed in rows():
        if timed != name or not (Path("exp") / name).is_dir():
            continue
        out = Path("exp") / name / "bench_decode.json"
        print(f"timing {name} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, str(ROOT / "bench" / "bench.py"), "--only", "mt_decode_modules", "--threads",
                        str(threads), "--modules", *decode_folders(name), "--out", str(out)],
                       check=True, stdout=subprocess.DEVNULL)


def table() -> tuple[str, dict]:
    teacher_score, teacher_speed = score(TEACHER), speed(TEACHER)
    lines = ["| method | compressed | ratio | stack layers | module parameters | BLEU | chrF | % teacher BLEU "
             "| sent/s batch 1 | speed-up | sent/s batched |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    points: dict = {}
    for method, module, ratio, name, folder, timed in rows():
        s, folder = score(name), Path(folder)
        if s is None or not folder.is_dir():
            continue
        meta = json.loads((folder / "module.json").read_text())
        sp = speed(timed)
        bleu, chrf = s["bleu"]["score"], s["chrf"]["score"]
        rel = 100 * bleu / teacher_score["bleu"]["score"] if teacher_score and teacher_score["bleu"]["score"] else float("nan")
        b1 = sp["batch_1_sentences_per_second"] if sp else None
        up = b1 / teacher_speed["batch_1_sentences_per_second"] if b1 and teacher_speed else None
        batched = f"{sp['best_sentences_per_second']:.1f} (batch {sp['best_batch_size']})" if sp else "n/a"
        lines.append(
            f"| {method} | {module} | {ratio}x | {meta['conf']['layers']} | {parameters(folder) / 1e6:.2f}M | {bleu:.2f} | "
            f"{chrf:.2f} | {rel:.1f} | {f'{b1:.2f}' if b1 else 'n/a'} | {f'{up:.2f}x' if up else 'n/a'} | {batched} |")
        points.setdefault((method, module), []).append((float(ratio), bleu))
    plug, plug_teacher = score("roen_plug_dec2x", "roen_test"), score("roen_plug_teacher", "roen_test")
    if plug and plug_teacher:
        p, t = plug["bleu"]["score"], plug_teacher["bleu"]["score"]
        lines += ["", "| Ro-En encoder + De-En decoder, no fine-tuning | BLEU | chrF | % of the uncompressed plug |",
                  "| --- | --- | --- | --- |",
                  f"| teacher decoder (6 layers) | {t:.2f} | {plug_teacher['chrf']['score']:.2f} | 100.0 |",
                  f"| modular decoder 2x (3 layers) | {p:.2f} | {plug['chrf']['score']:.2f} | "
                  f"{100 * p / t if t else float('nan'):.1f} |"]
    return "\n".join(lines), {"points": points, "teacher": teacher_score["bleu"]["score"] if teacher_score else None}


def plot(data: dict) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"modular": "-o", "(a) drop": "--s", "(b) shrink + fine-tune": "D", "(c) KD from scratch": "^"}
    for (method, module), pts in sorted(data["points"].items()):
        if method == "teacher":
            continue
        xs, ys = zip(*sorted(pts))
        ax.plot(xs, ys, styles[method], label=f"{method}, {module}", markersize=6)
    if data["teacher"] is not None:
        ax.axhline(data["teacher"], color="grey", linestyle=":", label="teacher (6+6 layers)")
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks([float(r) for r in RATIOS], RATIOS)
    ax.set_xlabel("compression of the module's stack (teacher layers / layers)")
    ax.set_ylabel("BLEU, deen_test")
    ax.set_title("Mini De-En: one modular phase, assembled at every ratio")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=120)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", action="store_true", help="first time the decode shape of every model")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for --bench")
    args = ap.parse_args()
    if args.bench:
        bench(args.threads)
    text, data = table()
    notes = NOTES.read_text(encoding="utf-8") if NOTES.is_file() else f"{BEGIN}\n{END}\n"
    if BEGIN not in notes or END not in notes:
        notes += f"\n{BEGIN}\n{END}\n"
    head, rest = notes.split(BEGIN, 1)
    write_atomic(NOTES, f"{head}{BEGIN}\n{text}\n\n![BLEU against compression]({PLOT.name})\n{END}{rest.split(END, 1)[1]}")
    plot(data)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
