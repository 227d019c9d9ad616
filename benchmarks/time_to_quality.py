"""Wall time until a run reaches the objective of a reference run.

Reproduce (CPU, ~6 minutes on 2 cores):

    python benchmarks/time_to_quality.py --size 128 --reference-steps 300 --max-steps 600

The reference is the default config (L-BFGS, fp32) after ``--reference-steps`` iterations. Every variant
then optimizes the same objective (same weights, layers and images) and reports the wall time and the
step at which its total loss first comes within ``--tolerance`` of the reference's final total loss.
Extra variants are given as CLI overrides, e.g. ``--variant "adam=--model.optimizer ImageAdam"``.
A multi-scale variant's coarse steps optimize smaller images against their own targets, so only its
steps at the final size can reach the target; its time includes the coarse steps.
"""

from __future__ import annotations

import argparse
import shlex
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from common import DEFAULT_CONFIG, QUIET_FLAGS

from nst_lightning.cli.fit import build_cli

DEFAULT_VARIANTS = {
    "L-BFGS fp32 (default)": "",
    "L-BFGS strong-Wolfe line search": "--model.optimizer.init_args.line_search_fn strong_wolfe",
    "L-BFGS multi-scale, 3 scales, 25 steps at each coarse one": (
        "--trainer.callbacks+=MultiScale --trainer.callbacks.scales=3 --trainer.callbacks.steps_per_scale=25"
    ),
    "Adam lr 0.02": "--model.optimizer ImageAdam",
    "Adam lr 0.05": "--model.optimizer ImageAdam --model.optimizer.init_args.lr 0.05",
}
if torch.cuda.is_available():  # without native bf16 a CPU runs bf16-mixed many times slower than fp32
    DEFAULT_VARIANTS["L-BFGS bf16-mixed"] = "--trainer.precision bf16-mixed"


class LossClock(pl.Callback):
    """Records (seconds since the first step, step, total loss, image size) after every optimizer step.

    With a ``target``, stops the run once the total loss at the final image size is at or below it.
    """

    def __init__(self, target: float | None = None, final_size: tuple[int, int] | None = None) -> None:
        self.target = target
        self.final_size = final_size
        self.trace: list[tuple[float, int, float, tuple[int, int]]] = []
        self.start = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        total, size = float(outputs["loss"]), tuple(pl_module.image.shape[-2:])
        self.trace.append((time.perf_counter() - self.start, trainer.global_step, total, size))
        if self.reached(total, size):
            trainer.should_stop = True

    def reached(self, total: float, size: tuple[int, int]) -> bool:
        return self.target is not None and total <= self.target and size == self.final_size


def run(
    size: int, steps: int, overrides: str, tmp: Path, target: float | None = None, final: tuple[int, int] | None = None
) -> LossClock:
    clock = LossClock(target, final)
    args = [
        "--config", str(DEFAULT_CONFIG), "--data.size", str(size), "--trainer.max_steps", str(steps),
        *QUIET_FLAGS, "--output", str(tmp / "out.png"), "--overwrite", "true", *shlex.split(overrides),
    ]
    cli = build_cli(args, run=False)
    cli.trainer.callbacks.append(clock)
    cli.trainer.fit(cli.model, cli.datamodule)
    return clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--reference-steps", type=int, default=300)
    parser.add_argument("--max-steps", type=int, default=600, help="give up on a variant after this many steps")
    parser.add_argument("--tolerance", type=float, default=0.02, help="relative slack on the reference loss")
    parser.add_argument("--variant", action="append", default=[], help="NAME=OVERRIDES; replaces the defaults")
    args = parser.parse_args()
    variants = dict(v.split("=", 1) for v in args.variant) if args.variant else DEFAULT_VARIANTS
    with tempfile.TemporaryDirectory() as tmp:
        reference = run(args.size, args.reference_steps, "", Path(tmp))
        target, final = reference.trace[-1][2] * (1 + args.tolerance), reference.trace[-1][3]
        print(f"# reference: default config, {args.size} px, {args.reference_steps} L-BFGS iterations, "
              f"total loss {reference.trace[-1][2]:.4f} in {reference.trace[-1][0]:.1f} s; "
              f"target {target:.4f} (+{args.tolerance:.0%})\n")
        print("| variant | steps to target | seconds to target | s/step |")
        print("|---|---|---|---|")
        for name, overrides in variants.items():
            clock = run(args.size, args.max_steps, overrides, Path(tmp), target, final)
            hit = next(((t, s) for t, s, loss, size in clock.trace if clock.reached(loss, size)), None)
            per_step = clock.trace[-1][0] / max(1, clock.trace[-1][1])
            if hit is None:
                print(f"| {name} | not within {args.max_steps} | – | {per_step:.3f} |", flush=True)
            else:
                print(f"| {name} | {hit[1]} | {hit[0]:.1f} | {per_step:.3f} |", flush=True)


if __name__ == "__main__":
    main()
