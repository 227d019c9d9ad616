"""The content loss: feature reconstruction at the content layers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from nst_lightning.errors import ConfigValueError
from nst_lightning.model.losses.base import (
    LossTerm,
    Targets,
    float32_only,
    inverse_mean_square,
    per_image_mse,
)

DEFAULT_CONTENT_LAYERS = ("relu4_2",)


class ContentLoss(LossTerm):
    """Feature reconstruction: mean squared error to the content image's features, averaged over layers."""

    supports_sample_weights = True

    def __init__(self, weight: float = 1.0, layers: Sequence[str] = DEFAULT_CONTENT_LAYERS) -> None:
        super().__init__(weight, layers)
        if not self.layers:
            raise ConfigValueError("ContentLoss: layers must name at least one layer")

    def set_targets(self, targets: Targets) -> None:
        for i, name in enumerate(self.layers):
            target = targets.content[name].float().clone()
            self.register_buffer(f"target_{i}", target, persistent=False)
            self.register_buffer(f"scale_{i}", inverse_mean_square(target), persistent=False)

    def forward(self, features: dict[str, Tensor], image: Tensor) -> Tensor:
        with float32_only(image.device):
            total = image.new_zeros((), dtype=torch.float32)
            for i, name in enumerate(self.layers):
                mse = per_image_mse(features[name].float(), getattr(self, f"target_{i}"))
                total = total + getattr(self, f"scale_{i}") * mse
            return self.weighted(total / len(self.layers))
