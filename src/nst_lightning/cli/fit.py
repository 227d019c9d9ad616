"""``nst-lightning fit``: the LightningCLI that builds one run (model, data, trainer and callbacks) from configs."""

from __future__ import annotations

from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from nst_lightning.callbacks.image_writer import ImageWriter
from nst_lightning.callbacks.interrupt import InterruptSaver
from nst_lightning.callbacks.multiscale import MultiScale  # noqa: F401 - imported so configs can name the callback ``MultiScale``
from nst_lightning.callbacks.nonfinite_guard import NonFiniteGuard
from nst_lightning.callbacks.progress_bar import LossProgressBar
from nst_lightning.cli.messages import filter_known_warnings
from nst_lightning.data import StyleTransferData
from nst_lightning.errors import ConfigError
from nst_lightning.heap import release_freed_memory
from nst_lightning.model.style_transfer import StyleTransfer

DESCRIPTION = (
    "Neural style transfer (Gatys et al.) with Lightning. "
    "'nst-lightning fit --config configs/default.yaml' runs the default; "
    "'nst-lightning plugins' lists the installed plugins and their components; "
    "'nst-lightning sweep --config ... --sweep ...' runs a parameter sweep; "
    "add --debug for a traceback on errors."
)


TRAINER_DEFAULTS = {
    "max_steps": 200,
    "log_every_n_steps": 10,
    "benchmark": True,  # cudnn.benchmark: the image size is fixed for the whole run
}


class SaveConfigToLogDir(SaveConfigCallback):
    """Saves ``config.yaml`` beside the logs, and nowhere when logging is off.

    Lightning's own callback falls back to the working directory without a logger, where it could
    replace a user's file; the PNG's metadata holds the config in any case.
    """

    def setup(self, trainer, pl_module, stage: str) -> None:  # noqa: ANN001
        if trainer.logger is not None:
            super().setup(trainer, pl_module, stage)


class StyleTransferCLI(LightningCLI):
    """LightningCLI with ``--output``, ``--overwrite`` and ``--snapshot_every`` for the image writer."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Only ``fit``: style transfer optimizes; there is nothing to validate, test or predict."""
        return {"fit": {"model", "train_dataloaders", "val_dataloaders", "datamodule"}}

    def init_parser(self, **kwargs):  # noqa: ANN003, ANN201
        kwargs.setdefault("description", DESCRIPTION)
        # Parse errors are raised (not printed with the usage), so that main() reports them on one line.
        kwargs.setdefault("exit_on_error", False)
        return super().init_parser(**kwargs)

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--output", type=str, default="outputs/stylized.png", help="Where the final PNG goes.")
        parser.add_argument("--overwrite", type=bool, default=False, help="Replace an existing output file.")
        parser.add_argument(
            "--snapshot_every", type=int, default=0, help="Write a snapshot PNG every N steps (0: never)."
        )
        parser.add_argument(
            "--output_bit_depth", type=int, default=8, help="Bits per channel of the PNGs: 8, or 16 for prints."
        )

    def instantiate_trainer(self, **kwargs):  # noqa: ANN003, ANN201
        config = self.config[self.subcommand] if self.subcommand else self.config
        init = self.config_init[self.subcommand] if self.subcommand else self.config_init
        writer = ImageWriter(
            init["output"],
            overwrite=init["overwrite"],
            snapshot_every=init["snapshot_every"],
            config=self._parser(self.subcommand).dump(config),
            bit_depth=init["output_bit_depth"],
        )
        writer.check_output()
        self.image_writer = writer
        trainer_config = self._get(self.config_init, "trainer", default={})
        user = trainer_config.get("callbacks") or []
        user = user if isinstance(user, list) else [user]
        # In this order: a NaN is found before the final image is written.
        guards = [NonFiniteGuard(writer.output), InterruptSaver(writer.output)]
        # The losses in the progress bar without a host sync per step, unless the bar is off or configured.
        bar_on = trainer_config.get("enable_progress_bar") is not False
        bar = [LossProgressBar()] if bar_on and not any(isinstance(c, ProgressBar) for c in user) else []
        return super().instantiate_trainer(callbacks=[*user, *bar, *guards, writer], **kwargs)

    def before_fit(self) -> None:
        if self.trainer.world_size > 1:
            raise ConfigError(
                f"--trainer.devices gives {self.trainer.world_size} processes, but one style transfer optimizes one "
                "image: data parallelism would average the gradients of identical copies. Use --trainer.devices 1, "
                "and 'nst-lightning sweep' to run many settings on many devices"
            )

    def after_fit(self) -> None:
        if self.image_writer.written is not None:
            print(f"Stylized image written to {self.image_writer.written}")
        release_freed_memory()


def build_cli(args: list[str] | None = None, run: bool = True) -> StyleTransferCLI:
    filter_known_warnings()
    return StyleTransferCLI(
        StyleTransfer,
        StyleTransferData,
        args=args,
        run=run,
        trainer_defaults=TRAINER_DEFAULTS,
        save_config_callback=SaveConfigToLogDir,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )
