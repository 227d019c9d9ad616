"""What the benchmarks share: the sample images and configs, the quiet run flags, and one timing loop."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "src" / "nst_lightning" / "assets"
CONTENT = ASSETS / "tubingen.jpg"
STYLE = ASSETS / "starry_night.jpg"
DEFAULT_CONFIG = ROOT / "configs" / "default.yaml"
SHARED_IMAGES = ROOT.parent / "shared" / "images"

# A benchmark run writes nothing but its image: no logger, checkpoint, progress bar or model summary.
QUIET_FLAGS = [
    "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
]
QUIET_TRAINER = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
                 "enable_model_summary": False}


def seconds_per_call(fn: Callable[[], None], device: str, repeats: int, warmup: int = 1,
                     reduce: Callable[[list[float]], float] = min) -> float:
    """``reduce`` (min by default; ``statistics.median`` for a typical call) of ``repeats`` timed calls of
    ``fn`` after ``warmup`` untimed ones; on a GPU each call is timed between two synchronizations."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return reduce(times)


median = statistics.median
