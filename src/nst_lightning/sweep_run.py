"""``nst-lightning sweep``: run every point of a sweep, here or on a Ray cluster, resumably.

Each point is its own optimization through the same code path as ``nst-lightning fit``
(:func:`nst_lightning.cli.build_cli`, then ``trainer.fit``). Points that differ only in loss
weights (and seed, unless the image starts from noise) run together as one N×3×H×W batch with
per-image loss weights; L-BFGS points run one by one.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch

from .heap import release_freed_memory
from .image_writer import ImageWriter
from .images import save_png
from .interrupt import RunInterrupted
from .plugins import load_plugins
from .sweep import (
    Point,
    Sweep,
    SweepError,
    build_sweep,
    is_finished,
    loss_weights,
    output_path,
    plan_batches,
    point_arguments,
    read_manifest,
    write_manifest,
)

Record = dict[str, Any]
DEFAULT_MAX_BATCH = 8


# -- one batch, in this process -------------------------------------------------------------------


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


def _build(args: list[str]):  # noqa: ANN202
    """``build_cli(args, run=False)``: the point's config parsed and its model, data and trainer built."""
    from .cli import build_cli

    _load_plugins_once()
    return _parsing(build_cli, args, False)


@torch.no_grad()
def final_losses(cli) -> list[dict[str, float]]:  # noqa: ANN001
    """Each image's loss terms (and their total) on the final image, one dict per image."""
    model, trainer = cli.model, cli.trainer
    model.to(trainer.strategy.root_device)
    with trainer.precision_plugin.forward_context():
        terms = model.loss_terms(model.image)
    n = model.image.shape[0]
    per_image = {k: (v.float().reshape(-1) if v.numel() == n else v.float().sum().expand(n)) for k, v in terms.items()}
    rows = [{f"loss/{k}": float(v[i]) for k, v in per_image.items()} for i in range(n)]
    for row in rows:
        row["loss/total"] = sum(row.values())
    return rows


def _fit(cli) -> None:  # noqa: ANN001
    """What ``nst-lightning fit`` does with the built objects: the CLI's checks, then ``trainer.fit``."""
    cli.before_fit()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)


def run_point(sweep: Sweep, point: Point) -> Record:
    """One point alone, exactly as ``nst-lightning fit`` with the point's overrides would run it."""
    output = output_path(sweep, point)
    start = time.perf_counter()
    try:
        cli = _build(point_arguments(sweep, point, output))
        _fit(cli)
        losses = final_losses(cli)[0]
    except RunInterrupted:
        raise  # Ctrl-C stops the sweep; the point stays pending and runs again next time
    except Exception as exc:  # noqa: BLE001 - a failing point is recorded; the others go on
        return _ran(point, output, "failed", start, error=f"{type(exc).__name__}: {exc}")
    return _ran(point, output, "done", start, losses=losses, batch_size=1)


def run_batched(sweep: Sweep, points: list[Point]) -> list[Record]:
    """``points`` as one N×3×H×W batch: the first point's run, with each point's loss weights per image."""
    outputs = [output_path(sweep, p) for p in points]
    start = time.perf_counter()
    cli = _build(point_arguments(sweep, points[0], outputs[0]))
    cli.model.set_sample_weights([loss_weights(sweep, p) for p in points])
    _fit(cli)  # the run's ImageWriter writes image 0
    images = cli.model.output_image()  # with preserve_colour, the content's chroma for every image
    for i in range(1, len(points)):
        config = cli.parser.dump(_parsing(cli.parser.parse_args, point_arguments(sweep, points[i], outputs[i])))
        writer = ImageWriter(outputs[i], overwrite=True, config=config)
        save_png(images[i], outputs[i], writer.metadata(cli.trainer))
    losses = final_losses(cli)
    return [_ran(p, out, "done", start, losses=loss, batch_size=len(points)) for p, out, loss in zip(points, outputs, losses)]


def run_batch(sweep: Sweep, points: list[Point], dry_run: bool = False) -> list[Record]:
    """Run one planned batch; a batch that fails runs again point by point, so each failure is its own.

    Afterwards the memory the batch freed goes back to the OS, so a worker does not stay as large as
    its largest point.
    """
    try:
        return _run_batch(sweep, points, dry_run)
    finally:
        release_freed_memory()


def _run_batch(sweep: Sweep, points: list[Point], dry_run: bool) -> list[Record]:
    if dry_run:
        return [_ran(p, output_path(sweep, p), "dry-run", time.perf_counter(), pid=os.getpid()) for p in points]
    for name in ("lightning.pytorch", "lightning.fabric"):  # per-run notices; the sweep prints its own
        logging.getLogger(name).setLevel(logging.WARNING)
    if len(points) > 1:
        try:
            return run_batched(sweep, points)
        except RunInterrupted:
            raise
        except Exception as exc:  # noqa: BLE001
            print(f"sweep: a batch of {len(points)} failed ({exc}); running its points one by one", flush=True)
    return [run_point(sweep, p) for p in points]


# -- local: sequential, or one worker process per GPU ---------------------------------------------


def _claim_device(devices: multiprocessing.Queue, threads: int) -> None:
    """Worker initializer: see only one GPU (before CUDA starts), or share the CPU cores fairly."""
    device = devices.get()
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(device)
    torch.set_num_threads(threads)


def run_local(
    sweep: Sweep, batches: list[list[Point]], workers: int, on_record: Callable[[Record], None], dry_run: bool
) -> None:
    """All batches on this machine: in this process, or in ``workers`` processes (one per GPU when there are GPUs)."""
    if workers <= 1:
        for batch in batches:
            for record in run_batch(sweep, batch, dry_run):
                on_record(record)
        return
    gpus = torch.cuda.device_count()
    context = multiprocessing.get_context("spawn")
    devices = context.Queue()
    for i in range(workers):
        devices.put(i % gpus if gpus else None)
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_claim_device,
                             initargs=(devices, threads)) as pool:
        futures = [pool.submit(run_batch, sweep, batch, dry_run) for batch in batches]
        for future in as_completed(futures):
            for record in future.result():
                on_record(record)


# -- the command ----------------------------------------------------------------------------------


class Progress:
    """Keeps the manifest current and prints a line per finished point: ``[3/4] name done in 12.0 s``."""

    def __init__(self, sweep: Sweep, records: dict[str, Record], total: int, skipped: int) -> None:
        self.sweep, self.records, self.total, self.count = sweep, records, total, skipped

    def __call__(self, record: Record) -> None:
        self.records[record["name"]] = record
        write_manifest(self.sweep, self.records)
        self.count += 1
        losses = record.get("losses") or {}
        detail = f"loss/total {losses['loss/total']:.4g}" if "loss/total" in losses else record.get("error", "")
        batch = f", batch of {record['batch_size']}" if record.get("batch_size", 1) > 1 else ""
        seconds = f" in {record['seconds']:.1f} s" if "seconds" in record else ""
        print(f"[{self.count}/{self.total}] {record['name']} {record['status']}{seconds}{batch}  {detail}".rstrip(),
              flush=True)


def default_workers() -> int:
    return max(1, torch.cuda.device_count())


def run_sweep(
    sweep: Sweep,
    backend: str = "local",
    max_batch: int = DEFAULT_MAX_BATCH,
    workers: int | None = None,
    address: str | None = None,
    dry_run: bool = False,
    contact_sheet: bool = True,
) -> dict[str, Record]:
    """Run the sweep's unfinished points and return every point's record (also in the manifest)."""
    previous = read_manifest(sweep.output_dir, sweep.fixed)
    records = {p.name: previous[p.name] for p in sweep.points if is_finished(previous.get(p.name), p)}
    todo = [p for p in sweep.points if p.name not in records]
    for p in todo:
        records[p.name] = _record(p, output_path(sweep, p), "pending")
    write_manifest(sweep, records)
    batches = plan_batches(sweep, todo, max_batch)
    skipped = len(sweep.points) - len(todo)
    where = f"Ray ({address or 'local'})" if backend == "ray" else f"{workers or default_workers()} local worker(s)"
    print(f"sweep: {len(sweep.points)} points ({skipped} finished before), {len(todo)} to run "
          f"in {len(batches)} run(s) on {where}; output in {sweep.output_dir}", flush=True)
    progress = Progress(sweep, records, len(sweep.points), skipped)
    try:
        if backend == "ray":
            from .sweep_ray import run_ray

            run_ray(sweep, batches, progress, address=address, dry_run=dry_run)
        else:
            run_local(sweep, batches, workers or default_workers(), progress, dry_run)
    except RunInterrupted:
        print(f"sweep: interrupted; {progress.count} of {len(sweep.points)} points are finished and kept; "
              "run the same sweep command again to go on", flush=True)
        raise
    if contact_sheet and not dry_run:
        from .contact_sheet import write_contact_sheet

        sheet = write_contact_sheet(sweep, records)
        if sheet is not None:
            print(f"sweep: contact sheet {sheet}", flush=True)
    return records


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nst-lightning sweep",
        description="Run a parameter sweep: every point is its own style transfer run of --config.",
    )
    p.add_argument("--config", required=True, help="the base config (as for 'nst-lightning fit')")
    p.add_argument("--sweep", help="the sweep file: grid, random, samples, seed, fixed, output_dir")
    p.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2",
                   help="a grid axis on the command line, e.g. model.losses.style.init_args.weight=10,30")
    p.add_argument("--output_dir", help="where images, manifest.json and contact_sheet.png go")
    p.add_argument("--backend", choices=["local", "ray"], default="local")
    p.add_argument("--address", help="Ray cluster address (from 'ray start --head'); default: a local Ray")
    p.add_argument("--max_batch", type=int, default=DEFAULT_MAX_BATCH,
                   help="most points per batched run (1: every point alone)")
    p.add_argument("--workers", type=int, help="local worker processes (default: one per GPU, else 1)")
    p.add_argument("--dry_run", action="store_true", help="plan and place the points without running them")
    return p


def sweep_main(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    if args.sweep is None and not args.set:
        raise SweepError("give a sweep file (--sweep) or grid axes (--set key=v1,v2)")
    if args.max_batch < 1:
        raise SweepError(f"--max_batch must be at least 1, not {args.max_batch}")
    sweep = build_sweep(args.config, args.sweep, args.set, args.output_dir)
    records = run_sweep(sweep, args.backend, args.max_batch, args.workers, args.address, args.dry_run)
    failed = [r["name"] for r in records.values() if r["status"] == "failed"]
    if failed:
        raise SweepError(f"{len(failed)} of {len(records)} points failed ({', '.join(failed)}); "
                         f"see {sweep.output_dir / 'manifest.json'}; run the sweep again to redo them")
