"""Exclusive claims on output files: two runs never write the same file.

A run that will write ``out.png`` holds a lock file beside it (``.out.png.lock``, named by
:class:`~nst_lightning.files.RunFiles`) from the start of the run to every way out of it (the end, an error,
Ctrl-C). The lock is filelock's :class:`~filelock.SoftFileLock`: created with ``O_EXCL`` (atomic on every
local file system), holding the run's process id, host and the process's start time, removed on release (and
at exit). A second run that finds the lock is refused at start, naming the first run's process. A lock left by
a process that no longer exists (``kill -9``, a power cut) is stale: on the same host the next run sees that
the process is gone (or that its id now belongs to another process) and takes the claim over; a lock whose
write failed (a full disk) is removed by filelock at once, so it never blocks a later run.
"""

from __future__ import annotations

import os
from pathlib import Path

from filelock import SoftFileLock, Timeout

from nst_lightning.errors import NstLightningError


class OutputClaimedError(NstLightningError):
    """Another run is writing the same output file."""


class LockFileError(NstLightningError, OSError):
    """The lock file cannot be created (a full disk, a read-only folder)."""


class OutputClaim:
    """An exclusive claim on ``path`` for this run, held as the lock file ``lock`` (a context manager, or
    ``acquire``/``release``).

    Args:
        path: the file the run will write.
        lock: its lock file (:attr:`nst_lightning.files.RunFiles.lock`).
        option: how the user named ``path``, for the error message (``--output``).
    """

    def __init__(self, path: str | os.PathLike, lock: str | os.PathLike, option: str = "--output") -> None:
        self.path = Path(path)
        self.lock = Path(lock)
        self.option = option
        self._lock = SoftFileLock(self.lock, timeout=0, thread_local=False)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def _holder(self) -> str:
        """``process 123 on host`` as the lock records it (filelock writes the process id, then the host)."""
        try:
            pid, host, *_ = self.lock.read_text(encoding="utf-8").splitlines()
            return f"process {int(pid)} on {host}"
        except (OSError, ValueError):
            return "another run"

    def _refuse(self) -> None:
        raise OutputClaimedError(
            f"{self.option} {str(self.path)!r} is being written by {self._holder()} (lock file {str(self.lock)!r}); "
            f"wait for it, or choose another {self.option} (remove the lock file only if no run is using it)"
        )

    def check(self) -> None:
        """Raise :class:`OutputClaimedError` now if another live run holds the claim (a stale lock is taken over
        and given back: nothing is held afterwards)."""
        if not self.held and self.lock.exists():
            self.acquire()
            self.release()

    def acquire(self) -> None:
        """Take the claim, or raise :class:`OutputClaimedError` naming the run that holds it."""
        if self.held:
            return
        self.lock.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            self._refuse()
        except OSError as exc:  # filelock has removed a marker it could not finish
            raise LockFileError(f"could not create the lock file {str(self.lock)!r} of {self.option} "
                                f"{str(self.path)!r}: {exc.strerror or exc}") from exc

    def release(self) -> None:
        """Give the claim up (its lock file is removed); safe to call more than once."""
        if self.held:
            self._lock.release(force=True)

    def __enter__(self) -> OutputClaim:  # noqa: PYI034 - a final class in practice; Self needs Python 3.11
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
