"""Ctrl-C and SIGTERM during a run: finish the step, save the image and a checkpoint, and say where they are.

The first SIGINT or SIGTERM only sets a flag; at the end of the current optimizer step
:class:`InterruptSaver` writes ``interrupted.png`` and ``interrupted.ckpt`` in the run's folder
(``outputs/default.run/`` for ``--output outputs/default.png``: the image, the optimizer state and the step
count, atomically) and stops the run with :class:`RunInterrupted`. Saving at a step boundary keeps the image
and the optimizer state consistent, so ``--ckpt_path outputs/default.run/interrupted.ckpt`` continues exactly
where the run stopped, in the same log.
A second signal stops at once: then only the image is saved.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import lightning.pytorch as pl

from nst_lightning.errors import Interrupted, NstLightningError
from nst_lightning.files import RunFiles, atomic_path
from nst_lightning.image.io import png_metadata, save_png

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(NstLightningError):
    """A run stopped by a signal after saving its image and checkpoint."""

    def __init__(self, signum: int, step: int, image: Path, checkpoint: Path) -> None:
        self.signum = signum
        self.exit_code = 128 + signum  # as a shell reports a process ended by the signal
        name = signal.Signals(signum).name
        super().__init__(
            f"interrupted by {name} after step {step}: image saved to {image}, checkpoint to {checkpoint}; "
            f"to resume, run the same command with --ckpt_path {checkpoint}"
        )


def _say(message: str) -> None:
    print(f"nst-lightning: {message}", file=sys.stderr, flush=True)


class InterruptSaver(pl.Callback):
    """Turns SIGINT and SIGTERM into a clean stop that loses nothing (see the module's docstring)."""

    def __init__(self, files: RunFiles) -> None:
        self.image_path = files.interrupted_image
        self.checkpoint_path = files.interrupted_checkpoint
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    # -- signals ------------------------------------------------------------------------------

    def _request_stop(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum
        _say(f"{signal.Signals(signum).name} received: saving after this step (send it again to stop at once)")

    def _install(self) -> None:
        # Lightning registers its SIGTERM handler before on_train_start; ours replaces it for the run,
        # and Lightning's teardown puts back the handlers that were there before the run.
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in HANDLED_SIGNALS:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._request_stop)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    # -- hooks --------------------------------------------------------------------------------

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.signum = None
        self._install()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        signum = self.signum if self.signum is not None else (signal.SIGTERM if trainer.received_sigterm else None)
        if signum is None or 0 < trainer.max_steps <= trainer.global_step:
            return  # no signal, or that was the last step anyway: the run finishes and writes its output
        self._restore()
        if trainer.is_global_zero:
            save_png(pl_module.output_image(), self.image_path, png_metadata(trainer.global_step))
        self._save_checkpoint(trainer)
        raise RunInterrupted(int(signum), trainer.global_step, self.image_path, self.checkpoint_path)

    def _save_checkpoint(self, trainer: pl.Trainer) -> None:
        """``trainer.save_checkpoint`` to a temporary file, then a rename: an old checkpoint is never half-replaced."""
        with atomic_path(self.checkpoint_path) as tmp:
            trainer.save_checkpoint(tmp, weights_only=False)  # the optimizer state too

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()
        if isinstance(exception, (Interrupted, KeyboardInterrupt)) and pl_module.image is not None and trainer.is_global_zero:
            save_png(pl_module.output_image(), self.image_path, png_metadata(trainer.global_step))
            _say(f"stopped at once: image saved to {self.image_path} (no checkpoint)")

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore()
