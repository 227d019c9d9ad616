"""The total variation loss: a smoothness prior on the generated image."""

from __future__ import annotations

from torch import Tensor

from nst_lightning.model.losses.base import LossTerm, float32_only, per_image_mse


class TotalVariationLoss(LossTerm):
    """Smoothness prior: mean squared difference between neighbouring pixels, summed over both axes."""

    supports_sample_weights = True

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__(weight, ())

    def forward(self, features: dict[str, Tensor], image: Tensor) -> Tensor:
        with float32_only(image.device):
            x = image.float()
            dx = per_image_mse(x[..., :, 1:], x[..., :, :-1])
            dy = per_image_mse(x[..., 1:, :], x[..., :-1, :])
            return self.weighted(dx + dy)
