"""The Gram matrix and the Gatys style loss built on it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from nst_lightning.errors import ConfigValueError
from nst_lightning.linalg import gram_sum
from nst_lightning.model.losses.base import (
    LossTerm,
    Targets,
    Window,
    check_layer_weights,
    inverse_mean_square,
    per_image_mse,
)

DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def gram_matrix(features: Tensor) -> Tensor:
    """Gram matrix of N×C×H×W features, divided by H·W, as an N×C×C float32 tensor.

    Dividing by the number of positions M makes it a mean, so the style loss
    ``0.25 * mean((G - A)²)`` equals the literature's ``1/(4N²M²) Σ (G·M - A·M)²``
    and does not change with image size.
    """
    h, w = features.shape[-2:]
    return gram_sum(features).div_(h * w)


def window_gram_sums(features: dict[str, Tensor], window: Window, layers: list[str]) -> dict[str, Tensor]:
    """Per layer ``i``: ``gram_sum_<i>``, the Gram sum over the positions ``window`` owns, and ``count_<i>``,
    their number: the statistics of the Gram losses, of the image and of the style images alike."""
    stats = {}
    for i, name in enumerate(layers):
        owned = window.owned(features, name)
        stats[f"gram_sum_{i}"] = gram_sum(owned)
        stats[f"count_{i}"] = owned.new_full((), float(owned.shape[-2] * owned.shape[-1]), dtype=torch.float32)
    return stats


def style_grams(statistics: list[dict[str, Tensor]], layer_index: int) -> list[Tensor]:
    """Each style image's Gram matrix at layer ``layer_index`` (1×C×C), from its :func:`window_gram_sums`."""
    i = layer_index
    return [s[f"gram_sum_{i}"] / s[f"count_{i}"] for s in statistics]


class GramStyleLoss(LossTerm):
    """Gatys style loss: ``Σ_l w_l · 1/(4N_l²M_l²) Σ (G_l - A_l)²`` over style layers.

    ``layer_weights`` default to equal weights that sum to 1. With several
    style images the target Gram matrix is their blend, ``A = Σ_i b_i A_i``.
    """

    supports_sample_weights = True
    tileable = True
    reads_content = False

    def __init__(
        self,
        weight: float = 30.0,
        layers: Sequence[str] = DEFAULT_STYLE_LAYERS,
        layer_weights: Sequence[float] | None = None,
        normalize: bool = True,
    ) -> None:
        super().__init__(weight, layers)
        self.normalize = normalize
        self.layer_weights = check_layer_weights(type(self).__name__, self.layers, layer_weights)

    def set_targets(self, targets: Targets) -> None:
        if not targets.styles:
            raise ConfigValueError("GramStyleLoss needs at least one style image")
        if targets.masks:
            raise ConfigValueError("data.masks needs a masked style loss: use class_path MaskedGramStyleLoss for the style")
        statistics = self.style_statistics_of(targets)
        for i in range(len(self.layers)):
            blend = sum(b * gram for b, gram in zip(targets.style_weights, style_grams(statistics, i)))
            self.register_target(str(i), blend)

    def register_target(self, key: str, target: Tensor) -> None:
        """Keep Gram target ``target_<key>`` and its normalizer ``scale_<key>`` (1 without ``normalize``)."""
        self.register_buffer(f"target_{key}", target, persistent=False)
        scale = inverse_mean_square(target) if self.normalize else torch.ones(())
        self.register_buffer(f"scale_{key}", scale, persistent=False)

    def statistics(self, features: dict[str, Tensor], image: Tensor, window: Window) -> dict[str, Tensor]:
        """Per layer: the sum of the feature products ``Σ_p F_p F_pᵀ`` over the window's positions, and their count."""
        return window_gram_sums(features, window, self.layers)

    def style_statistics(self, features: dict[str, Tensor], image: Tensor, window: Window) -> dict[str, Tensor]:
        """The same sums of a style image: its Gram matrices are the targets."""
        return window_gram_sums(features, window, self.layers)

    def loss_from_statistics(self, statistics: dict[str, Tensor]) -> Tensor:
        total = 0.0
        for i, w in enumerate(self.layer_weights):
            gram = statistics[f"gram_sum_{i}"] / statistics[f"count_{i}"]
            mse = per_image_mse(gram, getattr(self, f"target_{i}"))
            total = total + w * getattr(self, f"scale_{i}") * 0.25 * mse
        return self.weighted(total)

    def forward(self, features: dict[str, Tensor], image: Tensor) -> Tensor:
        return self.loss_by_windows(features, image)
