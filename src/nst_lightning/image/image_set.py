"""One optimized image's inputs: its content image, its style images with their blend weights, and its masks.

A run optimizes N images (a batched sweep, frames of a video); each has an :class:`ImageSet`, or all share one.
The data module makes them (``StyleTransferData.image_sets``) and the model computes each image's targets from
its own set.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class ImageSet:
    """``content``: 1×3×H×W in [0, 1]; ``styles``: 1×3×H'×W' each; ``style_weights``: the blend weights (summing
    to 1); ``masks``: one 1×1×H×W mask per style image, or none."""

    content: Tensor
    styles: list[Tensor]
    style_weights: list[float]
    masks: list[Tensor]
