"""The Lightning module: the generated image is its only parameter."""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, get_args

import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from nst_lightning.errors import ConfigError, ConfigValueError
from nst_lightning.image.colour import keep_chroma
from nst_lightning.image.io import load_image
from nst_lightning.model.backbones.base import Backbone
from nst_lightning.model.backbones.vgg import VGG19
from nst_lightning.model.losses.base import LossTerm, Targets
from nst_lightning.model.losses.content import ContentLoss
from nst_lightning.model.losses.gram import GramStyleLoss
from nst_lightning.model.losses.total_variation import TotalVariationLoss
from nst_lightning.model.optimizers import ImageLBFGS
from nst_lightning.model.tiled_loss import tiled_features, tiled_loss_and_grad
from nst_lightning.model.tiling import (
    TileChoice,
    TileGeometry,
    TilePlan,
    Tiling,
    TilingError,
    choose_tiles,
    optimizer_kind,
    plan_tiles,
    tile_geometry,
)

INIT_CHOICES = ("content", "noise", "style")


CompileMode = Literal["off", "default", "reduce-overhead", "max-autotune"]


class PrecisionError(ConfigError):
    """The chosen precision cannot work with the chosen optimizer."""


def check_precision(precision: str, optimizer: torch.optim.Optimizer) -> None:
    """L-BFGS cannot run under ``16-mixed``: its closure is incompatible with the GradScaler.

    On a GPU Lightning would fail deep inside the step; on a CPU it quietly turns
    ``16-mixed`` into bf16. We refuse it up front, the same on every device.
    """
    if str(precision) in ("16-mixed", "16") and isinstance(optimizer, torch.optim.LBFGS):
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
        if init not in INIT_CHOICES and not Path(init).exists():
            raise ConfigValueError(f"model.init must be {', '.join(INIT_CHOICES)} or an existing image file, not {init!r}")
        self.register_parameter("image", None)
        self.logged_losses: dict[str, Tensor] = {}
        self.logged_step: int | None = None
        self.tiling = tiling if tiling is not None else Tiling()
        self.tile_count = 1
        self._tile_choices: dict[tuple, TileChoice] = {}
        self._tile_plans: dict[tuple, TilePlan] = {}
        self._tile_geometry: TileGeometry | TilingError | None = None
        self._layer_bytes: float | None = None
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

    # -- set-up -----------------------------------------------------------------------------

    def initial_image(self) -> Tensor:
        """The starting image at the content image's current size."""
        content = self.content_image
        if self.init == "content":
            return content.clone()
        if self.init == "noise":
            return torch.rand_like(content)
        _, _, h, w = content.shape
        image = self.style_images[0] if self.init == "style" else load_image(self.init, None, "init image")
        image = image.to(content.device, content.dtype)
        return nn.functional.interpolate(image, size=(h, w), mode="bilinear", antialias=True).clamp(0, 1)

    def set_images(self, content: Tensor, styles: list[Tensor], masks: list[Tensor]) -> None:
        """Set (or replace, as multi-scale does) the images the targets are computed from, on the module's device."""
        device = self.device
        self.register_buffer("content_image", content.to(device).clone(), persistent=False)
        for i, style in enumerate(styles):
            self.register_buffer(f"style_image_{i}", style.to(device).clone(), persistent=False)
        for i, mask in enumerate(masks):
            self.register_buffer(f"mask_{i}", mask.to(device).clone(), persistent=False)
        self.num_styles, self.num_masks = len(styles), len(masks)

    def setup(self, stage: str) -> None:
        if self.image is not None:
            return
        data = self.trainer.datamodule
        self.set_images(data.content_image, data.style_images, getattr(data, "mask_images", []))
        self.style_weights = list(data.style_weights)
        self.image = nn.Parameter(self.initial_image().expand(self.num_images, -1, -1, -1).contiguous())

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Before the state is loaded: give the image the checkpoint's size. A multi-scale run interrupted at a
        coarse scale saved a smaller image than ``setup`` made; ``MultiScale`` then goes on from that scale."""
        saved = checkpoint.get("state_dict", {}).get("image")
        if saved is not None and self.image is not None and saved.shape != self.image.shape:
            self.image.data = torch.empty(saved.shape, dtype=self.image.dtype, device=self.image.device)

    @property
    def style_images(self) -> list[Tensor]:
        return [getattr(self, f"style_image_{i}") for i in range(self.num_styles)]

    @property
    def masks(self) -> list[Tensor]:
        return [getattr(self, f"mask_{i}") for i in range(self.num_masks)]

    @torch.no_grad()
    def output_image(self) -> Tensor:
        """The image to write: the optimized image, with the content's chroma under ``preserve_colour``."""
        image = self.image.detach()
        if self.preserve_colour:
            image = keep_chroma(image, self.content_image)
        return image

    @torch.no_grad()
    def compute_targets(self) -> None:
        """Content features and style statistics, once, on the training device and precision (by tiles when
        the images are larger than a tile: then only the content layers that terms read are kept)."""
        content_plan = self.tile_plan(self.content_image)
        with self.trainer.precision_plugin.forward_context():
            if content_plan is None:
                content = self.backbone(self.content_image, self.layers)
            else:
                keep = sorted({name for t in self.losses.values() if t.reads_content for name in t.layers})
                content, _ = tiled_features(self.backbone, self.content_image, content_plan, keep, [])
            styles, style_grams = [], []
            for style in self.style_images:
                plan = self.tile_plan(style, choice_for=self.content_image)
                if plan is None:
                    styles.append(self.backbone(style, self.layers))
                    style_grams.append({})
                else:
                    styles.append({})
                    style_grams.append(tiled_features(self.backbone, style, plan, [], self.layers)[1])
        targets = Targets(
            content_image=self.content_image,
            content={k: v.float() for k, v in content.items()},
            style_images=self.style_images,
            styles=[{k: v.float() for k, v in s.items()} for s in styles],
            style_weights=self.style_weights,
            masks=self.masks,
            style_grams=style_grams,
        )
        for term in self.losses.values():
            term.set_targets(targets)

    # -- tiling -----------------------------------------------------------------------------

    def _geometry(self) -> TileGeometry | TilingError:
        if self._tile_geometry is None:
            try:
                self._tile_geometry = tile_geometry(self.backbone, self.layers)
            except TilingError as exc:  # raised only if an image needs tiles
                self._tile_geometry = exc
        return self._tile_geometry

    def _content_bytes_per_pixel(self) -> float:
        """Bytes per pixel of the content targets kept at full size (float32 maps of the content layers)."""
        if self._layer_bytes is None:
            keep = sorted({name for t in self.losses.values() if t.reads_content for name in t.layers})
            total = 0.0
            if keep:
                with torch.no_grad():
                    probe = self.backbone(torch.zeros(1, 3, 64, 64, device=self.device), keep)
                total = sum(4.0 * f.shape[1] * f.shape[2] * f.shape[3] / (64 * 64) for f in probe.values())
            self._layer_bytes = total
        return self._layer_bytes

    def tile_choice(self, height: int, width: int) -> TileChoice:
        """What the memory budget gives an image of this size: a tile size (None: untiled) and L-BFGS's history."""
        optimizers = self.trainer.optimizers if self._trainer is not None else []
        optimizer = optimizers[0] if optimizers else None
        kind = optimizer_kind(optimizer)
        wanted = getattr(optimizer, "wanted_history_size", None)
        if kind == "lbfgs" and wanted is None:
            # defaults, not param_groups: a resumed run's groups hold the history size chosen before
            wanted = optimizer.wanted_history_size = optimizer.defaults["history_size"]
        key = (height, width, self.num_images, kind, wanted)
        if key not in self._tile_choices:
            geometry = self._geometry()
            usable = geometry if isinstance(geometry, TileGeometry) else TileGeometry({}, 0, 1, "")
            choice = choose_tiles(
                self.tiling, usable, height, width, self.num_images, kind, wanted,
                checkpointing=bool(getattr(self.backbone, "activation_checkpointing", False)),
                per_pixel_targets=self._content_bytes_per_pixel(), device=self.device,
            )
            if choice.tile_size is not None and isinstance(geometry, TilingError):
                raise geometry
            self._tile_choices[key] = choice
        return self._tile_choices[key]

    def tile_plan(self, image: Tensor, choice_for: Tensor | None = None) -> TilePlan | None:
        """The tiles of ``image`` (None: it runs whole), with the tile size chosen for ``choice_for`` (itself)."""
        h, w = image.shape[-2:]
        ref = choice_for if choice_for is not None else image
        choice = self.tile_choice(*ref.shape[-2:])
        if choice.tile_size is None or (h <= choice.tile_size and w <= choice.tile_size):
            return None
        key = (h, w, choice.tile_size)
        if key not in self._tile_plans:
            self._tile_plans[key] = plan_tiles(h, w, choice.tile_size, self._geometry())
        return self._tile_plans[key]

    def on_train_batch_start(self, batch: Tensor, batch_idx: int) -> None:
        """Before each step (after MultiScale resized the image): the tiles, and L-BFGS's history to fit them."""
        h, w = self.image.shape[-2:]
        choice = self.tile_choice(h, w)
        plan = self.tile_plan(self.image)
        self.tile_count = len(plan) if plan is not None else 1
        for optimizer in self.trainer.optimizers:
            wanted = getattr(optimizer, "wanted_history_size", None)
            if isinstance(optimizer, torch.optim.LBFGS) and wanted is not None:
                set_history_size(optimizer, choice.history or wanted)
        key = (h, w)
        if plan is not None and key not in self._described:
            self._described.add(key)
            wanted = next((getattr(o, "wanted_history_size", None) for o in self.trainer.optimizers), None)
            rank_zero_info(f"Tiling: {plan.describe()}; {choice.describe(wanted)}")

    def on_fit_start(self) -> None:
        self.compute_targets()
        if self.compile_mode != "off" and self.compiled_loss_terms is None:
            self.compiled_loss_terms = torch.compile(self.loss_terms, mode=self.compile_mode)
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
        features = self.backbone(image, self.layers)
        return {name: term(features, image) for name, term in self.losses.items()}

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        plan = self.tile_plan(self.image)
        if plan is None:
            terms = (self.compiled_loss_terms or self.loss_terms)(self.image)
            total = torch.stack([t.sum() for t in terms.values()]).sum()
        else:
            # The exact gradient computed tile by tile, returned as a loss whose value is the loss and whose
            # gradient is that gradient: the optimizer, its closure and the precision plugin work unchanged.
            terms, grad = tiled_loss_and_grad(self.backbone, self.losses, self.image, plan)
            total = torch.stack([t.sum() for t in terms.values()]).sum()
            total = total + ((self.image - self.image.detach()) * grad).sum()
        if self.logs_this_step():
            values = {f"loss/{k}": v.sum().detach() for k, v in terms.items()}
            self.log_dict({**values, "loss/total": total.detach()}, batch_size=1)
            self.logged_losses, self.logged_step = values, self.trainer.global_step + 1
        return total

    def logs_this_step(self) -> bool:
        """Log on the first step, every ``trainer.log_every_n_steps`` steps, and on the last step.

        Nothing is turned into a Python number here (on a GPU, a host sync): the values stay on the
        device for Lightning's logger, which writes on those same steps, and for ``LossProgressBar``,
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
        return optimizer


def set_history_size(optimizer: torch.optim.LBFGS, size: int) -> None:
    """L-BFGS's ``history_size``, dropping the oldest pairs it keeps beyond it (a resumed run, a new budget)."""
    for group in optimizer.param_groups:
        group["history_size"] = int(size)
    for state in optimizer.state.values():
        for key in ("old_dirs", "old_stps", "ro"):
            if key in state and len(state[key]) > size:
                del state[key][: len(state[key]) - size]
