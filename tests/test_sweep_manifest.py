"""The sweep's manifest: written in bytes linear in the points, and a sweep killed outright resumes from it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from nst_lightning.sweep import local
from nst_lightning.sweep import manifest as manifest_module
from nst_lightning.sweep.command import build_sweep, run_sweep
from nst_lightning.sweep.manifest import JOURNAL, MANIFEST, read_manifest
from nst_lightning.sweep.naming import output_path
from nst_lightning.sweep.run import _record

from .conftest import DEFAULT, ROOT


def done_records(sweep, points) -> list[dict]:
    """What running ``points`` records, without running them: each point done, with a file at its output."""
    for p in points:
        output_path(sweep, p).write_bytes(b"image")
    return [_record(p, output_path(sweep, p), "done") for p in points]


def weights(count: int) -> list[str]:
    return ["model.losses.style.init_args.weight=" + ",".join(str(i + 1) for i in range(count))]


def dry_run_bytes(tmp_path: Path, monkeypatch, count: int) -> tuple[int, int, int]:
    """(bytes written to the manifest and its journal, whole-manifest writes, the final manifest's size) of a
    ``count``-point dry run."""
    written = {"bytes": 0, "writes": 0}
    monkeypatch.undo()  # counts of this run only
    write = manifest_module.write_manifest

    def counted(*args, **kwargs):
        path = write(*args, **kwargs)
        written["bytes"] += path.stat().st_size
        written["writes"] += 1
        return path

    finish = manifest_module.ManifestWriter.finish

    def journal_counted(self):
        journal = self.sweep.output_dir / JOURNAL
        lines = journal.read_text().splitlines()
        assert len(lines) == count  # one line per point
        written["bytes"] += journal.stat().st_size
        return finish(self)

    monkeypatch.setattr(manifest_module, "write_manifest", counted)
    monkeypatch.setattr(manifest_module.ManifestWriter, "finish", journal_counted)
    sweep = build_sweep(DEFAULT, None, weights(count), tmp_path / str(count))
    records = run_sweep(sweep, dry_run=True)
    assert [r["status"] for r in records.values()] == ["dry-run"] * count
    final = sweep.output_dir / MANIFEST
    assert [p["status"] for p in json.loads(final.read_text())["points"]] == ["dry-run"] * count
    assert not (sweep.output_dir / JOURNAL).exists()
    return written["bytes"], written["writes"], final.stat().st_size


def test_a_sweep_writes_its_manifest_in_bytes_linear_in_its_points(tmp_path, monkeypatch, capsys):
    """The manifest is written whole twice (start and end) and each point adds one journal line: the bytes per
    point stay the same from 50 to 400 points (rewritten after every point they grew with the points)."""
    small, small_writes, small_size = dry_run_bytes(tmp_path, monkeypatch, 50)
    large, large_writes, large_size = dry_run_bytes(tmp_path, monkeypatch, 400)
    assert small_writes == large_writes == 2
    assert large <= 4 * large_size and small <= 4 * small_size
    assert large / 400 < 1.2 * small / 50, (small, large)


KILLED_SWEEP = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from nst_lightning.sweep import local
    from nst_lightning.sweep.command import build_sweep, run_sweep
    from nst_lightning.sweep.naming import output_path
    from nst_lightning.sweep.run import _record

    out, config, axis = Path(sys.argv[1]), sys.argv[2], sys.argv[3]

    def run_planned_batch(sweep, points, dry_run=False):
        (point,) = points
        if point is sweep.points[2]:
            os.kill(os.getpid(), signal.SIGKILL)  # dies as a lost machine would: no finally, no atexit
        output_path(sweep, point).write_bytes(b"image")
        return [_record(point, output_path(sweep, point), "done")]

    local.run_planned_batch = run_planned_batch
    run_sweep(build_sweep(config, None, [axis], out), max_batch=1, contact_sheet=False)
""")


def test_a_sweep_killed_outright_resumes_where_it_stopped(tmp_path, monkeypatch, capsys):
    out = tmp_path / "killed"
    axis = weights(4)[0]
    child = subprocess.run([sys.executable, "-c", KILLED_SWEEP, str(out), str(DEFAULT), axis], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == -9, child.stderr
    sweep = build_sweep(DEFAULT, None, [axis], out)
    # the manifest of the start (every point pending) and the journal of the two finished points
    assert [p["status"] for p in json.loads((out / MANIFEST).read_text())["points"]] == ["pending"] * 4
    assert len((out / JOURNAL).read_text().splitlines()) == 2
    before = read_manifest(out, sweep.fixed)
    assert [before[p.name]["status"] for p in sweep.points] == ["done", "done", "pending", "pending"]

    ran = []

    def run_planned_batch(sweep, points, dry_run=False):
        ran.extend(p.name for p in points)
        return done_records(sweep, points)

    monkeypatch.setattr(local, "run_planned_batch", run_planned_batch)
    records = run_sweep(sweep, max_batch=1, contact_sheet=False)
    assert ran == [p.name for p in sweep.points[2:]]  # the two finished points are not run again
    assert [r["status"] for r in records.values()] == ["done"] * 4
    assert [p["status"] for p in json.loads((out / MANIFEST).read_text())["points"]] == ["done"] * 4
    assert not (out / JOURNAL).exists()


def test_journal_lines_of_an_older_sweep_or_cut_short_are_not_applied(tmp_path, capsys):
    sweep = build_sweep(DEFAULT, None, weights(2), tmp_path / "journal")
    writer = manifest_module.ManifestWriter(sweep, {p.name: _record(p, output_path(sweep, p), "pending")
                                                    for p in sweep.points})
    writer.start()
    first, second = sweep.points
    with open(sweep.output_dir / JOURNAL, "a") as f:
        f.write(json.dumps({"journal": "an older sweep", "point": {"name": first.name, "status": "done"}}) + "\n")
        f.write(json.dumps({"journal": writer.token, "point": {"name": second.name, "status": "done"}}) + "\n")
        f.write('{"journal": "' + writer.token + '", "point": {"name": "')  # cut short by a kill
    statuses = {name: r["status"] for name, r in read_manifest(sweep.output_dir).items()}
    assert statuses == {first.name: "pending", second.name: "done"}


def test_a_full_disk_at_the_journal_names_the_file(tmp_path, monkeypatch):
    import builtins
    import errno
    import os

    import pytest

    from nst_lightning.files import WriteError

    sweep = build_sweep(DEFAULT, None, ["model.losses.style.init_args.weight=1,2"], tmp_path / "full")
    writer = manifest_module.ManifestWriter(sweep, {})
    writer.start()
    real_open = builtins.open

    def full(path, *args, **kwargs):
        if str(path).endswith(JOURNAL):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full)
    with pytest.raises(WriteError, match=f"could not write .*{JOURNAL}.*No space left on device"):
        writer.add({"name": sweep.points[0].name, "status": "done"})
