"""Throughput of a batched sweep against running the same points one by one, in one process.

    python benchmarks/sweep_throughput.py                       # 4 points, 64 px, Adam, 50 steps
    python benchmarks/sweep_throughput.py --points 8 --size 128 --steps 100

Both runs use the same points (style weights spread over 1..100, everything else from
configs/default.yaml with ImageAdam) through ``run_sweep``: once with ``--max_batch 1`` (every point
its own run, as ``nst-lightning fit`` would do it) and once batched (all points as one N×3×H×W
tensor). Prints images per minute of each and their ratio. On a GPU, pass --accelerator gpu.
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


def timed_sweep(points: int, size: int, steps: int, accelerator: str, max_batch: int, out: Path) -> float:
    weights = ",".join(f"{100 ** (i / max(1, points - 1)):.3g}" for i in range(points))
    sweep = build_sweep(ROOT / "configs" / "default.yaml", None, [
        f"model.losses.style.init_args.weight={weights}",
        "model.optimizer={class_path: ImageAdam}",
        f"data.size={size}",
        f"trainer.max_steps={steps}",
        f"trainer.accelerator={accelerator}",
    ], out, build=build_cli)
    start = time.perf_counter()
    records = run_sweep(sweep, max_batch=max_batch, workers=1, contact_sheet=False)
    seconds = time.perf_counter() - start
    assert all(r["status"] == "done" for r in records.values()), records
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD", "1")
    load_plugins()
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up: first-call costs (weights file cache, kernels) should count for neither side
        timed_sweep(1, args.size, 2, args.accelerator, 1, Path(tmp) / "warmup")
        alone = timed_sweep(args.points, args.size, args.steps, args.accelerator, 1, Path(tmp) / "alone")
        batched = timed_sweep(args.points, args.size, args.steps, args.accelerator, args.points, Path(tmp) / "batched")
    rate = lambda s: args.points / s * 60
    device = torch.cuda.get_device_name() if args.accelerator == "gpu" else f"{platform.processor() or 'cpu'}, {args.threads} threads"
    print(f"\n{args.points} points, {args.size} px, Adam, {args.steps} steps, {device}, torch {torch.__version__}")
    print("| run | wall time | images per minute |")
    print("|---|---|---|")
    print(f"| one by one ({args.points} runs) | {alone:.1f} s | {rate(alone):.1f} |")
    print(f"| batched (1 run of {args.points}) | {batched:.1f} s | {rate(batched):.1f} |")
    print(f"batched / one by one: {alone / batched:.2f}x")


if __name__ == "__main__":
    main()
