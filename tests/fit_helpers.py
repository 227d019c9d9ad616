"""Running a small style transfer in-process, recording the loss of every step."""

from __future__ import annotations

import lightning.pytorch as pl

from nst_lightning.data import StyleTransferData
from nst_lightning.model.style_transfer import StyleTransfer

from .conftest import ASSETS

SCREAM = ASSETS / "the_scream.jpg"
MASK_LEFT = ASSETS / "mask_left.png"
MASK_RIGHT = ASSETS / "mask_right.png"


class LossRecorder(pl.Callback):
    """(image height and width, total loss) of every step; the loss is the one the step started from."""

    def __init__(self) -> None:
        self.rows: list[tuple[tuple[int, int], float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.rows.append((tuple(pl_module.image.shape[-2:]), float(outputs["loss"])))


def fit(model: StyleTransfer, data: StyleTransferData, steps: int, *callbacks: pl.Callback) -> StyleTransfer:
    pl.seed_everything(0, verbose=False)
    trainer = pl.Trainer(
        max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=list(callbacks), default_root_dir=None,
    )
    trainer.fit(model, data)
    return model
