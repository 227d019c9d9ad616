"""What a run writes, and how: the plan of every file a run may write (:class:`RunFiles`), and atomic writes.

A reader never sees a half-written file, and a failure leaves neither a partial file nor the temporary one
behind; a write that fails names the file it was writing (:class:`WriteError`). Every name a run writes is
made here, from ``--output``, and never leaves the output's directory or the run's folder beside it.

The claim on a run's files is filelock's (:mod:`nst_lightning.claims`). The atomic write stays this module's
own: a temporary file from :func:`tempfile.mkstemp`, then :func:`os.replace` (or, not to replace, a hard link
that fails if the name exists) is a few lines of the standard library, and the library that packaged it
(``atomicwrites``) is no longer maintained by its author.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from nst_lightning.errors import ConfigValueError, NstLightningError


class WriteError(NstLightningError, OSError):
    """A file could not be written (a full disk, a file system gone read-only): names the file and the reason.

    ``rescued`` is where the run's image went instead, when it was saved elsewhere; the message says so.
    """

    def __init__(self, path: str | os.PathLike, reason: OSError | str) -> None:
        text = (reason.strerror or str(reason)) if isinstance(reason, OSError) else reason
        super().__init__(f"could not write {str(path)!r}: {text}")
        self.path = Path(path)
        self.reason = text
        self.errno = reason.errno if isinstance(reason, OSError) else None
        self.rescued: Path | None = None
        self.rescue_failed: str | None = None

    def __str__(self) -> str:
        message = f"could not write {str(self.path)!r}: {self.reason}"
        if self.rescued is not None:
            message += f"; the run's image is saved to {str(self.rescued)!r}"
        elif self.rescue_failed:
            message += f"; the run's image could not be saved either ({self.rescue_failed})"
        return message


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
    the temporary file is removed and ``path`` is untouched; an ``OSError`` (a full disk) becomes a
    :class:`WriteError` that names ``path``.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a finished file gets the usual mode
        _publish(tmp, path, replace)
    except (FileExistsError, WriteError):
        raise
    except OSError as exc:
        raise WriteError(path, exc) from exc
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", replace: bool = True) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success it becomes ``path`` (see :func:`atomic_path`)."""
    with atomic_path(path, replace) as tmp, open(tmp, mode) as f:
        yield f


class OutputExistsError(NstLightningError):
    """A file the run would write exists and ``--overwrite`` was not given."""


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


# The names a run writes in its folder; snapshots are ``step<N>.png`` (at least 5 digits), and every file is
# written first under ``.<name>.XXXXXXXX.tmp`` (:func:`atomic_path`).
RUN_FOLDER_SUFFIX = ".run"
LOG_FILES = ("hparams.yaml", "config.yaml", "metrics.csv")
LOG_PATTERN = re.compile(r"events\.out\.tfevents\..*")
SNAPSHOT_PATTERN = re.compile(r"step(\d{5,})\.png")
TEMPORARY_EXTRA = len(".") + len(".XXXXXXXX.tmp")


def lock_of(path: str | os.PathLike) -> Path:
    """The lock file of ``path`` (:class:`~nst_lightning.claims.OutputClaim`): ``.<name>.lock`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


class RunFiles:
    """Every file one run may write, named from ``--output``: the one place that names them, and the check,
    before the run, that none of them is a file the run may not replace.

    For ``--output outputs/default.png``::

        outputs/default.png             the image
        outputs/.default.png.lock       the run's claim on the output (removed on every way out)
        outputs/default.run/            the run's folder:
            events.out.tfevents.*, metrics.csv, hparams.yaml, config.yaml   the log (Lightning's default logger)
            last.ckpt                   the checkpoint at the end of the run
            step00010.png               snapshots (--snapshot_every)
            interrupted.png, interrupted.ckpt   what Ctrl-C or SIGTERM saved
            last_good.png               the last good image before a NaN loss
            kept_pid<N>.png             the image, when a file took --output's name during the run
        <temp dir>/nst-lightning-default-<pid>.png   the image, when its own place cannot be written

    A run resumed from a checkpoint in its own folder is the same run going on: its log continues there.
    """

    def __init__(self, output: str | os.PathLike, option: str = "--output") -> None:
        self.output = Path(output)
        self.option = option
        self.folder = self.output.with_name(f"{self.output.stem}{RUN_FOLDER_SUFFIX}")
        self.lock = lock_of(self.output)
        self.checkpoint = self.folder / "last.ckpt"
        self.interrupted_image = self.folder / "interrupted.png"
        self.interrupted_checkpoint = self.folder / "interrupted.ckpt"
        self.last_good = self.folder / "last_good.png"

    def snapshot(self, step: int) -> Path:
        return self.folder / f"step{step:05d}.png"

    def kept_image(self) -> Path:
        return self.folder / f"kept_pid{os.getpid()}.png"

    def fallback_image(self) -> Path:
        return Path(tempfile.gettempdir()) / f"nst-lightning-{self.output.stem}-{os.getpid()}.png"

    def resumes(self, ckpt_path: str | os.PathLike | None) -> bool:
        """Whether ``--ckpt_path`` is a checkpoint in this run's folder: the same run going on."""
        if not ckpt_path:
            return False
        return Path(ckpt_path).resolve().parent == self.folder.resolve()

    def log_files(self) -> list[Path]:
        """The log files in the run's folder (an earlier run's, or this run's own before a resume)."""
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.name in LOG_FILES or LOG_PATTERN.fullmatch(p.name))

    def existing_snapshots(self, every: int, max_steps: int = -1, after: int = 0) -> list[Path]:
        """The snapshots in the run's folder that a run snapshotting every ``every`` steps from step ``after`` to
        ``max_steps`` (-1: no limit) would write, in step order."""
        if every <= 0 or not self.folder.is_dir():
            return []
        found = []
        for entry in os.scandir(self.folder):
            match = SNAPSHOT_PATTERN.fullmatch(entry.name)
            if match:
                step = int(match[1])
                written = step > after and step % every == 0 and (max_steps < 0 or step <= max_steps)
                if written and entry.name == self.snapshot(step).name:
                    found.append((step, Path(entry.path)))
        return [path for _, path in sorted(found)]

    def in_the_way(self, ckpt_path: str | os.PathLike | None = None, logging: bool = True) -> list[Path]:
        """The files this run would write that exist now (snapshots apart: they depend on the resumed step).

        A resume of this run (``ckpt_path`` in its folder) goes on with its own log and replaces the checkpoint
        it consumed; the image itself is :meth:`check`'s.
        """
        resumed = Path(ckpt_path).resolve() if self.resumes(ckpt_path) else None
        paths = [self.checkpoint, self.interrupted_image, self.interrupted_checkpoint, self.last_good]
        found = [p for p in paths if p.exists() and p.resolve() != resumed]
        if resumed is not None and self.interrupted_checkpoint.resolve() == resumed:
            found = [p for p in found if p != self.interrupted_image]  # the resume consumes both
        if logging and resumed is None:
            found += self.log_files()
        return found

    def check(self, overwrite: bool, ckpt_path: str | os.PathLike | None = None, logging: bool = True) -> None:
        """Refuse the run now if it would replace a file without ``--overwrite``: the image, or a file in its folder."""
        if self.output.suffix.lower() != ".png":
            raise ValueError(f"{self.option} {str(self.output)!r} must end in .png")
        if self.output.is_dir():
            raise OutputExistsError(f"{self.option} {str(self.output)!r} is a directory")
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputExistsError(f"{self.option} {str(self.output)!r}: its run folder {str(self.folder)!r} is a file")
        check_name_lengths(self.output, self.option)
        check_writable_directory(self.output.parent, self.option)
        if overwrite:
            return
        if self.output.exists():
            raise OutputExistsError(
                f"{self.option} {str(self.output)!r} exists; pass --overwrite true to replace it (and its run folder "
                f"{str(self.folder)!r}), or give a new name, e.g. {self.option} {str(self.free_name())!r}"
            )
        found = self.in_the_way(ckpt_path, logging)
        if found:
            hint = ""
            if self.interrupted_checkpoint in found:
                hint = f"; to go on with the interrupted run, add --ckpt_path {str(self.interrupted_checkpoint)!r}"
            raise OutputExistsError(
                f"{self.option} {str(self.output)!r}: its run folder holds an earlier run's files, the first "
                f"{str(found[0])!r}{hint}; pass --overwrite true to replace them, or choose another {self.option}"
            )

    def clear_earlier_log(self, ckpt_path: str | os.PathLike | None) -> None:
        """With ``--overwrite``, a new run (not a resume of this one) starts its log afresh: an earlier run's log
        files in the folder are removed, so that the two runs' curves are not mixed."""
        if not self.resumes(ckpt_path):
            for path in self.log_files():
                path.unlink(missing_ok=True)

    def remove_consumed(self, ckpt_path: str | os.PathLike | None) -> None:
        """After a finished resume from this run's ``interrupted.ckpt``: remove it and ``interrupted.png``."""
        if ckpt_path and Path(ckpt_path).resolve() == self.interrupted_checkpoint.resolve():
            self.interrupted_checkpoint.unlink(missing_ok=True)
            self.interrupted_image.unlink(missing_ok=True)

    def spelled(self, path: str | os.PathLike) -> Path:
        """``path`` as the user spelled ``--output`` (relative or not), when it is the run's folder or in it."""
        path = Path(path)
        for ours in (self.folder, self.checkpoint):
            if path.resolve() == ours.resolve():
                return ours
        return path

    def free_name(self) -> Path:
        """The first numbered name, ``<stem>-2.png``, ``<stem>-3.png``..., free for a new run (image and folder)."""
        n = 2
        while True:
            candidate = self.output.with_name(f"{self.output.stem}-{n}{self.output.suffix}")
            if not candidate.exists() and not RunFiles(candidate).folder.exists():
                return candidate
            n += 1

    def longest_name(self) -> str:
        """The longest file name the run creates in the output's directory (the image, its lock, its temporary
        file, the run's folder); the names inside the folder are short and fixed."""
        candidates = [self.output.name, self.lock.name, self.folder.name, f".{self.output.name}.XXXXXXXX.tmp"]
        return max(candidates, key=lambda name: len(name.encode()))


def check_name_lengths(output: Path, option: str = "--output") -> None:
    """Every name derived from ``output`` fits the filesystem's limit on a file name, checked before the run: a
    name that is too long would otherwise fail at the final write, naming a temporary file."""
    try:
        limit = os.pathconf(output.parent if output.parent.is_dir() else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    longest = RunFiles(output).longest_name()
    if len(longest.encode()) > limit:
        spare = len(longest.encode()) - len(output.name.encode())
        raise ConfigValueError(
            f"{str(output)!r}: the run writes files beside it whose names add up to {spare} bytes to its "
            f"{len(output.name.encode())} (the longest: {longest[:40]}…, {len(longest.encode())} bytes), and this "
            f"filesystem allows {limit}; give a name of at most {limit - spare} bytes",
            key=option,
        )
