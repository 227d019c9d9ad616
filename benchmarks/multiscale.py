"""Time to reach a given style + content loss at the final size, with and without multi-scale.

    python benchmarks/multiscale.py --size 512 --steps 50 --scales 3 --steps-per-scale 20

The single-scale run takes ``--steps`` L-BFGS steps at ``--size``; its last loss is the target. The
multi-scale run (``--scales`` sizes, √2 apart, ``--steps-per-scale`` steps at each coarse one) continues at
``--size`` until its loss (the same objective: the same targets at the final size) reaches that target.
Times are wall-clock from the first optimizer step, the coarse scales included; set-up (weights, images,
targets) is excluded. Default config otherwise: Tübingen + The Starry Night, VGG19 caffe, L-BFGS.
"""

from __future__ import annotations

import argparse
import time
import warnings

import lightning.pytorch as pl
import torch
from common import CONTENT, QUIET_TRAINER, STYLE

from nst_lightning.callbacks.multiscale import MultiScale
from nst_lightning.data import StyleTransferData
from nst_lightning.model.style_transfer import StyleTransfer


class LossClock(pl.Callback):
    """Records (seconds since the first step, image size, loss) per step; stops at ``target`` at ``size``."""

    def __init__(self, target: float | None = None) -> None:
        self.target = target
        self.rows: list[tuple[float, tuple[int, int], float]] = []
        self.start = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        size = tuple(pl_module.image.shape[-2:])
        self.rows.append((time.perf_counter() - self.start, size, float(outputs["loss"])))
        final = size == tuple(trainer.datamodule.content_image.shape[-2:])
        if self.target is not None and final and self.rows[-1][2] <= self.target:
            trainer.should_stop = True


def run(size: int, max_steps: int, callbacks: list[pl.Callback]) -> None:
    pl.seed_everything(0, verbose=False)
    data = StyleTransferData(str(CONTENT), str(STYLE), size=size)
    trainer = pl.Trainer(max_steps=max_steps, callbacks=callbacks, **QUIET_TRAINER)
    trainer.fit(StyleTransfer(), data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=50, help="single-scale steps; its last loss is the target")
    parser.add_argument("--scales", type=int, default=3)
    parser.add_argument("--steps-per-scale", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", module=r"lightning.*")

    single = LossClock()
    run(args.size, args.steps, [single])
    seconds, _, target = single.rows[-1]
    multi_scale = MultiScale(scales=args.scales, steps_per_scale=args.steps_per_scale)
    multi = LossClock(target)
    coarse = args.steps_per_scale * (args.scales - 1)
    run(args.size, coarse + args.steps, [multi_scale, multi])
    final_rows = [r for r in multi.rows if r[1] == single.rows[-1][1]]
    reached = final_rows[-1][2] <= target
    height, width = single.rows[-1][1]
    print(f"size {args.size} px ({width}x{height}), torch threads {args.threads}")
    print(f"target loss (single scale after {args.steps} steps): {target:.4f}")
    print(f"single scale: {args.steps} steps, {seconds:.1f} s")
    print(f"multi-scale {multi_scale.sizes} px, {args.steps_per_scale} steps per coarse scale: "
          f"{'reached' if reached else 'NOT reached'} after {len(final_rows)} steps at the final size, "
          f"{multi.rows[-1][0]:.1f} s in all (coarse scales: {multi.rows[coarse - 1][0]:.1f} s)")
    if reached:
        # Load-independent: a coarse step costs about its share of the final size's pixels.
        pixels = [r[1][0] * r[1][1] for r in multi.rows]
        equivalent = sum(p / pixels[-1] for p in pixels)
        print(f"speed-up: {seconds / multi.rows[-1][0]:.2f}x in time, {args.steps / len(final_rows):.2f}x in "
              f"final-size steps, {args.steps / equivalent:.2f}x in pixel-weighted steps ({equivalent:.1f})")
    print("single-scale loss every 10 steps:", [round(r[2], 3) for r in single.rows[::10]])
    print("multi-scale final-size loss every 10 steps:", [round(r[2], 3) for r in final_rows[::10]])


if __name__ == "__main__":
    main()
