"""Throughput of a batched sweep against running the same points one by one, in one process.

    python benchmarks/sweep_throughput.py --threads 1                   # 8 points, 128 px, L-BFGS, 100 steps
    python benchmarks/sweep_throughput.py --threads 1 --styles          # 8 points, each its own style image
    python benchmarks/sweep_throughput.py --optimizer adam --points 4 --size 64 --steps 50

Both runs use the same points (style weights spread over 1..100, everything else from
configs/single_scale.yaml, a fixed number of steps) through ``run_sweep``: once with ``--max_batch 1``
(every point its own run, as ``nst-lightning fit`` would do it) and once batched (all points as one
N×3×H×W tensor). Prints images per minute of each and their ratio, and each point's final style loss
both ways. On a GPU, pass --accelerator gpu.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from nst_lightning.cli.fit import build_cli
from nst_lightning.plugin.manager import load_plugins
from nst_lightning.sweep.command import build_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]


OPTIMIZERS = {"lbfgs": "model.optimizer={class_path: ImageLBFGS}", "adam": "model.optimizer={class_path: ImageAdam}"}


def style_images(count: int, folder: Path) -> list[str]:
    """``count`` different style images: the paintings and photographs of ../shared/images (and the package's
    two), then the same with their colour channels rotated (other statistics, same strokes)."""
    from PIL import Image

    found = sorted({p.name: p for p in [*(ROOT.parent / "shared" / "images").glob("*.jpg"),
                                        *(ROOT / "src" / "nst_lightning" / "assets").glob("*.jpg")]}.values())
    paths = [str(p) for p in found]
    k = 0
    while len(paths) < count:
        with Image.open(found[k % len(found)]) as image:
            r, g, b = image.convert("RGB").split()
            rotated = folder / f"rotated_{k}.png"
            Image.merge("RGB", (g, b, r)).save(rotated)
        paths.append(str(rotated))
        k += 1
    return paths[:count]


def timed_sweep(points: int, size: int, steps: int, accelerator: str, max_batch: int, out: Path,
                optimizer: str = "lbfgs", styles: list[str] | None = None) -> tuple[float, dict]:
    if styles:  # one point per style image, one style weight
        axis = f"data.style={','.join(styles[:points])}"
    else:  # one point per style weight, one style image
        axis = "model.losses.style.init_args.weight=" + ",".join(
            f"{100 ** (i / max(1, points - 1)):.3g}" for i in range(points))
    sweep = build_sweep(ROOT / "configs" / "single_scale.yaml", None, [
        axis,
        OPTIMIZERS[optimizer],
        f"data.size={size}",
        f"trainer.max_steps={steps}",
        f"trainer.accelerator={accelerator}",
    ], out, build=build_cli)
    start = time.perf_counter()
    records = run_sweep(sweep, max_batch=max_batch, workers=1, contact_sheet=False)
    seconds = time.perf_counter() - start
    assert all(r["status"] == "done" for r in records.values()), records
    return seconds, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="lbfgs")
    parser.add_argument("--styles", action="store_true", help="one style image per point instead of one style weight")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD", "1")
    load_plugins()
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up: first-call costs (weights file cache, kernels) should count for neither side
        styles = style_images(args.points, Path(tmp)) if args.styles else None
        timed_sweep(1, args.size, 2, args.accelerator, 1, Path(tmp) / "warmup", args.optimizer)
        alone, single = timed_sweep(args.points, args.size, args.steps, args.accelerator, 1, Path(tmp) / "alone",
                                    args.optimizer, styles)
        batched, together = timed_sweep(args.points, args.size, args.steps, args.accelerator, args.points,
                                        Path(tmp) / "batched", args.optimizer, styles)
    rate = lambda s: args.points / s * 60
    device = torch.cuda.get_device_name() if args.accelerator == "gpu" else f"{platform.processor() or 'cpu'}, {args.threads} threads"
    what = "style images" if args.styles else "style weights"
    print(f"\n{args.points} points ({what}), {args.size} px, {args.optimizer}, {args.steps} steps, {device}, "
          f"torch {torch.__version__}")
    print("| run | wall time | images per minute |")
    print("|---|---|---|")
    print(f"| one by one ({args.points} runs) | {alone:.1f} s | {rate(alone):.1f} |")
    print(f"| batched (1 run of {args.points}) | {batched:.1f} s | {rate(batched):.1f} |")
    print(f"batched / one by one: {alone / batched:.2f}x")
    print("\n| point | style distance alone | batched | difference |")
    print("|---|---|---|---|")
    for name in single:
        a = single[name]["quality"]["style_distance"]
        b = together[name]["quality"]["style_distance"]
        print(f"| {name} | {a:.4g} | {b:.4g} | {100 * (b - a) / a:+.2f} % |")


if __name__ == "__main__":
    main()
