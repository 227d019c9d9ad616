"""A loss term for the NaN tests and a callback that presses Ctrl-C; they live in an importable module so that
configs can name them."""

from __future__ import annotations

import os

from lightning.pytorch.callbacks import Callback
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


class SignalAtStep(Callback):
    """Sends this process ``signum`` (SIGINT: Ctrl-C) at the end of step ``step``, as a user would."""

    def __init__(self, step: int = 2, signum: int = 2) -> None:
        self.step = step
        self.signum = signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)
