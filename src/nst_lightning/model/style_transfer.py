"""The Lightning module: the generated image is its only parameter."""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from nst_lightning.errors import ConfigError, ConfigValueError
from nst_lightning.image.colour import keep_chroma
from nst_lightning.image.image_set import ImageSet
from nst_lightning.image.io import input_path, load_image
from nst_lightning.model.backbones.base import Backbone
from nst_lightning.model.backbones.vgg import VGG19
from nst_lightning.model.losses.base import LossTerm
from nst_lightning.model.losses.content import ContentLoss
from nst_lightning.model.losses.gram import GramStyleLoss
from nst_lightning.model.losses.total_variation import TotalVariationLoss
from nst_lightning.model.optimizers import ImageLBFGS, OptimizerTraits, optimizer_traits
from nst_lightning.model.pyramid import COEFFICIENTS_PER_PIXEL, PARAMETRIZATIONS, LaplacianPyramid
from nst_lightning.model.report import RunReport
from nst_lightning.model.run_plan import RunPlan
from nst_lightning.model.step import (
    StepLosses,
    check_term_values,
    own_copy,
    step_output,
    term_faults,
    wrote_into,
)
from nst_lightning.model.targets import set_targets_per_image
from nst_lightning.model.tiled_loss import tiled_loss_and_grad
from nst_lightning.model.tiling import TilePlan, Tiling

INIT_CHOICES = ("content", "noise", "style")


CompileMode = Literal["off", "default", "reduce-overhead", "max-autotune"]


RUN_KEY = "nst_lightning_run"  # a checkpoint's record of the run that made it


class CheckpointMismatchError(ConfigError):
    """``--ckpt_path`` names a checkpoint of another kind of run."""


class ParametrizationError(ConfigError):
    """The image's parametrization cannot work with the chosen optimizer or size."""


class PrecisionError(ConfigError):
    """The chosen precision cannot work with the chosen optimizer."""


def check_precision(precision: str, optimizer: torch.optim.Optimizer) -> None:
    """L-BFGS cannot run under ``16-mixed``: its closure is incompatible with the GradScaler.

    On a GPU Lightning would fail deep inside the step; on a CPU it quietly turns
    ``16-mixed`` into bf16. We refuse it up front, the same on every device.
    """
    if str(precision) in ("16-mixed", "16") and isinstance(optimizer, (torch.optim.LBFGS, ImageLBFGS)):
        raise PrecisionError(
            "L-BFGS does not work with --trainer.precision 16-mixed (its closure cannot use the fp16 "
            "GradScaler); use --trainer.precision bf16-mixed, or an optimizer such as ImageAdam"
        )


# The components a run uses when its config leaves them out (None): built here rather than given as
# the parser's defaults, since jsonargparse keeps a default's init args when a config switches class.
DEFAULT_BACKBONE: type[Backbone] = VGG19
DEFAULT_LOSSES: dict[str, type[LossTerm]] = {"content": ContentLoss, "style": GramStyleLoss, "tv": TotalVariationLoss}
DEFAULT_OPTIMIZER: type[torch.optim.Optimizer] = ImageLBFGS


def default_losses() -> dict[str, LossTerm]:
    return {name: cls() for name, cls in DEFAULT_LOSSES.items()}


class StyleTransfer(pl.LightningModule):
    """Gatys neural style transfer.

    Args:
        backbone: the frozen feature extractor. Default: ``VGG19`` with the caffe weights.
        losses: the loss terms by name; the names are their keys in logs and on the command line
            (``--model.losses.style.init_args.weight 1e5``). Default: ``content: ContentLoss``,
            ``style: GramStyleLoss`` and ``tv: TotalVariationLoss`` with their default weights and layers.
        optimizer: builds the optimizer for the image. Default: ``ImageLBFGS``.
        init: ``content``, ``noise`` (white noise; with content weight 0 this is texture synthesis),
            ``style`` (the first style image, stretched to the content's size), or an image file.
        preserve_colour: luminance-only transfer: every image written keeps the content's chroma and takes
            only its luminance from the optimized image (YIQ; as neural-style's ``-original_colors``).
        compile: ``torch.compile`` the loss (backbone and loss terms) with this mode; ``reduce-overhead``
            also records CUDA graphs on a GPU. ``off`` (default) runs eagerly. The first steps pay for the
            compilation, and a new image size (multi-scale) compiles again. See README's performance section.
        tiling: optimize images that do not fit the memory budget tile by tile, with the exact loss and
            gradient (:class:`~nst_lightning.model.tiling.Tiling`; README: Large images). Default: automatic.
        parametrization: what the optimizer steps: ``pixels`` (default), or ``laplacian``, the coefficients of a
            Laplacian pyramid of ``pyramid_levels`` levels whose synthesis is the image (as STROTSS and NNST;
            :mod:`~nst_lightning.model.pyramid`). The image, its checkpoints and everything that reads it stay
            pixels. ``laplacian`` needs ``ImageLBFGS`` without a line search, and an image that runs untiled.
        pyramid_levels: the pyramid's levels, the image's own size included (each next one half the size).
    """

    def __init__(
        self,
        backbone: Backbone | None = None,
        losses: dict[str, LossTerm] | None = None,
        optimizer: OptimizerCallable | None = None,
        init: str = "content",
        preserve_colour: bool = False,
        compile: CompileMode = "off",
        tiling: Tiling | None = None,
        parametrization: Literal["pixels", "laplacian"] = "pixels",
        pyramid_levels: int = 4,
    ) -> None:
        super().__init__()
        self.backbone = backbone if backbone is not None else DEFAULT_BACKBONE()
        losses = losses if losses is not None else default_losses()
        if not losses:
            raise ConfigValueError("model.losses: give at least one loss term")
        bad = [name for name in losses if not name or "." in name]
        if bad:
            raise ConfigValueError(f"model.losses: names must be non-empty and have no '.', not {bad!r}")
        self.losses = nn.ModuleDict(losses)
        # Each component knows its config key, so an error raised in its code can name it.
        self.backbone.config_key = "model.backbone"
        for name, term in self.losses.items():
            term.config_key = f"model.losses.{name}"
        self.optimizer_factory = optimizer
        self.init = init
        self.preserve_colour = preserve_colour
        if compile not in get_args(CompileMode):
            raise ConfigValueError(f"model.compile must be {', '.join(get_args(CompileMode))}, not {compile!r}")
        self.compile_mode = compile
        self.compiled_loss_terms = None
        self.layers = sorted({name for term in self.losses.values() for name in term.layers})
        self.backbone.check_layers(self.layers)
        self.backbone.truncate(self.layers)
        self.num_images = 1
        if init not in INIT_CHOICES and not input_path(init).exists():
            raise ConfigValueError(f"model.init must be {', '.join(INIT_CHOICES)} or an existing image file, not {init!r}")
        self.register_parameter("image", None)
        self.report = RunReport()
        self.output_size: tuple[int, ...] | None = None  # (H, W) of the output at the final scale, set by setup
        self.tiling = tiling if tiling is not None else Tiling()
        if parametrization not in PARAMETRIZATIONS:
            raise ConfigValueError(f"must be {' or '.join(PARAMETRIZATIONS)}, not {parametrization!r}",
                                   key="model.parametrization")
        self.parametrization = parametrization
        pyramid = LaplacianPyramid(pyramid_levels)  # its levels checked whichever is chosen
        self.pyramid = pyramid if parametrization == "laplacian" else None
        self.plan: RunPlan | None = None
        self._set_layout: list[tuple[int, int, list[float]]] = []
        self._described: set[tuple] = set()

    def set_sample_weights(self, weights: Sequence[Mapping[str, float]]) -> None:
        """Optimize ``len(weights)`` independent images together, as one N×3×H×W batch (a batched sweep).

        ``weights`` holds one mapping per image from loss names to that image's weight; a loss it
        does not name keeps its own ``weight``. Every loss returns one value per image, so each
        image's gradient is exactly the one it would get alone. Call before ``fit``.
        """
        unknown = sorted({name for w in weights for name in w} - set(self.losses))
        if unknown:
            raise ConfigValueError(f"no loss terms named {unknown}; the model has {sorted(self.losses)}")
        for name, term in self.losses.items():
            term.set_sample_weights([float(w.get(name, term.weight)) for w in weights])
        self.num_images = len(weights)
        self.plan = None  # a plan made for another batch size is made again

    # -- the run plan -----------------------------------------------------------------------

    def optimizer_probe(self) -> type | torch.optim.Optimizer | None:
        """What this run's optimizer is, before the image exists: its class, or (a callable from the config) the
        optimizer it builds on a one-element tensor; None when it needs more than a tensor."""
        factory = self.optimizer_factory if self.optimizer_factory is not None else DEFAULT_OPTIMIZER
        if isinstance(factory, type):
            return factory
        try:
            return factory([torch.zeros(1, requires_grad=True)])
        except Exception:  # noqa: BLE001 - unknown: never batched, not compared on resume
            return None

    def optimizer_traits(self) -> OptimizerTraits:
        """The traits of the optimizer this run builds (its class's declaration; see ``optimizer_traits``). With the
        Laplacian pyramid its vectors (history pairs, work vectors) hold the coefficients, up to 1.44 times the
        image's values (``COEFFICIENTS_PER_PIXEL``): counted as more state copies, so that the run plan's memory estimate holds them."""
        probe = self.optimizer_probe()
        traits = optimizer_traits(probe if probe is not None else object)
        if self.pyramid is None:
            return traits
        history = 2 * (traits.history or 0)
        return dataclasses.replace(traits, state_copies=math.ceil((traits.state_copies + history) * COEFFICIENTS_PER_PIXEL) - history)

    def make_plan(self, styles: int, style_scale: float, device: torch.device | str, available: int | None = None,
                  contents: int = 1) -> RunPlan:
        """Make the run's plan now (measuring the memory available once); ``fit`` uses this one."""
        self.plan = RunPlan(self.backbone, dict(self.losses), self.tiling, self.optimizer_traits(), self.num_images,
                            styles, style_scale, device, available, contents)
        return self.plan

    def run_plan(self) -> RunPlan:
        """The run's plan: the one made before ``fit`` (the CLI's memory pre-check), else the one ``setup`` made
        (outside ``fit``: one made now for the images set)."""
        if self.plan is None:
            self.make_plan(max(1, self.num_styles), 1.0, self.device)
        return self.plan

    # -- set-up -----------------------------------------------------------------------------

    def initial_image(self) -> Tensor:
        """The starting image of every image of the batch at the content's current size (each from its own set)."""
        sets = self.image_sets
        content = self.content_image
        if self.init == "content":
            return content.clone().expand(self.num_images, -1, -1, -1).contiguous()
        if self.init == "noise":
            return torch.rand(self.num_images, *content.shape[1:], device=content.device, dtype=content.dtype)
        _, _, h, w = content.shape
        starts = [s.styles[0] if self.init == "style" else load_image(self.init, None, "init image") for s in sets]
        starts = [nn.functional.interpolate(image.to(content.device, content.dtype), size=(h, w), mode="bilinear",
                                            antialias=True).clamp(0, 1) for image in starts]
        return torch.cat(starts).expand(self.num_images, -1, -1, -1).contiguous()

    def set_image_sets(self, sets: list[ImageSet]) -> None:
        """Set (or replace, as multi-scale does) the images the targets are computed from, on the module's device:
        one :class:`~nst_lightning.image.image_set.ImageSet` that every image shares, or one per image."""
        if len(sets) not in (1, self.num_images):
            raise ConfigValueError(f"{len(sets)} image sets for a batch of {self.num_images} images")
        device = self.device
        # Buffers (not persistent) so that they move with the module to its device.
        self.register_buffer("content_image", torch.cat([s.content for s in sets]).to(device), persistent=False)
        for k, image_set in enumerate(sets):
            for i, style in enumerate(image_set.styles):
                self.register_buffer(f"style_image_{k}_{i}", style.to(device).clone(), persistent=False)
            for i, mask in enumerate(image_set.masks):
                self.register_buffer(f"mask_{k}_{i}", mask.to(device).clone(), persistent=False)
        self._set_layout = [(len(s.styles), len(s.masks), list(s.style_weights)) for s in sets]

    @property
    def image_sets(self) -> list[ImageSet]:
        """The image sets in use, on the module's device."""
        return [
            ImageSet(self.content_image[k : k + 1], [self.get_buffer(f"style_image_{k}_{i}") for i in range(styles)],
                     weights, [self.get_buffer(f"mask_{k}_{i}") for i in range(masks)])
            for k, (styles, masks, weights) in enumerate(self._set_layout)
        ]

    @property
    def num_styles(self) -> int:
        """Style images over all sets."""
        return sum(styles for styles, _, _ in self._set_layout)

    def setup(self, stage: str) -> None:
        if self.image is not None:
            return
        data = self.trainer.datamodule
        self.set_image_sets(data.sets)
        self.output_size = tuple(self.content_image.shape[-2:])  # the final size, before any scale changes it
        self.image = nn.Parameter(self.initial_image())
        if self.plan is None:
            self.make_plan(self.num_styles, data.style_scale, self.device, contents=len(data.sets))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """A checkpoint holds the image and what resume needs, never the frozen backbone's weights (hundreds of
        MB): a resumed run has them already, from the weights file its config names. It also says which run
        made it, so that resuming another run is a clear error, not a tensor-size or ``KeyError``."""
        state = checkpoint.get("state_dict", {})
        for key in [k for k in state if k.startswith("backbone.")]:
            del state[key]
        checkpoint[RUN_KEY] = self.run_identity()

    def run_identity(self) -> dict[str, str | int]:
        """What a checkpoint must agree on to be resumed by this run: the backbone, the optimizer, the batch, and the
        output's size (width x height at the final scale, also when a multi-scale run saves at a coarse one)."""
        probe = self.optimizer_probe()
        optimizer = "unknown" if probe is None else (probe if isinstance(probe, type) else type(probe)).__name__
        height, width = self.output_size or tuple(self.content_image.shape[-2:])
        return {"backbone": type(self.backbone).__name__, "optimizer": optimizer, "images": self.num_images,
                "size": f"{width}x{height}", "parametrization": self.parametrization_name()}

    def parametrization_name(self) -> str:
        """``pixels``, or ``laplacian:<levels>`` (their L-BFGS histories differ in size: a checkpoint keeps to its own)."""
        return "pixels" if self.pyramid is None else f"laplacian:{self.pyramid.levels}"

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Before the state is loaded: the frozen backbone's weights are this run's own, from its checked weights
        file (an older checkpoint's copy is ignored), and the image takes the checkpoint's size (a multi-scale run interrupted at a coarse scale saved a
        smaller image than ``setup`` made; ``MultiScale`` then goes on from that scale)."""
        saved_run = checkpoint.get(RUN_KEY)
        if isinstance(saved_run, dict):
            mine = self.run_identity()
            differ = [f"{key} {saved_run[key]!r} (this run: {mine[key]!r})" for key in mine
                      if key in saved_run and saved_run[key] != mine[key]]  # older checkpoints lack "size"
            if differ:
                raise CheckpointMismatchError(
                    f"the checkpoint was made by another kind of run: {', '.join(differ)}; resume with the settings "
                    "that made it, or start afresh without --ckpt_path", key="--ckpt_path")
        step, max_steps = checkpoint.get("global_step", 0), self.trainer.max_steps
        if max_steps is not None and max_steps >= 0 and step >= max_steps:
            # Lightning would restore it, run nothing and write nothing.
            raise CheckpointMismatchError(
                f"the checkpoint is at step {step} and --trainer.max_steps is {max_steps}: nothing is left to run; "
                "raise --trainer.max_steps to go on", key="--ckpt_path")
        state = checkpoint.setdefault("state_dict", {})
        for key, value in self.state_dict().items():
            if key.startswith("backbone."):
                state[key] = value
        saved = state.get("image")
        if saved is not None and self.image is not None and saved.shape != self.image.shape:
            self.image.data = torch.empty(saved.shape, dtype=self.image.dtype, device=self.image.device)

    @torch.no_grad()
    def output_image(self) -> Tensor:
        """The image to write: the optimized image, with the content's chroma under ``preserve_colour``."""
        image = self.image.detach()
        if self.preserve_colour:
            image = keep_chroma(image, self.content_image)
        return image

    @torch.no_grad()
    def compute_targets(self) -> None:
        """Each term's targets, once, on the training device and precision (:func:`~nst_lightning.model.targets.
        set_targets`), tile by tile when the images are larger than a tile."""
        with self.trainer.precision_plugin.forward_context():
            set_targets_per_image(self.backbone, self.losses, self.image_sets, self.tile_plan)

    # -- tiling -----------------------------------------------------------------------------

    def tile_plan(self, image: Tensor, choice_for: Tensor | None = None) -> TilePlan | None:
        """The tiles of ``image`` (None: it runs whole), with the tile size chosen for ``choice_for`` (itself)."""
        ref = choice_for if choice_for is not None else image
        return self.run_plan().tile_plan(*image.shape[-2:], choice_for=tuple(ref.shape[-2:]))

    def on_train_batch_start(self, batch: Tensor, batch_idx: int) -> None:
        """Before each step: the tiles, and L-BFGS's history to fit them. Lightning calls the callbacks'
        ``on_train_batch_start`` before the module's, so ``MultiScale`` has already resized the image."""
        h, w = self.image.shape[-2:]
        plan = self.run_plan()
        tiles = self.tile_plan(self.image)
        self.report.tile_count = len(tiles) if tiles is not None else 1
        history = plan.history_size(h, w)
        for optimizer in self.trainer.optimizers:
            if history is not None:
                set_history_size(optimizer, history)
        if (h, w) not in self._described:
            self._described.add((h, w))
            line = plan.describe(h, w)
            if line is not None:
                rank_zero_info(line)

    def on_fit_start(self) -> None:
        self.compute_targets()
        if self.compile_mode != "off" and self.compiled_loss_terms is None:
            self.compiled_loss_terms = torch.compile(self.terms_and_writes, mode=self.compile_mode)
        self._expect_frozen_backbone_in_eval_mode()

    def _expect_frozen_backbone_in_eval_mode(self) -> None:
        """The frozen backbone is in eval mode on purpose; any other module in eval mode still warns."""
        others = [n for n, m in self.named_modules() if not m.training and not n.startswith("backbone")]
        if not others:
            warnings.filterwarnings(
                "ignore", message=re.escape("Found ") + r"\d+ module\(s\) in eval mode", category=PossibleUserWarning
            )

    # -- optimization -----------------------------------------------------------------------

    def loss_terms(self, image: Tensor) -> dict[str, Tensor]:
        return self.terms_and_writes(image)[0]

    def terms_and_writes(self, image: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Each term's value, each term reading its own copy of ``image``, and whether it wrote into it (device
        bools; :mod:`nst_lightning.model.step`)."""
        features = self.backbone(image, self.layers)
        values, wrote = {}, {}
        for name, term in self.losses.items():
            copy = own_copy(image)
            values[name] = term(features, copy)
            wrote[name] = wrote_into(copy, image)
        return values, wrote

    def training_step(self, batch: Tensor, batch_idx: int) -> dict:
        """One evaluation of the loss. Returns ``{"loss": total, "terms": {name: per-image values}}`` (see
        :mod:`nst_lightning.model.step`), the same on the tiled and the untiled path."""
        plan = self.tile_plan(self.image)
        images = self.image.shape[0]
        if plan is None:
            terms, wrote = (self.compiled_loss_terms or self.terms_and_writes)(self.image)
            check_term_values(self.losses, terms, images)
            total = torch.stack([t.sum() for t in terms.values()]).sum()
        else:
            # The exact gradient computed tile by tile, returned as a loss whose value is the loss and whose
            # gradient is that gradient: the optimizer, its closure and the precision plugin work unchanged.
            wrote = {}
            terms, grad = tiled_loss_and_grad(self.backbone, self.losses, self.image, plan, wrote)
            check_term_values(self.losses, terms, images)
            total = torch.stack([t.sum() for t in terms.values()]).sum()
            total = total + ((self.image - self.image.detach()) * grad).sum()
        output = step_output(total, terms, images, term_faults(terms, self.image, wrote))
        self.report.last_step = StepLosses(output["terms"], output["faults"])
        if self.logs_this_step():
            self._keep_logged_losses(self.trainer.global_step + 1)
        return output

    def _keep_logged_losses(self, step: int) -> dict[str, Tensor]:
        """The losses of ``step`` for the progress bar and the callback metrics (on the device: no host sync)."""
        values = {f"loss/{k}": v for k, v in self.report.last_step.sums().items()}
        values["loss/total"] = torch.stack(list(values.values())).sum()
        self.log_dict(values, batch_size=1, logger=False)  # the loggers get them in on_train_batch_end
        self.report.logged_losses, self.report.logged_step = values, step
        return values

    def on_train_batch_end(self, outputs: Any, batch: Tensor, batch_idx: int) -> None:
        """Write this step's losses to the loggers, at the step's own index (the one the quality metrics use):
        on the logging steps, and on the step where the run stops (the stopping rule decided it in the callbacks'
        ``on_train_batch_end``, which Lightning calls before this one)."""
        step = self.trainer.global_step
        if self.report.last_step is None or not self.loggers:
            return
        if self.report.logged_step != step:
            if not self.trainer.should_stop:
                return
            self._keep_logged_losses(step)
        numbers = {name: float(value) for name, value in self.report.logged_losses.items()}  # a host read, here only
        for logger in self.loggers:
            logger.log_metrics(numbers, step=step)

    def on_train_end(self) -> None:
        """A run that no stopping rule ended ran its budget: the report says so (for the final line, the Python
        API and sweeps). Lightning calls this after the callbacks' ``on_train_end``, where a rule gives its reason."""
        trainer = self.trainer
        if self.report.stop_reason is None and trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            self.report.stop_reason = f"ran trainer.max_steps ({trainer.max_steps})"

    def logs_this_step(self) -> bool:
        """Log on the first step, every ``trainer.log_every_n_steps`` steps, and on the last step.

        Nothing is turned into a Python number here (on a GPU, a host sync): the values stay on the
        device until ``on_train_batch_end`` writes them to the loggers, and for ``LossProgressBar``,
        which reads ``logged_losses`` once each time ``logged_step`` changes. Nothing is logged with
        ``prog_bar=True``, since Lightning converts such values on every step, logged again or not.
        """
        trainer = self.trainer
        step = trainer.global_step + 1
        return step == 1 or step % max(1, trainer.log_every_n_steps) == 0 or step == trainer.max_steps

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        with torch.no_grad():
            self.image.clamp_(0, 1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        factory = self.optimizer_factory if self.optimizer_factory is not None else DEFAULT_OPTIMIZER
        optimizer = factory([self.image])
        optimizer.config_key = "model.optimizer"
        check_precision(self.trainer.precision, optimizer)
        if self.pyramid is not None:
            self._use_pyramid(optimizer)
        if self.compile_mode != "off" and isinstance(optimizer, ImageLBFGS):
            optimizer.compile_update(self.compile_mode)  # the loss is compiled in on_fit_start
        return optimizer

    def _use_pyramid(self, optimizer: torch.optim.Optimizer) -> None:
        """Give ``optimizer`` the pyramid, or say in one line why this run cannot step one."""
        if not isinstance(optimizer, ImageLBFGS) or optimizer.defaults["line_search_fn"] is not None:
            raise ParametrizationError(
                "laplacian needs model.optimizer ImageLBFGS without a line search (it steps the pyramid's "
                f"coefficients), not {type(optimizer).__name__}"
                + (" with line_search_fn strong_wolfe" if isinstance(optimizer, ImageLBFGS) else ""),
                key="model.parametrization")
        height, width = self.output_size or tuple(self.image.shape[-2:])
        if self.run_plan().tile_plan(height, width) is not None:
            raise ParametrizationError(
                f"laplacian cannot run tiled, and a {width}x{height} px image is tiled here; use a smaller "
                "--data.size, or --model.parametrization pixels", key="model.parametrization")
        optimizer.set_pyramid(self.pyramid)


def report_of(module: pl.LightningModule) -> RunReport:
    """The run's report of ``module`` (a fresh, unread one for a module that is not a ``StyleTransfer``)."""
    return module.report if isinstance(module, StyleTransfer) else RunReport()


def set_history_size(optimizer: torch.optim.Optimizer, size: int) -> None:
    """An L-BFGS's ``history_size``, dropping the oldest pairs it keeps beyond it (a resumed run, a new budget);
    other optimizers keep no history."""
    if isinstance(optimizer, ImageLBFGS):
        optimizer.set_history_size(size)
        return
    if not isinstance(optimizer, torch.optim.LBFGS):
        return
    for group in optimizer.param_groups:
        group["history_size"] = int(size)
    for state in optimizer.state.values():
        for key in ("old_dirs", "old_stps", "ro"):
            if key in state and len(state[key]) > size:
                del state[key][: len(state[key]) - size]
