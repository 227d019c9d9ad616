"""The callback that writes the generated image: snapshots during the run and the final PNG.

Nothing of the user's is replaced without ``--overwrite true``: every file the run may write (the image and
the files of its run folder, :class:`~nst_lightning.files.RunFiles`) is checked before the run, the output is
claimed for the run (:class:`~nst_lightning.claims.OutputClaim`, from ``setup`` to ``teardown``) so that a
second run with the same ``--output`` is refused at start, and the writes themselves never replace an existing
file. A write that fails (a full disk) names the file, and the image is not lost: it goes to the output if it
was not written yet, else to the system's temporary folder, and the one-line error says where.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning.pytorch as pl

from nst_lightning.claims import OutputClaim
from nst_lightning.errors import ConfigValueError
from nst_lightning.files import OutputExistsError, RunFiles, WriteError
from nst_lightning.image.io import png_metadata, save_png
from nst_lightning.model.style_transfer import report_of

__all__ = ["ImageWriter", "OutputExistsError"]


class ImageWriter(pl.Callback):
    """Writes the final image atomically to ``output`` (PNG, with the run's config in its metadata).

    Args:
        output: the final image's path; the run's other files are named from it (:class:`RunFiles`).
        overwrite: replace an existing ``output`` and the run folder's files; without it an existing file is an
            error, found before the run, and the final write never replaces a file.
        snapshot_every: also write ``<run folder>/step<N>.png`` every N steps (0: never).
        config: YAML text stored in the PNG's ``nst-lightning:config`` text chunk.
        bit_depth: bits per channel of the PNGs written, 8 or 16 (for prints).
        ckpt_path: the checkpoint the run resumes from (a resume of this run continues its own log).
    """

    def __init__(
        self, output: str | Path, overwrite: bool = False, snapshot_every: int = 0, config: str | None = None,
        bit_depth: int = 8, ckpt_path: str | Path | None = None,
    ) -> None:
        if bit_depth not in (8, 16):
            raise ConfigValueError(f"must be 8 or 16, not {bit_depth!r}", key="--output_bit_depth")
        self.bit_depth = bit_depth
        self.files = RunFiles(output)
        self.output = self.files.output
        self.overwrite = overwrite
        self.snapshot_every = snapshot_every
        self.config = config
        self.ckpt_path = ckpt_path
        self.written: Path | None = None
        self.claim = OutputClaim(self.output, self.files.lock)

    def check_output(self, logging: bool = True) -> None:
        """Refuse the run now if it would replace a file without ``--overwrite``, or another run is writing it."""
        self.files.check(self.overwrite, self.ckpt_path, logging)
        self.claim.check()

    def check_snapshots(self, trainer: pl.Trainer) -> None:
        """Refuse the run before its first step if a snapshot it would write exists (after a resume, from its step on)."""
        if self.overwrite:
            return
        snapshots = self.files.existing_snapshots(self.snapshot_every, trainer.max_steps, trainer.global_step)
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

    def _write(self, pl_module: pl.LightningModule, path: Path, trainer: pl.Trainer, replace: bool) -> Path:
        return save_png(pl_module.output_image(), path, self.metadata(trainer, pl_module), replace=replace,
                        bit_depth=self.bit_depth)

    def _save(self, pl_module: pl.LightningModule, path: Path, trainer: pl.Trainer) -> Path:
        try:
            return self._write(pl_module, path, trainer, self.overwrite)
        except FileExistsError:
            # Someone else created the file during the run: keep theirs, and this run's image in the run's folder.
            kept = self._write(pl_module, self.files.kept_image(), trainer, False)
            raise OutputExistsError(
                f"{str(path)!r} appeared during the run and was not replaced; this run's image is saved to {str(kept)!r}"
            ) from None

    def rescue(self, trainer: pl.Trainer, pl_module: pl.LightningModule, failure: WriteError | None) -> Path | None:
        """After a failed write, save the image where it can go: ``--output`` if the run has not written it (and
        may), else the system's temporary folder. Records the place (or why there was none) in ``failure``."""
        places = [self.files.fallback_image()]
        if self.written is None and (failure is None or failure.path != self.output):
            places.insert(0, self.output)
        reasons = []
        for place in places:
            try:
                path = self._write(pl_module, place, trainer, self.overwrite or place != self.output)
            except (OSError, RuntimeError) as exc:  # OSError includes WriteError and FileExistsError
                reasons.append(f"{place}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}")
                continue
            if failure is not None:
                failure.rescued = path
            return path
        if failure is not None:
            failure.rescue_failed = "; ".join(reasons)
        return None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Claim the output for the run: the first thing ``fit`` does, released in ``teardown`` or ``on_exception``."""
        self.claim.acquire()

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Again, now that the claim is held (the log files, which this run's logger has begun, were checked before)
        self.check_output(logging=False)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check_snapshots(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.snapshot_every and step % self.snapshot_every == 0 and trainer.is_global_zero:
            self._write(pl_module, self.files.snapshot(step), trainer, True)  # checked at the start of the run

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        try:
            self.written = self._save(pl_module, self.output, trainer)
        except WriteError as failure:
            self.rescue(trainer, pl_module, failure)
            raise

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # A disk error elsewhere (a snapshot, the checkpoint, the log): the image is not lost with it.
        if isinstance(exception, OSError) and not isinstance(exception, FileExistsError) and trainer.is_global_zero:
            failure = exception if isinstance(exception, WriteError) else None
            if (failure is None or failure.rescued is None and failure.rescue_failed is None) and pl_module.image is not None:
                saved = self.rescue(trainer, pl_module, failure)
                if failure is None and saved is not None:  # another writer's error does not say where the image went
                    print(f"nst-lightning: the run's image is saved to {saved}", file=sys.stderr, flush=True)
        self.release()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.release()
