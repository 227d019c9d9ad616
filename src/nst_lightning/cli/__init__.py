"""The command line: ``nst-lightning fit | sweep | plugins``, its pre-checks and its one-line messages."""

from __future__ import annotations

import signal
import sys
import threading

INTERRUPTED = 130  # as a shell reports a process ended by SIGINT
SUBCOMMANDS = {
    "fit": "stylize an image (a LightningCLI: --config FILE, --help for its options)",
    "sweep": "run many settings of fit: a grid or random search, locally or on Ray Tune",
    "score": "the style and content distances of any image",
    "plugins": "the installed plugins and the components each registers",
}
USAGE = "usage: nst-lightning [--version] [--debug] [--verbose] {" + ",".join(SUBCOMMANDS) + "} ..."


def top_level(args: list[str]) -> int | None:
    """``--version``, ``--help`` and a missing subcommand, answered without importing torch; None otherwise."""
    rest = [a for a in args if a not in ("--debug", "--verbose")]
    if rest[:1] in (["--version"], ["-V"]):
        from nst_lightning.version import __version__

        print(f"nst-lightning {__version__}")
        return 0
    if rest[:1] in (["--help"], ["-h"]):
        lines = [USAGE, "", "Neural style transfer (Gatys et al.) with PyTorch Lightning.", "", "subcommands:"]
        lines += [f"  {name:<8} {text}" for name, text in SUBCOMMANDS.items()]
        lines += ["", "options:", "  --version  print the version and exit",
                  "  --debug    show the traceback of an error", "  --verbose  show Lightning's own banner lines",
                  "", "'nst-lightning fit --config default.yaml --help' lists fit's options."]
        print("\n".join(lines))
        return 0
    if not rest or rest[0] not in SUBCOMMANDS:
        import difflib

        given = f"unknown subcommand {rest[0]!r}" if rest else "no subcommand"
        close = difflib.get_close_matches(rest[0], SUBCOMMANDS, n=1) if rest else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(f"nst-lightning: error: {given}{hint}; give one of: {', '.join(SUBCOMMANDS)} (nst-lightning --help)",
              file=sys.stderr)
        return 2
    return None


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``nst-lightning`` command (see :func:`nst_lightning.cli.dispatch.main`).

    Importing the command takes seconds (torch, Lightning); Ctrl-C meanwhile, or at any moment that
    the command itself does not handle, ends it with one line and status 130, not a traceback.
    """
    argv = list(sys.argv[1:] if args is None else args)
    answered = top_level(argv)
    if answered is not None:
        raise SystemExit(answered)  # as argparse: 0 after --help or --version
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
