"""The callback that writes the generated image: snapshots during the run and the final PNG."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl

from nst_lightning.errors import ConfigValueError, NstLightningError
from nst_lightning.files import beside, check_writable_directory
from nst_lightning.image.io import png_metadata, save_png


class OutputExistsError(NstLightningError):
    """The output file exists and ``--overwrite`` was not given."""


class ImageWriter(pl.Callback):
    """Writes the final image atomically to ``output`` (PNG, with the run's config in its metadata).

    Args:
        output: the final image's path.
        overwrite: replace an existing ``output``; without it an existing file is an error, found before the run.
        snapshot_every: also write ``<stem>_step<N>.png`` beside ``output`` every N steps (0: never).
        config: YAML text stored in the PNG's ``nst-lightning:config`` text chunk.
        bit_depth: bits per channel of the PNGs written, 8 or 16 (for prints).
    """

    def __init__(
        self, output: str | Path, overwrite: bool = False, snapshot_every: int = 0, config: str | None = None,
        bit_depth: int = 8,
    ) -> None:
        if bit_depth not in (8, 16):
            raise ConfigValueError(f"must be 8 or 16, not {bit_depth!r}", key="--output_bit_depth")
        self.bit_depth = bit_depth
        self.output = Path(output)
        self.overwrite = overwrite
        self.snapshot_every = snapshot_every
        self.config = config
        self.written: Path | None = None

    def check_output(self) -> None:
        if self.output.suffix.lower() != ".png":
            raise ValueError(f"--output {str(self.output)!r} must end in .png")
        if self.output.is_dir():
            raise OutputExistsError(f"--output {str(self.output)!r} is a directory")
        if self.output.exists() and not self.overwrite:
            raise OutputExistsError(f"--output {str(self.output)!r} exists; pass --overwrite true to replace it")
        check_writable_directory(self.output.parent)

    def metadata(self, trainer: pl.Trainer) -> dict[str, str]:
        return png_metadata(trainer.global_step, self.config)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check_output()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        step = trainer.global_step
        if self.snapshot_every and step % self.snapshot_every == 0 and trainer.is_global_zero:
            path = beside(self.output, f"_step{step:05d}.png")
            save_png(pl_module.output_image(), path, self.metadata(trainer), self.bit_depth)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.written = save_png(pl_module.output_image(), self.output, self.metadata(trainer), self.bit_depth)
