"""The sweep's manifest: one record per point, written atomically after every point, read to resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nst_lightning.files import atomic_write
from nst_lightning.sweep.spec import Point, Sweep, _canonical

MANIFEST = "manifest.json"


def read_manifest(output_dir: Path, fixed: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The previous run's point records by name; {} when there is none, it is unreadable, or it ran
    with other shared overrides (``fixed``)."""
    try:
        data = json.loads((output_dir / MANIFEST).read_text())
        if fixed is not None and _canonical(data["fixed"]) != _canonical(fixed):
            return {}
        return {r["name"]: r for r in data["points"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def is_finished(record: dict[str, Any] | None, point: Point) -> bool:
    """Whether a previous run finished ``point``: done, with the same parameters, and its image still there."""
    return (
        bool(record)
        and record.get("status") == "done"
        and _canonical(record.get("params")) == _canonical(point.params)
        and Path(record.get("output", "")).is_file()
    )


def write_manifest(sweep: Sweep, records: dict[str, dict[str, Any]]) -> Path:
    """Write the manifest atomically: one record per point, in sweep order."""
    sweep.output_dir.mkdir(parents=True, exist_ok=True)
    path = sweep.output_dir / MANIFEST
    data = {
        "config": str(sweep.config),
        "fixed": sweep.fixed,
        "varying": sweep.varying,
        "points": [records[p.name] for p in sweep.points if p.name in records],
    }
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2, default=str)
    return path
