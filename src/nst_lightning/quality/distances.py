"""The two relative distances, defined on the caffe VGG19 in float32 (lower is better on both).

- style distance, per layer: at each of relu1_1 … relu5_1, ``‖G(out) − G(style)‖² / ‖G(style)‖²``, with
  ``G`` the Gram matrix divided by C·H·W; with several style images ``G(style)`` is the blend of their Grams,
  and with masks it is computed per region (the output's Gram over the region's positions) and the regions'
  values are averaged;
- style distance: the **geometric** mean of the five per-layer distances. The layers' scales differ by two
  orders of magnitude (relu5_1's error is typically 50× relu1_1's), so an arithmetic mean is decided by
  relu5_1 alone; the geometric mean weighs a halving on any layer the same. The arithmetic mean is kept as
  ``style_distance_mean`` (the aggregate of earlier versions, for continuity);
- content distance: ``‖F(out) − F(content)‖² / ‖F(content)‖²`` at relu4_2.

They are ratios, so they do not depend on the image's size or on the loss weights of the run, and the
C·H·W normalization only makes each Gram a mean over positions (the ratio would cancel a constant).

Both depend on the image only through sums over feature positions, so :func:`image_statistics` computes
them tile by tile (with the exact margins of :mod:`nst_lightning.model.tiling`) for images larger than
``SCORE_TILE`` px: scoring a 4096 px print then needs one tile's activations, not the whole image's.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from nst_lightning.linalg import gram_sum
from nst_lightning.model.backbones.vgg import VGG19
from nst_lightning.model.losses.masked_gram import resize_mask
from nst_lightning.model.tiled_loss import tile_passes
from nst_lightning.model.tiling import TileGeometry, TilePlan, plan_tiles, tile_geometry, whole_plan

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
LAYERS = (*STYLE_LAYERS, CONTENT_LAYER)
# Images with an edge longer than this are scored tile by tile (the result is the same; memory is bounded).
SCORE_TILE = 768


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
    if mask is None:
        return gram_sum(feature) / (c * h * w)
    m = resize_mask(mask.float(), (h, w)).reshape(mask.shape[0], 1, h * w)
    return gram_sum(feature, m) / (c * m.sum(-1, keepdim=True).clamp_min(1e-8))


@functools.cache
def scoring_geometry() -> TileGeometry:
    """Margin and alignment of the scoring backbone's layers (80 px and 16 px for relu5_1)."""
    return tile_geometry(scoring_backbone("cpu"), LAYERS)


def scoring_plan(height: int, width: int, tile_size: int | None = None) -> TilePlan:
    """One tile for an image whose long edge is at most ``tile_size`` (default ``SCORE_TILE``), else tiles."""
    tile_size = tile_size or SCORE_TILE
    if max(height, width) <= tile_size:
        return whole_plan(height, width, scoring_geometry())
    return plan_tiles(height, width, tile_size, scoring_geometry())


@dataclass
class ImageStatistics:
    """What the distances need of one batch of images, summed over all feature positions."""

    grams: dict[str, Tensor]  # by style layer: N×C×C, divided by C·H·W (as :func:`gram`)
    masked_grams: list[dict[str, Tensor]]  # per mask: the mask-weighted Grams (as ``gram(f, mask)``)
    content_error: Tensor | None = None  # (N,): ‖F(image) − F(content)‖² at relu4_2
    content_norm: Tensor | None = None  # (): ‖F(content)‖² at relu4_2


def _accumulate(into: dict[str, Tensor], name: str, value: Tensor) -> None:
    into[name] = into[name] + value if name in into else value


@torch.no_grad()
def image_statistics(
    image: Tensor, masks: Sequence[Tensor] = (), content: Tensor | None = None, tile_size: int | None = None
) -> ImageStatistics:
    """The Grams of an N×3×H×W image in [0, 1] (and within each 1×1×H×W mask), and with ``content`` (1×3×H×W)
    the content distance's two sums; tile by tile when the image is larger than ``tile_size``."""
    n, _, height, width = image.shape
    plan = scoring_plan(height, width, tile_size)
    net = scoring_backbone(image.device)
    sizes = {name: (g.feature_size(height), g.feature_size(width)) for name, g in plan.geometry.layers.items()}
    full_masks = [{name: resize_mask(m.float().to(image.device), sizes[name]) for name in STYLE_LAYERS} for m in masks]
    sums: dict[str, Tensor] = {}
    masked: list[dict[str, Tensor]] = [{} for _ in masks]
    weights: list[dict[str, Tensor]] = [{} for _ in masks]
    error = norm = None
    layers = list(LAYERS)
    with torch.autocast(device_type=image.device.type, enabled=False):
        for where, window, _, out in tile_passes(net, image.float(), plan, layers):
            for name in STYLE_LAYERS:
                owned = window.owned(out, name)
                _accumulate(sums, name, gram_sum(owned))
                for i, mask in enumerate(full_masks):
                    m = window.crop(mask[name], name).flatten(2)  # 1×1×P
                    _accumulate(masked[i], name, gram_sum(owned, m))
                    _accumulate(weights[i], name, m.sum(-1, keepdim=True))
            if content is not None:
                pixels = content[..., where[0], where[1]].float().to(image.device)
                target = {CONTENT_LAYER: net(pixels, [CONTENT_LAYER])[CONTENT_LAYER]}
                fc = window.owned(target, CONTENT_LAYER).float()
                fo = window.owned(out, CONTENT_LAYER).float()
                part_error, part_norm = (fo - fc).pow(2).flatten(1).sum(1), fc.pow(2).sum()
                error = part_error if error is None else error + part_error
                norm = part_norm if norm is None else norm + part_norm
            del out
    grams = {}
    for name in STYLE_LAYERS:
        c = sums[name].shape[-1]
        grams[name] = sums[name] / (c * sizes[name][0] * sizes[name][1])
    masked_grams = [
        {name: masked[i][name] / (masked[i][name].shape[-1] * weights[i][name].clamp_min(1e-8)) for name in STYLE_LAYERS}
        for i in range(len(masks))
    ]
    return ImageStatistics(grams, masked_grams, error, norm)


def style_layer_distances(grams: dict[str, Tensor], target: dict[str, Tensor]) -> Tensor:
    """The per-layer style distances (N×5, in ``STYLE_LAYERS`` order) of an image's Grams to the target Grams."""
    return torch.stack([relative(grams[name], target[name]) for name in STYLE_LAYERS], 1)


def geometric_mean(layers: Tensor) -> Tensor:
    """The style distance (N,) from per-layer distances (N×L): their geometric mean (a zero layer counts as 1e-12)."""
    return layers.double().clamp_min(1e-12).log().mean(1).exp().to(layers.dtype)


def style_distance_from_grams(grams: dict[str, Tensor], target: dict[str, Tensor]) -> Tensor:
    """The style distance (N,) of an image's Grams to the target Grams: the geometric mean over the style layers."""
    return geometric_mean(style_layer_distances(grams, target))


def content_distance_from(statistics: ImageStatistics) -> Tensor:
    """The content distance (N,) from :func:`image_statistics` computed with ``content``."""
    return statistics.content_error / statistics.content_norm.clamp_min(1e-30)


def relative(x: Tensor, target: Tensor) -> Tensor:
    """``‖x − target‖² / ‖target‖²`` per image of the batch: (N,)."""
    target = target.expand_as(x)
    return (x - target).pow(2).flatten(1).sum(1) / target.pow(2).flatten(1).sum(1).clamp_min(1e-30)


def style_targets(styles: Sequence[Tensor]) -> list[dict[str, Tensor]]:
    """Each style image's Grams by layer (1×C×C each), tile by tile for large images."""
    return [image_statistics(style).grams for style in styles]


def blend(targets: Sequence[dict[str, Tensor]], weights: Sequence[float] | None = None) -> dict[str, Tensor]:
    """The blend ``Σ b_i G_i`` of several style images' Grams, ``b`` normalized to sum to 1 (default: equal)."""
    weights = [1.0] * len(targets) if weights is None else [float(w) for w in weights]
    total = sum(weights)
    return {name: sum(w / total * t[name] for w, t in zip(weights, targets)) for name in STYLE_LAYERS}


def style_distance_of(out: dict[str, Tensor], target: dict[str, Tensor], mask: Tensor | None = None) -> Tensor:
    """The style distance (N,) of output features ``out`` to the Grams ``target`` (within ``mask``, if given)."""
    return style_distance_from_grams({name: gram(out[name], mask) for name in STYLE_LAYERS}, target)


def content_distance_of(out: dict[str, Tensor], content: dict[str, Tensor]) -> Tensor:
    """The content distance (N,) of output features ``out`` to the content's."""
    return relative(out[CONTENT_LAYER], content[CONTENT_LAYER])
