"""Sweeps on Ray Tune: one trial per planned batch, one GPU per trial, on this machine or a Ray cluster.

Install with ``pip install 'nst-lightning[ray]'``. Ray gives each trial its own GPU
(``CUDA_VISIBLE_DEVICES`` holds just that one), so a trial's ``accelerator: auto`` finds exactly one
device. Without GPUs in the cluster each trial takes one CPU. Results come back to the driver,
which keeps the manifest and prints the progress.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from nst_lightning.sweep.naming import output_path
from nst_lightning.sweep.run import Record, run_planned_batch
from nst_lightning.sweep.spec import Point, Sweep


def trial_resources(cluster: dict[str, float]) -> dict[str, float]:
    """One GPU per trial when the cluster has GPUs, else one CPU."""
    return {"cpu": 1, "gpu": 1} if cluster.get("GPU", 0) >= 1 else {"cpu": 1}


def sweep_trainable(config: dict[str, Any], sweep: Sweep, batches: list[list[Point]], cwd: str, dry_run: bool) -> None:
    """The Tune trainable: runs batch ``config['batch']`` and reports its points' records."""
    import ray
    from ray import tune

    os.chdir(cwd)  # relative paths in the config mean the driver's working directory
    records = run_planned_batch(sweep, batches[config["batch"]], dry_run)
    for record in records:
        record["ray_gpu_ids"] = [str(i) for i in ray.get_gpu_ids()]
    tune.report({"records": json.dumps(records, default=str)})


def run_ray(
    sweep: Sweep,
    batches: list[list[Point]],
    on_record: Callable[[Record], None],
    address: str | None = None,
    dry_run: bool = False,
) -> None:
    """Run every batch as a Ray Tune trial; ``on_record`` sees each point's record in the driver."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise ImportError("--backend ray needs Ray Tune: pip install 'nst-lightning[ray]'") from None
    if not batches:
        return

    class Report(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
            for record in json.loads(result["records"]):
                on_record(record)

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            for point in batches[trial.config["batch"]]:
                on_record({"name": point.name, "params": point.params, "status": "failed",
                           "output": str(output_path(sweep, point)), "error": f"Ray trial {trial.trial_id} failed"})

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False)
    try:
        trainable = tune.with_parameters(sweep_trainable, sweep=sweep, batches=batches, cwd=os.getcwd(),
                                         dry_run=dry_run)
        tuner = tune.Tuner(
            tune.with_resources(trainable, trial_resources(ray.cluster_resources())),
            param_space={"batch": tune.grid_search(list(range(len(batches))))},
            run_config=tune.RunConfig(
                name="ray_tune",
                storage_path=str(sweep.output_dir / ".ray"),
                verbose=0,
                callbacks=[Report()],
            ),
        )
        tuner.fit()
    finally:
        if started:
            ray.shutdown()
