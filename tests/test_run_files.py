"""What a run writes, and where: the image at --output, every other file in one folder named after it
(``<stem>.run/``), each checked before the run; a resumed run continues its own log there; the final line
names the image, the log folder and the checkpoint. Real tiny runs."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader  # the test extra's tensorboard

from nst_lightning.cli import main

from .conftest import fit_args
from .helpers import expect_one_line_error, read_png

LOGGED = ("--trainer.logger", "true", "--trainer.enable_checkpointing", "true")
CTRL_C_AT_STEP_2 = "--trainer.callbacks+=tests.robustness_helpers.SignalAtStep"


def logged_steps(folder: Path) -> list[int]:
    """The steps at which ``loss/total`` is in the folder's TensorBoard event files (every file, read with
    TensorBoard's own reader)."""
    steps = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            steps += [event.step for value in event.summary.value if value.tag == "loss/total"]
    return sorted(steps)


def final_line(capsys) -> str:
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_one_folder_named_after_the_run_holds_its_files_and_the_final_line_names_them(tmp_path, capsys):
    main(fit_args(tmp_path, *LOGGED, "--trainer.max_steps", "4", "--trainer.log_every_n_steps", "2",
                  "--snapshot_every", "2"))
    line = final_line(capsys)
    run = tmp_path / "out.run"
    assert line.startswith(f"Stylized image written to {tmp_path / 'out.png'} (")
    assert line.endswith(f"; logs: {run}; checkpoint: {run / 'last.ckpt'}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "out.run"]  # no lock, no lightning_logs
    names = sorted(p.name for p in run.iterdir())
    assert [n for n in names if not n.startswith("events.out.tfevents.")] == [
        "config.yaml", "hparams.yaml", "last.ckpt", "step00002.png", "step00004.png"]
    assert logged_steps(run) == [1, 2, 4]
    ckpt = torch.load(run / "last.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["global_step"] == 4
    assert not [key for key in ckpt["state_dict"] if key.startswith("backbone.")]  # no frozen weights
    assert (run / "last.ckpt").stat().st_size < 3 * 2**20  # L-BFGS history, 200 images of 32x24: 1.8 MB


def test_a_resumed_run_continues_its_own_log_and_removes_the_interrupted_files(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(fit_args(tmp_path, *LOGGED, "--trainer.max_steps", "100", "--trainer.log_every_n_steps", "1",
                      CTRL_C_AT_STEP_2))
    assert exit_info.value.code == 128 + signal.SIGINT
    run = tmp_path / "out.run"
    ckpt, image = run / "interrupted.ckpt", run / "interrupted.png"
    err = capsys.readouterr().err
    assert f"image saved to {image}, checkpoint to {ckpt}; to resume, run the same command with --ckpt_path {ckpt}" in err
    assert logged_steps(run)[0] == 1

    main(fit_args(tmp_path, *LOGGED, "--trainer.max_steps", "5", "--trainer.log_every_n_steps", "1",
                  "--ckpt_path", str(ckpt)))
    assert final_line(capsys).endswith(f"; logs: {run}; checkpoint: {run / 'last.ckpt'}")
    steps = logged_steps(run)
    assert steps[0] == 1 and steps[-3:] == [3, 4, 5]  # one log: the resumed steps follow the first run's
    assert len(list(run.glob("events.out.tfevents.*"))) == 2  # TensorBoard reads the folder's files as one run
    assert not ckpt.exists() and not image.exists()  # consumed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "out.run"]


def test_the_same_command_again_is_refused_naming_a_free_numbered_name(tmp_path, capsys):
    """Re-running a command: refused before the run (after the inputs are checked), with the two ways on:
    --overwrite true, or the first free numbered name, which then runs."""
    main(fit_args(tmp_path, *LOGGED))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    (tmp_path / "out-2.run").mkdir()  # taken: the next number is offered
    line = expect_one_line_error(capsys, fit_args(tmp_path, *LOGGED), tmp_path=tmp_path, code=1)
    assert line == (f"nst-lightning: error: --output {str(tmp_path / 'out.png')!r} exists; pass --overwrite true to "
                    f"replace it (and its run folder {str(tmp_path / 'out.run')!r}), or give a new name, e.g. "
                    f"--output {str(tmp_path / 'out-3.png')!r}")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    main(fit_args(tmp_path, *LOGGED, output="out-3.png"))
    assert (tmp_path / "out-3.png").is_file() and (tmp_path / "out-3.run" / "last.ckpt").is_file()


@pytest.mark.parametrize("name", ["interrupted.ckpt", "interrupted.png", "last.ckpt", "last_good.png", "metrics.csv"])
def test_a_file_in_the_run_folder_is_never_replaced_without_overwrite(tmp_path, capsys, name):
    """The user's file (or an earlier run's) in the run's folder is found before the run and named; an
    interrupted run's checkpoint gets the hint to resume it."""
    run = tmp_path / "out.run"
    run.mkdir()
    (run / name).write_bytes(b"the user's")
    line = expect_one_line_error(capsys, fit_args(tmp_path, *LOGGED), str(run / name), "--overwrite true",
                                 tmp_path=tmp_path, code=1)
    assert ("--ckpt_path" in line) == (name == "interrupted.ckpt")
    assert [p.name for p in run.iterdir()] == [name] and (run / name).read_bytes() == b"the user's"
    assert not (tmp_path / "out.png").exists()


def test_overwrite_starts_a_fresh_log_and_replaces_the_checkpoint(tmp_path, capsys):
    main(fit_args(tmp_path, *LOGGED, "--trainer.max_steps", "2", "--trainer.log_every_n_steps", "1"))
    main(fit_args(tmp_path, *LOGGED, "--trainer.max_steps", "3", "--trainer.log_every_n_steps", "1",
                  "--overwrite", "true"))
    run = tmp_path / "out.run"
    assert logged_steps(run) == [1, 2, 3]  # the earlier run's steps 1 and 2 are not mixed in
    assert torch.load(run / "last.ckpt", weights_only=True)["global_step"] == 3
    assert read_png(tmp_path / "out.png").shape == (1, 3, 24, 32)


def test_without_a_logger_the_checkpoint_still_goes_to_the_run_folder(tmp_path, capsys):
    main(fit_args(tmp_path, "--trainer.enable_checkpointing", "true", "--trainer.max_steps", "2"))
    run = tmp_path / "out.run"
    assert final_line(capsys).endswith(f"; checkpoint: {run / 'last.ckpt'}")
    assert sorted(p.name for p in run.iterdir()) == ["last.ckpt"]
    assert not (tmp_path / "checkpoints").exists()
