"""Peak memory of one optimization step against image size, with and without activation checkpointing,
and the largest image that fits in a memory budget.

Reproduce (CPU, ~3 minutes on 2 cores):

    python benchmarks/memory.py --sizes 512 768 1024 --budget-gb 8

Each figure is one child process (peak resident set size from ``os.wait4``) that builds VGG19 with the
default layers and runs one forward and backward pass of the default losses' layers on a 4:3 image. The
largest size is extrapolated from a straight-line fit of peak memory against pixel count.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = """
import sys, time, torch
from nst_lightning.model.backbones.vgg import VGG19
size, ckpt = int(sys.argv[1]), sys.argv[2] == "1"
layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]
vgg = VGG19(activation_checkpointing=ckpt)
vgg.truncate(layers)
image = torch.rand(1, 3, size * 3 // 4, size, requires_grad=True)
start = time.perf_counter()
sum((f.float() ** 2).mean() for f in vgg(image, layers).values()).backward()
print(time.perf_counter() - start)
"""


def measure(size: int, checkpointing: bool) -> tuple[float, float]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(size), "1" if checkpointing else "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(proc.stderr.read()[-2000:])
    return usage.ru_maxrss / 1024, float(proc.stdout.read().strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 768, 1024])
    parser.add_argument("--budget-gb", type=float, default=8.0)
    args = parser.parse_args()
    print("| long edge | activation checkpointing | peak MB | seconds for forward + backward |")
    print("|---|---|---|---|")
    fits = {}
    for checkpointing in (False, True):
        points = []
        for size in args.sizes:
            peak, seconds = measure(size, checkpointing)
            points.append((size * (size * 3 // 4), peak))
            print(f"| {size} | {'on' if checkpointing else 'off'} | {peak:.0f} | {seconds:.2f} |", flush=True)
        (p0, m0), (p1, m1) = points[0], points[-1]
        per_pixel = (m1 - m0) / (p1 - p0)
        fits[checkpointing] = (m0 - per_pixel * p0, per_pixel)
    print()
    budget = args.budget_gb * 1024
    for checkpointing, (base, per_pixel) in fits.items():
        pixels = (budget - base) / per_pixel
        edge = int((pixels * 4 / 3) ** 0.5)
        print(f"- activation checkpointing {'on' if checkpointing else 'off'}: {per_pixel * 1024:.2f} KB per pixel "
              f"above {base:.0f} MB; the largest 4:3 image in {args.budget_gb:g} GB is about {edge} px on the long edge")


if __name__ == "__main__":
    main()
