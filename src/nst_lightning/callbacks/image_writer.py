"""The callback that writes the generated image: snapshots during the run and the final PNG.

Nothing of the user's is replaced without ``--overwrite true``: the output (and, with
``--snapshot_every``, every snapshot the run would write) is checked before the run, the output is
claimed for the run (:class:`~nst_lightning.claims.OutputClaim`, from ``setup`` to ``teardown``) so that
a second run with the same ``--output`` is refused at start, and the writes themselves never replace an existing file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import lightning.pytorch as pl

from nst_lightning.claims import OutputClaim
from nst_lightning.errors import ConfigValueError, NstLightningError
from nst_lightning.files import beside, check_name_lengths, check_writable_directory
from nst_lightning.image.io import png_metadata, save_png
from nst_lightning.model.style_transfer import report_of


class OutputExistsError(NstLightningError):
    """The output file exists and ``--overwrite`` was not given."""


def snapshot_name(output: Path, step: int) -> Path:
    return beside(output, f"_step{step:05d}.png")


def existing_snapshots(output: Path, every: int, max_steps: int = -1, after: int = 0) -> list[Path]:
    """The files in ``output``'s directory that a run snapshotting every ``every`` steps from step ``after``
    to ``max_steps`` (-1: no limit) would write, in step order."""
    if every <= 0 or not output.parent.is_dir():
        return []
    pattern = re.compile(re.escape(output.stem) + r"_step(\d{5,})\.png")
    found = []
    for entry in os.scandir(output.parent):
        match = pattern.fullmatch(entry.name)
        if match:
            step = int(match[1])
            written = step > after and step % every == 0 and (max_steps < 0 or step <= max_steps)
            if written and entry.name == snapshot_name(output, step).name:
                found.append((step, Path(entry.path)))
    return [path for _, path in sorted(found)]


class ImageWriter(pl.Callback):
    """Writes the final image atomically to ``output`` (PNG, with the run's config in its metadata).

    Args:
        output: the final image's path.
        overwrite: replace an existing ``output`` and snapshots; without it an existing file is an error,
            found before the run, and the final write never replaces a file.
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
        self.claim = OutputClaim(self.output)

    def check_output(self) -> None:
        """Refuse the run now if it would replace ``output`` without ``--overwrite``, or another run is writing it."""
        if self.output.suffix.lower() != ".png":
            raise ValueError(f"--output {str(self.output)!r} must end in .png")
        if self.output.is_dir():
            raise OutputExistsError(f"--output {str(self.output)!r} is a directory")
        if self.output.exists() and not self.overwrite:
            raise OutputExistsError(f"--output {str(self.output)!r} exists; pass --overwrite true to replace it")
        check_name_lengths(self.output)  # the lock, temporary, snapshot and interrupt names, before the run
        check_writable_directory(self.output.parent)
        self.claim.check()

    def check_snapshots(self, trainer: pl.Trainer) -> None:
        """Refuse the run before its first step if a snapshot it would write exists (after a resume, from its step on)."""
        if self.overwrite:
            return
        snapshots = existing_snapshots(self.output, self.snapshot_every, trainer.max_steps, trainer.global_step)
        if snapshots:
            raise OutputExistsError(
                f"--snapshot_every {self.snapshot_every} would replace {len(snapshots)} snapshot(s) of an earlier run, "
                f"the first {str(snapshots[0])!r}; pass --overwrite true to replace them, or choose another --output"
            )

    def release(self) -> None:
        """Give up the claim on the output (at the end of the run, on every path out of it)."""
        self.claim.release()

    def metadata(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, str]:
        """The PNG's text chunks: the step and config, and what the run's report holds (QualityReport's scores,
        written there before this callback's ``on_train_end``: the CLI puts it first)."""
        return {**png_metadata(trainer.global_step, self.config), **report_of(pl_module).metadata}

    def _save(self, pl_module: pl.LightningModule, path: Path, trainer: pl.Trainer) -> Path:
        try:
            return save_png(pl_module.output_image(), path, self.metadata(trainer, pl_module), replace=self.overwrite,
                            bit_depth=self.bit_depth)
        except FileExistsError:
            # Someone else created the file during the run: keep theirs, and this run's image beside it.
            kept = save_png(pl_module.output_image(), beside(path, f"_pid{os.getpid()}.png"), self.metadata(trainer, pl_module),
                            bit_depth=self.bit_depth)
            raise OutputExistsError(
                f"{str(path)!r} appeared during the run and was not replaced; this run's image is saved to {str(kept)!r}"
            ) from None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Claim the output for the run: the first thing ``fit`` does, released in ``teardown`` or ``on_exception``."""
        self.claim.acquire()

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check_output()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check_snapshots(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.snapshot_every and step % self.snapshot_every == 0 and trainer.is_global_zero:
            self._save(pl_module, snapshot_name(self.output, step), trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.written = self._save(pl_module, self.output, trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.release()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.release()
