"""The built-in components, registered through the same hooks as any third-party plugin."""

from __future__ import annotations

from nst_lightning.model.backbones.vgg import VGG16, VGG19
from nst_lightning.model.losses.content import ContentLoss
from nst_lightning.model.losses.gram import GramStyleLoss
from nst_lightning.model.losses.masked_gram import MaskedGramStyleLoss
from nst_lightning.model.losses.temporal import TemporalLoss
from nst_lightning.model.losses.total_variation import TotalVariationLoss
from nst_lightning.model.optimizers import ImageAdam, ImageLBFGS
from nst_lightning.plugin.hookspecs import Register, hookimpl
from nst_lightning.video.flow import DeepFlow, DISFlow, RAFTFlow


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
    register(TemporalLoss)


@hookimpl
def nst_register_optimizers(register: Register) -> None:
    register(ImageLBFGS)
    register(ImageAdam)


@hookimpl
def nst_register_flows(register: Register) -> None:
    register(DISFlow)
    register(DeepFlow)
    register(RAFTFlow)
