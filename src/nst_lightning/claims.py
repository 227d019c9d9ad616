"""Exclusive claims on output files: two runs never write the same file.

A run that will write ``out.png`` first creates ``.out.png.lock`` beside it with ``O_CREAT | O_EXCL``
(atomic on every local file system), holding the run's process id and host name. A second run that
finds the lock is refused at start; the first releases the lock on every way out of the run (the end,
an error, Ctrl-C). A lock left by a process that no longer exists (``kill -9``, a power cut) is stale:
on the same host the next run notices the process is gone and takes the claim over.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from nst_lightning.errors import NstLightningError

# The claims this process holds, so that a lock left by this same process id (a claim never
# released, or a reused id) is recognised as stale rather than as another run's.
_HELD: set[Path] = set()


class OutputClaimedError(NstLightningError):
    """Another run is writing the same output file."""


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of ``path``: ``.<name>.lock`` in the same directory."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


def _owner(lock: Path) -> tuple[int, str] | None:
    """(process id, host) recorded in ``lock``, or None when it cannot be read."""
    try:
        pid, _, host = lock.read_text(encoding="utf-8").strip().partition(" ")
        return int(pid), host
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def _is_stale(lock: Path) -> bool:
    owner = _owner(lock)
    if owner is None:
        return False  # being written this instant, or not ours to judge
    pid, host = owner
    if host != socket.gethostname():
        return False  # another machine's run: its process cannot be checked from here
    if pid == os.getpid():
        return lock not in _HELD
    return not _alive(pid)


class OutputClaim:
    """An exclusive claim on ``path`` for this run (a context manager, or ``acquire``/``release``).

    Args:
        path: the file the run will write.
        option: how the user named it, for the error message (``--output``).
    """

    def __init__(self, path: str | os.PathLike, option: str = "--output") -> None:
        self.path = Path(path)
        self.lock = lock_path(self.path)
        self.option = option
        self.held = False

    def _refuse(self) -> None:
        owner = _owner(self.lock)
        who = f"process {owner[0]} on {owner[1]}" if owner else "another run"
        raise OutputClaimedError(
            f"{self.option} {str(self.path)!r} is being written by {who} (lock file {str(self.lock)!r}); "
            "wait for it, or choose another --output (remove the lock file only if no run is using it)"
        )

    def check(self) -> None:
        """Raise :class:`OutputClaimedError` now if another live run holds the claim (takes nothing)."""
        if not self.held and self.lock.exists() and not _is_stale(self.lock):
            self._refuse()

    def acquire(self) -> None:
        """Create the lock file, or raise :class:`OutputClaimedError` naming the run that holds it."""
        if self.held:
            return
        self.lock.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):  # a second try after removing a stale lock
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if _is_stale(self.lock):
                    self.lock.unlink(missing_ok=True)
                    continue
                self._refuse()
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(f"{os.getpid()} {socket.gethostname()}\n")
            self.held = True
            _HELD.add(self.lock)
            return
        raise OutputClaimedError(f"{self.option} {str(self.path)!r}: could not take over the stale lock {str(self.lock)!r}")

    def release(self) -> None:
        """Remove the lock file if this claim holds it; safe to call more than once."""
        if not self.held:
            return
        self.held = False
        _HELD.discard(self.lock)
        if _owner(self.lock) == (os.getpid(), socket.gethostname()):
            self.lock.unlink(missing_ok=True)

    def __enter__(self) -> OutputClaim:  # noqa: PYI034 - a final class in practice; Self needs Python 3.11
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
