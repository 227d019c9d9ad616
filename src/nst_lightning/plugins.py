"""Plugin discovery and the component registry.

``load_plugins()`` builds one :class:`pluggy.PluginManager`, registers the
built-in components and every installed plugin of the ``nst_lightning``
entry-point group, then calls the registration hooks. Each registered class
is checked so that jsonargparse can later find it by its short class name.

Environment variables:

``NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD``
    Any non-empty value other than ``0`` skips entry-point discovery, as
    ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` does for pytest.
``NST_LIGHTNING_BLOCK_PLUGINS``
    Comma-separated entry-point names that are not loaded.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import os
import warnings
from dataclasses import dataclass, field
from typing import Iterable

import pluggy
import torch

from . import hookspecs
from .backbones import Backbone
from .losses import LossTerm

ENTRY_POINT_GROUP = "nst_lightning"
DISABLE_AUTOLOAD_ENV = "NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD"
BLOCK_ENV = "NST_LIGHTNING_BLOCK_PLUGINS"
BUILTIN_PLUGIN = "nst_lightning.builtins"

KINDS: dict[str, type] = {
    "backbone": Backbone,
    "loss": LossTerm,
    "optimizer": torch.optim.Optimizer,
}
HOOKS = {
    "backbone": "nst_register_backbones",
    "loss": "nst_register_losses",
    "optimizer": "nst_register_optimizers",
}


class PluginError(Exception):
    """A plugin or a component it registers is unusable."""


@dataclass
class PluginInfo:
    """What is known about one plugin: where it comes from and what it registered."""

    name: str
    package: str
    version: str
    components: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Registry:
    """Registered component classes by kind and short name, with the plugin that registered each."""

    classes: dict[str, dict[str, type]] = field(default_factory=lambda: {k: {} for k in KINDS})
    owners: dict[str, dict[str, str]] = field(default_factory=lambda: {k: {} for k in KINDS})

    def register(self, kind: str, cls: type, owner: str) -> type:
        base = KINDS[kind]
        what = f"{kind} {getattr(cls, '__qualname__', cls)!r} from plugin {owner!r}"
        if not (inspect.isclass(cls) and issubclass(cls, base)):
            raise PluginError(f"{what} is not a subclass of {base.__module__}.{base.__qualname__}")
        if inspect.isabstract(cls):
            raise PluginError(f"{what} is abstract; register a concrete class")
        if "._" in f"{cls.__module__}." or cls.__module__ == "__main__":
            raise PluginError(
                f"{what} lives in module {cls.__module__!r}; move it to a public, importable module "
                "so that configs can name it"
            )
        name = cls.__name__
        known = self.classes[kind].get(name)
        if known is not None and known is not cls:
            raise PluginError(
                f"{kind} name {name!r} is registered twice: by plugin {self.owners[kind][name]!r} "
                f"({known.__module__}.{known.__qualname__}) and by plugin {owner!r} "
                f"({cls.__module__}.{cls.__qualname__})"
            )
        self.classes[kind][name] = cls
        self.owners[kind][name] = owner
        return cls

    def names(self, kind: str) -> list[str]:
        return sorted(self.classes[kind])


@dataclass
class Plugins:
    """The outcome of :func:`load_plugins`."""

    manager: pluggy.PluginManager
    registry: Registry
    info: dict[str, PluginInfo]


def _truthy(value: str | None) -> bool:
    return bool(value) and value.strip().lower() not in {"0", "false", "no", ""}


def blocked_plugins(extra: Iterable[str] = ()) -> set[str]:
    names = {n.strip() for n in os.environ.get(BLOCK_ENV, "").split(",") if n.strip()}
    return names | set(extra)


def _entry_points() -> Iterable[tuple[importlib.metadata.EntryPoint, importlib.metadata.Distribution]]:
    seen: set[tuple[str, str]] = set()
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or (ep.name, ep.value) in seen:
                continue
            seen.add((ep.name, ep.value))
            yield ep, dist


def make_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def load_plugins(
    *,
    autoload: bool | None = None,
    block: Iterable[str] = (),
    extra: Iterable[tuple[str, object]] = (),
) -> Plugins:
    """Register built-ins, installed plugins and ``extra`` (name, plugin) pairs, then fill the registry.

    A plugin that fails to import is reported with a warning that names it and
    its package; the others still load. Duplicate component names raise
    :class:`PluginError` naming both plugins.
    """
    from . import builtins

    if autoload is None:
        autoload = not _truthy(os.environ.get(DISABLE_AUTOLOAD_ENV))
    blocked = blocked_plugins(block)
    pm = make_manager()
    info: dict[str, PluginInfo] = {}
    from . import __version__

    pm.register(builtins, name=BUILTIN_PLUGIN)
    info[BUILTIN_PLUGIN] = PluginInfo(BUILTIN_PLUGIN, "nst-lightning", __version__)

    if autoload:
        for ep, dist in _entry_points():
            if ep.name in blocked or pm.is_blocked(ep.name) or pm.get_plugin(ep.name) is not None:
                continue
            package = dist.metadata["name"]
            plugin_info = PluginInfo(ep.name, package, dist.version)
            info[ep.name] = plugin_info
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import failure is reported, not raised
                plugin_info.error = f"{type(exc).__name__}: {exc}"
                warnings.warn(
                    f"plugin {ep.name!r} from package {package} {dist.version} failed to import "
                    f"({plugin_info.error}); its components are unavailable",
                    PluginImportWarning,
                    stacklevel=2,
                )
                continue
            pm.register(plugin, name=ep.name)

    for name, plugin in extra:
        if name in blocked:
            continue
        pm.register(plugin, name=name)
        info.setdefault(name, PluginInfo(name, getattr(plugin, "__name__", name), ""))

    registry = Registry()
    for kind, hook_name in HOOKS.items():
        hook = getattr(pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            owner = pm.get_name(impl.plugin) or str(impl.plugin)

            def register(cls: type, _kind: str = kind, _owner: str = owner) -> type:
                registry.register(_kind, cls, _owner)
                info[_owner].components.setdefault(_kind, []).append(cls.__name__)
                return cls

            impl.function(register=register)
    return Plugins(pm, registry, info)


class PluginImportWarning(UserWarning):
    """An installed plugin could not be imported."""
