"""The project's L-BFGS (ImageLBFGS) against torch.optim.LBFGS on one image: the cost of a step and where
100 steps end, side by side in one process.

    python benchmarks/lbfgs_step.py --threads 1                 # 256 px, 100 steps, each optimizer twice
    python benchmarks/lbfgs_step.py --device cuda --size 512    # on a GPU (also with --compile default)
    python benchmarks/lbfgs_step.py --update-only --threads 1   # the optimizer's own work: compact vs two-loop

Both runs are the fixed-length single-scale config (configs/single_scale.yaml: Tübingen × The Starry Night,
caffe VGG19) with the optimizer swapped: ``ImageLBFGS`` (its defaults) and ``torch.optim.LBFGS`` with the
same settings (max_iter 1, no line search, history 100, tolerances 0). The runs alternate (A B A B) so that a
drift of the machine's speed reaches both; a step's time is measured from the start of the training batch to
its end (forward, backward and the optimizer's update), and the median over the run's steps is reported.
Prints the median step time of each, their ratio, and each run's style and content distances after the
last step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from common import QUIET_FLAGS, ROOT

from nst_lightning.cli.fit import build_cli
from nst_lightning.plugin.manager import load_plugins

OPTIMIZERS = {
    "ImageLBFGS": ["--model.optimizer", "ImageLBFGS"],
    "torch.optim.LBFGS": [
        "--model.optimizer", "torch.optim.LBFGS", "--model.optimizer.init_args.max_iter", "1",
        "--model.optimizer.init_args.history_size", "100", "--model.optimizer.init_args.tolerance_grad", "0",
        "--model.optimizer.init_args.tolerance_change", "0",
    ],
}


class StepTimer(pl.Callback):
    """Seconds of every training step (batch start to batch end; the device synchronized at both ends)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def _sync(self, pl_module: pl.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync(pl_module)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync(pl_module)
        self.seconds.append(time.perf_counter() - self._start)


def run(optimizer: str, size: int, steps: int, device: str, compile_mode: str, out: Path) -> tuple[float, dict]:
    args = ["--config", str(ROOT / "configs" / "single_scale.yaml"), "--data.size", str(size),
            "--trainer.max_steps", str(steps), "--trainer.accelerator", "gpu" if device == "cuda" else "cpu",
            "--model.compile", compile_mode, "--output", str(out), "--overwrite", "true",
            *QUIET_FLAGS, *OPTIMIZERS[optimizer]]
    cli = build_cli(args, run=False)
    timer = StepTimer()
    cli.trainer.callbacks.append(timer)
    cli.before_fit()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    cli.image_writer.release()
    skip = min(5, steps // 10)  # the first steps pay for allocation (and compilation)
    return statistics.median(timer.seconds[skip:]), cli.model.report.quality[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", default="off", help="--model.compile for both runs")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--update-only", action="store_true",
                        help="only the optimizer's own work per step: compact form vs torch's two-loop, 1 and 8 images")
    args = parser.parse_args()
    if args.update_only:
        torch.set_num_threads(args.threads)
        print(f"\noptimizer work per step, {args.size} px, cpu {args.threads} threads, torch {torch.__version__}")
        print("| images | history | ImageLBFGS (compact form, batched) | torch.optim.LBFGS (two-loop, per image) | ratio |")
        print("|---|---|---|---|---|")
        for images in (1, 8):
            for history in (10, 100):
                ours, theirs = update_cost(images, history, args.size)
                print(f"| {images} | {history} | {1000 * ours:.1f} ms | {1000 * theirs:.1f} ms | {ours / theirs:.2f} |")
        return
    torch.set_num_threads(args.threads)
    os.environ.setdefault("NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD", "1")
    load_plugins()
    results: dict[str, list[tuple[float, dict]]] = {name: [] for name in OPTIMIZERS}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for name in OPTIMIZERS:
                out = Path(tmp) / f"{name}_{repeat}.png"
                results[name].append(run(name, args.size, args.steps, args.device, args.compile, out))
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu, {args.threads} threads"
    print(f"\n{args.size} px, {args.steps} steps, compile {args.compile}, {device}, torch {torch.__version__}")
    print("| optimizer | median step (best of runs) | style distance | content distance |")
    print("|---|---|---|---|")
    best = {}
    for name, rows in results.items():
        best[name] = min(seconds for seconds, _ in rows)
        quality = rows[-1][1]
        print(f"| {name} | {1000 * best[name]:.1f} ms | {quality['style_distance']:.4g} | "
              f"{quality['content_distance']:.4g} |")
    print(f"ImageLBFGS / torch.optim.LBFGS step time: {best['ImageLBFGS'] / best['torch.optim.LBFGS']:.3f}")


def update_cost(images: int, history: int, size: int, repeats: int = 10) -> tuple[float, float]:
    """Seconds of the optimizer's own work per step with a full history (``history`` pairs of a convex
    quadratic, so each new pair is kept) and a gradient that costs nothing: ImageLBFGS's compact-form update for
    ``images`` images at once against torch.optim.LBFGS's two-loop recursion, run once per image."""
    from nst_lightning.model.lbfgs import empty_state, lbfgs_update

    width = 3 * size * size * 3 // 4
    torch.manual_seed(0)
    curvature = 1 + 9 * torch.rand(width)
    steps = [torch.randn(width) * 1e-2 for _ in range(history + 1)]
    pairs = [(s, curvature * s) for s in steps]
    x = torch.rand(images, width)
    grad = curvature * (x - 0.5)

    state = empty_state(x, history, torch.float32)
    S = torch.stack([s for s, _ in pairs[:history]])
    Y = torch.stack([y for _, y in pairs[:history]])
    state["S"][:], state["Y"][:] = S, Y
    state["SY"][:] = (S.double() @ Y.double().T)
    state["YY"][:] = (Y.double() @ Y.double().T)
    state["age"][:] = torch.arange(history)
    state["count"][:] = history
    state["step"] += history + 1
    s_new, y_new = pairs[history]
    state["last_step"][:], state["prev_g"][:] = s_new, grad - y_new

    def ours() -> None:  # it writes one slot of the history in place: the next call's state is as full
        lbfgs_update(x, grad, state, 1.0, 0.0, 0.0, None)

    params = [x[i].clone().requires_grad_(True) for i in range(images)]
    optimizers = [torch.optim.LBFGS([p], max_iter=1, history_size=history, tolerance_grad=0, tolerance_change=0)
                  for p in params]
    for p, optimizer in zip(params, optimizers):
        optimizer.state[p].update({
            "func_evals": history + 1, "n_iter": history + 1, "d": s_new.clone(), "t": 1.0,
            "old_dirs": [y for _, y in pairs[1:history + 1]], "old_stps": [s for s, _ in pairs[1:history + 1]],
            "ro": [1.0 / float(y @ s) for s, y in pairs[1:history + 1]], "H_diag": 1.0,
            "prev_flat_grad": grad[0] - y_new, "prev_loss": 1.0, "al": [None] * history,
        })

    def closure_of(p: torch.Tensor):
        def closure() -> torch.Tensor:
            p.grad = curvature * (p.detach() - 0.5)
            return torch.ones(())
        return closure

    def theirs() -> None:
        for p, optimizer in zip(params, optimizers):
            saved = {k: (list(v) if isinstance(v, list) else v) for k, v in optimizer.state[p].items()}
            optimizer.step(closure_of(p))
            optimizer.state[p].update(saved)  # the same full history at every repeat

    timed = lambda fn: min(_seconds(fn) for _ in range(repeats))  # noqa: E731
    return timed(ours), timed(theirs)


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
