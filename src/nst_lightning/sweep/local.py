"""Running a sweep's batches on this machine: in this process, or one worker process per GPU."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed

import torch

from nst_lightning.sweep.run import Record, run_planned_batch
from nst_lightning.sweep.spec import Point, Sweep


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
            for record in run_planned_batch(sweep, batch, dry_run):
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
        futures = [pool.submit(run_planned_batch, sweep, batch, dry_run) for batch in batches]
        for future in as_completed(futures):
            for record in future.result():
                on_record(record)
