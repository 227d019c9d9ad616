"""The memory pre-check's estimate against the peak resident memory that real runs add (CPU, Linux).

Reproduce (about 2 minutes on 2 cores):

    python benchmarks/memory_estimate.py --sizes 256 384 512

Each figure is one child process: it builds the default run (VGG19 with random weights, which take the
same memory as the real ones), resets the kernel's peak-RSS counter (``/proc/self/clear_refs``), runs
``--steps`` steps and reports ``VmHWM`` minus the resident size before the run, with the estimate of
:func:`nst_lightning.cli.memory_check.run_estimate` for the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys
from pathlib import Path
from nst_lightning.cli.fit import build_cli
from nst_lightning.cli.memory_check import run_estimate
from nst_lightning.heap import release_freed_memory
from nst_lightning.quality.distances import scoring_backbone

def status(key):
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(key + ":"))
    return int(line.split()[1]) * 1024

cli = build_cli(sys.argv[1:], run=False)
cli.before_fit()
scoring_backbone("cpu")  # the end-of-run scoring's weights: a fixed cost outside the estimate, loaded before the window
estimate = run_estimate(cli.model, cli.datamodule, cli.datamodule.size, cli.model.backbone.activation_checkpointing)
release_freed_memory()
Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from here
base = status("VmRSS")
cli.trainer.fit(cli.model, datamodule=cli.datamodule)
print(json.dumps({"peak": status("VmHWM") - base, "estimate": estimate}))
"""

RUNS = {
    "Adam": ["--model.optimizer", "ImageAdam"],
    "L-BFGS (history 5)": ["--model.optimizer", "ImageLBFGS", "--model.optimizer.init_args.history_size", "5"],
    "Adam, activation checkpointing": ["--model.optimizer", "ImageAdam",
                                       "--model.backbone.init_args.activation_checkpointing", "true"],
}


def measure(size: int, steps: int, extra: list[str], output: Path) -> tuple[int, int]:
    """(bytes the run added at its peak, the estimate in bytes)."""
    args = ["--config", str(ROOT / "configs" / "default.yaml"), "--data.size", str(size),
            "--trainer.max_steps", str(steps), "--model.backbone.init_args.weights", "none",
            "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
            "--trainer.enable_progress_bar", "false", "--output", str(output), "--overwrite", "true", *extra]
    env = dict(os.environ, OMP_NUM_THREADS="2")
    child = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if child.returncode != 0:
        raise RuntimeError(child.stderr[-2000:])
    result = json.loads(child.stdout.strip().splitlines()[-1])
    return result["peak"], result["estimate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 384, 512])
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--output", type=Path, default=Path("/tmp/nst_memory_estimate.png"))
    args = parser.parse_args()
    print("| long edge | " + " | ".join(RUNS) + " |")
    print("|---|" + "---|" * len(RUNS))
    for size in args.sizes:
        cells = []
        for extra in RUNS.values():
            peak, estimate = measure(size, args.steps, extra, args.output)
            cells.append(f"{estimate / 2**20:.0f} / {peak / 2**20:.0f} MiB ({estimate / peak:.2f})")
        print(f"| {size} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
