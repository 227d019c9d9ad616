"""The hooks a plugin implements to add components to nst-lightning.

Every hook takes one argument, ``register``: a callable that takes a class and
adds it to the registry of its kind. A plugin implements any subset of them::

    from nst_lightning.plugin import hookimpl

    @hookimpl
    def nst_register_losses(register):
        register(MyLoss)

Built-in components are registered through these same hooks
(:mod:`nst_lightning.plugin.builtin`).
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT_NAME = "nst_lightning"


hookspec = pluggy.HookspecMarker(PROJECT_NAME)


hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


Register = Callable[[type], type]


@hookspec
def nst_register_backbones(register: Register) -> None:
    """Register backbone classes: concrete subclasses of :class:`nst_lightning.plugin.Backbone`.

    A backbone takes an RGB image batch in [0, 1] (N×3×H×W) and returns a dict
    that maps layer names to feature maps. It owns its input normalization.
    """


@hookspec
def nst_register_losses(register: Register) -> None:
    """Register loss-term classes: concrete subclasses of :class:`nst_lightning.plugin.LossTerm`.

    A loss term names the backbone layers it reads, caches its targets once in
    ``set_targets`` and returns from ``forward`` its weighted loss in float32, a scalar or one
    value per image; a tileable term also gives ``statistics`` and ``loss_from_statistics``
    (docs/plugins.md).
    """


@hookspec
def nst_register_optimizers(register: Register) -> None:
    """Register optimizer classes: concrete subclasses of :class:`torch.optim.Optimizer`.

    The class is called with the generated image as its only parameter, and
    must take its other arguments as keywords with defaults. It declares with the class
    attributes ``per_image`` and ``state_copies`` whether a batch of images may share it and
    how much memory it keeps (docs/plugins.md).
    """


@hookspec
def nst_register_flows(register: Register) -> None:
    """Register optical flow classes: concrete subclasses of :class:`nst_lightning.plugin.OpticalFlow`.

    ``compute(first, second)`` takes two 8-bit 3×H×W frames and returns the flow from the first to the second,
    a 1×2×H×W float32 tensor of pixel offsets (x, then y); a video run names the class with ``data.flow``.
    """
