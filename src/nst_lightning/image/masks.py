"""Mask images for spatial control: one per style image, white where that style applies."""

from __future__ import annotations

import os

import torch.nn.functional as F
from torch import Tensor

from nst_lightning.image.io import load_image


def load_mask(path: str | os.PathLike, size: tuple[int, int]) -> Tensor:
    """A mask image as a 1×1×H×W float32 tensor in [0, 1] (its luminance), resized to ``size`` = (H, W)."""
    rgb = load_image(path, None, "mask image")
    gray = (0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]).clamp(0, 1)
    return F.interpolate(gray, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
