"""Nothing of the user's is replaced: the output is claimed for the run, a second run with the same
``--output`` is refused at start, the final write never replaces a file it did not claim, snapshots and
sweep points never replace files of an earlier run or of the user without ``--overwrite``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nst_lightning.claims import OutputClaim, OutputClaimedError
from nst_lightning.cli import main
from nst_lightning.cli.fit import build_cli
from nst_lightning.files import RunFiles, atomic_write

from .conftest import CONTENT, DEFAULT, STYLE


def fit_args(output: Path, steps: int, *extra: str) -> list[str]:
    return [
        "fit", "--config", str(DEFAULT),
        "--data.content", str(CONTENT), "--data.style", str(STYLE), "--data.size", "32",
        "--model.backbone.init_args.weights", "none", "--model.optimizer", "ImageAdam",
        "--trainer.max_steps", str(steps), "--trainer.default_root_dir", str(output.parent),
        "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
        "--trainer.enable_progress_bar", "false", "--output", str(output), *extra,
    ]


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD="1")
    return subprocess.Popen([sys.executable, "-m", "nst_lightning.cli", *args], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def lock_path(output: Path) -> Path:
    return RunFiles(output).lock


def claim(output: Path) -> OutputClaim:
    return OutputClaim(output, lock_path(output))


def wait_for(path: Path, child: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if child.poll() is not None:
            pytest.fail(f"the run ended early:\n{child.stderr.read()}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"{path} did not appear in time")
        time.sleep(0.05)


# -- the claim itself -------------------------------------------------------------------------------


def test_a_claim_is_exclusive_and_released(tmp_path):
    out = tmp_path / "out.png"
    first = claim(out)
    first.acquire()
    assert lock_path(out) == tmp_path / ".out.png.lock" and lock_path(out).exists()
    with pytest.raises(OutputClaimedError, match=f"being written by process {os.getpid()}"):
        claim(out).acquire()
    first.release()
    first.release()  # twice is harmless
    assert not lock_path(out).exists()
    with claim(out):
        assert lock_path(out).exists()
    assert not lock_path(out).exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    out = tmp_path / "out.png"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_path(out).write_text(f"{dead.pid}\n{socket.gethostname()}\n")  # filelock's record: process id, host
    with claim(out):
        assert lock_path(out).read_text().split()[0] == str(os.getpid())
    assert not lock_path(out).exists()
    lock_path(out).write_text(f"{os.getpid()}\nanother-host\n")  # another machine's: left alone
    with pytest.raises(OutputClaimedError, match=f"being written by process {os.getpid()} on another-host"):
        claim(out).acquire()
    assert lock_path(out).read_text() == f"{os.getpid()}\nanother-host\n"


def test_a_write_without_replace_never_replaces(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("the user's")
    with pytest.raises(FileExistsError), atomic_write(path, "w", replace=False) as f:
        f.write("ours")
    assert path.read_text() == "the user's"
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]  # no temporary file left
    with atomic_write(path, "w", replace=True) as f:
        f.write("ours")
    assert path.read_text() == "ours"


# -- two real runs ----------------------------------------------------------------------------------


def test_a_second_run_with_the_same_output_is_refused_at_start(tmp_path):
    out = tmp_path / "out.png"
    first = start(fit_args(out, 100_000), tmp_path)
    try:
        wait_for(lock_path(out), first)
        second = start(fit_args(out, 1), tmp_path)
        _, err = second.communicate(timeout=240)
        assert second.returncode == 1, err
        lines = err.strip().splitlines()
        assert lines[-1].startswith("nst-lightning: error: --output") and "is being written by process" in lines[-1]
        assert f"process {first.pid} " in lines[-1] and "Traceback" not in err
        assert "Stylized image written" not in err
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 130, err
    assert not lock_path(out).exists()  # released on the way out
    assert not out.exists()  # interrupted: no final image
    assert (tmp_path / "out.run" / "interrupted.ckpt").is_file()
    main(fit_args(out, 1, "--overwrite", "true"))  # free again (the interrupted run's files may be replaced)
    assert out.is_file() and not lock_path(out).exists()


def test_the_final_write_never_replaces_a_file_that_appeared_during_the_run(tmp_path):
    out = tmp_path / "out.png"
    run = start(fit_args(out, 40, "--snapshot_every", "1"), tmp_path)
    try:
        wait_for(tmp_path / "out.run" / "step00001.png", run)
        out.write_bytes(b"someone else's image")
        _, err = run.communicate(timeout=240)
    finally:
        run.kill()
    assert run.returncode == 1, err
    kept = tmp_path / "out.run" / f"kept_pid{run.pid}.png"
    assert f"{str(out)!r} appeared during the run and was not replaced" in err and str(kept) in err
    assert out.read_bytes() == b"someone else's image"
    assert kept.stat().st_size > 100 and not lock_path(out).exists()


def test_building_a_run_claims_nothing_until_it_runs(tmp_path):
    out = tmp_path / "out.png"
    cli = build_cli(fit_args(out, 1)[1:], run=False)
    assert not lock_path(out).exists()
    other = claim(out)
    other.acquire()  # another run takes the output meanwhile: this one is refused when it starts
    with pytest.raises(OutputClaimedError, match="is being written by process"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert not out.exists() and lock_path(out).exists()
    other.release()


def test_a_failing_run_releases_its_claim(tmp_path, capsys):
    out = tmp_path / "out.png"
    with pytest.raises(SystemExit):
        main(fit_args(out, 1, "--data.style", str(tmp_path / "missing.jpg")))
    assert "missing.jpg" in capsys.readouterr().err
    assert not lock_path(out).exists()


# -- snapshots --------------------------------------------------------------------------------------


def test_snapshots_of_an_earlier_run_are_not_replaced(tmp_path, capsys):
    out = tmp_path / "out.png"
    (tmp_path / "out.run").mkdir()
    old = {step: tmp_path / "out.run" / f"step{step:05d}.png" for step in (5, 10)}
    for path in old.values():
        path.write_bytes(b"an earlier run's snapshot")
    (tmp_path / "out.run" / "step00003.png").write_bytes(b"not a multiple of 5: never written")
    with pytest.raises(SystemExit) as exit_info:
        main(fit_args(out, 10, "--snapshot_every", "5"))
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert err.strip().splitlines()[-1] == (
        f"nst-lightning: error: --snapshot_every 5 would replace 2 snapshot(s) of an earlier run, the first "
        f"{str(old[5])!r}; pass --overwrite true to replace them, or choose another --output")
    assert all(p.read_bytes() == b"an earlier run's snapshot" for p in old.values())
    assert not out.exists() and not lock_path(out).exists()

    main(fit_args(out, 4, "--snapshot_every", "5"))  # stops before step 5: nothing to replace
    assert out.exists() and old[5].read_bytes() == b"an earlier run's snapshot"
    main(fit_args(out, 10, "--snapshot_every", "5", "--overwrite", "true"))
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in old.values())


# -- sweeps -----------------------------------------------------------------------------------------


def test_a_sweep_never_replaces_a_file_its_manifest_does_not_list(tmp_path, capsys):
    out = tmp_path / "sweep"
    out.mkdir()
    theirs = out / "style.weight=10.png"
    theirs.write_bytes(b"the user's file")
    args = ["sweep", "--config", str(DEFAULT), "--output_dir", str(out), "--set", "model.losses.style.init_args.weight=10,30",
            "--set", "data.size=32", "--set", "trainer.max_steps=1", "--set", "model.backbone.init_args.weights=none",
            "--set", "model.optimizer=ImageAdam"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert (f"the sweep would replace 1 file(s) in --output_dir that are not this sweep's (not in its manifest), "
            f"the first {str(theirs)!r}") in err
    assert "--overwrite" in err and theirs.read_bytes() == b"the user's file"

    main([*args, "--overwrite"])
    assert theirs.read_bytes()[:4] == b"\x89PNG"
    manifest = json.loads((out / "manifest.json").read_text())
    assert [p["status"] for p in manifest["points"]] == ["done", "done"]
    # Its own files (listed in the manifest) it may redo without --overwrite: a changed point runs again.
    (out / "manifest.json").write_text(json.dumps({**manifest, "points": [
        {**p, "status": "failed"} for p in manifest["points"]]}))
    main(args)
    assert "2 to run" in capsys.readouterr().out


def sweep_args(out: Path) -> list[str]:
    return ["sweep", "--config", str(DEFAULT), "--output_dir", str(out), "--set", "model.losses.style.init_args.weight=10,30",
            "--set", "data.size=32", "--set", "trainer.max_steps=1", "--set", "model.backbone.init_args.weights=none",
            "--set", "model.optimizer=ImageAdam"]


@pytest.mark.parametrize("name", ["manifest.json", "contact_sheet.png", "style.weight=30.run/interrupted.ckpt"])
def test_a_sweep_never_replaces_the_users_manifest_contact_sheet_or_a_points_run_files(tmp_path, capsys, name):
    out = tmp_path / "sweep"
    (out / name).parent.mkdir(parents=True)
    (out / name).write_text('{"mine": true}')
    with pytest.raises(SystemExit) as exit_info:
        main(sweep_args(out))
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 1 and f"the first {str(out / name)!r}; pass --overwrite" in line
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [name]  # nothing written
    assert (out / name).read_text() == '{"mine": true}'
    main([*sweep_args(out), "--overwrite"])
    assert json.loads((out / "manifest.json").read_text())["points"][0]["status"] == "done"


def test_a_second_sweep_into_the_same_folder_is_refused_and_sigterm_leaves_no_temporary_file(tmp_path, capsys,
                                                                                              monkeypatch):
    out = tmp_path / "sweep"
    other = OutputClaim(out / "manifest.json", out / ".manifest.json.lock")
    other.acquire()  # a sweep running there now
    with pytest.raises(SystemExit) as exit_info:
        main(sweep_args(out))
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 1
    assert line.startswith(f"nst-lightning: error: --output_dir {str(out / 'manifest.json')!r} is being written by "
                           f"process {os.getpid()} ")
    assert sorted(p.name for p in out.iterdir()) == [".manifest.json.lock"]  # nothing else written
    other.release()

    import nst_lightning.sweep.manifest as manifest

    dump = json.dump

    def terminated(data, f, **kwargs):  # SIGTERM while the manifest's temporary file is half written
        f.write("{")
        os.kill(os.getpid(), signal.SIGTERM)
        dump(data, f, **kwargs)

    monkeypatch.setattr(manifest.json, "dump", terminated)
    with pytest.raises(SystemExit) as exit_info:
        main(sweep_args(out))
    assert exit_info.value.code == 128 + signal.SIGTERM
    monkeypatch.undo()
    left = sorted(p.name for p in out.iterdir())
    assert not [n for n in left if n.endswith((".tmp", ".lock"))], left
