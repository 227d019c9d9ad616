"""Issue #20's targets for a video run, on a synthetic clip whose exact flow is known: a slow pan and zoom over the
sample photograph.

Frame t shows the photograph through the affine map ``q = s_t p + o_t`` (p a pixel of the frame, q a point of the
photograph, both in pixel units), with ``s_t`` shrinking ``--zoom`` per frame (a zoom in) and the view's centre
moving ``--pan`` px of the frame to the right per frame. Each frame is rendered by sampling the photograph with that
map (``grid_sample``, 4×4 points per pixel, averaged), so the flow from frame t to frame t-1 is exactly
``((s_t − s_{t−1}) p + o_t − o_{t−1}) / s_{t−1}``, the map the frames were made with.

Each setting runs ``nst-lightning fit --config video`` on the clip as a child process (its wall time and peak RSS
from ``os.wait4``); the output frames are then scored here: the warping error between neighbours with the exact
flow (where it stays in the frame) and with DIS (where it is reliable), each frame's style distance, and the
optimizer steps each frame took (from the frames' PNG metadata). ``flows`` times DIS (and DeepFlow when OpenCV's
contrib modules are installed) on a pair of the clip rendered at 512×384, with their endpoint error against the
exact flow, and the seconds of one L-BFGS step at 512×384 (a one-frame clip with the video config, the slope
between two step counts). The table of targets is printed from the JSON file, with the results of earlier runs of other settings.

    python benchmarks/video_targets.py --size 256 --frames 24 --first 200 --per-frame 100 \
        --json benchmarks/results/video_targets.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CONTENT, QUIET_FLAGS, ROOT, STYLE, seconds_per_call  # noqa: E402
from speed import run_child  # noqa: E402
from video_consistency import output_steps, read_png  # noqa: E402

from nst_lightning.image.io import load_image  # noqa: E402
from nst_lightning.quality.temporal import VideoScores, warping_errors  # noqa: E402
from nst_lightning.video.flow import DeepFlow, DISFlow, FlowCache  # noqa: E402
from nst_lightning.video.io import read_clip  # noqa: E402
from nst_lightning.video.warp import inside  # noqa: E402

SUPERSAMPLE = 4
CONFIG_STEPS_PER_FRAME = 100  # configs/video.yaml's steps_per_frame
ALONE = ["--model.losses.temporal.init_args.weight", "0", "--trainer.callbacks.init_args.warm_start", "false"]
# name: (extra arguments, frames (None: --frames), every frame with the first frame's steps)
SETTINGS = {
    "default": ([], None, False),
    "alone": (ALONE, None, True),
    "alone, same steps": (ALONE, None, False),
    "stopping rule": ([], None, False),  # --tolerance and --window
    "default, 8 frames": ([], 8, False),
    "stopping rule, 8 frames": ([], 8, False),
}


class PanZoom:
    """The affine maps ``q = s_t p + o_t`` of a clip of ``frames`` frames of ``width``×``height`` px over ``photo``
    (3×h×w floats in [0, 1]): the view starts ``start`` times as wide as the photo (in photo px per frame px)."""

    def __init__(self, photo: torch.Tensor, width: int, height: int, pan: float, zoom: float, start: float = 0.75):
        self.photo, self.width, self.height = photo, width, height
        ph, pw = photo.shape[-2:]
        self.s0 = start * pw / width
        self.pan, self.zoom = pan, zoom
        self.c0 = (0.43 * (pw - 1), 0.5 * (ph - 1))  # the view's centre in frame 0 (photo px)

    def scale(self, t: int) -> float:
        return self.s0 * (1 - self.zoom) ** t

    def offset(self, t: int) -> tuple[float, float]:
        s = self.scale(t)
        centre = (self.c0[0] + self.pan * self.s0 * t, self.c0[1])
        return centre[0] - s * (self.width - 1) / 2, centre[1] - s * (self.height - 1) / 2

    def frame(self, t: int) -> torch.Tensor:
        """3×H×W uint8: the photo sampled at ``s_t p + o_t`` on 4×4 points per pixel, averaged."""
        k = SUPERSAMPLE
        ys = (torch.arange(self.height * k, dtype=torch.float64) + 0.5) / k - 0.5
        xs = (torch.arange(self.width * k, dtype=torch.float64) + 0.5) / k - 0.5
        s, (ox, oy) = self.scale(t), self.offset(t)
        ph, pw = self.photo.shape[-2:]
        gy, gx = torch.meshgrid((s * ys + oy) / (ph - 1) * 2 - 1, (s * xs + ox) / (pw - 1) * 2 - 1, indexing="ij")
        grid = torch.stack((gx, gy), -1).unsqueeze(0).float()
        fine = F.grid_sample(self.photo.unsqueeze(0), grid, mode="bilinear", align_corners=True)
        return F.avg_pool2d(fine, k)[0].mul(255).round().clamp(0, 255).to(torch.uint8)

    def flow_to_previous(self, t: int) -> torch.Tensor:
        """1×2×H×W: the exact flow from frame t to frame t-1 (pixel offsets, x then y)."""
        ys, xs = torch.meshgrid(torch.arange(self.height, dtype=torch.float64),
                                torch.arange(self.width, dtype=torch.float64), indexing="ij")
        s, prev = self.scale(t), self.scale(t - 1)
        (ox, oy), (px, py) = self.offset(t), self.offset(t - 1)
        u = (s * xs + ox - px) / prev - xs
        v = (s * ys + oy - py) / prev - ys
        return torch.stack((u, v)).unsqueeze(0).float()


def clip_of(size: int, args: argparse.Namespace) -> PanZoom:
    photo = torch.from_numpy(np.array(Image.open(CONTENT).convert("RGB"))).permute(2, 0, 1).float() / 255
    return PanZoom(photo, size, size * 3 // 4, args.pan, args.zoom)


def write_clip(clip: PanZoom, folder: Path, frames: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(frames):
        Image.fromarray(clip.frame(t).permute(1, 2, 0).numpy()).save(folder / f"{t:03d}.png")


def endpoint_error(flow: torch.Tensor, exact: torch.Tensor) -> float:
    """The mean endpoint error (px) where the exact flow stays in the frame."""
    mask = inside(exact)[:, 0]
    return float(((flow - exact).pow(2).sum(1).sqrt() * mask).sum() / mask.sum())


def flows(args: argparse.Namespace, work: Path) -> dict:
    """Each flow method's endpoint error and seconds per pair at 512×384 (frames 1 and 0 of the clip), and the
    seconds of one L-BFGS step at 512×384 (default image config)."""
    clip = clip_of(512, args)
    first, second = clip.frame(1), clip.frame(0)
    exact = clip.flow_to_previous(1)
    row: dict = {"threads": torch.get_num_threads()}
    methods = {"DIS medium": DISFlow("medium"), "DIS fast": DISFlow("fast"), "DeepFlow": DeepFlow()}
    for name, method in methods.items():
        try:
            flow = method.compute(first, second)
        except Exception as exc:  # noqa: BLE001 - DeepFlow without OpenCV's contrib modules: reported, not fatal
            row[name] = {"error": str(exc)}
            continue
        seconds = seconds_per_call(lambda m=method: m.compute(first, second), "cpu", args.flow_repeats)
        row[name] = {"epe": endpoint_error(flow, exact), "seconds_per_pair": seconds}
        print(name, row[name], flush=True)
    single = work / "frame512"
    write_clip(clip, single, 1)
    command = [sys.executable, "-m", "nst_lightning.cli", "fit", "--config", str(ROOT / "configs" / "video.yaml"),
               *QUIET_FLAGS, "--data.video", str(single), "--data.size", "512", "--data.flow_cache",
               str(work / "flows"), "--output", f"{work / 'out512'}/", "--overwrite", "true"]
    times = [run_child([*command, "--trainer.callbacks.init_args.first_frame_steps", str(n)]).seconds
             for n in args.step_counts]
    slope = (times[1] - times[0]) / (args.step_counts[1] - args.step_counts[0])
    row["lbfgs_seconds_per_step_512"] = slope
    print("L-BFGS at 512x384", slope, "s per step", flush=True)
    return row


def frame_steps(output: Path) -> list[int]:
    """The optimizer steps each frame took: differences of the step counts in the frames' PNG metadata."""
    ends = [int(Image.open(p).text["nst-lightning:step"]) for p in sorted(output.glob("frame_*.png"))]
    return [b - a for a, b in zip([0, *ends], ends)]


def score(output: Path, folder: Path, clip: PanZoom, cache: Path) -> dict:
    frames = [read_png(p) for p in sorted(output.glob("frame_*.png"))]
    source = read_clip(folder)
    styles = [load_image(STYLE, max(frames[0].shape[-2:]))]
    scores = VideoScores()
    dis = FlowCache(DISFlow(), cache)
    exact_errors, dis_errors = [], []
    for t, frame in enumerate(frames):
        scores.add_frame(frame, source.frame(t), styles, [1.0])
        if t:
            flow = dis.between(source.frames[t], source.frames[t - 1])
            scores.add_pair(frames[t - 1], frame, *flow)
            dis_errors.append(warping_errors(frames[t - 1], frame, *flow).item())
            exact = clip.flow_to_previous(t)
            exact_errors.append(warping_errors(frames[t - 1], frame, exact, inside(exact)).item())
    row = scores.summary()
    row["warping_error_exact_flow"] = sum(exact_errors) / len(exact_errors)
    row["warping_exact_per_pair"], row["warping_dis_per_pair"] = exact_errors, dis_errors
    row["style_per_frame"] = scores.style
    row["steps_per_frame"] = frame_steps(output)
    row["steps"] = output_steps(output)
    return row


def run_setting(name: str, args: argparse.Namespace, work: Path, folder: Path, clip: PanZoom) -> dict:
    extra, frames, every = SETTINGS[name]
    output = work / name.replace(" ", "_").replace(",", "")
    shutil.rmtree(output, ignore_errors=True)
    command = [sys.executable, "-m", "nst_lightning.cli", "fit", "--config", str(ROOT / "configs" / "video.yaml"),
               *QUIET_FLAGS, "--data.video", str(folder), "--data.size", str(args.size),
               "--data.flow_cache", str(work / "flows"),
               "--trainer.callbacks.init_args.first_frame_steps", str(args.first),
               "--trainer.callbacks.init_args.steps_per_frame", str(args.first if every else args.per_frame),
               "--output", f"{output}/", *extra]
    if name.startswith("stopping rule"):
        command += ["--trainer.callbacks.init_args.tolerance", str(args.tolerance),
                    "--trainer.callbacks.init_args.window", str(args.window)]
    if frames is not None:
        command += ["--data.max_frames", str(frames)]
    child = run_child(command)
    row = score(output, folder, clip, work / "flows")
    row.update(seconds=child.seconds, peak_rss_mb=child.peak_mb)
    return row


def rescore(name: str, row: dict, work: Path, folder: Path, clip: PanZoom) -> dict:
    """A setting's outputs kept in ``work`` scored again (its time and memory kept)."""
    output = work / name.replace(" ", "_").replace(",", "")
    return {**row, **score(output, folder, clip, work / "flows")}


def targets(results: dict) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each target the results so far allow."""
    rows: list[tuple[str, str, bool | None]] = []
    default, alone = results.get("default"), results.get("alone")
    if default and alone:
        styles = sorted(alone["style_per_frame"])
        failed = [t for t, v in enumerate(alone["style_per_frame"]) if v > 3 * styles[len(styles) // 2]]
        for skip in ([], failed) if failed else ([],):
            note = f", without frame {', '.join(map(str, skip))} (failed alone)" if skip else ""
            pairs = [t for t in range(1, default["frames"]) if t not in skip and t - 1 not in skip]
            for key, label in (("warping_exact_per_pair", "exact flow"), ("warping_dis_per_pair", "DIS")):
                ours, theirs = (sum(r[key][t - 1] for t in pairs) / len(pairs) for r in (default, alone))
                rows.append((f"(a) warping error ≤ 0.3× frames alone ({label}{note})",
                             f"{ours * 1e3:.2f}e-3 vs {theirs * 1e3:.2f}e-3: {ours / theirs:.2f}×", ours / theirs <= 0.3))
            rel = [d / a - 1 for t, (d, a) in enumerate(zip(default["style_per_frame"], alone["style_per_frame"]))
                   if t not in skip]
            rows.append((f"(b) each frame's style distance ≤ 1.1× the frame alone's{note}",
                         f"mean {sum(rel) / len(rel):+.1%}, from {min(rel):+.1%} to {max(rel):+.1%}",
                         all(r <= 0.10 for r in rel)))
    if default:
        steps = default["steps_per_frame"]
        ratio = max(steps[1:]) / steps[0]
        rows.append(("(c) later frames ≤ 0.5× the first frame's steps", f"{steps[0]} then {max(steps[1:])}: "
                     f"{ratio:.2f}×", ratio <= 0.5))
    rule = results.get("stopping rule") or results.get("stopping rule, 8 frames")
    if rule:
        steps = rule["steps_per_frame"]
        later = steps[1:]
        rule_args = f"tolerance {results['args']['tolerance']}, window {results['args']['window']}"
        rows.append((f"(c) with the stopping rule ({rule_args}, {rule['frames']} frames)",
                     f"first {steps[0]}, later {min(later)}–{max(later)} (mean {sum(later) / len(later):.0f}): "
                     f"{sum(later) / len(later) / steps[0]:.2f}×", sum(later) / len(later) / steps[0] <= 0.5))
    flow = results.get("flows")
    if flow and "epe" in flow.get("DIS medium", {}):
        per_frame = 2 * flow["DIS medium"]["seconds_per_pair"]  # two flows per frame: t→t-1 and t-1→t
        step = flow["lbfgs_seconds_per_step_512"]
        ratios = {n: per_frame / (step * n) for n in (CONFIG_STEPS_PER_FRAME, results["args"]["per_frame"])}
        rows.append(("(d) DIS (medium) per frame, 2 pairs, vs one frame's stylization at 512×384",
                     f"{per_frame:.3f} s vs {step:.1f} s per L-BFGS step: "
                     + ", ".join(f"{r:.1e}× at {n} steps" for n, r in ratios.items()), None))
    short = results.get("default, 8 frames")
    if short and default:
        ratio = default["peak_rss_mb"] / short["peak_rss_mb"]
        rows.append(("(e) peak memory does not grow with the frames", f"{short['peak_rss_mb']:.0f} MB at 8 frames, "
                     f"{default['peak_rss_mb']:.0f} MB at {default['frames']}: {ratio:.3f}×", ratio <= 1.05))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--pan", type=float, default=2.0, help="frame px per frame")
    parser.add_argument("--zoom", type=float, default=0.01, help="the scale's fall per frame")
    parser.add_argument("--first", type=int, default=200)
    parser.add_argument("--per-frame", type=int, default=100)
    parser.add_argument("--tolerance", type=float, default=0.005, help="the stopping rule's setting")
    parser.add_argument("--window", type=int, default=5, help="the stopping rule's window")
    parser.add_argument("--step-counts", type=int, nargs=2, default=[2, 4], help="L-BFGS steps timed at 512×384")
    parser.add_argument("--flow-repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None, help=f"run only these: flows, {', '.join(SETTINGS)}")
    parser.add_argument("--work", type=Path, default=None, help="keep the clip and outputs here (default: temporary)")
    parser.add_argument("--json", type=Path, default=None, help="merge the results into this file")
    parser.add_argument("--rescore", action="store_true", help="score the outputs kept in --work again, no runs")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="video_targets_"))
    setup = {k: v for k, v in vars(args).items() if k not in ("json", "only", "work", "flow_repeats", "step_counts", "rescore")}
    known = json.loads(args.json.read_text()) if args.json and args.json.is_file() else {}
    results = known.get("results", {}) if known.get("args") == setup else {}
    clip = clip_of(args.size, args)
    folder = work / "clip"
    if not args.rescore:
        write_clip(clip, folder, args.frames)
    for name in [*SETTINGS, "flows"] if args.only is None else args.only:  # in the order given
        if args.rescore:
            results[name] = rescore(name, results[name], work, folder, clip)
        else:
            results[name] = flows(args, work) if name == "flows" else run_setting(name, args, work, folder, clip)
        if name != "flows":
            print(name, json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in results[name].items()
                                    if k != "style_per_frame" and not k.endswith("per_pair")}), flush=True)
        if args.json:
            args.json.write_text(json.dumps({"args": setup, "results": results}, indent=2))
    print("\n| target | measured | met |\n|---|---|---|")
    for target, measured, met in targets({**results, "args": setup}):
        print(f"| {target} | {measured} | {'—' if met is None else 'yes' if met else 'no'} |")


if __name__ == "__main__":
    main()
