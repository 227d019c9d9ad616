"""Running the points of a sweep in this process: one point alone, or several as one batch.

Each point is its own optimization through the same code path as ``nst-lightning fit``
(the sweep's ``build`` function, :func:`nst_lightning.cli.fit.build_cli`, then ``trainer.fit``). Points that differ only in loss
weights (and seed, unless the image starts from noise) run together as one N×3×H×W batch with
per-image loss weights; L-BFGS points run one by one.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from nst_lightning.callbacks.interrupt import RunInterrupted
from nst_lightning.callbacks.quality import quality_metadata
from nst_lightning.claims import OutputClaim
from nst_lightning.data import BatchedData, StyleTransferData
from nst_lightning.files import RunFiles
from nst_lightning.heap import release_freed_memory
from nst_lightning.image.io import png_metadata, save_png
from nst_lightning.plugin.manager import load_plugins
from nst_lightning.sweep.naming import output_path
from nst_lightning.sweep.planning import PER_IMAGE_INPUTS, loss_weights, point_arguments
from nst_lightning.sweep.spec import Point, Sweep, SweepError

Record = dict[str, Any]


def visible_device() -> str:
    """The device a worker sees: ``cuda:0 (CUDA_VISIBLE_DEVICES=3)`` or ``cpu``."""
    if torch.cuda.is_available():
        return f"cuda:0 (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')})"
    return "cpu"


def _record(point: Point, output: Path, status: str, **fields: Any) -> Record:
    return {"name": point.name, "params": point.params, "status": status, "output": str(output), **fields}


def _ran(point: Point, output: Path, status: str, start: float, **fields: Any) -> Record:
    """The record of a point that ran here: with its time, the device and the GPU it was given."""
    return _record(point, output, status, seconds=round(time.perf_counter() - start, 2), device=visible_device(),
                   cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"), **fields)


@functools.cache
def _load_plugins_once() -> None:
    """Configs may name plugin classes: load the plugins once in every process that builds runs (Ray, workers)."""
    load_plugins()


def _parsing(call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)`` where jsonargparse reports a config error by exiting: raise it as one line instead."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return call(*args)
    except SystemExit:
        lines = [line for line in stderr.getvalue().splitlines() if line.strip()]
        raise SweepError(lines[-1] if lines else "invalid config") from None


def _build(sweep: Sweep, args: list[str]):
    """``sweep.build(args, run=False)``: the point's config parsed and its model, data and trainer built."""
    if sweep.build is None:
        raise SweepError("the sweep has no build function (give build_sweep(..., build=build_cli))")
    _load_plugins_once()
    return _parsing(sweep.build, args, False)


def final_losses(cli) -> list[dict[str, float]]:
    """Each image's loss terms (and their total) as the run's last step computed them (tiled or not), one dict
    per image: read from the run's report, not evaluated again."""
    step = cli.model.report.last_step
    if step is None:
        return [{} for _ in range(cli.model.image.shape[0])]
    per_image = {k: v.double().cpu().tolist() for k, v in step.terms.items()}
    rows = [{f"loss/{k}": v[i] for k, v in per_image.items()} for i in range(len(next(iter(per_image.values()))))]
    for row in rows:
        row["loss/total"] = sum(row.values())
    return rows


def _fit(cli) -> None:
    """What ``nst-lightning fit`` does with the built objects: the CLI's checks, then ``trainer.fit``."""
    try:
        cli.before_fit()
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    finally:
        cli.image_writer.release()  # the output's claim, on every way out of the run


def run_point(sweep: Sweep, point: Point) -> Record:
    """One point alone, exactly as ``nst-lightning fit`` with the point's overrides would run it."""
    output = output_path(sweep, point)
    start = time.perf_counter()
    try:
        cli = _build(sweep, point_arguments(sweep, point, output))
        _fit(cli)
        losses = final_losses(cli)[0]
        quality = (cli.model.report.quality or [None])[0]
    except RunInterrupted:
        raise  # Ctrl-C stops the sweep; the point stays pending and runs again next time
    except Exception as exc:
        return _ran(point, output, "failed", start, error=sweep.error_message(exc))
    return _ran(point, output, "done", start, losses=losses, quality=quality, batch_size=1)


def run_together(sweep: Sweep, points: list[Point]) -> list[Record]:
    """``points`` as one N×3×H×W batch: one run with each point's loss weights and (when they differ) its own
    content and style images per image. A point whose images cannot be loaded fails alone, before the batch
    runs; the others run together."""
    outputs = [output_path(sweep, p) for p in points]
    start = time.perf_counter()
    cli = _build(sweep, point_arguments(sweep, points[0], outputs[0]))
    ready, failed = [], []
    for point, output in zip(points, outputs):
        try:
            config = _parsing(cli.parser.parse_args, point_arguments(sweep, point, output))
            data = StyleTransferData(**config.data.as_dict())
            data.setup()  # the images load now: a missing or broken one fails this point only
        except RunInterrupted:
            raise
        except Exception as exc:
            failed.append(_ran(point, output, "failed", start, error=sweep.error_message(exc)))
            continue
        ready.append((point, output, config, data))
    if len(ready) <= 1:
        return failed + [run_point(sweep, point) for point, *_ in ready]
    if ready[0][0] is not points[0]:
        cli = _build(sweep, point_arguments(sweep, ready[0][0], ready[0][1]))
    points, outputs, configs, members = (list(column) for column in zip(*ready))
    cli.model.set_sample_weights([loss_weights(sweep, p) for p in points])
    inputs = [{key: config.data.get(key) for key in ("content", *PER_IMAGE_INPUTS)} for config in configs]
    if any(i != inputs[0] for i in inputs):  # each image its own content and styles: targets per image
        cli.datamodule = BatchedData(members)
    with contextlib.ExitStack() as claims:  # images 1..N-1 are claimed as the run's ImageWriter claims image 0
        for output in outputs[1:]:
            claims.enter_context(OutputClaim(output, RunFiles(output).lock))
        _fit(cli)  # the run's ImageWriter writes image 0
        images = cli.model.output_image()  # with preserve_colour, the content's chroma for every image
        quality = cli.model.report.quality or [None] * len(points)  # one score per image of the batch
        for i in range(1, len(points)):
            config = cli.parser.dump(configs[i])
            metadata = {**png_metadata(cli.trainer.global_step, config), **quality_metadata(quality[i] or {})}
            save_png(images[i], outputs[i], metadata)
    losses = final_losses(cli)
    return failed + [
        _ran(p, out, "done", start, losses=loss, quality=q, batch_size=len(points))
        for p, out, loss, q in zip(points, outputs, losses, quality)
    ]


def run_planned_batch(sweep: Sweep, points: list[Point], dry_run: bool = False) -> list[Record]:
    """Run one batch the planner made: its points together (:func:`run_together`), or one point alone
    (:func:`run_point`); a batch that fails for a reason no single point explains runs again point by point, so
    each failure is its own. Afterwards the memory the batch freed goes back to the OS, so a worker does not
    stay as large as its largest point."""
    try:
        return _records_of(sweep, points, dry_run)
    finally:
        if not dry_run:  # a dry run ran nothing: nothing to give back
            release_freed_memory()


def _records_of(sweep: Sweep, points: list[Point], dry_run: bool) -> list[Record]:
    if dry_run:
        return [_ran(p, output_path(sweep, p), "dry-run", time.perf_counter(), pid=os.getpid()) for p in points]
    for name in ("lightning.pytorch", "lightning.fabric"):  # per-run notices; the sweep prints its own
        logging.getLogger(name).setLevel(logging.WARNING)
    if len(points) > 1:
        try:
            return run_together(sweep, points)
        except RunInterrupted:
            raise
        except Exception as exc:
            print(f"sweep: a batch of {len(points)} failed ({exc}); running its points one by one", flush=True)
    return [run_point(sweep, p) for p in points]
