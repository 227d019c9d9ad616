"""Progress: Lightning's TQDM bar on a terminal, plain lines without one; the losses without a host sync per step."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TextIO

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar
from torch import Tensor

from nst_lightning.model.style_transfer import report_of


def to_numbers(values: Mapping[str, Tensor]) -> dict[str, float]:
    """Device tensors to Python numbers: on a GPU this waits for the queued work (a host sync)."""
    return {name: float(value) for name, value in values.items()}


class LossProgressBar(TQDMProgressBar):
    """Shows the loss terms the module logged last, read from the device only when they are new.

    Lightning turns every value logged with ``prog_bar=True`` into a Python number on every step,
    whether or not it was logged again; on a GPU that is a host sync per step. ``StyleTransfer``
    logs its losses for the logger only (every ``trainer.log_every_n_steps`` steps), keeps them in its
    :class:`~nst_lightning.model.report.RunReport`, and this bar reads them once per logging step.
    """

    def __init__(self, refresh_rate: int = 1, process_position: int = 0, leave: bool = False) -> None:
        super().__init__(refresh_rate=refresh_rate, process_position=process_position, leave=leave)
        self._shown: dict[str, float] = {}
        self._shown_step: int | None = None

    def losses(self, pl_module: pl.LightningModule) -> dict[str, float]:
        report = report_of(pl_module)
        if report.logged_step is not None and report.logged_step != self._shown_step:
            self._shown = to_numbers(report.logged_losses)
            self._shown_step = report.logged_step
        return self._shown

    def on_train_epoch_start(self, trainer: pl.Trainer, *args) -> None:
        """One bar over the optimizer steps (a run is one "epoch" of steps): ``steps``, not ``Epoch 0``."""
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description("steps")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A run that stopped before ``max_steps`` (the stopping rule) ends its bar where it stopped, at 100 %."""
        bar = self.train_progress_bar
        if bar is not None and bar.total and bar.n < bar.total:
            bar.total = bar.n
            bar.refresh()
        super().on_train_end(trainer, pl_module)

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, int | str | float]:
        report = report_of(pl_module)
        tiles = {"tiles": report.tile_count} if report.tile_count > 1 else {}
        metrics = {**super().get_metrics(trainer, pl_module), **tiles, **self.losses(pl_module)}
        metrics.pop("v_num", None)  # the logger's version: the final line names the log folder
        if report.stop_short is not None:  # why the run stopped (StopWhenConverged), once it has
            metrics["stop"] = report.stop_short
        return metrics


class PlainProgress(ProgressBar):
    """Progress without a terminal: one plain line per logging step, ``step 10/200  loss/content 1.2 ...``.

    A bar redraws itself with a carriage return on every step: in a log file that is one line per
    step. This prints only when the module has logged new losses (every ``trainer.log_every_n_steps``
    steps, the first and the last), to ``stream`` (stderr by default).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream
        self.enabled = True
        self._shown_step: int | None = None

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        report = report_of(pl_module)
        step = report.logged_step
        if not self.enabled or step is None or step == self._shown_step:
            return
        self._shown_step = step
        total = f"/{trainer.max_steps}" if trainer.max_steps > 0 else ""
        losses = "  ".join(f"{name} {value:.4g}" for name, value in to_numbers(report.logged_losses).items())
        print(f"step {step}{total}  {losses}".rstrip(), file=self.stream or sys.stderr, flush=True)


def progress_for(stream: TextIO) -> ProgressBar:
    """The bar on a terminal, plain lines otherwise (output redirected to a file or a pipe)."""
    is_terminal = getattr(stream, "isatty", None)
    return LossProgressBar() if is_terminal is not None and is_terminal() else PlainProgress()
