"""Checks the component names a run's configs and options give, before LightningCLI parses them.

jsonargparse answers an unknown short class name with "Expected a dot import path string". This
module finds the ``class_path`` of the backbone, each loss term and the optimizer in the ``--config``
files and on the command line, and names an unknown one with the known names and a did-you-mean.
Anything it cannot read is left to jsonargparse.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from pathlib import Path

import torch
import yaml

from nst_lightning.cli.argv_checks import option_values
from nst_lightning.config_tree import class_path, get_key, loss_terms
from nst_lightning.errors import ConfigError
from nst_lightning.plugin.registry import KINDS, Registry

# model.<key> -> component kind
MODEL_KEYS = {"backbone": "backbone", "optimizer": "optimizer"}


PLURAL = {"backbone": "backbones", "loss": "losses", "optimizer": "optimizers"}


class UnknownComponentError(ConfigError):
    """A config names a component that no plugin registers."""


def _subclass_names(base: type) -> set[str]:
    """Names of every imported subclass of ``base``: jsonargparse resolves short names among these."""
    names, todo = set(), [base]
    while todo:
        for sub in todo.pop().__subclasses__():
            names.add(sub.__name__)
            todo.append(sub)
    return names


def _from_model(model: object) -> Iterator[tuple[str, str, str]]:
    """(key, kind, class_path) of the components in a ``model`` section."""
    tree = {"model": model}
    for key, kind in MODEL_KEYS.items():
        path = class_path(get_key(tree, f"model.{key}"))
        if path:
            yield f"model.{key}", kind, path
    for name, term in loss_terms(tree).items():
        path = class_path(term)
        if path:
            yield f"model.losses.{name}", "loss", path


def _read_yaml(text_or_path: str) -> object:
    try:
        path = Path(text_or_path)
        text = path.read_text() if path.is_file() else text_or_path
        return yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError):
        return None


def named_components(argv: list[str]) -> Iterator[tuple[str, str, str]]:
    """(config key, kind, class_path) for every component the configs and options name."""
    for option, value in option_values(argv):
        if option == "config":
            config = _read_yaml(value)
            if isinstance(config, dict):
                yield from _from_model(config.get("model"))
        elif option == "model":
            yield from _from_model(_read_yaml(value))
        elif option.startswith("model."):
            key = option.removesuffix(".class_path")
            parts = key.split(".")
            if len(parts) == 2 and parts[1] in MODEL_KEYS:
                kind = MODEL_KEYS[parts[1]]
            elif len(parts) == 3 and parts[1] == "losses":
                kind = "loss"
            else:
                continue
            if key == option and value.lstrip().startswith("{"):
                path = class_path(_read_yaml(value))
            else:
                path = value
            if path:
                yield key, kind, path


def _import_failure(path: str) -> str | None:
    """Why ``path``'s module fails to import when it exists but raises (its own error, for the user to fix);
    None when it imports, or when there is no such module (then the name is just unknown)."""
    module = path.rpartition(".")[0]
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(f"{exc.name}.")):
            return None
        return f"importing {module!r} failed: {type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - any error of the user's module is reported, named
        return f"importing {module!r} failed: {type(exc).__name__}: {exc}"
    return None


def _importable(path: str) -> bool:
    module, _, name = path.rpartition(".")
    try:
        return hasattr(importlib.import_module(module), name)
    except Exception:
        return False


def capitals(name: str) -> str:
    """The capital letters of a class name (``TotalVariationLoss``: ``TVL``)."""
    return "".join(c for c in name if c.isupper())


def check_component_names(argv: list[str], registry: Registry) -> None:
    """Raise :class:`UnknownComponentError` for the first component name that names nothing known."""
    for key, kind, path in named_components(argv):
        registered = registry.names(kind)
        short = path.rpartition(".")[2]
        broken = registry.unavailable(kind, short)
        if short in registry.missing[kind] and short not in registered:
            raise UnknownComponentError(f"{key}: {broken}")
        if "." in path:
            if _importable(path):
                continue
            failure = _import_failure(path)
            if failure:
                raise UnknownComponentError(f"{key}: {path!r}: {failure}")
        elif path in registered or path in _subclass_names(KINDS[kind]):
            continue
        if kind == "optimizer":
            choices = sorted({*registered, *(n for n in dir(torch.optim) if n in _subclass_names(torch.optim.Optimizer))})
        else:
            choices = registered
        # An abbreviation by capitals (TVLoss: TotalVariationLoss), when one name has them, before the closest spelling.
        abbreviated = [c for c in choices if capitals(c) == capitals(short) and c != short] if short != short.upper() else []
        close = abbreviated if len(abbreviated) == 1 else difflib.get_close_matches(short, choices, n=1, cutoff=0.4)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UnknownComponentError(
            f"{key}: unknown {kind} {path!r}; {hint}known {PLURAL[kind]}: {', '.join(choices)} "
            "(or a full class path; 'nst-lightning plugins' lists what each plugin registers)"
            + (f"; {broken}" if broken else "")
        )
