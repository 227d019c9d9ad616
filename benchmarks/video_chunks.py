"""What stylizing a clip in chunks side by side costs in consistency, and what it saves in time.

The clip is the pan of ``video_consistency.py`` (its exact flow is known). Each setting runs ``nst-lightning fit
--config video`` on it, one chunk after another (the single pass) or ``--data.parallel N`` chunks side by side as
one batch of images, with ``--data.overlap K`` frames cross-faded where chunks meet. The output frames are scored
with the exact flow: the warping error over all neighbouring pairs, over the pairs where chunks meet (a pair with
a frame that two chunks share, or a frame of one chunk next to a frame of another) and over the others; each
frame's style distance (mean and worst); the run's optimizer steps and its time, as a ratio to one chunk after
another measured in the same run.

    python benchmarks/video_chunks.py --size 96 --frames 16 --first 40 --per-frame 20
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import QUIET_FLAGS, ROOT, STYLE  # noqa: E402
from video_consistency import output_steps, read_png, write_pan  # noqa: E402

from nst_lightning.cli import main  # noqa: E402
from nst_lightning.image.io import load_image  # noqa: E402
from nst_lightning.quality.temporal import VideoScores, warping_errors  # noqa: E402
from nst_lightning.video.warp import inside  # noqa: E402
from nst_lightning.video_data import VideoData  # noqa: E402

SETTINGS = {  # name: (parallel, overlap)
    "one after another": (1, 0),
    "2 side by side, overlap 2": (2, 2),
    "4 side by side, overlap 2": (4, 2),
    "4 side by side, overlap 4": (4, 4),
    "4 side by side, no overlap": (4, 0),
}


def border_pairs(data: VideoData) -> set[int]:
    """The frames t whose pair (t-1, t) lies where chunks meet."""
    holders: dict[int, set[int]] = {}
    for c, chunk in enumerate(data.chunks):
        for frame in chunk.frames:
            holders.setdefault(frame, set()).add(c)
    return {t for t in range(1, data.frame_count) if holders[t] != holders[t - 1] or len(holders[t]) > 1}


def score(output: Path, clip: Path, size: int, shift: int, borders: set[int]) -> dict:
    frames = [read_png(p) for p in sorted(output.glob("frame_*.png"))]
    data = VideoData(str(clip), str(STYLE), size=size)
    scores, styles = VideoScores(), [load_image(STYLE, size)]
    exact = torch.zeros(1, 2, *frames[0].shape[-2:])
    exact[:, 0] = shift
    errors = {}
    for t, frame in enumerate(frames):
        scores.add_frame(frame, data.load_clip().frame(t), styles, [1.0])
        if t:
            errors[t] = warping_errors(frames[t - 1], frame, exact, inside(exact)).item()
    summary = scores.summary()
    mean = lambda values: sum(values) / len(values) if values else None  # noqa: E731
    return {"warping_error": mean(list(errors.values())),
            "warping_error_where_chunks_meet": mean([e for t, e in errors.items() if t in borders]),
            "warping_error_inside_chunks": mean([e for t, e in errors.items() if t not in borders]),
            "worst_pair": max(errors.values()), "style_distance": summary["style_distance"],
            "worst_style_distance": summary["worst_style_distance"], "content_distance": summary["content_distance"]}


def run(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="video_chunks_"))
    clip = work / "clip"
    write_pan(clip, args.frames, args.size, args.shift)
    results = {}
    for name, (parallel, overlap) in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        output = work / name.replace(" ", "_").replace(",", "")
        data = VideoData(str(clip), str(STYLE), size=args.size, parallel=parallel, overlap=overlap)
        start = time.perf_counter()
        main(["fit", "--config", str(ROOT / "configs" / "video.yaml"), *QUIET_FLAGS, "--data.video", str(clip),
              "--data.size", str(args.size), "--data.flow_cache", str(work / "flows"),
              "--data.parallel", str(parallel), "--data.overlap", str(overlap),
              "--trainer.callbacks.init_args.first_frame_steps", str(args.first),
              "--trainer.callbacks.init_args.steps_per_frame", str(args.per_frame),
              "--output", f"{output}/"])
        seconds = time.perf_counter() - start
        row = score(output, clip, args.size, args.shift, border_pairs(data))
        row.update(chunks=[[c.frames[0], c.frames[-1]] for c in data.chunks], steps=output_steps(output),
                   seconds=seconds)
        results[name] = row
        print(name, json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    if "one after another" in results:  # times are compared within one run only
        alone = results["one after another"]["seconds"]
        for row in results.values():
            row["time_vs_one_after_another"] = row["seconds"] / alone
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--shift", type=int, default=3)
    parser.add_argument("--first", type=int, default=40)
    parser.add_argument("--per-frame", type=int, default=20)
    parser.add_argument("--only", nargs="*", default=None, help="run only these settings")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "video_chunks.json")
    args = parser.parse_args()
    results = run(args)
    setup = {k: v for k, v in vars(args).items() if k != "json"}
    args.json.write_text(json.dumps({"args": setup, "results": results}, indent=2))
    for name, row in results.items():
        print(f"| {name} | {row['warping_error'] * 1e3:.2f} | {(row['warping_error_where_chunks_meet'] or 0) * 1e3:.2f} "
              f"| {(row['warping_error_inside_chunks'] or 0) * 1e3:.2f} | {row['style_distance']:.4f} "
              f"| {row['steps']} | {row.get('time_vs_one_after_another', float('nan')):.2f} |")
