"""Wall time until a run reaches the objective of a reference run.

Reproduce (CPU, ~6 minutes on 2 cores):

    python benchmarks/time_to_quality.py --size 128 --reference-steps 300 --max-steps 600

The reference is the default config (L-BFGS, fp32) after ``--reference-steps`` iterations. Every variant
then optimizes the same objective (same weights, layers and images) and reports the wall time and the
step at which its total loss first comes within ``--tolerance`` of the reference's final total loss.
Extra variants are given as CLI overrides, e.g. ``--variant "adam=--model.optimizer ImageAdam"``.
"""

from __future__ import annotations

import argparse
import shlex
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

from nst_lightning.cli import build_cli

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "default.yaml"

DEFAULT_VARIANTS = {
    "L-BFGS fp32 (default)": "",
    "L-BFGS strong-Wolfe line search": "--model.optimizer.init_args.line_search_fn strong_wolfe",
    "Adam lr 0.02": "--model.optimizer ImageAdam",
    "Adam lr 0.05": "--model.optimizer ImageAdam --model.optimizer.init_args.lr 0.05",
}
if torch.cuda.is_available():  # without native bf16 a CPU runs bf16-mixed many times slower than fp32
    DEFAULT_VARIANTS["L-BFGS bf16-mixed"] = "--trainer.precision bf16-mixed"


class LossClock(pl.Callback):
    """Records (seconds since the first step, step, total loss) after every optimizer step.

    With a ``target``, stops the run once the total loss is at or below it.
    """

    def __init__(self, target: float | None = None) -> None:
        self.target = target
        self.trace: list[tuple[float, int, float]] = []
        self.start = 0.0

    def on_train_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        total = float(outputs["loss"])
        self.trace.append((time.perf_counter() - self.start, trainer.global_step, total))
        if self.target is not None and total <= self.target:
            trainer.should_stop = True


def run(size: int, steps: int, overrides: str, tmp: Path, target: float | None = None) -> LossClock:
    clock = LossClock(target)
    args = [
        "--config", str(CONFIG), "--data.size", str(size), "--trainer.max_steps", str(steps),
        "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--output", str(tmp / "out.png"), "--overwrite", "true", *shlex.split(overrides),
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
        target = reference.trace[-1][2] * (1 + args.tolerance)
        print(f"# reference: default config, {args.size} px, {args.reference_steps} L-BFGS iterations, "
              f"total loss {reference.trace[-1][2]:.4f} in {reference.trace[-1][0]:.1f} s; "
              f"target {target:.4f} (+{args.tolerance:.0%})\n")
        print("| variant | steps to target | seconds to target | s/step |")
        print("|---|---|---|---|")
        for name, overrides in variants.items():
            clock = run(args.size, args.max_steps, overrides, Path(tmp), target)
            hit = next(((t, s) for t, s, loss in clock.trace if loss <= target), None)
            per_step = clock.trace[-1][0] / max(1, clock.trace[-1][1])
            if hit is None:
                print(f"| {name} | not within {args.max_steps} | – | {per_step:.3f} |", flush=True)
            else:
                print(f"| {name} | {hit[1]} | {hit[0]:.1f} | {per_step:.3f} |", flush=True)


if __name__ == "__main__":
    main()
