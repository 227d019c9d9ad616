"""The command line: ``nst-lightning fit --config ...`` through LightningCLI, plus ``nst-lightning plugins``.

``main()`` loads the plugins first, so that LightningCLI's parser sees every
registered class and configs can name them by their short class names.
"""

from __future__ import annotations

import os
import sys
import traceback

import yaml

from nst_lightning.callbacks.interrupt import RunInterrupted
from nst_lightning.cli.component_names import check_component_names
from nst_lightning.cli.fit import build_cli
from nst_lightning.cli.score import score_main
from nst_lightning.cli.messages import (
    describe,
    error,
    exit_code,
    filter_known_warnings,
    one_line,
)
from nst_lightning.errors import ConfigError
from nst_lightning.plugin.listing import format_plugins
from nst_lightning.plugin.manager import load_plugins
from nst_lightning.sweep.command import sweep_main

DEBUG_ENV = "NST_LIGHTNING_DEBUG"


class ConfigFileError(ConfigError):
    """A ``--config`` file that is not safe, valid YAML."""


def check_config_files(argv: list[str]) -> None:
    """Each ``--config`` file is YAML that ``yaml.safe_load`` accepts; the error names the file.

    jsonargparse safe-loads configs too (a ``!!python/object`` tag is refused), but its message does
    not say which file; this check runs first so that it does.
    """
    paths = [b for a, b in zip(argv, argv[1:]) if a == "--config"]
    paths += [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    for path in paths:
        if not os.path.isfile(path):
            continue  # jsonargparse reports it (or it is inline YAML)
        try:
            with open(path, encoding="utf-8") as f:
                yaml.safe_load(f)
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigFileError(f"config {path!r} is not valid YAML: {one_line(str(exc))}") from None


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
        if argv[:1] == ["score"]:
            score_main(argv[1:])
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
    except Exception as exc:  # noqa: BLE001 - one line for the user, a traceback on request
        if debug:
            traceback.print_exc()
        error(describe(exc, registry))
        raise SystemExit(exit_code(exc)) from None
