"""Checks of the command line that run before LightningCLI parses it, so that their errors name the file or key."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

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


CONFIGS = Path(__file__).resolve().parents[1] / "configs"  # the configs shipped with the package
INPUT_KEYS = (("data", "content"), ("data", "style"), ("data", "masks"), ("model", "init"))


def bundled_config(name: str) -> Path | None:
    """The shipped config called ``name`` (``default``, ``large.yaml``, ``sweeps/style_weight_x_style``), or None."""
    candidate = CONFIGS / name
    for path in (candidate, candidate.with_name(candidate.name + ".yaml")):
        if path.is_file() and CONFIGS in path.resolve().parents:
            return path
    return None


def _absolute_inputs(config: dict, folder: Path) -> bool:
    """Make the config's relative input paths absolute against ``folder`` where the file is there; True if any."""
    changed = False
    for section, key in INPUT_KEYS:
        block = config.get(section)
        if not isinstance(block, dict) or key not in block:
            continue
        value = block[key]
        values = value if isinstance(value, list) else [value]
        resolved = []
        for item in values:
            if isinstance(item, str) and item and not item.startswith("sample:") and not os.path.isabs(item) \
                    and (folder / item).is_file():
                item, changed = str(folder / item), True
            resolved.append(item)
        block[key] = resolved if isinstance(value, list) else resolved[0]
    return changed


def resolve_configs(argv: list[str], options: tuple[str, ...] = ("config",), rewrite_inputs: bool = True) -> list[str]:
    """``argv`` with each ``--config`` that names a shipped config (``--config default``) given as its path, and
    each config file whose input paths are relative to its own folder given as YAML with those paths absolute
    (so a config works from any working directory; ``sample:NAME`` inputs work anywhere already). A sweep keeps
    its config as a file (``rewrite_inputs=False``): each of its points resolves the inputs when it is built."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg.startswith("--") and arg[2:].split("=", 1)[0] in options:
            inline = "=" in arg
            option, value = arg.split("=", 1) if inline else (arg, out[i + 1] if i + 1 < len(out) else None)
            if value is None:
                continue
            if not os.path.exists(value) and bundled_config(value) is not None:
                value = str(bundled_config(value))
            if rewrite_inputs and option == "--config" and os.path.isfile(value):
                try:
                    config = yaml.safe_load(Path(value).read_text(encoding="utf-8"))
                except (OSError, yaml.YAMLError, UnicodeDecodeError):
                    config = None  # check_config_files reports it
                if isinstance(config, dict) and _absolute_inputs(config, Path(value).resolve().parent):
                    value = yaml.safe_dump(config, sort_keys=False)
            if inline:
                out[i] = f"{option}={value}"
            else:
                out[i + 1] = value
    return out


def with_default_config(argv: list[str]) -> list[str]:
    """``fit`` without any ``--config`` runs the shipped default (the measured default: its stopping rule, seed 0,
    ``outputs/default.png``), as ``--config default`` would; ``--print_config`` shows it."""
    if argv[:1] != ["fit"] or any(a == "--config" or a.startswith("--config=") for a in argv):
        return argv
    return ["fit", "--config", str(CONFIGS / "default.yaml"), *argv[1:]]
