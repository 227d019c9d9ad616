"""The callback that writes the generated image: snapshots during the run and the final PNG."""

from __future__ import annotations

import tempfile
from pathlib import Path

import lightning.pytorch as pl

from .images import save_png


class OutputExistsError(Exception):
    """The output file exists and ``--overwrite`` was not given."""


class OutputNotWritableError(Exception):
    """The output's directory cannot be created or written to."""


def beside(output: str | Path, suffix: str) -> Path:
    """``<output stem><suffix>`` in ``output``'s directory: the only way names are built from ``--output``.

    The suffix is ours (``_step00010.png``, ``_interrupted.ckpt``); it may not name another directory,
    so a derived file can never land outside the output's directory.
    """
    output = Path(output)
    if "/" in suffix or "\\" in suffix or ".." in suffix:
        raise ValueError(f"file name suffix {suffix!r} may not contain a path")
    path = output.with_name(f"{output.stem}{suffix}")
    assert path.parent == output.parent
    return path


def check_writable_directory(directory: Path, option: str = "--output") -> None:
    """Fail now, not after the run, if ``directory`` cannot be created or written to.

    Nothing is created: the nearest existing ancestor must be a directory in which a file can be made.
    """
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputNotWritableError(f"{option} directory {str(directory)!r} cannot be created: {str(existing)!r} is a file")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise OutputNotWritableError(
            f"{option} directory {str(directory)!r} is not writable ({exc.strerror or exc})"
        ) from None


class ImageWriter(pl.Callback):
    """Writes the final image atomically to ``output`` (PNG, with the run's config in its metadata).

    Args:
        output: the final image's path.
        overwrite: replace an existing ``output``; without it an existing file is an error, found before the run.
        snapshot_every: also write ``<stem>_step<N>.png`` beside ``output`` every N steps (0: never).
        config: YAML text stored in the PNG's ``nst-lightning:config`` text chunk.
    """

    def __init__(
        self, output: str | Path, overwrite: bool = False, snapshot_every: int = 0, config: str | None = None
    ) -> None:
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
        meta = {"Software": "nst-lightning", "nst-lightning:step": str(trainer.global_step)}
        if self.config:
            meta["nst-lightning:config"] = self.config
        return meta

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check_output()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        step = trainer.global_step
        if self.snapshot_every and step % self.snapshot_every == 0 and trainer.is_global_zero:
            path = beside(self.output, f"_step{step:05d}.png")
            save_png(pl_module.image, path, self.metadata(trainer))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.written = save_png(pl_module.image, self.output, self.metadata(trainer))
