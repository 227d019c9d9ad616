"""The command line: ``nst-lightning fit --config ...`` through LightningCLI, plus ``nst-lightning plugins``.

``main()`` loads the plugins first, so that LightningCLI's parser sees every
registered class and configs can name them by their short class names.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import yaml

from nst_lightning.callbacks.interrupt import RunInterrupted
from nst_lightning.cli.component_names import check_component_names
from nst_lightning.cli.fit import build_cli
from nst_lightning.cli.messages import (
    describe,
    error,
    exit_code,
    filter_known_warnings,
    filter_lightning_tips,
    one_line,
    show_plugin_warnings_plainly,
)
from nst_lightning.errors import ConfigError, Interrupted
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
                config = yaml.safe_load(f)
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigFileError(f"config {path!r} is not valid YAML: {one_line(str(exc))}") from None
        if not isinstance(config, dict):
            found = "empty" if config is None else f"a YAML {type(config).__name__}"
            raise ConfigFileError(
                f"config {path!r} is {found}; a config must be a YAML mapping of keys such as "
                "'trainer:', 'model:', 'data:' (see configs/default.yaml)"
            )


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted(signum)


@contextmanager
def ctrl_c_raises_interrupted() -> Iterator[None]:
    """During a ``fit``, Ctrl-C raises :class:`~nst_lightning.errors.Interrupted` rather than ``KeyboardInterrupt``
    (which Lightning turns into exit status 1), so that it ends the command with status 130 at any moment; during
    the steps the ``InterruptSaver`` takes over (it finishes the step and saves first)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def main(args: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if args is None else args)
    debug = "--debug" in argv or bool(os.environ.get(DEBUG_ENV))
    argv = [a for a in argv if a != "--debug"]
    registry = None
    filter_known_warnings()
    filter_lightning_tips()
    show_plugin_warnings_plainly()
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
        with ctrl_c_raises_interrupted():
            build_cli(argv)
    except SystemExit:
        raise
    except (KeyboardInterrupt, Interrupted) as exc:
        error("interrupted")
        raise SystemExit(getattr(exc, "exit_code", 130)) from None
    except RunInterrupted as exc:
        print(f"nst-lightning: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except Exception as exc:  # noqa: BLE001 - one line for the user, a traceback on request
        if debug:
            traceback.print_exc()
        error(describe(exc, registry))
        raise SystemExit(exit_code(exc)) from None
