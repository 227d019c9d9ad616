"""The command line: ``nst-lightning fit | sweep | plugins``, its pre-checks and its one-line messages."""

from __future__ import annotations

import signal
import sys
import threading

INTERRUPTED = 130  # as a shell reports a process ended by SIGINT


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``nst-lightning`` command (see :func:`nst_lightning.cli.dispatch.main`).

    Importing the command takes seconds (torch, Lightning); Ctrl-C meanwhile, or at any moment that
    the command itself does not handle, ends it with one line and status 130, not a traceback.
    """
    seen: list[int] = []

    def remember(signum: int, frame: object) -> None:
        seen.append(signum)
        raise KeyboardInterrupt

    try:
        # Heavy (torch, Lightning): imported here, inside the try, so that Ctrl-C meanwhile is caught. A library
        # that imports an optional module under a bare ``except:`` would swallow the KeyboardInterrupt, so the
        # signal is also remembered and the command ends once the imports are done.
        previous = signal.signal(signal.SIGINT, remember) if threading.current_thread() is threading.main_thread() else None
        try:
            from nst_lightning.cli.dispatch import main as run
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        if seen:
            raise KeyboardInterrupt
        run(args)
    except KeyboardInterrupt:
        print("nst-lightning: error: interrupted", file=sys.stderr)
        raise SystemExit(INTERRUPTED) from None
