"""The command line: ``nst-lightning fit --config ...`` through LightningCLI, plus ``nst-lightning plugins``.

``main()`` loads the plugins first, so that LightningCLI's parser sees every
registered class and configs can name them by their short class names.
"""

from __future__ import annotations

import os
import sys
import traceback

from nst_lightning.callbacks.interrupt import RunInterrupted
from nst_lightning.cli.checks import check_config_files
from nst_lightning.cli.component_names import check_component_names
from nst_lightning.cli.fit import build_cli
from nst_lightning.cli.messages import (
    describe,
    error,
    exit_code,
    filter_known_warnings,
)
from nst_lightning.plugin.listing import format_plugins
from nst_lightning.plugin.manager import load_plugins
from nst_lightning.sweep.command import sweep_main

DEBUG_ENV = "NST_LIGHTNING_DEBUG"


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``nst-lightning`` command."""
    argv = list(sys.argv[1:] if args is None else args)
    debug = "--debug" in argv or bool(os.environ.get(DEBUG_ENV))
    argv = [a for a in argv if a != "--debug"]
    registry = None
    filter_known_warnings()
    try:
        if argv[:1] == ["plugins"]:
            print(format_plugins(load_plugins()))
            return
        if argv[:1] == ["sweep"]:
            check_config_files(argv)
            load_plugins()
            sweep_main(argv[1:], build_cli)
            return
        check_config_files(argv)
        registry = load_plugins().registry
        check_component_names(argv, registry)
        build_cli(argv)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        error("interrupted")
        raise SystemExit(130) from None
    except RunInterrupted as exc:
        print(f"nst-lightning: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except Exception as exc:
        if debug:
            traceback.print_exc()
        error(describe(exc, registry))
        raise SystemExit(exit_code(exc)) from None
