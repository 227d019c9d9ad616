"""The built-in components, registered through the same hooks as any third-party plugin."""

from __future__ import annotations

from .backbones import VGG16, VGG19
from .hookspecs import Register, hookimpl
from .losses import ContentLoss, GramStyleLoss, TotalVariationLoss
from .masks import MaskedGramStyleLoss
from .optimizers import ImageAdam, ImageLBFGS


@hookimpl
def nst_register_backbones(register: Register) -> None:
    register(VGG19)
    register(VGG16)


@hookimpl
def nst_register_losses(register: Register) -> None:
    register(ContentLoss)
    register(GramStyleLoss)
    register(MaskedGramStyleLoss)
    register(TotalVariationLoss)


@hookimpl
def nst_register_optimizers(register: Register) -> None:
    register(ImageLBFGS)
    register(ImageAdam)
