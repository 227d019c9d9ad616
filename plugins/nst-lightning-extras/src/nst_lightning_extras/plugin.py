"""The hook implementations: nst-lightning loads this module through the ``nst_lightning`` entry point."""

from __future__ import annotations

from nst_lightning.plugin import hookimpl

from .backbones import ResNet
from .losses import HistogramStyleLoss, WassersteinStyleLoss


@hookimpl
def nst_register_backbones(register):
    register(ResNet)


@hookimpl
def nst_register_losses(register):
    register(WassersteinStyleLoss)
    register(HistogramStyleLoss)
