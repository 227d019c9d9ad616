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
from torchmetrics.image import StructuralSimilarityIndexMeasure

from nst_lightning.quality.distances import (
    blend,
    content_distance_from,
    image_statistics,
    style_distance_from_grams,
    style_targets,
)

SSIM = partial(StructuralSimilarityIndexMeasure, data_range=1.0)


class _MeanDistance(Metric):
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


class StyleDistance(_MeanDistance):
    """Mean over the style layers of ``‖G(out) − G(style)‖² / ‖G(style)‖²`` (see :mod:`.distances`).

    ``update(preds, styles, weights=None, masks=None)``: ``preds`` N×3×H×W in [0, 1]; ``styles`` one
    1×3×h×w image or a list of them (already at the size to compare at: the output's long edge times the
    run's ``style_scale``); ``weights`` their blend weights; ``masks`` one 1×1×H×W mask per style (then
    each style is compared within its region and the regions' distances are averaged).
    """

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
            per_region = [style_distance_from_grams(g, t) for g, t in zip(out.masked_grams, targets)]
            self._add(torch.stack(per_region).mean(0))
        else:
            self._add(style_distance_from_grams(out.grams, blend(targets, weights)))


class ContentDistance(_MeanDistance):
    """``‖F(out) − F(content)‖² / ‖F(content)‖²`` at relu4_2; ``update(preds, content)`` with the content
    image at the output's exact size."""

    def update(self, preds: Tensor, content: Tensor) -> None:
        if tuple(preds.shape[-2:]) != tuple(content.shape[-2:]):
            raise ValueError(f"content is {tuple(content.shape[-2:])}, the output {tuple(preds.shape[-2:])}: resize it first")
        self._add(content_distance_from(image_statistics(preds, content=content)))
