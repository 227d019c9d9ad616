"""The public face for plugin authors: everything a plugin needs, and nothing else.

A plugin implements the hooks of :mod:`nst_lightning.plugin.hookspecs` with :data:`hookimpl` and
registers subclasses of :class:`Backbone`, :class:`LossTerm`, ``torch.optim.Optimizer`` or :class:`OpticalFlow`::

    from nst_lightning.plugin import LossTerm, hookimpl

    @hookimpl
    def nst_register_losses(register):
        register(MyLoss)

See docs/plugins.md. Names outside this module are internal and may move between releases.
"""

from __future__ import annotations

from nst_lightning.errors import ConfigValueError, NstLightningError
from nst_lightning.linalg import gram_sum, psd_matrix_power
from nst_lightning.model.backbones.base import IMAGENET_MEAN, IMAGENET_STD, Backbone
from nst_lightning.model.backbones.geometry import LayerGeometry, walk
from nst_lightning.model.backbones.weights import WeightsError, load_state_dict
from nst_lightning.model.losses.base import (
    LossTerm,
    Targets,
    Window,
    check_layer_weights,
    float32_only,
    inverse_mean_square,
    per_image_mse,
)
from nst_lightning.model.losses.content import DEFAULT_CONTENT_LAYERS
from nst_lightning.model.losses.gram import DEFAULT_STYLE_LAYERS, gram_matrix
from nst_lightning.plugin.hookspecs import Register, hookimpl
from nst_lightning.video.flow import OpticalFlow

__all__ = [
    "DEFAULT_CONTENT_LAYERS",
    "DEFAULT_STYLE_LAYERS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Backbone",
    "LayerGeometry",
    "ConfigValueError",
    "LossTerm",
    "NstLightningError",
    "OpticalFlow",
    "Register",
    "Targets",
    "WeightsError",
    "Window",
    "walk",
    "check_layer_weights",
    "float32_only",
    "gram_matrix",
    "gram_sum",
    "hookimpl",
    "inverse_mean_square",
    "load_state_dict",
    "per_image_mse",
    "psd_matrix_power",
]
