"""The component registry: classes by kind and short name, with the plugin that registered each."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch

from nst_lightning.errors import NstLightningError
from nst_lightning.model.backbones.base import Backbone
from nst_lightning.model.losses.base import LossTerm
from nst_lightning.video.flow import OpticalFlow

KINDS: dict[str, type] = {
    "backbone": Backbone,
    "loss": LossTerm,
    "optimizer": torch.optim.Optimizer,
    "flow": OpticalFlow,
}


HOOKS = {
    "backbone": "nst_register_backbones",
    "loss": "nst_register_losses",
    "optimizer": "nst_register_optimizers",
    "flow": "nst_register_flows",
}


class PluginError(NstLightningError):
    """A plugin or a component it registers is unusable."""


@dataclass
class Registry:
    """Registered component classes by kind and short name, with the plugin that registered each."""

    classes: dict[str, dict[str, type]] = field(default_factory=lambda: {k: {} for k in KINDS})
    owners: dict[str, dict[str, str]] = field(default_factory=lambda: {k: {} for k in KINDS})
    # names a broken plugin would have registered: kind -> name -> (plugin, why it is broken)
    missing: dict[str, dict[str, tuple[str, str]]] = field(default_factory=lambda: {k: {} for k in KINDS})
    broken: dict[str, str] = field(default_factory=dict)  # every broken plugin -> why

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

    def mark_broken(self, plugin: str, error: str, would_provide: dict[str, list[str]]) -> None:
        """``plugin`` is broken (``error``) and skipped; it would have registered ``would_provide`` (by kind)."""
        self.broken[plugin] = error
        for kind, names in would_provide.items():
            for name in names:
                if name not in self.classes[kind]:
                    self.missing[kind][name] = (plugin, error)

    def unavailable(self, kind: str, name: str) -> str | None:
        """Why ``name`` is not a usable ``kind``, when a broken plugin is to blame: ``plugin 'x' ... is broken
        (...)`` for a name it would have registered, or a note listing the broken plugins; None when none is."""
        if name in self.missing[kind]:
            plugin, error = self.missing[kind][name]
            return f"{kind} {name!r} is from plugin {plugin!r}, which is broken and skipped ({error})"
        if self.broken:
            listed = "; ".join(f"{plugin!r}: {error}" for plugin, error in self.broken.items())
            return f"broken plugins were skipped, which may provide it ({listed})"
        return None

    def names(self, kind: str) -> list[str]:
        return sorted(self.classes[kind])

    def kind_of(self, cls: type) -> str | None:
        """The kind ``cls`` is registered as, or None."""
        return next((kind for kind, classes in self.classes.items() if cls in classes.values()), None)

    def owner_of(self, cls: type) -> str | None:
        """The plugin that registered ``cls``, or None."""
        kind = self.kind_of(cls)
        return None if kind is None else self.owners[kind][cls.__name__]
