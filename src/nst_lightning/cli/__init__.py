"""The command line: ``nst-lightning fit | sweep | plugins``, its pre-checks and its one-line messages."""

from __future__ import annotations


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``nst-lightning`` command (see :func:`nst_lightning.cli.dispatch.main`)."""
    from nst_lightning.cli.dispatch import main as run

    run(args)
