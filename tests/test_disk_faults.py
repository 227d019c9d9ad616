"""Faults of the disk, faked where the bytes are written (no tmpfs without root): a full disk at the final image,
at the checkpoint, at the lock. The error is one line naming the file, the image is not lost (it goes where
the line says), and no lock or temporary file is left behind. Real tiny runs."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import pytest
from lightning.pytorch.plugins.io import TorchCheckpointIO
from PIL import Image

from nst_lightning.claims import OutputClaim
from nst_lightning.cli import main
from nst_lightning.files import RunFiles

from .conftest import fit_args
from .helpers import read_png

FULL = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def spare(tmp_path, monkeypatch) -> Path:
    """The system's temporary folder, for this test: where a rescued image goes."""
    folder = tmp_path / "spare"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def disk_full_under(folder: Path, monkeypatch) -> None:
    """PNG writes of files in ``folder`` fail as on a full disk (after the temporary file was opened)."""
    save = Image.Image.save

    def full_save(self, fp, *args, **kwargs):
        if Path(getattr(fp, "name", fp)).parent == folder:
            raise FULL
        return save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", full_save)


def error_line(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("nst-lightning:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith((".tmp", ".lock")))


def test_a_full_disk_at_the_final_image_names_it_and_saves_the_image_elsewhere(tmp_path, spare, capsys, monkeypatch):
    disk_full_under(tmp_path, monkeypatch)
    line = error_line(capsys, fit_args(tmp_path, "--trainer.max_steps", "2"))
    rescued = spare / f"nst-lightning-out-{os.getpid()}.png"
    assert line == (f"nst-lightning: error: could not write {str(tmp_path / 'out.png')!r}: No space left on device; "
                    f"the run's image is saved to {str(rescued)!r}")
    assert read_png(rescued).shape == (1, 3, 24, 32) and Image.open(rescued).text["nst-lightning:step"] == "2"
    assert not (tmp_path / "out.png").exists() and leftovers(tmp_path) == []
    monkeypatch.undo()
    main(fit_args(tmp_path))  # nothing left that refuses the next run (no lock, no half-written output)
    assert (tmp_path / "out.png").is_file()


def test_a_full_disk_at_the_checkpoint_leaves_no_partial_file_and_the_image_is_written(tmp_path, spare, capsys,
                                                                                        monkeypatch):
    def full(self, checkpoint, path, storage_options=None):
        Path(path).write_bytes(b"half a checkpoint")
        raise FULL

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", full)
    line = error_line(capsys, fit_args(tmp_path, "--trainer.enable_checkpointing", "true", "--trainer.max_steps", "2"))
    ckpt = tmp_path / "out.run" / "last.ckpt"
    assert line.startswith(f"nst-lightning: error: could not write {str(ckpt)!r}: No space left on device; "
                           "the run's image is saved to ")
    saved = Path(line.split("the run's image is saved to ")[1].strip("'"))
    assert saved in (tmp_path / "out.png", spare / f"nst-lightning-out-{os.getpid()}.png")
    assert read_png(saved).shape == (1, 3, 24, 32)
    assert not ckpt.exists() and leftovers(tmp_path) == []  # no partial last.ckpt, no temporary file, no lock


def test_a_full_disk_at_the_snapshot_keeps_the_image(tmp_path, spare, capsys, monkeypatch):
    disk_full_under(tmp_path / "out.run", monkeypatch)
    line = error_line(capsys, fit_args(tmp_path, "--trainer.max_steps", "3", "--snapshot_every", "2"))
    assert line == (f"nst-lightning: error: could not write {str(tmp_path / 'out.run' / 'step00002.png')!r}: No space "
                    f"left on device; the run's image is saved to {str(tmp_path / 'out.png')!r}")
    assert Image.open(tmp_path / "out.png").text["nst-lightning:step"] == "2"
    assert leftovers(tmp_path) == []


def test_a_lock_that_cannot_be_written_is_not_left_behind(tmp_path, monkeypatch):
    out = tmp_path / "out.png"
    write = os.write

    def full(fd, data):
        if bytes(data).startswith(f"{os.getpid()}\n".encode()):  # the lock's record: process id, host
            raise FULL
        return write(fd, data)

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match=f"could not create the lock file {str(RunFiles(out).lock)!r} of --output "
                                      f"{str(out)!r}: No space left on device"):
        OutputClaim(out, RunFiles(out).lock).acquire()
    monkeypatch.undo()
    assert not RunFiles(out).lock.exists()
    with OutputClaim(out, RunFiles(out).lock):  # free for the next run
        assert RunFiles(out).lock.exists()


def test_a_full_disk_at_the_log_keeps_the_image_and_says_where(tmp_path, spare, capsys, monkeypatch):
    from lightning.pytorch.loggers import TensorBoardLogger

    def full(self, metrics, step=None):  # the losses of a step (not the hyperparameters, logged before the run)
        if "loss/total" in metrics:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(Path(self.log_dir) / "events.out.tfevents.x"))

    monkeypatch.setattr(TensorBoardLogger, "log_metrics", full)
    with pytest.raises(SystemExit) as exit_info:
        main(fit_args(tmp_path, "--trainer.logger", "true", "--trainer.max_steps", "2"))
    assert exit_info.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-2] == f"nst-lightning: the run's image is saved to {tmp_path / 'out.png'}"
    assert lines[-1].startswith("nst-lightning: error: OSError: [Errno 28] No space left on device: ")
    assert str(tmp_path / "out.run" / "events.out.tfevents.x") in lines[-1]
    assert read_png(tmp_path / "out.png").shape == (1, 3, 24, 32) and leftovers(tmp_path) == []
