"""The backbone contract: a frozen feature extractor that maps an RGB image in [0, 1] to named feature maps."""

from __future__ import annotations

import abc
from collections.abc import Collection

from torch import Tensor, nn

from nst_lightning.errors import ConfigValueError
from nst_lightning.model.backbones.geometry import LayerGeometry
from nst_lightning.model.memory_estimate import FeatureLayer

IMAGENET_MEAN = (0.485, 0.456, 0.406)


IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(nn.Module, abc.ABC):
    """A frozen feature extractor.

    Contract: ``forward(image, layers)`` takes an RGB batch in [0, 1]
    (N×3×H×W) and returns ``{layer_name: feature_map}`` for every name in
    ``layers``. The backbone owns its input normalization. ``layer_names``
    lists every layer in forward order; ``truncate(layers)`` may drop
    everything after the deepest layer in use.

    A backbone is always in eval mode and has no trainable parameters. ``activation_checkpointing`` says
    whether it recomputes activations in the backward pass (the memory model counts it).
    """

    activation_checkpointing: bool = False

    @property
    @abc.abstractmethod
    def layer_names(self) -> tuple[str, ...]:
        """All layer names in forward order."""

    @abc.abstractmethod
    def forward(self, image: Tensor, layers: Collection[str]) -> dict[str, Tensor]:
        """Features of ``image`` at ``layers``."""

    def truncate(self, layers: Collection[str]) -> None:
        """Drop what is not needed to compute ``layers``. Optional."""

    def feature_layers(self) -> list[FeatureLayer] | None:
        """The layers the backbone runs, in order, for the memory estimate; None when unknown (no pre-check)."""
        return None

    def layer_geometry(self, layer: str) -> LayerGeometry | None:
        """The receptive field of ``layer`` (see :mod:`~nst_lightning.model.backbones.geometry`), which tiling
        needs; ``None`` (the default) when the backbone does not know it, and then it cannot be tiled."""
        return None

    def check_layers(self, layers: Collection[str]) -> None:
        unknown = [name for name in layers if name not in self.layer_names]
        if unknown:
            raise ConfigValueError(
                f"unknown layer(s) {', '.join(map(repr, unknown))} for backbone {type(self).__name__}; "
                f"known layers: {', '.join(self.layer_names)}"
            )

    def freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> Backbone:
        # Frozen on purpose: batch-norm statistics and dropout must never change.
        return super().train(False)
