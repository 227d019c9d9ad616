"""Temporal consistency of a stylized clip: the warping error with and without the temporal loss and warm start.

The clip is a pan over the sample photograph, ``--shift`` px to the right per frame, written as PNG frames, so
its flow is known exactly (each pixel of frame t was ``shift`` px further right in frame t-1). Each setting runs
``nst-lightning fit --config video`` on it; the output frames are then scored here: the warping error between
neighbours with the run's own flow (DIS, where it is reliable) and with the exact flow (where it stays inside the
image), and each frame's style and content distances (their mean and worst).

    python benchmarks/video_consistency.py --size 96 --frames 8 --first 60 --per-frame 30
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CONTENT, QUIET_FLAGS, ROOT, STYLE  # noqa: E402

from nst_lightning.cli import main  # noqa: E402
from nst_lightning.image.io import load_image  # noqa: E402
from nst_lightning.quality.temporal import VideoScores, warping_errors  # noqa: E402
from nst_lightning.video.warp import inside  # noqa: E402
from nst_lightning.video_data import VideoData  # noqa: E402

SETTINGS = {
    "alone": ["--model.losses.temporal.init_args.weight", "0", "--trainer.callbacks.init_args.warm_start", "false"],
    "alone, first frame's steps for every frame": ["--model.losses.temporal.init_args.weight", "0",
                                                   "--trainer.callbacks.init_args.warm_start", "false"],
    "temporal 100 without warm start": ["--trainer.callbacks.init_args.warm_start", "false"],
    "temporal 10, stopping rule 0.005 over 10 steps": ["--trainer.callbacks.init_args.tolerance", "0.005",
                                   "--trainer.callbacks.init_args.window", "10"],
    "temporal 10, stopping rule 0.02 over 5 steps": ["--trainer.callbacks.init_args.tolerance", "0.02",
                                                     "--trainer.callbacks.init_args.window", "5"],
    "warm start": ["--model.losses.temporal.init_args.weight", "0"],
    "temporal 10": ["--model.losses.temporal.init_args.weight", "10"],
    "temporal 100": ["--model.losses.temporal.init_args.weight", "100"],
    "temporal 1000": ["--model.losses.temporal.init_args.weight", "1000"],
    # Multi-pass against a single pass with as many steps per frame in all (30 + 2 x 15).
    "temporal 10, 3 passes (15 steps per frame in each later pass)": [
        "--trainer.callbacks.init_args.passes", "3", "--trainer.callbacks.init_args.pass_steps", "15"],
    "temporal 10, one pass of 60 steps per frame": ["--trainer.callbacks.init_args.steps_per_frame", "60"],
    "temporal 10, long-term [1, 2, 4]": ["--trainer.callbacks.init_args.references", "[1, 2, 4]"],
}


def write_pan(folder: Path, frames: int, size: int, shift: int) -> None:
    height, width = size * 3 // 4, size
    photo = Image.open(CONTENT).convert("RGB")
    photo = np.asarray(photo.resize((width + shift * frames + 16, round(photo.height * (width + shift * frames + 16) / photo.width))))
    folder.mkdir(parents=True)
    for t in range(frames):
        Image.fromarray(np.ascontiguousarray(photo[8 : 8 + height, shift * t : shift * t + width])).save(folder / f"{t:03d}.png")


def score(output: Path, clip: Path, data: VideoData, size: int, shift: int) -> dict:
    frames = [read_png(p) for p in sorted(output.glob("frame_*.png"))]
    scores = VideoScores()
    styles = [load_image(STYLE, size)]
    exact = torch.zeros(1, 2, *frames[0].shape[-2:])
    exact[:, 0] = shift
    errors_exact = []
    for t, frame in enumerate(frames):
        scores.add_frame(frame, data.load_clip().frame(t), styles, [1.0])
        if t:
            scores.add_pair(frames[t - 1], frame, *data.flow_to_previous(t))
            errors_exact.append(warping_errors(frames[t - 1], frame, exact, inside(exact)).item())
    row = scores.summary()
    row["warping_error_exact_flow"] = sum(errors_exact) / len(errors_exact)
    return row


def output_steps(output: Path) -> int:
    """The run's optimizer steps, from the last frame's PNG metadata."""
    return int(Image.open(sorted(output.glob("frame_*.png"))[-1]).text["nst-lightning:step"])


def read_png(path: Path) -> torch.Tensor:
    return load_image(path, None, "frame")


def run(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="video_consistency_"))
    clip = work / "clip"
    write_pan(clip, args.frames, args.size, args.shift)
    data = VideoData(str(clip), str(STYLE), size=args.size, flow_cache=str(work / "flows"))
    results = {}
    for name, extra in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        output = work / name.replace(" ", "_").replace(",", "")
        if name.endswith("every frame"):  # as many steps for every frame as for the first
            extra = [*extra, "--trainer.callbacks.init_args.steps_per_frame", str(args.first)]
        start = time.perf_counter()
        main(["fit", "--config", str(ROOT / "configs" / "video.yaml"), *QUIET_FLAGS, "--data.video", str(clip),
              "--data.size", str(args.size), "--data.flow_cache", str(work / "flows"),
              "--trainer.callbacks.init_args.first_frame_steps", str(args.first),
              "--trainer.callbacks.init_args.steps_per_frame", str(args.per_frame),
              "--output", f"{output}/", *extra])
        row = score(output, clip, data, args.size, args.shift)
        row["steps"] = int(output_steps(output))
        row["seconds"] = time.perf_counter() - start
        results[name] = row
        print(name, json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--shift", type=int, default=3)
    parser.add_argument("--first", type=int, default=60)
    parser.add_argument("--per-frame", type=int, default=30)
    parser.add_argument("--only", nargs="*", default=None, help="run only these settings")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    results = run(args)
    if args.json:  # settings run before with the same arguments are kept
        known = json.loads(args.json.read_text()) if args.json.is_file() else {}
        setup = {k: v for k, v in vars(args).items() if k not in ("json", "only")}
        merged = known.get("results", {}) if known.get("args") == setup else {}
        args.json.write_text(json.dumps({"args": setup, "results": merged | results}, indent=2))
