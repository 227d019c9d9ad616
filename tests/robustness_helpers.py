"""A loss term for the NaN tests; it lives in an importable module so that configs can name it."""

from __future__ import annotations

from torch import Tensor

from nst_lightning.model.losses.base import LossTerm


class NaNAfterCalls(LossTerm):
    """Zero for its first ``calls`` evaluations, NaN after them."""

    def __init__(self, weight: float = 1.0, calls: int = 10) -> None:
        super().__init__(weight)
        self.calls = calls
        self.count = 0

    def forward(self, features: dict[str, Tensor], image: Tensor) -> Tensor:
        self.count += 1
        return image.float().mean() * (float("nan") if self.count > self.calls else 0.0)
