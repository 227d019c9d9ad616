"""Spatial control: one mask per style image restricts that style's Gram statistics to its region.

``data.masks`` lists one mask image per style image (white: the style applies, black: it does not; grey
values weight the pixels). With ``MaskedGramStyleLoss`` as the style loss, region k's Gram matrix at layer l
is the mask-weighted mean ``G_kl = Σ_p m_p F_p F_pᵀ / Σ_p m_p`` over positions p, with the mask resized to
the layer's size, and it is pulled towards style image k's own (unmasked) Gram matrix. Where no mask is
white only the content and TV losses act, so that region keeps its content.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from nst_lightning.errors import ConfigValueError
from nst_lightning.linalg import gram_sum
from nst_lightning.model.losses.base import Targets, Window, per_image_mse
from nst_lightning.model.losses.gram import GramStyleLoss, style_grams


def resize_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """``mask`` shrunk to a feature layer's ``size`` by averaging (adaptive average pooling), as the pooling
    layers shrink the features: a feature position gets the share of its pixels inside the region."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.adaptive_avg_pool2d(mask, size).clamp(0, 1)


def masked_gram_matrix(features: Tensor, mask: Tensor) -> Tensor:
    """Gram matrix of the positions inside ``mask``: ``Σ_p m_p F_p F_pᵀ / Σ_p m_p``, N×C×C float32.

    With a binary mask this is ``(F·m)(F·m)ᵀ / Σ m``; with the full mask it equals :func:`gram_matrix`.
    """
    h, w = features.shape[-2:]
    m = resize_mask(mask.float(), (h, w)).reshape(mask.shape[0], 1, h * w)
    return gram_sum(features, m) / m.sum(-1, keepdim=True).clamp_min(1e-8)


class MaskedGramStyleLoss(GramStyleLoss):
    """Gram style loss per region: style image k is applied only where mask k is white (``data.masks``).

    ``Σ_k Σ_l w_l · 1/(4N_l²) Σ (G_kl - A_kl)²`` with ``G_kl`` the masked Gram matrix of the image in region k
    and ``A_kl`` the Gram matrix of style image k, each layer divided by its target's mean square.
    """

    regions = 0  # set from the masks in set_targets

    def set_targets(self, targets: Targets) -> None:
        if len(targets.masks) != len(targets.styles) or not targets.masks:
            raise ConfigValueError(
                f"MaskedGramStyleLoss needs one mask per style image (data.masks): "
                f"{len(targets.masks)} masks for {len(targets.styles)} style images"
            )
        self.regions = len(targets.masks)
        self._resized: dict[tuple[int, tuple[int, int]], Tensor] = {}
        statistics = self.style_statistics_of(targets)
        for k, mask in enumerate(targets.masks):
            self.register_buffer(f"mask_{k}", mask.float().clone(), persistent=False)
            for i in range(len(self.layers)):
                self.register_target(f"{k}_{i}", style_grams(statistics, i)[k])

    def resized_mask(self, k: int, size: tuple[int, int]) -> Tensor:
        """Mask ``k`` at a layer's (whole-image) ``size``, kept for the next step and tile."""
        cache = self.__dict__.setdefault("_resized", {})
        key = (k, tuple(size))
        if key not in cache:
            cache[key] = resize_mask(getattr(self, f"mask_{k}").float(), size)
        return cache[key]

    def statistics(self, features: dict[str, Tensor], image: Tensor, window: Window) -> dict[str, Tensor]:
        """Per region and layer: ``Σ_p m_p F_p F_pᵀ`` and ``Σ_p m_p`` over the window's positions."""
        stats = {}
        for i, name in enumerate(self.layers):
            owned = window.owned(features, name)
            for k in range(self.regions):
                m = window.crop(self.resized_mask(k, window.full_size[name]), name).flatten(2)
                stats[f"gram_sum_{k}_{i}"] = gram_sum(owned, m)
                stats[f"mask_sum_{k}_{i}"] = m.sum(-1, keepdim=True)
        return stats

    def loss_from_statistics(self, statistics: dict[str, Tensor]) -> Tensor:
        total = 0.0
        for k in range(self.regions):
            for i, w in enumerate(self.layer_weights):
                gram = statistics[f"gram_sum_{k}_{i}"] / statistics[f"mask_sum_{k}_{i}"].clamp_min(1e-8)
                mse = per_image_mse(gram, getattr(self, f"target_{k}_{i}"))
                total = total + w * getattr(self, f"scale_{k}_{i}") * 0.25 * mse
        return self.weighted(total)

    def forward(self, features: dict[str, Tensor], image: Tensor) -> Tensor:
        return self.loss_by_windows(features, image)
