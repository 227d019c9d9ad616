"""The content loss: feature reconstruction at the content layers."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from nst_lightning.errors import ConfigValueError
from nst_lightning.model.losses.base import (
    LossTerm,
    Targets,
    Window,
    inverse_mean_square,
)

DEFAULT_CONTENT_LAYERS = ("relu4_2",)


class ContentLoss(LossTerm):
    """Feature reconstruction: mean squared error to the content image's features, averaged over layers."""

    supports_sample_weights = True
    tileable = True

    def __init__(self, weight: float = 1.0, layers: Sequence[str] = DEFAULT_CONTENT_LAYERS) -> None:
        super().__init__(weight, layers)
        if not self.layers:
            raise ConfigValueError("ContentLoss: layers must name at least one layer")

    def set_targets(self, targets: Targets) -> None:
        for i, name in enumerate(self.layers):
            target = targets.content[name].float().clone()
            self.register_buffer(f"target_{i}", target, persistent=False)
            self.register_buffer(f"scale_{i}", inverse_mean_square(target), persistent=False)

    def statistics(self, features: dict[str, Tensor], image: Tensor, window: Window) -> dict[str, Tensor]:
        """Per layer: the squared error summed over the window's positions (one per image), and their count."""
        stats = {}
        for i, name in enumerate(self.layers):
            owned = window.owned(features, name).float()
            target = window.crop(getattr(self, f"target_{i}"), name)
            stats[f"sse_{i}"] = (owned - target).pow(2).flatten(1).sum(1)
            stats[f"count_{i}"] = owned.new_full((), float(owned[0].numel()))
        return stats

    def loss_from_statistics(self, statistics: dict[str, Tensor]) -> Tensor:
        total = 0.0
        for i in range(len(self.layers)):
            mse = statistics[f"sse_{i}"] / statistics[f"count_{i}"]
            total = total + getattr(self, f"scale_{i}") * mse
        return self.weighted(total / len(self.layers))

    def forward(self, features: dict[str, Tensor], image: Tensor) -> Tensor:
        return self.loss_by_windows(features, image)
