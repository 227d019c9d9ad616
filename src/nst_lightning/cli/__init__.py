"""The command line: ``nst-lightning fit | sweep | plugins``, its pre-checks and its one-line messages."""

from __future__ import annotations

import sys

INTERRUPTED = 130  # as a shell reports a process ended by SIGINT


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``nst-lightning`` command (see :func:`nst_lightning.cli.dispatch.main`).

    Importing the command takes seconds (torch, Lightning); Ctrl-C meanwhile, or at any moment that
    the command itself does not handle, ends it with one line and status 130, not a traceback.
    """
    try:
        # Heavy (torch, Lightning): imported here, inside the try, so that Ctrl-C meanwhile is caught.
        from nst_lightning.cli.dispatch import main as run

        run(args)
    except KeyboardInterrupt:
        print("nst-lightning: error: interrupted", file=sys.stderr)
        raise SystemExit(INTERRUPTED) from None
