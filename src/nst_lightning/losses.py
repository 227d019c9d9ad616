"""Loss terms: content, Gram-matrix style and total variation.

Every term is an ``nn.Module`` with its own ``weight`` and ``layers``. Its
targets are computed once, without grad, in :meth:`LossTerm.set_targets` and
kept as buffers, so they move with the module and are never recomputed per
step. Losses are always computed in float32, also under autocast: reduced
precision runs only in the backbone.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

DEFAULT_CONTENT_LAYERS = ("relu4_2",)
DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@dataclass
class Targets:
    """What a loss term may build its targets from. All images are RGB in [0, 1], N×3×H×W.

    ``content`` and each entry of ``styles`` map layer names to the backbone's
    features (float32, no grad). ``style_weights`` are the normalized blend
    weights of the style images (they sum to 1). ``masks`` holds one 1×1×H×W
    mask in [0, 1] per style image at the content image's size, or is empty.
    """

    content_image: Tensor
    content: dict[str, Tensor]
    style_images: list[Tensor] = field(default_factory=list)
    styles: list[dict[str, Tensor]] = field(default_factory=list)
    style_weights: list[float] = field(default_factory=list)
    masks: list[Tensor] = field(default_factory=list)


def gram_matrix(features: Tensor) -> Tensor:
    """Gram matrix of N×C×H×W features, divided by H·W, as an N×C×C float32 tensor.

    Dividing by the number of positions M makes it a mean, so the style loss
    ``0.25 * mean((G - A)²)`` equals the literature's ``1/(4N²M²) Σ (G·M - A·M)²``
    and does not change with image size.
    """
    n, c, h, w = features.shape
    flat = features.float().reshape(n, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)).div_(h * w)


def inverse_mean_square(target: Tensor) -> Tensor:
    """1 / mean(target²): makes a layer's loss a relative error, whatever the backbone's activation scale."""
    return 1.0 / target.float().pow(2).mean().clamp_min(1e-12)


def float32_only(device: torch.device) -> torch.autocast:
    """Autocast switched off: losses and statistics run in float32 even when the backbone ran in bf16 or fp16."""
    return torch.autocast(device_type=device.type, enabled=False)


def per_image_mse(input: Tensor, target: Tensor) -> Tensor:
    """Mean squared error of each image in the batch: N×... tensors (``target`` broadcasts) to (N,)."""
    return (input - target).pow(2).flatten(1).mean(1)


class LossTerm(nn.Module, abc.ABC):
    """A weighted loss term.

    Contract: ``layers`` lists the backbone layers it reads (may be empty);
    ``set_targets(targets)`` caches what it compares against; ``forward(features,
    image)`` returns the weighted loss as a float32 tensor, either a scalar or
    one value per image in the batch (N,).

    A term that sets ``supports_sample_weights = True`` returns one value per
    image weighted by :meth:`weighted`, so a batch of independent images (a
    batched sweep) can give each image its own weight.
    """

    supports_sample_weights: ClassVar[bool] = False

    def __init__(self, weight: float = 1.0, layers: Sequence[str] = ()) -> None:
        super().__init__()
        weight = float(weight)
        if not weight >= 0 or weight == float("inf"):
            raise ValueError(f"{type(self).__name__}: weight must be a finite number >= 0, not {weight}")
        self.weight = weight
        self.layers = list(layers)
        self.register_buffer("sample_weight", None, persistent=False)

    def set_sample_weights(self, weights: Sequence[float] | None) -> None:
        """One weight per image of the batch (N,), instead of ``weight``; None goes back to ``weight``."""
        if weights is not None and not self.supports_sample_weights:
            raise ValueError(f"{type(self).__name__} does not support per-image weights")
        if weights is not None and any(not float(w) >= 0 or float(w) == float("inf") for w in weights):
            raise ValueError(f"{type(self).__name__}: weights must be finite numbers >= 0, not {list(weights)}")
        self.sample_weight = None if weights is None else torch.tensor([float(w) for w in weights])

    def weighted(self, per_image: Tensor) -> Tensor:
        """The weighted loss from per-image losses (N,): ``weight`` times their mean, or with per-image
        weights set, each image's loss times its own weight (N,)."""
        if self.sample_weight is None:
            return self.weight * per_image.mean()
        return self.sample_weight * per_image

    def set_targets(self, targets: Targets) -> None:  # noqa: B027 - optional for target-free terms
        """Compute and cache targets. Called once, under ``torch.no_grad()``."""

    @abc.abstractmethod
    def forward(self, features: dict[str, Tensor], image: Tensor) -> Tensor:
        """The weighted loss for ``image`` whose backbone features are ``features``."""


class ContentLoss(LossTerm):
    """Feature reconstruction: mean squared error to the content image's features, averaged over layers."""

    supports_sample_weights = True

    def __init__(self, weight: float = 1.0, layers: Sequence[str] = DEFAULT_CONTENT_LAYERS) -> None:
        super().__init__(weight, layers)
        if not self.layers:
            raise ValueError("ContentLoss: layers must name at least one layer")

    def set_targets(self, targets: Targets) -> None:
        for i, name in enumerate(self.layers):
            target = targets.content[name].float().clone()
            self.register_buffer(f"target_{i}", target, persistent=False)
            self.register_buffer(f"scale_{i}", inverse_mean_square(target), persistent=False)

    def forward(self, features: dict[str, Tensor], image: Tensor) -> Tensor:
        with float32_only(image.device):
            total = image.new_zeros((), dtype=torch.float32)
            for i, name in enumerate(self.layers):
                mse = per_image_mse(features[name].float(), getattr(self, f"target_{i}"))
                total = total + getattr(self, f"scale_{i}") * mse
            return self.weighted(total / len(self.layers))


class GramStyleLoss(LossTerm):
    """Gatys style loss: ``Σ_l w_l · 1/(4N_l²M_l²) Σ (G_l - A_l)²`` over style layers.

    ``layer_weights`` default to equal weights that sum to 1. With several
    style images the target Gram matrix is their blend, ``A = Σ_i b_i A_i``.
    """

    supports_sample_weights = True

    def __init__(
        self,
        weight: float = 30.0,
        layers: Sequence[str] = DEFAULT_STYLE_LAYERS,
        layer_weights: Sequence[float] | None = None,
        normalize: bool = True,
    ) -> None:
        super().__init__(weight, layers)
        self.normalize = normalize
        if not self.layers:
            raise ValueError("GramStyleLoss: layers must name at least one layer")
        if layer_weights is None:
            layer_weights = [1.0 / len(self.layers)] * len(self.layers)
        if len(layer_weights) != len(self.layers):
            raise ValueError(
                f"GramStyleLoss: {len(layer_weights)} layer_weights for {len(self.layers)} layers"
            )
        if any(not w >= 0 for w in layer_weights):
            raise ValueError("GramStyleLoss: layer_weights must be >= 0")
        self.layer_weights = [float(w) for w in layer_weights]

    def set_targets(self, targets: Targets) -> None:
        if not targets.styles:
            raise ValueError("GramStyleLoss needs at least one style image")
        if targets.masks:
            raise ValueError("data.masks needs a masked style loss: use class_path MaskedGramStyleLoss for the style")
        for i, name in enumerate(self.layers):
            blend = sum(b * gram_matrix(s[name]) for b, s in zip(targets.style_weights, targets.styles))
            self.register_target(str(i), blend)

    def register_target(self, key: str, target: Tensor) -> None:
        """Keep Gram target ``target_<key>`` and its normalizer ``scale_<key>`` (1 without ``normalize``)."""
        self.register_buffer(f"target_{key}", target, persistent=False)
        scale = inverse_mean_square(target) if self.normalize else torch.ones(())
        self.register_buffer(f"scale_{key}", scale, persistent=False)

    def forward(self, features: dict[str, Tensor], image: Tensor) -> Tensor:
        with float32_only(image.device):
            total = image.new_zeros((), dtype=torch.float32)
            for i, (name, w) in enumerate(zip(self.layers, self.layer_weights)):
                mse = per_image_mse(gram_matrix(features[name]), getattr(self, f"target_{i}"))
                total = total + w * getattr(self, f"scale_{i}") * 0.25 * mse
            return self.weighted(total)


class TotalVariationLoss(LossTerm):
    """Smoothness prior: mean squared difference between neighbouring pixels, summed over both axes."""

    supports_sample_weights = True

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__(weight, ())

    def forward(self, features: dict[str, Tensor], image: Tensor) -> Tensor:
        with float32_only(image.device):
            x = image.float()
            dx = per_image_mse(x[..., :, 1:], x[..., :, :-1])
            dy = per_image_mse(x[..., 1:, :], x[..., :-1, :])
            return self.weighted(dx + dy)
