"""``nst-lightning fit``: the LightningCLI that builds one run (model, data, trainer and callbacks) from configs."""

from __future__ import annotations

import difflib
import inspect
import os
import re
import sys
from typing import Any

import yaml
from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from nst_lightning.callbacks.convergence import StopWhenConverged  # noqa: F401 - so configs can name ``StopWhenConverged``
from nst_lightning.callbacks.image_writer import ImageWriter
from nst_lightning.callbacks.interrupt import InterruptSaver
from nst_lightning.callbacks.multiscale import MultiScale  # noqa: F401 - imported so configs can name the callback ``MultiScale``
from nst_lightning.callbacks.nonfinite_guard import NonFiniteGuard
from nst_lightning.callbacks.progress_bar import progress_for
from nst_lightning.callbacks.quality import QualityReport, run_summary
from nst_lightning.callbacks.video import VideoFrames, VideoWriter  # noqa: F401 - so configs can name ``VideoFrames``
from nst_lightning.cli.argv_checks import resolve_configs
from nst_lightning.cli.compat import CompatCLI
from nst_lightning.cli.memory_check import check_memory
from nst_lightning.cli.messages import (
    VERBOSE_ENV,
    filter_known_warnings,
    filter_lightning_banners,
    filter_lightning_tips,
)
from nst_lightning.cli.run_checks import check_checkpoint, check_max_steps, check_output_is_no_input
from nst_lightning.config_tree import get_key
from nst_lightning.data import StyleTransferData
from nst_lightning.errors import ConfigError, ConfigValueError
from nst_lightning.files import RunFiles, atomic_path
from nst_lightning.heap import release_freed_memory
from nst_lightning.model.style_transfer import (
    DEFAULT_BACKBONE,
    DEFAULT_LOSSES,
    DEFAULT_OPTIMIZER,
    StyleTransfer,
)
from nst_lightning.video_data import VideoData

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
    "enable_model_summary": False,  # a table of one parameter and a frozen backbone; --trainer.enable_model_summary true
}


def component_config(cls: type) -> Namespace:
    """``class_path`` and ``init_args`` of ``cls`` with its default arguments (an optimizer's without ``params``)."""
    params = inspect.signature(cls.__init__).parameters.values()
    init_args = {
        p.name: p.default
        for p in params
        if p.name not in ("self", "params") and p.default is not inspect.Parameter.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    return Namespace(class_path=f"{cls.__module__}.{cls.__qualname__}", init_args=Namespace(**init_args))


class StyleTransferParser(LightningArgumentParser):
    """Dumps configs (``--print_config``, the PNG's metadata) with every component that runs spelled out.

    The model's backbone, losses and optimizer default to None, and the model builds its defaults in
    code (a parser default would lend its init args to another class a config switches to). A dumped
    config therefore names them here, so that it shows, and re-runs, exactly what ran.
    """

    def error(self, message: str, ex: Exception | None = None):
        """jsonargparse's error, with a did-you-mean for a misspelt key (``--data.sizee`` → ``--data.size``)."""
        unknown = re.search(r"[Uu]nrecognized arguments: --([\w.\-]+)", message)
        if unknown and "did you mean" not in message:
            try:
                known = list(self.get_defaults().keys())
            except Exception:  # noqa: BLE001 - the suggestion is a courtesy; the error stands without it
                known = []
            close = difflib.get_close_matches(unknown[1], known, n=1, cutoff=0.75)
            if close:
                message = f"{message.rstrip()} (did you mean --{close[0]}?)"
        return super().error(message, ex)

    def dump(self, cfg: Namespace, *args: Any, **kwargs: Any) -> str:
        model = cfg.get("model") if isinstance(cfg, Namespace) else None
        if isinstance(model, Namespace):
            cfg = cfg.clone()
            defaults = {
                "backbone": lambda: component_config(DEFAULT_BACKBONE),
                "losses": lambda: {name: component_config(cls) for name, cls in DEFAULT_LOSSES.items()},
                "optimizer": lambda: component_config(DEFAULT_OPTIMIZER),
            }
            for key, default in defaults.items():
                if cfg.get(f"model.{key}") is None:
                    cfg[f"model.{key}"] = default()
        return super().dump(cfg, *args, **kwargs)


class SaveConfigToLogDir(SaveConfigCallback):
    """Saves ``config.yaml`` beside the logs, and nowhere when logging is off.

    Lightning's own callback falls back to the working directory without a logger, where it could
    replace a user's file; the PNG's metadata holds the config in any case.
    """

    def setup(self, trainer, pl_module, stage: str) -> None:
        if trainer.logger is not None:
            super().setup(trainer, pl_module, stage)


class StyleTransferCLI(CompatCLI):
    """LightningCLI with ``--output``, ``--overwrite`` and ``--snapshot_every`` for the image writer."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Only ``fit``: style transfer optimizes; there is nothing to validate, test or predict."""
        return {"fit": {"model", "train_dataloaders", "val_dataloaders", "datamodule"}}

    def init_parser(self, **kwargs):
        kwargs.setdefault("description", DESCRIPTION)
        # Parse errors are raised (not printed with the usage), so that main() reports them on one line.
        kwargs.setdefault("exit_on_error", False)
        return super().init_parser(**kwargs)

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--output", type=str, default="outputs/stylized.png", help="Where the final PNG goes.")
        parser.add_argument("--overwrite", type=bool, default=False, help="Replace an existing output file.")
        parser.add_argument(
            "--snapshot_every", type=int, default=0, help="Write a snapshot PNG every N steps (0: never)."
        )
        parser.add_argument(
            "--score_every", type=int, default=0, help="Also log the quality metrics every N steps (0: at the end only)."
        )
        parser.add_argument(
            "--output_bit_depth", type=int, default=8, help="Bits per channel of the PNGs: 8, or 16 for prints."
        )

    def instantiate_trainer(self, **kwargs):
        config = self.config[self.subcommand] if self.subcommand else self.config
        init = self.config_init[self.subcommand] if self.subcommand else self.config_init
        # A clip's frames go to a video file or a folder of PNGs (callbacks/video.py), an image's to one PNG.
        writer_class = VideoWriter if isinstance(self.datamodule, VideoData) else ImageWriter
        writer = writer_class(
            init["output"],
            overwrite=init["overwrite"],
            snapshot_every=init["snapshot_every"],
            config=self._parser(self.subcommand).dump(config),
            bit_depth=init["output_bit_depth"],
            ckpt_path=init.get("ckpt_path"),
        )
        self.image_writer = writer
        trainer_config = self._get(self.config_init, "trainer", default={})
        check_max_steps(trainer_config.get("max_steps"))  # before Lightning's Trainer refuses it without the key
        user = trainer_config.get("callbacks") or []
        user = user if isinstance(user, list) else [user]
        guards = [NonFiniteGuard(writer.files.last_good), InterruptSaver(writer.files)]
        # The losses in the progress bar without a host sync per step, unless the bar is off or configured.
        bar_on = trainer_config.get("enable_progress_bar") is not False
        bar = [progress_for(sys.stderr)] if bar_on and not any(isinstance(c, ProgressBar) for c in user) else []
        quality = QualityReport(every_n_steps=init["score_every"], image_every=init["snapshot_every"])
        trainer = super().instantiate_trainer(callbacks=run_callbacks(user, bar, guards, quality, writer), **kwargs)
        into_run_folder(trainer, writer.files, default_logger=trainer_config.get("logger") in (None, True),
                        default_checkpoint=not any(isinstance(c, ModelCheckpoint) for c in user))
        return trainer

    def check_before_checkpoint_is_read(self) -> None:
        # Lightning reads the checkpoint's hyperparameters right after parsing: check the file first.
        if self.config.get("subcommand"):
            check_checkpoint(self.config[self.config.subcommand].get("ckpt_path"))

    def seed_error(self, exc: ValueError) -> BaseException:
        # out of numpy's range: Lightning's message does not name the key
        return ConfigValueError(str(exc), key="seed_everything")

    def after_subcommand(self) -> None:
        self.image_writer.release()  # the output's claim, on every way out of the run

    def before_fit(self) -> None:
        """The checks that need the built run, before anything large is allocated."""
        check_max_steps(self.trainer.max_steps)
        config = self.config[self.subcommand] if self.subcommand else self.config
        for key in ("snapshot_every", "score_every"):
            value = config.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigValueError(f"must be a whole number of steps >= 0 (0: never), not {value!r}", key=f"--{key}")
        if self.trainer.world_size > 1:
            raise ConfigError(
                f"--trainer.devices gives {self.trainer.world_size} processes, but one style transfer optimizes one "
                "image: data parallelism would average the gradients of identical copies. Use --trainer.devices 1, "
                "and 'nst-lightning sweep' to run many settings on many devices"
            )
        if isinstance(self.datamodule, StyleTransferData):
            self.datamodule.check_inputs()  # a missing input is reported first, then an output that exists
            check_output_is_no_input(self.image_writer.output, self.datamodule.input_files())
        writer = self.image_writer
        writer.check_output(self.trainer.logger is not None)
        if writer.overwrite and self.trainer.logger is not None:
            writer.files.clear_earlier_log(writer.ckpt_path)  # a new run's log does not mix with an earlier one's
        if isinstance(self.datamodule, VideoData) and self.datamodule.images_per_step > 1:
            # data.parallel chunks of the clip as one batch of images, each image weighted as if alone.
            self.model.set_sample_weights([{}] * self.datamodule.images_per_step)
        check_memory(self.model, self.datamodule, self.trainer.strategy.root_device)
        if self.trainer.logger is not None:  # TensorBoard's HPARAMS tab, the CSV logger's hparams.yaml
            config = self.config[self.subcommand] if self.subcommand else self.config
            self.trainer.logger.log_hyperparams(flat_hyperparameters(config.as_dict()))

    def after_fit(self) -> None:
        if self.image_writer.written is not None:
            writer = self.image_writer
            what = ("frames" if writer.folder else "video") if isinstance(writer, VideoWriter) else "image"
            print(f"Stylized {what} written to {self.image_writer.written}{run_summary(self.model)}{self.run_files()}")
            self.remove_consumed_interrupt_files()
        release_freed_memory()

    def run_files(self) -> str:
        """For the final line: where the logs and the checkpoint went (nothing when neither was written)."""
        files = self.image_writer.files
        parts = []
        if self.trainer.logger is not None and self.trainer.log_dir:
            parts.append(f"logs: {files.spelled(self.trainer.log_dir)}")
        checkpoint = self.trainer.checkpoint_callback
        path = checkpoint.last_model_path or checkpoint.best_model_path if checkpoint is not None else ""
        if path:
            parts.append(f"checkpoint: {files.spelled(path)}")
        return f"; {'; '.join(parts)}" if parts else ""

    def remove_consumed_interrupt_files(self) -> None:
        """A run resumed from its ``interrupted.ckpt`` that finished removes that checkpoint and its image."""
        self.image_writer.files.remove_consumed(self.image_writer.ckpt_path)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, writing through a temporary file and a rename: a full disk leaves no partial
    ``last.ckpt`` and its error names the file (:class:`~nst_lightning.files.WriteError`)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if "://" in str(path):  # a remote file system: Lightning's own writer
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)


def into_run_folder(trainer, files: RunFiles, default_logger: bool, default_checkpoint: bool) -> None:
    """Lightning's default logger and checkpoint write into the run's folder (``outputs/default.run/``: the log
    itself, not a ``version_N`` under it, and ``last.ckpt``), so that a resume of the run continues its own
    log; a logger or a ``ModelCheckpoint`` the config names keeps its own place."""
    if default_logger and isinstance(trainer.logger, (TensorBoardLogger, CSVLogger)):
        trainer.loggers = [type(trainer.logger)(save_dir=files.folder.parent, name=files.folder.name, version="")]
    checkpoint = trainer.checkpoint_callback
    if default_checkpoint and checkpoint is not None:
        ours = ModelCheckpoint(dirpath=files.folder, filename=files.checkpoint.stem, enable_version_counter=False)
        trainer.callbacks[trainer.callbacks.index(checkpoint)] = ours
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()


def flat_hyperparameters(config: dict, prefix: str = "") -> dict[str, int | float | str | bool]:
    """The run's config as ``{"model.losses.style.init_args.weight": 30.0, ...}``: numbers, strings and booleans as
    they are, anything else (lists, None) as text, which every logger can show."""
    flat: dict[str, int | float | str | bool] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_hyperparameters(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def run_callbacks(user: list, bar: list, guards: list, quality: QualityReport, writer: ImageWriter) -> list:
    """The run's callbacks in the order Lightning calls them, which two of them depend on:

    - the guards (``NonFiniteGuard``, then ``InterruptSaver``) before the writer: a NaN is found, and an
      interrupt saved, before the final image is written;
    - ``QualityReport`` before ``ImageWriter``: its ``on_train_end`` puts the scores into the run's report,
      which the writer's ``on_train_end`` writes into the PNG.

    The user's callbacks (``StopWhenConverged``, ``MultiScale``) come first; they depend on no order: the
    module's own hooks run after every callback's, and the stopping rule reads the scale a step ran at after
    the step.
    """
    return [*user, *bar, *guards, quality, writer]


def stylizes_video(args: list[str]) -> bool:
    """Whether a ``fit`` command line stylizes a clip: it gives ``--data.video``, or a config that sets
    ``data.video`` (a file, or the YAML text ``resolve_configs`` made of one)."""
    for i, arg in enumerate(args):
        if arg.split("=", 1)[0] == "--data.video":
            return True
        if arg.split("=", 1)[0] == "--config":
            value = arg.split("=", 1)[1] if "=" in arg else (args[i + 1] if i + 1 < len(args) else "")
            try:
                if os.path.isfile(value):
                    with open(value, encoding="utf-8") as f:
                        value = f.read()
                tree = yaml.safe_load(value)
            except (OSError, ValueError, yaml.YAMLError):
                continue
            data = get_key(tree, "data")
            if isinstance(data, dict) and "video" in data:
                return True
    return False


def build_cli(args: list[str] | None = None, run: bool = True) -> StyleTransferCLI:
    filter_known_warnings()
    filter_lightning_tips()
    filter_lightning_banners(bool(os.environ.get(VERBOSE_ENV)))
    return StyleTransferCLI(
        StyleTransfer,
        VideoData if stylizes_video(sys.argv[1:] if args is None else args) else StyleTransferData,
        args=resolve_configs(args) if args is not None else None,
        run=run,
        trainer_defaults=TRAINER_DEFAULTS,
        parser_class=StyleTransferParser,
        save_config_callback=SaveConfigToLogDir,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )
