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


MAX_CONFIG_BYTES = 1 << 20  # a config is a page of settings; 1 MiB is far beyond any real one
MAX_CONFIG_VALUES = 100_000  # values after expanding YAML aliases (a "billion laughs" file expands to 10⁹)


def expanded_size(node: yaml.Node, seen: dict[int, int] | None = None) -> int:
    """How many values ``node`` stands for once its aliases are expanded (shared nodes counted each time they
    are used, computed once each)."""
    seen = {} if seen is None else seen
    if id(node) in seen:
        return seen[id(node)]
    seen[id(node)] = 1  # a cycle counts once
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(expanded_size(child, seen) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(expanded_size(k, seen) + expanded_size(v, seen) for k, v in node.value)
    else:
        size = 1
    seen[id(node)] = size
    return size


def check_config_files(argv: list[str]) -> None:
    """Each ``--config`` (and ``--sweep``) file is YAML that ``yaml.safe_load`` accepts, at most
    :data:`MAX_CONFIG_BYTES` long and :data:`MAX_CONFIG_VALUES` values once its aliases are expanded; the
    error names the file.

    jsonargparse safe-loads configs too (a ``!!python/object`` tag is refused), but its message does
    not say which file, and a file of aliases that expands to billions of values would take minutes and
    gigabytes before failing; this check runs first, on the YAML's nodes, without expanding anything.
    """
    for option, path in option_values(argv):
        if option not in ("config", "sweep"):
            continue
        if not os.path.isfile(path):
            continue  # jsonargparse reports it (or it is inline YAML)
        size = os.path.getsize(path)
        if size > MAX_CONFIG_BYTES:
            raise ConfigFileError(f"--{option} {path!r} is {size / 2**20:.1f} MiB; a config is at most "
                                  f"{MAX_CONFIG_BYTES >> 20} MiB of YAML")
        try:
            with open(path, encoding="utf-8") as f:
                node = yaml.compose(f, Loader=yaml.SafeLoader)
            if node is not None and expanded_size(node) > MAX_CONFIG_VALUES:
                raise ConfigFileError(f"--{option} {path!r} expands to more than {MAX_CONFIG_VALUES} values through "
                                      "YAML aliases; write the values out, or use fewer aliases")
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
INPUT_KEYS = (("data", "content"), ("data", "style"), ("data", "masks"), ("model", "init"), ("data", "video"))


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
                    and ((folder / item).is_file() or key == "video" and (folder / item).is_dir()):  # a clip: frames too
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
                check_config_files(["--config", value])  # bounded and safe before it is loaded here
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
    """``fit`` without any ``--config`` runs the shipped default (the measured default: its schedule, seed 0,
    ``outputs/default.png``), as ``--config default`` would; ``--print_config`` shows it."""
    if argv[:1] != ["fit"] or any(a == "--config" or a.startswith("--config=") for a in argv):
        return argv
    return ["fit", "--config", str(CONFIGS / "default.yaml"), *argv[1:]]


BARE_FLAGS = ("--overwrite",)  # booleans that may be given alone, as in `sweep`: `--overwrite` is `--overwrite true`


def bare_flags_as_true(argv: list[str]) -> list[str]:
    """``fit``'s boolean options given alone (``--overwrite``) as ``--overwrite true``: one flag style for ``fit``,
    ``sweep`` and ``score``."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        out.append(arg)
        following = argv[i + 1] if i + 1 < len(argv) else None
        if arg in BARE_FLAGS and (following is None or following.startswith("--")):
            out.append("true")
    return out
