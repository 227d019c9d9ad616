"""Checks of the command line that run before LightningCLI parses it, so that their errors name the file or key."""

from __future__ import annotations

import os
from collections.abc import Iterator

import yaml

from nst_lightning.cli.messages import one_line
from nst_lightning.errors import ConfigError


def option_values(argv: list[str]) -> Iterator[tuple[str, str]]:
    """(option, value) pairs of ``--key value`` and ``--key=value`` (option without the dashes)."""
    for i, arg in enumerate(argv):
        if not arg.startswith("--"):
            continue
        if "=" in arg:
            key, value = arg.split("=", 1)
            yield key[2:], value
        elif i + 1 < len(argv):
            yield arg[2:], argv[i + 1]


class ConfigFileError(ConfigError):
    """A ``--config`` file that is not safe, valid YAML."""


def check_config_files(argv: list[str]) -> None:
    """Each ``--config`` file is YAML that ``yaml.safe_load`` accepts; the error names the file.

    jsonargparse safe-loads configs too (a ``!!python/object`` tag is refused), but its message does
    not say which file; this check runs first so that it does.
    """
    for option, path in option_values(argv):
        if option != "config":
            continue
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
