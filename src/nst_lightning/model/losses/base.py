"""The loss-term contract and the helpers every term uses.

Every term is an ``nn.Module`` with its own ``weight`` and ``layers``. Its targets are computed once,
without grad, in :meth:`LossTerm.set_targets` and kept as buffers, so they move with the module and
are never recomputed per step. Losses are always computed in float32, also under autocast: reduced
precision runs only in the backbone.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from nst_lightning.errors import ConfigValueError


@dataclass
class Targets:
    """What a loss term may build its targets from. All images are RGB in [0, 1], N×3×H×W.

    ``content`` and each entry of ``styles`` map layer names to the backbone's
    features (float32, no grad). ``style_weights`` are the normalized blend
    weights of the style images (they sum to 1). ``masks`` holds one 1×1×H×W
    mask in [0, 1] per style image at the content image's size, or is empty.

    ``style_statistics`` holds, for a term that defines :meth:`LossTerm.style_statistics`, one dict per style
    image: that term's own style statistics summed over all the image's feature positions (tile by tile when
    the style image is larger than a tile). Build style targets from them and the term tiles at any size.

    When the images are larger than a tile (README: Large images), ``content`` holds only the layers of
    terms with ``reads_content = True`` (assembled from tiles) and each entry of ``styles`` is empty: a term
    that reads ``styles`` then cannot run (the error says so).
    """

    content_image: Tensor
    content: dict[str, Tensor]
    style_images: list[Tensor] = field(default_factory=list)
    styles: list[dict[str, Tensor]] = field(default_factory=list)
    style_weights: list[float] = field(default_factory=list)
    masks: list[Tensor] = field(default_factory=list)
    style_statistics: list[dict[str, Tensor]] = field(default_factory=list)


@dataclass(frozen=True)
class Window:
    """The feature positions that one tile of the image owns, per layer (see :mod:`nst_lightning.model.tiling`).

    ``tile[name]`` are the (row, column) slices of those positions in the tile's features, ``full[name]`` the
    same positions in the whole image's features, and ``full_size[name]`` that layer's (rows, columns) for the
    whole image. Untiled, one window owns everything: :meth:`whole`.
    """

    tile: dict[str, tuple[slice, slice]]
    full: dict[str, tuple[slice, slice]]
    full_size: dict[str, tuple[int, int]]

    @staticmethod
    def whole(features: dict[str, Tensor]) -> Window:
        everything = {name: (slice(None), slice(None)) for name in features}
        sizes = {name: (int(f.shape[-2]), int(f.shape[-1])) for name, f in features.items()}
        return Window(everything, everything, sizes)

    def owned(self, features: dict[str, Tensor], name: str) -> Tensor:
        """The positions of ``features[name]`` (the tile's) that this window owns."""
        rows, cols = self.tile[name]
        return features[name][..., rows, cols]

    def crop(self, full: Tensor, name: str) -> Tensor:
        """The same positions of a whole-image map at layer ``name`` (a target, a mask)."""
        rows, cols = self.full[name]
        return full[..., rows, cols]


def inverse_mean_square(target: Tensor) -> Tensor:
    """1 / mean(target²): makes a layer's loss a relative error, whatever the backbone's activation scale."""
    return 1.0 / target.float().pow(2).mean().clamp_min(1e-12)


def float32_only(device: torch.device) -> torch.autocast:
    """Autocast switched off: losses and statistics run in float32 even when the backbone ran in bf16 or fp16."""
    return torch.autocast(device_type=device.type, enabled=False)


def per_image_mse(input: Tensor, target: Tensor) -> Tensor:
    """Mean squared error of each image in the batch: N×... tensors (``target`` broadcasts) to (N,)."""
    return (input - target).pow(2).flatten(1).mean(1)


def check_layer_weights(kind: str, layers: Sequence[str], layer_weights: Sequence[float] | None) -> list[float]:
    """One weight >= 0 per layer; ``None`` gives equal weights that sum to 1. Errors name ``kind``."""
    if not layers:
        raise ConfigValueError(f"{kind}: layers must name at least one layer")
    if layer_weights is None:
        return [1.0 / len(layers)] * len(layers)
    if len(layer_weights) != len(layers):
        raise ConfigValueError(f"{kind}: {len(layer_weights)} layer_weights for {len(layers)} layers")
    if any(not float(w) >= 0 for w in layer_weights):
        raise ConfigValueError(f"{kind}: layer_weights must be >= 0")
    return [float(w) for w in layer_weights]


class LossTerm(nn.Module, abc.ABC):
    """A weighted loss term.

    Contract: ``layers`` lists the backbone layers it reads (may be empty);
    ``set_targets(targets)`` caches what it compares against; ``forward(features,
    image)`` returns the weighted loss as a float32 tensor, either a scalar or
    one value per image in the batch (N,).

    A term that reads layers is *tileable* (``tileable = True``) when its loss depends on the image only
    through sums over feature positions: it implements :meth:`statistics` (those sums over the positions of
    one :class:`Window`) and :meth:`loss_from_statistics` (the loss from the sums over all windows), and its
    ``forward`` is the two with one window. Large images are then optimized tile by tile with the exact
    gradient. A term without layers (total variation) is always computed on the whole image.

    A term that sets ``supports_sample_weights = True`` returns one value per
    image weighted by :meth:`weighted`, so a batch of independent images (a
    batched sweep) can give each image its own weight.
    """

    supports_sample_weights: ClassVar[bool] = False
    tileable: ClassVar[bool] = False
    reads_content: ClassVar[bool] = True  # whether set_targets reads Targets.content
    config_key: str  # set by the model that uses the term, model.losses.<name>: what errors about it name

    def __init__(self, weight: float = 1.0, layers: Sequence[str] = ()) -> None:
        super().__init__()
        weight = float(weight)
        if not weight >= 0 or weight == float("inf"):
            raise ConfigValueError(f"{type(self).__name__}: weight must be a finite number >= 0, not {weight}")
        self.weight = weight
        self.layers = list(layers)
        self.register_buffer("sample_weight", None, persistent=False)

    def set_sample_weights(self, weights: Sequence[float] | None) -> None:
        """One weight per image of the batch (N,), instead of ``weight``; None goes back to ``weight``."""
        if weights is not None and not self.supports_sample_weights:
            raise ConfigValueError(f"{type(self).__name__} does not support per-image weights")
        if weights is not None and any(not float(w) >= 0 or float(w) == float("inf") for w in weights):
            raise ConfigValueError(f"{type(self).__name__}: weights must be finite numbers >= 0, not {list(weights)}")
        self.sample_weight = None if weights is None else torch.tensor([float(w) for w in weights])

    def weighted(self, per_image: Tensor) -> Tensor:
        """The weighted loss from per-image losses (N,): ``weight`` times their mean, or with per-image
        weights set, each image's loss times its own weight (N,)."""
        if self.sample_weight is None:
            return self.weight * per_image.mean()
        return self.sample_weight * per_image

    def set_targets(self, targets: Targets) -> None:
        """Compute and cache targets. Called once, under ``torch.no_grad()``."""

    @abc.abstractmethod
    def forward(self, features: dict[str, Tensor], image: Tensor) -> Tensor:
        """The weighted loss for ``image`` whose backbone features are ``features``."""

    def statistics(self, features: dict[str, Tensor], image: Tensor, window: Window) -> dict[str, Tensor]:
        """Tileable terms: sums over the positions ``window`` owns, float32; the loss depends on the image only
        through their totals over all windows."""
        raise NotImplementedError(f"{type(self).__name__} is not tileable")

    def loss_from_statistics(self, statistics: dict[str, Tensor]) -> Tensor:
        """Tileable terms: the weighted loss (as :meth:`forward`) from the statistics summed over all windows."""
        raise NotImplementedError(f"{type(self).__name__} is not tileable")

    def style_statistics(self, features: dict[str, Tensor], image: Tensor, window: Window) -> dict[str, Tensor] | None:
        """The sums over the positions ``window`` owns of a *style* image's features that :meth:`set_targets`
        builds its target from; they arrive, summed over all windows, in ``Targets.style_statistics``. The
        default, None, says the term reads whole feature maps from ``Targets.styles`` instead (then a style
        image larger than a tile cannot be used with it)."""
        return None

    def style_statistics_of(self, targets: Targets) -> list[dict[str, Tensor]]:
        """This term's statistics of each style image: ``targets.style_statistics`` when the run computed them
        (by tiles, for any size), else computed here from the whole feature maps in ``targets.styles`` (a
        ``Targets`` built by hand, as in a plugin's own tests)."""
        if targets.style_statistics:
            return targets.style_statistics
        with float32_only(targets.content_image.device):
            return [self.style_statistics(style, image, Window.whole(style))
                    for style, image in zip(targets.styles, targets.style_images)]

    def loss_by_windows(self, features: dict[str, Tensor], image: Tensor) -> Tensor:
        """``forward`` of a tileable term: the loss from the statistics of one window that owns everything."""
        with float32_only(image.device):
            return self.loss_from_statistics(self.statistics(features, image, Window.whole(features)))
