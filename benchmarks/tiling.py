"""Tiling: exactness against the untiled path, the time of a tiled step against an untiled one, and whole
runs' peak memory against image size (the figures of README's "Large images (tiling)").

Reproduce (CPU; run one part at a time, results are appended to ``--out`` as JSON lines):

    python benchmarks/tiling.py exact --tile 208             # 256x192 px in 2 tiles: loss, gradient, 20 steps
    python benchmarks/tiling.py chaos                        # untiled vs untiled from an init nudged by 1e-6
    python benchmarks/tiling.py ratio --size 1024 --tiles 512 768
    python benchmarks/tiling.py memory --sizes 512 1024 2048 4096 --budget 6 --steps 1

``memory`` runs ``nst-lightning fit`` in a child process per size and reads its peak resident set size
(``os.wait4``) and wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "src" / "nst_lightning" / "assets"


def emit(out: Path, row: dict) -> None:
    print(json.dumps(row), flush=True)
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")


def build(size: int, tiling, weights: str = "caffe", optimizer=None):  # noqa: ANN001, ANN201
    from nst_lightning.data import StyleTransferData
    from nst_lightning.model.backbones.vgg import VGG19
    from nst_lightning.model.style_transfer import StyleTransfer

    model = StyleTransfer(backbone=VGG19(weights=weights), tiling=tiling, optimizer=optimizer)
    data = StyleTransferData(content=str(ASSETS / "tubingen.jpg"), style=str(ASSETS / "starry_night.jpg"), size=size)
    return model, data


class StepTimer:
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, *args) -> None:  # noqa: ANN002
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:  # noqa: ANN002
        self.times.append(time.perf_counter() - self.t0)


def fit(model, data, steps: int, *callbacks):  # noqa: ANN001, ANN002, ANN201
    import lightning.pytorch as pl

    timer = type("Timer", (StepTimer, pl.Callback), {})()
    pl.seed_everything(0, verbose=False)
    trainer = pl.Trainer(
        max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[timer, *callbacks],
    )
    trainer.fit(model, data)
    return model, timer.times


def exact(args: argparse.Namespace) -> None:
    import torch

    from nst_lightning.model.tiled_loss import tiled_loss_and_grad
    from nst_lightning.model.tiling import Tiling

    untiled, _ = fit(*build(args.size, Tiling(mode="off")), args.steps)
    tiled, _ = fit(*build(args.size, Tiling(tile_size=args.tile)), args.steps)
    diff = float((untiled.image - tiled.image).abs().max() * 255)
    # Loss and gradient at the same image (the untiled run's result).
    image = untiled.image.detach().clone().requires_grad_(True)
    terms = untiled.loss_terms(image)
    total = torch.stack([t.sum() for t in terms.values()]).sum()
    total.backward()
    plan = tiled.tile_plan(image) if tiled.tile_plan(image) is not None else None
    values, grad = tiled_loss_and_grad(untiled.backbone, untiled.losses, image.detach(), plan)
    tiled_total = sum(float(v.sum()) for v in values.values())
    emit(args.out, {
        "part": "exact", "size": list(image.shape[-2:]), "tile": args.tile, "tiles": len(plan),
        "loss_rel": abs(tiled_total - float(total)) / abs(float(total)),
        "grad_rel": float((grad - image.grad).norm() / image.grad.norm()),
        "grad_max_rel": float((grad - image.grad).abs().max() / image.grad.abs().max()),
        "steps": args.steps, "image_max_diff_255": diff,
    })


def chaos(args: argparse.Namespace) -> None:
    """The untiled run against itself from an init changed by noise of 1e-6: how far L-BFGS amplifies
    float-level differences in ``--steps`` steps (the yardstick for ``exact``'s image difference)."""
    import torch

    from nst_lightning.model.style_transfer import StyleTransfer
    from nst_lightning.model.tiling import Tiling

    plain, _ = fit(*build(args.size, Tiling(mode="off")), args.steps)
    original = StyleTransfer.initial_image
    StyleTransfer.initial_image = lambda self: (original(self) + 1e-6 * torch.randn_like(original(self))).clamp(0, 1)
    try:
        nudged, _ = fit(*build(args.size, Tiling(mode="off")), args.steps)
    finally:
        StyleTransfer.initial_image = original
    emit(args.out, {"part": "chaos", "size": args.size, "steps": args.steps,
                    "image_max_diff_255": float((plain.image - nudged.image).abs().max() * 255)})


def ratio(args: argparse.Namespace) -> None:
    from nst_lightning.model.tiling import Tiling

    settings = [("untiled", Tiling(mode="off"))] + [(f"tile {t}", Tiling(tile_size=t)) for t in args.tiles]
    times: dict[str, list[float]] = {name: [] for name, _ in settings}
    counts = {}
    for _ in range(args.rounds):  # interleaved, so that the machine's load affects all alike
        for name, tiling in settings:
            model, step_times = fit(*build(args.size, tiling), args.steps)
            times[name] += step_times[1:]  # the first step pays for allocations
            counts[name] = model.tile_count
    base = statistics.median(times["untiled"])
    for name, _ in settings:
        med = statistics.median(times[name])
        emit(args.out, {"part": "ratio", "size": args.size, "setting": name, "tiles": counts[name],
                        "median_step_s": med, "ratio": med / base, "n": len(times[name])})


def memory_one(args: argparse.Namespace) -> None:
    """Like ``memory``, with the peak RSS from os.wait4 (Popen.communicate reaps the child itself)."""
    for size in args.sizes:
        output = Path(args.workdir) / f"tiling_{size}.png"
        cmd = [
            sys.executable, "-m", "nst_lightning", "fit", "--config", "configs/default.yaml",
            "--data.size", str(size), "--trainer.max_steps", str(args.steps), "--trainer.logger", "false",
            "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", "false",
            "--model.tiling.memory_budget", str(args.budget), "--output", str(output), "--overwrite", "true",
            *args.extra,
        ]
        log = Path(args.workdir) / f"tiling_{size}.log"
        start = time.perf_counter()
        with log.open("w") as f:
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        text = log.read_text()
        tiling_line = next((line for line in text.splitlines() if line.startswith("Tiling:")), "untiled")
        emit(args.out, {"part": "memory", "size": size, "steps": args.steps, "budget_gb": args.budget,
                        "rc": os.waitstatus_to_exitcode(status), "wall_s": round(wall, 1),
                        "peak_rss_gb": round(usage.ru_maxrss / 2**20, 3), "tiling": tiling_line, "extra": args.extra})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["exact", "chaos", "ratio", "memory"])
    parser.add_argument("--out", type=Path, default=Path("outputs/tiling_bench.jsonl"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--tile", type=int, default=176)
    parser.add_argument("--tiles", type=int, nargs="*", default=[512, 768])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="*", default=[512, 1024, 2048, 4096])
    parser.add_argument("--budget", type=float, default=6.0)
    parser.add_argument("--workdir", default="outputs")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[])
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    {"exact": exact, "chaos": chaos, "ratio": ratio, "memory": memory_one}[args.part](args)


if __name__ == "__main__":
    main()
