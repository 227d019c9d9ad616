"""The progress bar: Lightning's TQDM bar, showing the losses without a host sync on every step."""

from __future__ import annotations

from collections.abc import Mapping

import lightning.pytorch as pl
from lightning.pytorch.callbacks import TQDMProgressBar
from torch import Tensor


def to_numbers(values: Mapping[str, Tensor]) -> dict[str, float]:
    """Device tensors to Python numbers: on a GPU this waits for the queued work (a host sync)."""
    return {name: float(value) for name, value in values.items()}


class LossProgressBar(TQDMProgressBar):
    """Shows the loss terms the module logged last, read from the device only when they are new.

    Lightning turns every value logged with ``prog_bar=True`` into a Python number on every step,
    whether or not it was logged again; on a GPU that is a host sync per step. ``StyleTransfer``
    logs its losses for the logger only (every ``trainer.log_every_n_steps`` steps), keeps them as
    ``logged_losses`` with ``logged_step``, and this bar reads them once per logging step.
    """

    def __init__(self, refresh_rate: int = 1, process_position: int = 0, leave: bool = False) -> None:
        super().__init__(refresh_rate=refresh_rate, process_position=process_position, leave=leave)
        self._shown: dict[str, float] = {}
        self._shown_step: int | None = None

    def losses(self, pl_module: pl.LightningModule) -> dict[str, float]:
        step = getattr(pl_module, "logged_step", None)
        if step is not None and step != self._shown_step:
            self._shown = to_numbers(pl_module.logged_losses)
            self._shown_step = step
        return self._shown

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, int | str | float]:
        tiles = getattr(pl_module, "tile_count", 1)
        return {**super().get_metrics(trainer, pl_module), **({"tiles": tiles} if tiles > 1 else {}), **self.losses(pl_module)}
