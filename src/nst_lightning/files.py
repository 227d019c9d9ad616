"""File helpers: atomic writes and the names of files derived from ``--output``.

A reader never sees a half-written file, and a failure leaves neither a partial file nor the
temporary one behind. Names derived from an output path never leave its directory.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from nst_lightning.errors import ConfigValueError, NstLightningError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(tmp: str, path: Path, replace: bool) -> None:
    """Give the finished ``tmp`` the name ``path``: a rename, or with ``replace=False`` a hard link that
    fails with :class:`FileExistsError` if ``path`` exists (checking and creating are one atomic step)."""
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: an exclusive placeholder, then the rename
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        os.replace(tmp, path)


@contextmanager
def atomic_path(path: str | os.PathLike, replace: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that takes a file name; on success it becomes ``path``.

    With ``replace=False`` an existing ``path`` (even one that appeared while the file was written) is
    never replaced: :class:`FileExistsError` is raised instead. On any failure (an exception, Ctrl-C)
    the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a finished file gets the usual mode
        _publish(tmp, path, replace)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", replace: bool = True) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success it becomes ``path`` (see :func:`atomic_path`)."""
    with atomic_path(path, replace) as tmp, open(tmp, mode) as f:
        yield f


def beside(output: str | Path, suffix: str) -> Path:
    """``<output stem><suffix>`` in ``output``'s directory: the only way names are built from ``--output``.

    The suffix is ours (``_step00010.png``, ``_interrupted.ckpt``); it may not name another directory,
    so a derived file can never land outside the output's directory.
    """
    output = Path(output)
    if "/" in suffix or "\\" in suffix or ".." in suffix:
        raise ValueError(f"file name suffix {suffix!r} may not contain a path")
    path = output.with_name(f"{output.stem}{suffix}")
    assert path.parent == output.parent
    return path


class OutputNotWritableError(NstLightningError):
    """The output's directory cannot be created or written to."""


def check_writable_directory(directory: Path, option: str = "--output") -> None:
    """Fail now, not after the run, if ``directory`` cannot be created or written to.

    Nothing is created: the nearest existing ancestor must be a directory in which a file can be made.
    """
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputNotWritableError(f"{option} directory {str(directory)!r} cannot be created: {str(existing)!r} is a file")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise OutputNotWritableError(
            f"{option} directory {str(directory)!r} is not writable ({exc.strerror or exc})"
        ) from None


# What a run may write beside ``--output`` (``<stem><suffix>``), with the widest step number of a snapshot, and
# the temporary name ``atomic_path`` writes each of them under first (``.<name>.XXXXXXXX.tmp``).
DERIVED_SUFFIXES = ("_interrupted.ckpt", "_interrupted.png", "_last_good.png", "_step999999999.png", "_pid9999999.png")
TEMPORARY_EXTRA = len(".") + len(".XXXXXXXX.tmp")


def longest_derived_name(output: Path) -> str:
    """The longest file name a run writing ``output`` may create in its folder (a lock, a temporary file, a
    snapshot, the interrupt's and the NaN guard's files)."""
    names = [output.name, *(f"{output.stem}{suffix}" for suffix in DERIVED_SUFFIXES)]
    candidates = [*names, f".{output.name}.lock", *(f".{name}.XXXXXXXX.tmp" for name in names)]
    return max(candidates, key=lambda name: len(name.encode()))


def check_name_lengths(output: Path, option: str = "--output") -> None:
    """Every name derived from ``output`` fits the filesystem's limit on a file name, checked before the run: a
    name that is too long would otherwise fail at the first snapshot or at Ctrl-C, naming an internal file."""
    try:
        limit = os.pathconf(output.parent if output.parent.is_dir() else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    longest = longest_derived_name(output)
    if len(longest.encode()) > limit:
        spare = len(longest.encode()) - len(output.name.encode())
        raise ConfigValueError(
            f"{str(output)!r}: the run writes files beside it whose names add up to {spare} bytes to its "
            f"{len(output.name.encode())} (the longest: {longest[:40]}…, {len(longest.encode())} bytes), and this "
            f"filesystem allows {limit}; give a name of at most {limit - spare} bytes",
            key=option,
        )
