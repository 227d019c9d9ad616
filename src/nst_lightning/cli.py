"""The command line: ``nst-lightning fit --config ...`` through LightningCLI, plus ``nst-lightning plugins``.

``main()`` loads the plugins first, so that LightningCLI's parser sees every
registered class and configs can name them by their short class names.
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings

import yaml
from jsonargparse import ArgumentError
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from .data import StyleTransferData
from .component_names import UnknownComponentError, check_component_names
from .errors import one_line
from .heap import release_freed_memory
from .image_writer import ImageWriter
from .interrupt import InterruptSaver, RunInterrupted
from .module import StyleTransfer
from .multiscale import MultiScale  # noqa: F401 - imported so configs can name the callback ``MultiScale``
from .nonfinite import NonFiniteGuard
from .plugins import load_plugins
from .progress_bar import LossProgressBar

DEBUG_ENV = "NST_LIGHTNING_DEBUG"
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


def _filter_known_warnings() -> None:
    """Silence warnings that do not apply to style transfer, each named precisely."""
    # There is no data to load: the image is the model's parameter.
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    # lightning 2.6 with jsonargparse >= 4.49: deprecation notices about LightningCLI's own calls
    # (add_instantiator, instantiate_classes, skip_none). Only those raised from lightning's cli module.
    for message in (r"(?s).*deprecated in v4\.49\.0", r"(?s).*only one JsonargparseDeprecationWarning"):
        warnings.filterwarnings("ignore", message=message, module=r"lightning\.pytorch\.cli")
    # lightning 2.6 with torch >= 2.10: lightning's own use of a deprecated torch pytree API.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    # Without tensorboard Lightning logs to CSV, as README.md says; its notice about tensorboardX adds nothing.
    warnings.filterwarnings("ignore", message=r"Starting from v1\.9\.0, `tensorboardX` has been removed")
    # main() passes the arguments itself (after taking out --debug).
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended to run from within Python")
    # Resuming (--ckpt_path) from a checkpoint saved mid-epoch: every batch is the same empty item and the
    # step count is restored, so restarting the epoch's data loader changes nothing.
    warnings.filterwarnings("ignore", message=r"(?s).*resuming from a checkpoint that ended before the epoch ended")


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

    def instantiate_trainer(self, **kwargs):  # noqa: ANN003, ANN201
        config = self.config[self.subcommand] if self.subcommand else self.config
        init = self.config_init[self.subcommand] if self.subcommand else self.config_init
        writer = ImageWriter(
            init["output"],
            overwrite=init["overwrite"],
            snapshot_every=init["snapshot_every"],
            config=self._parser(self.subcommand).dump(config),
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
            raise ValueError(
                f"--trainer.devices gives {self.trainer.world_size} processes, but one style transfer optimizes one "
                "image: data parallelism would average the gradients of identical copies. Use --trainer.devices 1, "
                "and 'nst-lightning sweep' to run many settings on many devices"
            )

    def after_fit(self) -> None:
        if self.image_writer.written is not None:
            print(f"Stylized image written to {self.image_writer.written}")
        release_freed_memory()


def build_cli(args: list[str] | None = None, run: bool = True) -> StyleTransferCLI:
    _filter_known_warnings()
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


def _error(message: str) -> None:
    print(f"nst-lightning: error: {one_line(message)}", file=sys.stderr)


class ConfigFileError(ValueError):
    """A ``--config`` file that is not safe, valid YAML."""


def check_config_files(argv: list[str]) -> None:
    """Each ``--config`` file is YAML that ``yaml.safe_load`` accepts; the error names the file.

    jsonargparse safe-loads configs too (a ``!!python/object`` tag is refused), but its message does
    not say which file; this check runs first so that it does.
    """
    paths = [b for a, b in zip(argv, argv[1:]) if a == "--config"]
    paths += [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    for path in paths:
        if not os.path.isfile(path):
            continue  # jsonargparse reports it (or it is inline YAML)
        try:
            with open(path, encoding="utf-8") as f:
                yaml.safe_load(f)
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigFileError(f"config {path!r} is not valid YAML: {one_line(str(exc))}") from None


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``nst-lightning`` command."""
    argv = list(sys.argv[1:] if args is None else args)
    debug = "--debug" in argv or bool(os.environ.get(DEBUG_ENV))
    argv = [a for a in argv if a != "--debug"]
    _filter_known_warnings()
    try:
        if argv[:1] == ["plugins"]:
            from .plugin_listing import print_plugins

            print_plugins(load_plugins())
            return
        if argv[:1] == ["sweep"]:
            from .sweep_run import sweep_main

            check_config_files(argv)
            load_plugins()
            sweep_main(argv[1:])
            return
        check_config_files(argv)
        check_component_names(argv, load_plugins().registry)
        build_cli(argv)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        _error("interrupted")
        raise SystemExit(130) from None
    except RunInterrupted as exc:
        print(f"nst-lightning: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except Exception as exc:  # noqa: BLE001 - one line for the user, a traceback on request
        if debug:
            traceback.print_exc()
        _error(f"{exc}" if str(exc) else type(exc).__name__)
        # 2 for a command line or config the parser refuses (as argparse), 1 for everything else
        raise SystemExit(2 if isinstance(exc, (ArgumentError, ConfigFileError, UnknownComponentError)) else 1) from None


if __name__ == "__main__":  # pragma: no cover
    main()

