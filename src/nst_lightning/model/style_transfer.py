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
    """

    def __init__(
        self,
        backbone: Backbone | None = None,
        losses: dict[str, LossTerm] | None = None,
        optimizer: OptimizerCallable | None = None,
        init: str = "content",
        preserve_colour: bool = False,
        compile: CompileMode = "off",
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
        """Content features and style statistics, once, on the training device and precision."""
        with self.trainer.precision_plugin.forward_context():
            content = self.backbone(self.content_image, self.layers)
            styles = [self.backbone(s, self.layers) for s in self.style_images]
        targets = Targets(
            content_image=self.content_image,
            content={k: v.float() for k, v in content.items()},
            style_images=self.style_images,
            styles=[{k: v.float() for k, v in s.items()} for s in styles],
            style_weights=self.style_weights,
            masks=self.masks,
        )
        for term in self.losses.values():
            term.set_targets(targets)

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
        terms = (self.compiled_loss_terms or self.loss_terms)(self.image)
        total = torch.stack([t.sum() for t in terms.values()]).sum()
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
