"""A NaN or Inf loss stops the run with a clear message, and the last good image is kept.

Checking the loss every step would make the host wait for the accelerator every step (``Tensor.item()``).
:class:`NonFiniteGuard` instead folds each step's ``isfinite(loss)`` into a flag on the device, and
reads it (with ``isfinite(image)``) every ``check_every`` steps and at the end of the run, before the
final image is written: one host sync per ``check_every`` steps. At each check that passes it keeps a
copy of the image on the device; so the image it saves is at most ``check_every`` steps old.

It folds the step's per-term faults (:func:`nst_lightning.model.step.term_faults`) the same way, and reads them
only when the check trips: a term whose value went NaN or Inf while the image was finite, or that wrote into
the image it reads, is named (config key, class, plugin) instead of blaming the learning rate.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch

from nst_lightning.errors import ComponentFault, NstLightningError
from nst_lightning.image.io import png_metadata, save_png
from nst_lightning.model.step import NON_FINITE, WROTE_IMAGE, step_losses
from nst_lightning.model.style_transfer import StyleTransfer

CHECK_EVERY = 10


class NonFiniteLossError(NstLightningError):
    """The loss or the image became NaN or Inf."""


class LossTermFault(ComponentFault, NonFiniteLossError):
    """A loss term's value went NaN or Inf while the image was finite, or the term wrote into its image."""


class NonFiniteGuard(pl.Callback):
    """Stops a run whose loss turns NaN or Inf, and saves the last good image to ``image_path``
    (``last_good.png`` in the run's folder: :attr:`nst_lightning.files.RunFiles.last_good`)."""

    def __init__(self, image_path: str | Path, check_every: int = CHECK_EVERY) -> None:
        if check_every < 1:
            raise ValueError(f"check_every must be >= 1, not {check_every}")
        self.image_path = Path(image_path)
        self.check_every = check_every
        self._last_good: torch.Tensor | None = None
        self._last_good_step = 0
        self._bad: torch.Tensor | None = None
        self._faults: dict[str, torch.Tensor] = {}  # per term, (2,) bools folded over the steps (step.term_faults)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_good = pl_module.image.detach().clone()
        self._last_good_step = trainer.global_step
        self._bad = torch.zeros((), dtype=torch.bool, device=pl_module.image.device)
        self._faults = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            self._bad |= ~torch.isfinite(loss.detach()).all()
        losses = step_losses(outputs)
        for name, faults in (losses.faults if losses is not None else {}).items():
            if name in self._faults:
                self._faults[name] |= faults
            else:
                self._faults[name] = faults.clone()
        if trainer.global_step % self.check_every == 0:
            self.check(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check(trainer, pl_module)

    def check(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        image = pl_module.image.detach()
        faulty = torch.stack([f.any() for f in self._faults.values()]).any() if self._faults else False
        if not bool(self._bad | ~torch.isfinite(image).all() | faulty):  # the one host sync
            if self._last_good.shape == image.shape:
                self._last_good.copy_(image)
            else:  # multi-scale changed the image's size
                self._last_good = image.clone()
            self._last_good_step = trainer.global_step
            return
        if trainer.is_global_zero:
            save_png(self._last_good, self.image_path, png_metadata(self._last_good_step))
        fault = self.term_fault(trainer, pl_module)
        if fault is not None:
            raise fault
        raise NonFiniteLossError(
            f"the loss became NaN or Inf after step {self._last_good_step} (found at step {trainer.global_step}); "
            f"the run stopped and the last good image (step {self._last_good_step}) is saved to {self.image_path}. "
            "Lower the learning rate or the loss weights, or use --trainer.precision 32-true"
        )

    def term_fault(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> LossTermFault | None:
        """The error that names the loss terms at fault (read only once the check has tripped), or None: the
        image itself diverged. A write into the image comes first: it may be what made the values NaN."""
        if not isinstance(pl_module, StyleTransfer):
            return None
        faults = {name: [bool(f) for f in value.tolist()] for name, value in self._faults.items()}
        saved = (f"the run stopped and the last good image (step {self._last_good_step}) is saved to "
                 f"{self.image_path}")
        for column, what in ((WROTE_IMAGE, f"wrote into the image it reads (in place, or through .data) by step "
                                           f"{trainer.global_step}; a loss term must leave its image unchanged "
                                           "(it reads its own copy, so the run's image is intact)"),
                             (NON_FINITE, f"its loss became NaN or Inf after step {self._last_good_step} (found "
                                          f"at step {trainer.global_step}) while the image was finite")):
            names = [name for name, flags in faults.items() if flags[column]]
            if names:
                term = pl_module.losses[names[0]]
                also = f" (so did {', '.join(pl_module.losses[n].config_key for n in names[1:])})" if names[1:] else ""
                return LossTermFault(f"{what}{also}; {saved}", term.config_key, type(term))
        return None
