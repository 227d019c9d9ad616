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
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import pluggy

from nst_lightning.plugin import builtin, hookspecs
from nst_lightning.plugin.registry import HOOKS, PluginError, Registry

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
    error: str | None = None


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

    A plugin that fails to import is reported with a warning that names it and
    its package; the others still load. Duplicate component names raise
    :class:`PluginError` naming both plugins.
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

    check_hook_names(pm)
    check_unmarked_hooks(pm)
    registry = Registry()
    for kind, hook_name in HOOKS.items():
        hook = getattr(pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            owner = pm.get_name(impl.plugin) or str(impl.plugin)

            def register(cls: type, _kind: str = kind, _owner: str = owner) -> type:
                registry.register(_kind, cls, _owner)
                listed = info[_owner].components.setdefault(_kind, [])
                if cls.__name__ not in listed:  # registered twice by the same plugin: listed once
                    listed.append(cls.__name__)
                return cls

            impl.function(register=register)
    return Plugins(pm, registry, info)


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
    """An installed plugin could not be imported."""
