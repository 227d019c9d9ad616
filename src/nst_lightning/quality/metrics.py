"""The distances as torchmetrics ``Metric`` classes: ``update`` with a batch of outputs, ``compute`` the mean.

Their states are a sum and a count (reduced by summing across processes), so they accumulate over
batches and ``reset`` as torchmetrics specifies. The caffe VGG19 they use is shared and not part of
their state. ``SSIM`` is torchmetrics' structural similarity with ``data_range=1`` (images in [0, 1]).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.image import structural_similarity_index_measure
from torchmetrics.image import StructuralSimilarityIndexMeasure

from nst_lightning.model.tiling import axis_tiles
from nst_lightning.quality.distances import (
    STYLE_LAYERS,
    blend,
    content_distance_from,
    geometric_mean,
    image_statistics,
    style_layer_distances,
    style_targets,
)

SSIM = partial(StructuralSimilarityIndexMeasure, data_range=1.0)
SSIM_REACH = 5  # torchmetrics' default 11 px Gaussian window reaches 5 px on each side


@torch.no_grad()
def ssim_by_tiles(preds: Tensor, target: Tensor, tile_size: int = 1024) -> Tensor:
    """torchmetrics' SSIM (``data_range=1``, its default window) per image, (N,), computed tile by tile.

    SSIM is the mean of a map whose every value reads an 11×11 neighbourhood (reflected at the image's
    edges). Each tile reads 5 px of real neighbours beyond the block it owns, so its map equals the whole
    image's there; the owned blocks' sums add up to the whole map's. A whole torchmetrics SSIM of a 4096 px
    image holds about a dozen image-sized intermediates (over 8 GB); a tile's, a few hundred MB.
    """
    n, c, height, width = preds.shape
    target = target.expand_as(preds)
    total = torch.zeros(n, dtype=torch.float64, device=preds.device)
    for r0, r1, a0, a1 in axis_tiles(height, tile_size, SSIM_REACH, 1):
        for c0, c1, b0, b1 in axis_tiles(width, tile_size, SSIM_REACH, 1):
            _, full = structural_similarity_index_measure(
                preds[..., r0:r1, c0:c1], target[..., r0:r1, c0:c1], data_range=1.0, reduction="none", return_full_image=True
            )
            total += full[..., a0 - r0 : a1 - r0, b0 - c0 : b1 - c0].double().sum((1, 2, 3))
    return (total / (c * height * width)).float()


class MeanDistance(Metric):
    """A distance's mean over every image (or pair) added with ``_add``: a float64 sum and a count."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _add(self, distances: Tensor) -> None:
        self.total += distances.double().sum()
        self.count += distances.numel()

    def compute(self) -> Tensor:
        return (self.total / self.count.clamp_min(1)).float()


class StyleDistance(MeanDistance):
    """The style distance (see :mod:`.distances`): the geometric mean over relu1_1 … relu5_1 of
    ``‖G(out) − G(style)‖² / ‖G(style)‖²``, or with ``layer="relu3_1"`` (say) that one layer's value.

    ``update(preds, styles, weights=None, masks=None)``: ``preds`` N×3×H×W in [0, 1]; ``styles`` one
    1×3×h×w image or a list of them (already at the size to compare at: the output's long edge times the
    run's ``style_scale``); ``weights`` their blend weights; ``masks`` one 1×1×H×W mask per style (then
    each style is compared within its region and each layer's distance is the mean over the regions).
    """

    def __init__(self, layer: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if layer is not None and layer not in STYLE_LAYERS:
            raise ValueError(f"layer {layer!r} is not one of {', '.join(STYLE_LAYERS)}")
        self.layer = layer

    def update(
        self,
        preds: Tensor,
        styles: Tensor | Sequence[Tensor],
        weights: Sequence[float] | None = None,
        masks: Sequence[Tensor] | None = None,
    ) -> None:
        styles = [styles] if isinstance(styles, Tensor) else list(styles)
        if masks and len(masks) != len(styles):
            raise ValueError(f"{len(masks)} masks for {len(styles)} style images")
        out, targets = image_statistics(preds, masks or ()), style_targets(styles)
        if masks:
            layers = torch.stack([style_layer_distances(g, t) for g, t in zip(out.masked_grams, targets)]).mean(0)
        else:
            layers = style_layer_distances(out.grams, blend(targets, weights))
        self._add(geometric_mean(layers) if self.layer is None else layers[:, STYLE_LAYERS.index(self.layer)])


class ContentDistance(MeanDistance):
    """``‖F(out) − F(content)‖² / ‖F(content)‖²`` at relu4_2; ``update(preds, content)`` with the content
    image at the output's exact size."""

    def update(self, preds: Tensor, content: Tensor) -> None:
        if tuple(preds.shape[-2:]) != tuple(content.shape[-2:]):
            raise ValueError(f"content is {tuple(content.shape[-2:])}, the output {tuple(preds.shape[-2:])}: resize it first")
        self._add(content_distance_from(image_statistics(preds, content=content)))
