"""The sweep's manifest: one record per point, read to resume, written in time linear in the points.

``manifest.json`` is written whole (atomically) twice per sweep: when it starts (every point, the unfinished ones
``pending``) and when it ends (also after Ctrl-C or an error). In between, each finished point's record is
appended as one line to ``manifest.journal.jsonl``: a sweep killed outright (``kill -9``, a lost machine) leaves
the manifest of its start plus the journal, and reading the manifest applies the journal's lines to it (a last
line cut short is skipped). Every line carries the token of the manifest it continues, so the lines of an older
sweep in the same folder are never applied to a newer one's manifest.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import IO, Any

from nst_lightning.files import WriteError, atomic_write
from nst_lightning.sweep.spec import Point, Sweep, _canonical

MANIFEST = "manifest.json"
JOURNAL = "manifest.journal.jsonl"


def read_manifest(output_dir: Path, fixed: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The previous run's point records by name (its journal applied); {} when there is none, it is unreadable,
    or it ran with other shared overrides (``fixed``)."""
    try:
        data = json.loads((output_dir / MANIFEST).read_text())
        if fixed is not None and _canonical(data["fixed"]) != _canonical(fixed):
            return {}
        records = {r["name"]: r for r in data["points"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    for line in _journal_lines(output_dir / JOURNAL):
        try:
            entry = json.loads(line)
            if entry["journal"] == data.get("journal") and entry["point"]["name"] in records:
                records[entry["point"]["name"]] = entry["point"]
        except (ValueError, KeyError, TypeError):  # a line cut short by a kill, or not ours
            continue
    return records


def _journal_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return []


def is_finished(record: dict[str, Any] | None, point: Point) -> bool:
    """Whether a previous run finished ``point``: done, with the same parameters, and its image still there."""
    return (
        bool(record)
        and record.get("status") == "done"
        and _canonical(record.get("params")) == _canonical(point.params)
        and Path(record.get("output", "")).is_file()
    )


def write_manifest(sweep: Sweep, records: dict[str, dict[str, Any]], journal: str | None = None) -> Path:
    """Write the manifest atomically: one record per point, in sweep order; ``journal``: the token the lines
    appended after it carry (:class:`ManifestWriter`). The journal it supersedes is removed."""
    sweep.output_dir.mkdir(parents=True, exist_ok=True)
    path = sweep.output_dir / MANIFEST
    data = {
        "config": str(sweep.config),
        "fixed": sweep.fixed,
        "varying": sweep.varying,
        "points": [records[p.name] for p in sweep.points if p.name in records],
    }
    if journal is not None:
        data["journal"] = journal
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2, default=str)
    (sweep.output_dir / JOURNAL).unlink(missing_ok=True)  # its lines are in the manifest now
    return path


class ManifestWriter:
    """Keeps a sweep's manifest current: :meth:`start` writes it whole, :meth:`add` appends one finished
    point's record to the journal, :meth:`finish` writes it whole again and drops the journal. Bytes written:
    about twice the manifest plus one line per point, whatever the number of points."""

    def __init__(self, sweep: Sweep, records: dict[str, dict[str, Any]]) -> None:
        self.sweep, self.records = sweep, records
        self.token = uuid.uuid4().hex
        self._journal: IO[str] | None = None

    def start(self) -> Path:
        return write_manifest(self.sweep, self.records, self.token)

    def add(self, record: dict[str, Any]) -> None:
        self.records[record["name"]] = record
        path = self.sweep.output_dir / JOURNAL
        try:
            if self._journal is None:
                self._journal = open(path, "a")  # noqa: SIM115 - closed by finish()
            self._journal.write(json.dumps({"journal": self.token, "point": record}, default=str) + "\n")
            self._journal.flush()  # in the OS's hands: a killed process loses nothing
        except OSError as exc:  # a full disk: name the file, as every other write does
            raise WriteError(path, exc) from exc

    def finish(self) -> Path:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        return write_manifest(self.sweep, self.records)
