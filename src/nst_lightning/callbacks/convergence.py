"""Runs that stop when done: end the run (or, with ``MultiScale``, the current scale) once the loss has stopped falling.

Lightning's ``EarlyStopping`` watches a logged metric for an absolute ``min_delta`` with a patience counted
in validation checks or epochs; here a run is one epoch of optimizer steps, the useful test is relative
(the loss spans orders of magnitude between configs), a batched sweep holds several independent images,
and multi-scale must move on to the next scale rather than stop. So this is a small callback of its own.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from nst_lightning.callbacks.multiscale import MultiScale
from nst_lightning.errors import ConfigValueError
from nst_lightning.model.optimizers import ImageLBFGS
from nst_lightning.model.step import step_losses
from nst_lightning.model.style_transfer import report_of


def plateaued(history: list[list[float]], window: int, tolerance: float) -> list[bool]:
    """Per image, whether the best loss fell by less than ``tolerance`` (relative) over the last ``window`` steps.

    ``history`` holds one list of per-image losses per step. The best loss so far (not the last one) is
    compared, so an optimizer whose loss is noisy (Adam) is judged by its progress, not by its noise.
    """
    if len(history) <= window:
        return [False] * (len(history[0]) if history else 0)
    losses = torch.tensor(history, dtype=torch.float64)
    best = losses.cummin(0).values
    before, now = best[-window - 1], best[-1]
    return ((before - now) <= tolerance * before.abs()).tolist()


class StopWhenConverged(pl.Callback):
    """Stop when the total loss improved by less than ``tolerance`` (relative) over the last ``window`` steps.

    ``trainer.max_steps`` stays the cap. With ``MultiScale`` a plateau ends the current scale (the next one
    starts at once) and only a plateau at the final size ends the run; each scale's ``steps_per_scale``
    becomes its cap. In a batched sweep each image is judged on its own loss: an image that converged stops
    counting, and the run ends when all have. The loss of a step is the one its optimizer step saw (the
    L-BFGS closure may be evaluated several times; the step counts once), read from what the step returned
    (``{"loss", "terms"}``: :mod:`nst_lightning.model.step`), tiled or not. The history is checkpointed, so
    a resumed run continues the same test.

    Args:
        tolerance: the relative improvement of the best loss over ``window`` steps below which a run is done.
        window: the number of optimizer steps the improvement is measured over.
        min_steps: never stop before this many steps at a scale.
        check_every: read the losses back and test every this many steps. Each read is a host sync on a
            GPU, so by default the test runs every step on a CPU (where a read is free) and every
            ``trainer.log_every_n_steps`` steps on other accelerators; the losses of the steps in between
            wait on the device and the test sees every one of them, so only the stop can come up to
            ``check_every - 1`` steps late.
    """

    def __init__(self, tolerance: float = 2e-3, window: int = 10, min_steps: int = 0, check_every: int | None = None) -> None:
        if not 0 <= tolerance < 1:
            raise ConfigValueError(f"StopWhenConverged: tolerance must be in [0, 1), not {tolerance!r}")
        if window < 1 or min_steps < 0:
            raise ConfigValueError(f"StopWhenConverged: window must be >= 1 and min_steps >= 0, not {window!r}, {min_steps!r}")
        if check_every is not None and (isinstance(check_every, bool) or check_every < 1):
            raise ConfigValueError(f"StopWhenConverged: check_every must be >= 1, not {check_every!r}")
        self.tolerance = float(tolerance)
        self.window = int(window)
        self.min_steps = int(min_steps)
        self.check_every = check_every
        self._pending: list[Tensor] = []  # per-image losses of the steps not yet read back (on the device)
        self.history: list[list[float]] = []
        self.done: list[bool] = []
        self.shape: tuple[int, ...] | None = None
        self.events: list[str] = []
        self.stopped_step: int | None = None
        self.reason: str | None = None

    # -- per-image losses, as the step returned them ---------------------------------------------

    @staticmethod
    def image_losses(outputs: Any) -> Tensor | None:
        """This step's total loss per image, (N,) on the loss's device (no host sync), from what the step
        returned (:func:`~nst_lightning.model.step.step_losses`); None for a skipped step."""
        losses = step_losses(outputs)
        return None if losses is None else losses.per_image.double()

    def _flush(self) -> None:
        """Read the waiting steps' losses back in one transfer and keep the last ``window + 1`` steps."""
        if self._pending:
            self.history.extend(torch.stack(self._pending).double().cpu().tolist())
            self._pending = []
        self.history = self.history[-(self.window + 1):]

    def interval(self, trainer: pl.Trainer) -> int:
        """How many steps' losses wait on the device between two tests (``check_every``)."""
        if self.check_every is not None:
            return self.check_every
        return 1 if trainer.strategy.root_device.type == "cpu" else max(1, trainer.log_every_n_steps)

    # -- the test -----------------------------------------------------------------------------

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        losses = self.image_losses(outputs)
        if losses is None:
            return
        # The image's shape after the step is the scale the step ran at (MultiScale changes it before a step,
        # in on_train_batch_start), so this does not depend on the order of the callbacks.
        shape = tuple(pl_module.image.shape)
        if shape != self.shape:  # a new scale (or the first step): a fresh history
            self.shape, self.history, self.done = shape, [], [False] * shape[0]
            self._pending = []
        self._pending.append(losses)
        steps_here = self.steps_at_scale(trainer)
        last = trainer.max_steps is not None and trainer.global_step >= trainer.max_steps > 0
        if len(self._pending) < self.interval(trainer) and not last:
            return
        self._flush()
        if steps_here < max(self.min_steps, self.window):
            return
        flat = plateaued(self.history, self.window, self.tolerance)
        newly = [f and not d for d, f in zip(self.done, flat)]
        self.done = [d or f for d, f in zip(self.done, flat)]
        if all(self.done):
            self._converged(trainer, pl_module)
        elif any(newly):  # in a batch: a converged image stops moving (with an optimizer that can freeze it)
            for optimizer in trainer.optimizers:
                if isinstance(optimizer, ImageLBFGS):
                    optimizer.freeze(torch.tensor(self.done))

    def steps_at_scale(self, trainer: pl.Trainer) -> int:
        scales = self.multiscale(trainer)
        return trainer.global_step - (scales.scale_start() if scales is not None else 0)

    @staticmethod
    def multiscale(trainer: pl.Trainer) -> MultiScale | None:
        return next((c for c in trainer.callbacks if isinstance(c, MultiScale)), None)

    def _converged(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = trainer.global_step
        scales = self.multiscale(trainer)
        what = f"the loss fell by less than {self.tolerance:g} over {self.window} steps"
        if scales is not None and not scales.at_final_scale():
            self.events.append(f"{scales.current_size()} px converged at step {step}")
            scales.end_scale(step)
            self.history, self.done = [], [False] * len(self.done)
            return
        self.stopped_step = step
        self.reason = f"converged at step {step} ({what})"
        trainer.should_stop = True
        self._report(pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.reason is None and trainer.max_steps is not None and trainer.global_step >= trainer.max_steps > 0:
            self.reason = f"reached trainer.max_steps ({trainer.max_steps}) before converging"
        self._report(pl_module)

    def _report(self, pl_module: pl.LightningModule) -> None:
        """Tell the run's report why it stopped (the progress bar, the final line and sweeps read it there)."""
        report = report_of(pl_module)
        report.stop_reason, report.stop_short, report.events = self.reason, self.short_reason, list(self.events)

    @property
    def short_reason(self) -> str | None:
        """For the progress bar: ``converged@57``."""
        return None if self.stopped_step is None else f"converged@{self.stopped_step}"

    # -- resume ---------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        self._flush()  # a checkpoint holds every step's loss, so a resumed run continues the same test
        return {"history": self.history, "done": self.done, "shape": self.shape, "events": self.events}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = [list(map(float, row)) for row in state_dict.get("history", [])]
        self.done = list(state_dict.get("done", []))
        shape = state_dict.get("shape")
        self.shape = tuple(shape) if shape is not None else None
        self.events = list(state_dict.get("events", []))


