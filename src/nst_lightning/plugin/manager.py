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

import difflib
import importlib.metadata
import inspect
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import pluggy

from nst_lightning.plugin import builtin, hookspecs
from nst_lightning.plugin.registry import HOOKS, KINDS, PluginError, Registry

ENTRY_POINT_GROUP = "nst_lightning"


DISABLE_AUTOLOAD_ENV = "NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD"


BLOCK_ENV = "NST_LIGHTNING_BLOCK_PLUGINS"


BUILTIN_PLUGIN = "nst_lightning.builtin"  # the name users see in "nst-lightning plugins"


@dataclass
class PluginInfo:
    """What is known about one plugin: where it comes from and what it registered."""

    name: str
    package: str
    version: str
    components: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None  # why it is broken: "ImportError: ...", "nst_register_losses() raised ..."
    failed_to_import: bool = False  # else its registration hook raised
    would_provide: dict[str, list[str]] = field(default_factory=dict)  # a broken plugin's classes, by kind


@dataclass
class Plugins:
    """The outcome of :func:`load_plugins`."""

    manager: pluggy.PluginManager
    registry: Registry
    info: dict[str, PluginInfo]


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a source tree without install
        return "0.0.0"


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

    A plugin that fails to import, or whose registration hook raises, is reported with a warning that names
    it and its package, and skipped (nothing it registered is kept); the others still load, and the registry
    knows the names a broken plugin would have provided (:meth:`Registry.unavailable`). Duplicate component
    names raise :class:`PluginError` naming both plugins.
    """
    if autoload is None:
        autoload = not _truthy(os.environ.get(DISABLE_AUTOLOAD_ENV))
    blocked = blocked_plugins(block)
    pm = make_manager()
    info: dict[str, PluginInfo] = {}
    pm.register(builtin, name=BUILTIN_PLUGIN)
    info[BUILTIN_PLUGIN] = PluginInfo(BUILTIN_PLUGIN, "nst-lightning", _version("nst-lightning"))

    if autoload:
        for ep, dist in _entry_points():
            if ep.name in blocked or pm.is_blocked(ep.name) or pm.get_plugin(ep.name) is not None:
                continue
            package = dist.metadata["name"]
            plugin_info = PluginInfo(ep.name, package, dist.version)
            info[ep.name] = plugin_info
            try:
                plugin = ep.load()
            except Exception as exc:
                plugin_info.error, plugin_info.failed_to_import = f"{type(exc).__name__}: {exc}", True
                warn_broken(plugin_info, f"failed to import ({plugin_info.error})")
                continue
            pm.register(plugin, name=ep.name)

    for name, plugin in extra:
        if name in blocked:
            continue
        pm.register(plugin, name=name)
        info.setdefault(name, PluginInfo(name, getattr(plugin, "__name__", name), ""))

    check_hook_names(pm)
    check_unmarked_hooks(pm)
    registry = Registry()
    for kind, cls, owner in registrations(pm, info):
        registry.register(kind, cls, owner)
        listed = info[owner].components.setdefault(kind, [])
        if cls.__name__ not in listed:  # registered twice by the same plugin: listed once
            listed.append(cls.__name__)
    for name, plugin_info in info.items():
        if plugin_info.error:
            registry.mark_broken(name, plugin_info.error, plugin_info.would_provide)
    return Plugins(pm, registry, info)


def registrations(pm: pluggy.PluginManager, info: dict[str, PluginInfo]) -> list[tuple[str, type, str]]:
    """(kind, class, plugin) for every class the hooks register, in the hooks' order. A plugin whose hook raises
    is broken: it is reported once (:func:`warn_broken`), unregistered, and nothing it registered is kept; what it
    would have provided (what it registered before raising, and the components its module defines) is kept in
    its ``would_provide``."""
    calls: list[tuple[str, type, str]] = []
    broken: set[str] = set()
    for kind, hook_name in HOOKS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            owner = pm.get_name(impl.plugin) or str(impl.plugin)
            if owner in broken:
                continue
            mine: list[tuple[str, type, str]] = []
            try:
                impl.function(register=lambda cls, _kind=kind, _owner=owner, _mine=mine: _mine.append((_kind, cls, _owner))
                              or cls)
            except Exception as exc:
                broken.add(owner)
                plugin_info = info.setdefault(owner, PluginInfo(owner, "", ""))
                plugin_info.error = f"{hook_name}() raised {type(exc).__name__}: {exc}"
                provided = [(k, c) for k, c, o in calls + mine if o == owner] + defined_components(impl.plugin)
                for k, cls in provided:
                    names = plugin_info.would_provide.setdefault(k, [])
                    if cls.__name__ not in names:
                        names.append(cls.__name__)
                warn_broken(plugin_info, f"is broken: {plugin_info.error}")
                pm.unregister(impl.plugin)
                continue
            calls += mine
    return [(kind, cls, owner) for kind, cls, owner in calls if owner not in broken]


def defined_components(plugin: object) -> list[tuple[str, type]]:
    """(kind, class) of the component classes a plugin module defines itself (what it would register)."""
    if not inspect.ismodule(plugin):
        return []
    return [(kind, value) for value in vars(plugin).values() for kind, base in KINDS.items()
            if inspect.isclass(value) and issubclass(value, base) and value is not base
            and value.__module__ == plugin.__name__]


def warn_broken(plugin: PluginInfo, why: str) -> None:
    """The one warning line for a plugin that is skipped: ``plugin 'name' from package P V <why>; ...``."""
    source = f" from package {plugin.package} {plugin.version}".rstrip() if plugin.package else ""
    warnings.warn(f"plugin {plugin.name!r}{source} {why}; it is skipped and its components are unavailable",
                  PluginImportWarning, stacklevel=3)


def check_hook_names(pm: pluggy.PluginManager) -> None:
    """Every ``@hookimpl`` implements a known hook: a misspelled one is an error, not silently ignored.

    This is pluggy's ``check_pending()``, with a message that names the plugin and the hook it meant.
    """
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or str(exc.plugin)
        known = sorted(HOOKS.values())
        unknown = sorted(
            hook for hook, caller in vars(pm.hook).items() if hook not in known and caller.get_hookimpls()
        )
        for hook in unknown:
            close = difflib.get_close_matches(hook, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            owners = [pm.get_name(impl.plugin) for impl in getattr(pm.hook, hook).get_hookimpls()]
            if name in owners:
                raise PluginError(
                    f"plugin {name!r} implements {hook!r}, which is not an nst-lightning hook; {hint}"
                    f"known hooks: {', '.join(known)}"
                ) from None
        raise PluginError(f"plugin {name!r}: {exc}") from None


def check_unmarked_hooks(pm: pluggy.PluginManager) -> None:
    """A plugin module that defines a hook's function without ``@hookimpl`` is an error naming it: pluggy would
    silently ignore the function, and the plugin's components would be missing without a word."""
    for hook in HOOKS.values():
        implementers = {id(impl.plugin) for impl in getattr(pm.hook, hook).get_hookimpls()}
        for name, plugin in pm.list_name_plugin():
            if callable(getattr(plugin, "__dict__", {}).get(hook)) and id(plugin) not in implementers:
                raise PluginError(
                    f"plugin {name!r} defines {hook}() without @hookimpl, so it would be ignored; decorate it with "
                    "nst_lightning.plugin.hookimpl"
                )


class PluginImportWarning(UserWarning):
    """An installed plugin could not be imported, or its registration hook raised: it is skipped."""
