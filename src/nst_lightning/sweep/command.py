"""``nst-lightning sweep``: run every point of a sweep, here or on a Ray cluster, resumably."""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from nst_lightning.callbacks.interrupt import RunInterrupted
from nst_lightning.claims import OutputClaim
from nst_lightning.errors import Interrupted
from nst_lightning.files import RunFiles, lock_of
from nst_lightning.sweep.contact_sheet import CONTACT_SHEET, write_contact_sheet
from nst_lightning.sweep.local import run_local
from nst_lightning.sweep.manifest import JOURNAL, MANIFEST, ManifestWriter, is_finished, read_manifest
from nst_lightning.sweep.naming import name_points, output_path
from nst_lightning.sweep.planning import plan_batches
from nst_lightning.sweep.ray_tune import run_ray
from nst_lightning.sweep.run import Record, _record
from nst_lightning.sweep.spec import (
    POINT_DEFAULTS,
    Point,
    Sweep,
    SweepError,
    _mapping,
    expand,
    load_spec,
    parse_set,
)

DEFAULT_MAX_BATCH = 8


def build_sweep(
    config: str | os.PathLike,
    spec_path: str | os.PathLike | None,
    inline: list[str] | None = None,
    output_dir: str | os.PathLike | None = None,
    build: Callable[[list[str]], Any] | None = None,
    describe: Callable[[BaseException], str] | None = None,
) -> Sweep:
    """The expanded sweep of ``spec_path`` (and inline ``--set`` axes) over the base ``config``."""
    config = Path(config)
    if not config.is_file():
        raise SweepError(f"--config {str(config)!r} does not exist")
    spec = load_spec(spec_path)
    params = expand(spec, parse_set(inline or []))
    default_dir = Path("outputs") / "sweeps" / (Path(spec_path).stem if spec_path else "sweep")
    out = Path(output_dir or spec.get("output_dir") or default_dir)
    existing = next((p for p in (out, *out.absolute().parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise SweepError(f"--output_dir {str(out)!r}: {str(existing)!r} is a file, not a folder; choose another --output_dir")
    fixed = {**POINT_DEFAULTS, **_mapping(spec, "fixed")}
    points = [Point(p) for p in params]
    name_points(points)
    return Sweep(config.resolve(), out.resolve(), fixed, points, build, describe)


class Progress:
    """Keeps the manifest current and prints a line per finished point: ``[3/4] name done in 12.0 s``."""

    def __init__(self, manifest: ManifestWriter, total: int, skipped: int) -> None:
        self.manifest, self.total, self.count = manifest, total, skipped

    def __call__(self, record: Record) -> None:
        self.manifest.add(record)
        self.count += 1
        losses = record.get("losses") or {}
        detail = f"loss/total {losses['loss/total']:.4g}" if "loss/total" in losses else record.get("error", "")
        batch = f", batch of {record['batch_size']}" if record.get("batch_size", 1) > 1 else ""
        seconds = f" in {record['seconds']:.1f} s" if "seconds" in record else ""
        print(f"[{self.count}/{self.total}] {record['name']} {record['status']}{seconds}{batch}  {detail}".rstrip(),
              flush=True)


def sweep_files(sweep: Sweep) -> list[Path]:
    """The files a sweep writes in its ``output_dir`` beside its points' (each point's are its run's:
    :class:`~nst_lightning.files.RunFiles`)."""
    return [sweep.output_dir / name for name in (MANIFEST, JOURNAL, CONTACT_SHEET)]


def _has_own_manifest(output_dir: Path) -> bool:
    """Whether ``output_dir`` holds a manifest a sweep wrote (a JSON object with its points), not a user's file."""
    try:
        data = json.loads((output_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("points"), list)


def check_foreign_files(sweep: Sweep, points: list[Point]) -> None:
    """Refuse the sweep if it would replace a file that is not its own: its manifest, journal or contact sheet
    when the folder holds no manifest of a sweep, or a point's image or run-folder file (interrupted image and
    checkpoint, last good image) that the manifest does not list as the sweep's."""
    listed = {record.get("output") for record in read_manifest(sweep.output_dir).values()}
    foreign = [] if _has_own_manifest(sweep.output_dir) else [p for p in sweep_files(sweep) if p.exists()]
    for point in points:
        output = output_path(sweep, point)
        if str(output) not in listed:
            files = RunFiles(output)
            foreign += [path for path in (output, *files.in_the_way()) if path.exists()]
    if foreign:
        raise SweepError(
            f"the sweep would replace {len(foreign)} file(s) in --output_dir that are not this sweep's (not in its "
            f"manifest), the first {str(foreign[0])!r}; pass --overwrite to replace them, or choose another --output_dir"
        )


def default_workers() -> int:
    return max(1, torch.cuda.device_count())


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends a sweep as Ctrl-C does (:class:`~nst_lightning.errors.Interrupted`, exit status 143) rather than
    at once, so that every ``finally`` runs: the manifest is written whole, and no temporary file or lock stays.
    (During a point's optimization the run's own handler saves it; then this one is back.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_sweep(sweep: Sweep, *args: Any, **kwargs: Any) -> dict[str, Record]:
    """Run the sweep's unfinished points and return every point's record (also in the manifest)
    (:func:`run_claimed_sweep`), with its folder claimed: a second sweep into the same ``output_dir`` is refused
    at start, and the lock is removed on every way out."""
    manifest = sweep.output_dir / MANIFEST
    with terminate_as_interrupt(), OutputClaim(manifest, lock_of(manifest), option="--output_dir"):
        return run_claimed_sweep(sweep, *args, **kwargs)


def run_claimed_sweep(
    sweep: Sweep,
    backend: str = "local",
    max_batch: int = DEFAULT_MAX_BATCH,
    workers: int | None = None,
    address: str | None = None,
    dry_run: bool = False,
    contact_sheet: bool = True,
    overwrite: bool = False,
) -> dict[str, Record]:
    """Run the sweep's unfinished points and return every point's record (also in the manifest).

    Nothing in ``output_dir`` that is not the sweep's own is replaced unless ``overwrite``
    (:func:`check_foreign_files`): not a point's image or run-folder file that the manifest does not list, not
    a user's ``manifest.json`` or ``contact_sheet.png``.
    """
    previous = read_manifest(sweep.output_dir, sweep.fixed)
    records = {p.name: previous[p.name] for p in sweep.points if is_finished(previous.get(p.name), p)}
    todo = [p for p in sweep.points if p.name not in records]
    if not overwrite:
        check_foreign_files(sweep, todo)
    for p in todo:
        records[p.name] = _record(p, output_path(sweep, p), "pending")
    manifest = ManifestWriter(sweep, records)
    manifest.start()
    batches = plan_batches(sweep, todo, max_batch)
    skipped = len(sweep.points) - len(todo)
    where = f"Ray ({address or 'local'})" if backend == "ray" else f"{workers or default_workers()} local worker(s)"
    print(f"sweep: {len(sweep.points)} points ({skipped} finished before), {len(todo)} to run "
          f"in {len(batches)} run(s) on {where}; output in {sweep.output_dir}", flush=True)
    progress = Progress(manifest, len(sweep.points), skipped)
    try:
        if backend == "ray":
            run_ray(sweep, batches, progress, address=address, dry_run=dry_run)
        else:
            run_local(sweep, batches, workers or default_workers(), progress, dry_run)
    except RunInterrupted:
        print(f"sweep: interrupted; {progress.count} of {len(sweep.points)} points are finished and kept; "
              "run the same sweep command again to go on", flush=True)
        raise
    finally:
        manifest.finish()
    if contact_sheet and not dry_run:
        sheet = write_contact_sheet(sweep, records)
        if sheet is not None:
            print(f"sweep: contact sheet {sheet}", flush=True)
    return records


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nst-lightning sweep",
        description="Run a parameter sweep: every point is its own style transfer run of --config.",
    )
    p.add_argument("--config", required=True, action="append", help="the base config (as for 'nst-lightning fit')")
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
    p.add_argument("--overwrite", nargs="?", const=True, default=False, type=_boolean,
                   help="let points replace files in the output directory that the sweep's manifest does not list "
                        "(--overwrite, or --overwrite true|false as fit takes it)")
    return p


def _boolean(text: str) -> bool:
    if text.lower() in ("true", "yes", "1"):
        return True
    if text.lower() in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def sweep_main(argv: list[str], build: Callable[[list[str]], Any],
               describe: Callable[[BaseException], str] | None = None) -> None:
    """``nst-lightning sweep ARGS``; ``build`` builds one point's run from its ``fit`` arguments, ``describe``
    words a point's error as ``fit`` would."""
    args = parser().parse_args(argv)
    if len(args.config) > 1:  # argparse would keep the last silently
        raise SweepError(f"--config given {len(args.config)} times: a sweep takes one base config; put further "
                         "settings in the sweep file's 'fixed:' or in --set")
    if args.sweep is None and not args.set:
        raise SweepError("give a sweep file (--sweep) or grid axes (--set key=v1,v2)")
    if args.max_batch < 1:
        raise SweepError(f"--max_batch must be at least 1, not {args.max_batch}")
    sweep = build_sweep(args.config[0], args.sweep, args.set, args.output_dir, build, describe)
    records = run_sweep(sweep, args.backend, args.max_batch, args.workers, args.address, args.dry_run,
                        overwrite=args.overwrite)
    failed = [r["name"] for r in records.values() if r["status"] == "failed"]
    if failed:
        raise SweepError(f"{len(failed)} of {len(records)} points failed ({', '.join(failed)}); "
                         f"see {sweep.output_dir / 'manifest.json'}; run the sweep again to redo them")
