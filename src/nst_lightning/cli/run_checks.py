"""Checks of a built run before it starts: a step count that does something, a checkpoint that is one, and an
output that is none of the run's inputs.

The memory pre-check is :mod:`nst_lightning.cli.memory_check`; the output's checks are the image writer's.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

from nst_lightning.errors import ConfigError

# torch.save's legacy (pre-zip) format opens with pickle protocol 2 and this magic number.
LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"

# Values of --ckpt_path that Lightning resolves itself.
LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")


class CheckpointFileError(ConfigError):
    """``--ckpt_path`` is not a checkpoint file."""


def check_max_steps(max_steps: int) -> None:
    """0 steps would end at once with no image, and under -1 is no number of steps: refuse them."""
    if max_steps == 0:
        raise ConfigError("0 steps would write no image; give at least 1 (or -1 to run until --trainer.max_epochs)",
                          key="trainer.max_steps")
    if max_steps is not None and max_steps < -1:
        raise ConfigError(f"must be a number of steps >= 1 (or -1 to run until --trainer.max_epochs), not {max_steps}",
                          key="trainer.max_steps")


def _is_torch_file(path: Path) -> bool:
    """Whether ``path`` is a file ``torch.save`` wrote: a zip archive with a ``data.pkl``, or the legacy format."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                return any(name.endswith("/data.pkl") or name == "data.pkl" for name in archive.namelist())
        except (zipfile.BadZipFile, OSError):
            return False
    with open(path, "rb") as f:
        return f.read(len(LEGACY_MAGIC)) == LEGACY_MAGIC


def check_checkpoint(ckpt_path: str | os.PathLike | None) -> None:
    """``--ckpt_path`` names a readable file that ``torch.save`` wrote; the error names the file."""
    if ckpt_path is None or str(ckpt_path) in LIGHTNING_CKPT_NAMES or "://" in str(ckpt_path):
        return
    path = Path(ckpt_path)
    what = f"--ckpt_path {str(path)!r}"
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise CheckpointFileError(f"{what} is {kind}, not a checkpoint")
        if not _is_torch_file(path):
            raise CheckpointFileError(
                f"{what} is not a checkpoint: it is not a file written by torch.save or Lightning "
                f"({path.stat().st_size} bytes); give the .ckpt file a run saved (e.g. <output stem>.run/interrupted.ckpt)"
            )
    except FileNotFoundError:
        raise CheckpointFileError(f"{what} does not exist") from None
    except PermissionError:
        raise CheckpointFileError(f"{what} cannot be read: permission denied") from None


def check_output_is_no_input(output: Path, inputs: list[str]) -> None:
    """``--output`` (or the file a link there points to) is never one of the run's input files, even with
    ``--overwrite``: that replaces an earlier output, never the image the run reads."""
    for path in inputs:
        same = Path(path).resolve() == output.resolve() or (
            output.exists() and Path(path).exists() and os.path.samefile(output, path))
        if same:
            raise ConfigError(f"{str(output)!r} is also an input of this run ({str(path)!r}); --overwrite replaces "
                              "an earlier output, never an input: choose another --output", key="--output")
