"""The two relative distances, defined on the caffe VGG19 in float32 (lower is better on both).

- style distance: the mean over relu1_1 … relu5_1 of ``‖G(out) − G(style)‖² / ‖G(style)‖²``, with ``G`` the
  Gram matrix divided by C·H·W; with several style images ``G(style)`` is the blend of their Grams, and with
  masks it is computed per region (the output's Gram over the region's positions);
- content distance: ``‖F(out) − F(content)‖² / ‖F(content)‖²`` at relu4_2.

They are ratios, so they do not depend on the image's size or on the loss weights of the run, and the
C·H·W normalization only makes each Gram a mean over positions (the ratio would cancel a constant).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor

from nst_lightning.model.backbones.vgg import VGG19
from nst_lightning.model.losses.masked_gram import resize_mask

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
LAYERS = (*STYLE_LAYERS, CONTENT_LAYER)


@functools.cache
def _backbone(device: str) -> VGG19:
    net = VGG19(weights="caffe", pooling="max", channels_last=False)
    net.truncate(LAYERS)
    return net.eval().requires_grad_(False).to(device)


def scoring_backbone(device: torch.device | str = "cpu") -> VGG19:
    """The caffe VGG19 (max pooling, up to relu5_1) that every score uses, loaded once per device."""
    return _backbone(str(torch.device(device)))


@torch.no_grad()
def features(image: Tensor) -> dict[str, Tensor]:
    """The float32 caffe-VGG19 features of an N×3×H×W image in [0, 1], autocast off."""
    with torch.autocast(device_type=image.device.type, enabled=False):
        out = scoring_backbone(image.device)(image.float(), LAYERS)
    return {k: v.float() for k, v in out.items()}


def gram(feature: Tensor, mask: Tensor | None = None) -> Tensor:
    """N×C×C Gram matrix divided by C·H·W; with a 1×1×H'×W' ``mask`` the mask-weighted one over its positions."""
    n, c, h, w = feature.shape
    flat = feature.float().reshape(n, c, h * w)
    if mask is None:
        return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)
    m = resize_mask(mask.float(), (h, w)).reshape(mask.shape[0], 1, h * w)
    return torch.bmm(flat * m, flat.transpose(1, 2)) / (c * m.sum(-1, keepdim=True).clamp_min(1e-8))


def relative(x: Tensor, target: Tensor) -> Tensor:
    """``‖x − target‖² / ‖target‖²`` per image of the batch: (N,)."""
    target = target.expand_as(x)
    return (x - target).pow(2).flatten(1).sum(1) / target.pow(2).flatten(1).sum(1).clamp_min(1e-30)


def style_targets(styles: Sequence[Tensor]) -> list[dict[str, Tensor]]:
    """Each style image's Grams by layer (1×C×C each)."""
    return [{name: gram(f[name]) for name in STYLE_LAYERS} for f in map(features, styles)]


def blend(targets: Sequence[dict[str, Tensor]], weights: Sequence[float] | None = None) -> dict[str, Tensor]:
    """The blend ``Σ b_i G_i`` of several style images' Grams, ``b`` normalized to sum to 1 (default: equal)."""
    weights = [1.0] * len(targets) if weights is None else [float(w) for w in weights]
    total = sum(weights)
    return {name: sum(w / total * t[name] for w, t in zip(weights, targets)) for name in STYLE_LAYERS}


def style_distance_of(out: dict[str, Tensor], target: dict[str, Tensor], mask: Tensor | None = None) -> Tensor:
    """The style distance (N,) of output features ``out`` to the Grams ``target`` (within ``mask``, if given)."""
    return torch.stack([relative(gram(out[name], mask), target[name]) for name in STYLE_LAYERS]).mean(0)


def content_distance_of(out: dict[str, Tensor], content: dict[str, Tensor]) -> Tensor:
    """The content distance (N,) of output features ``out`` to the content's."""
    return relative(out[CONTENT_LAYER], content[CONTENT_LAYER])
