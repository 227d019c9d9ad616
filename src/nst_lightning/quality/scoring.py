"""Scoring images from files: the yardstick of ``nst-lightning score``, of every run and of the sweeps.

Every image is read with Pillow and resized with its bicubic filter to the long edge asked for (the
short edge rounded), so that a short script outside the project reproduces the numbers: the output to
``size`` (default: its own size), the content to the output's exact size, each style to the output's
long edge times ``style_scale``, the masks to the output's size. An output tensor is first rounded to
8 bits, as its PNG is written, so that a run's reported score equals ``score`` on its file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor

from nst_lightning.image.io import MIN_EDGE, ImageError, open_rgb
from nst_lightning.image.masks import load_mask
from nst_lightning.quality.distances import (
    STYLE_LAYERS,
    blend,
    content_distance_from,
    geometric_mean,
    image_statistics,
    style_layer_distances,
    style_targets,
)
from nst_lightning.quality.metrics import ssim_by_tiles

Path_ = str | os.PathLike


def long_edge_size(size: tuple[int, int], long_edge: int) -> tuple[int, int]:
    """(w, h) scaled so that the long edge is ``long_edge``, the short edge rounded."""
    w, h = size
    scale = long_edge / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def load_bicubic(path: Path_, what: str, long_edge: int | None = None, size: tuple[int, int] | None = None) -> Tensor:
    """``path`` as a 1×3×H×W float32 tensor in [0, 1], resized with Pillow's bicubic filter to ``size`` (w, h)
    or to the long edge ``long_edge``."""
    image = open_rgb(path, what)
    if size is None and long_edge is not None:
        size = long_edge_size(image.size, long_edge)
    if size is not None and tuple(size) != image.size:
        if min(size) < MIN_EDGE:
            raise ImageError(f"{what} {str(path)!r} would be {size[0]}x{size[1]} px, under the {MIN_EDGE} px the metric needs")
        image = image.resize(tuple(size), Image.Resampling.BICUBIC)
    return pil_to_tensor(image).float().div_(255).unsqueeze(0).contiguous()


def quantize(image: Tensor) -> Tensor:
    """The image as its 8-bit PNG will hold it."""
    return image.detach().float().clamp(0, 1).mul(255).round().div(255)


@torch.no_grad()
def score_tensor(
    output: Tensor,
    content: Path_,
    styles: Sequence[Path_],
    style_weights: Sequence[float] | None = None,
    style_scale: float = 1.0,
    masks: Sequence[Path_] = (),
) -> list[dict[str, float]]:
    """Score each image of an N×3×H×W output (in [0, 1]) against the files: one dict per image with
    ``style_distance`` (the geometric mean of the per-layer distances), ``style_distance_mean`` (their
    arithmetic mean), ``style_relu1_1`` … ``style_relu5_1`` (each layer's), ``content_distance`` and ``ssim``
    (and with masks ``style_distance_regions``, each region's style distance)."""
    output = quantize(output).cpu()
    h, w = output.shape[-2:]
    content_image = load_bicubic(content, "content image", size=(w, h))
    style_edge = max(MIN_EDGE, round(max(h, w) * style_scale))
    style_images = [load_bicubic(s, "style image", long_edge=style_edge) for s in styles]
    mask_images = [load_mask(m, (h, w)) for m in masks]
    out = image_statistics(output, mask_images, content_image)
    targets = style_targets(style_images)
    regions = None
    if masks:  # N×R×L: each region's per-layer distances; a layer's distance is the mean over the regions
        regions = torch.stack([style_layer_distances(g, t) for g, t in zip(out.masked_grams, targets)], 1)
        layers = regions.mean(1)
    else:
        layers = style_layer_distances(out.grams, blend(targets, style_weights))
    scores: dict[str, Tensor] = {
        "style_distance": geometric_mean(layers),
        "style_distance_mean": layers.mean(1),
        **{layer_key(name): layers[:, i] for i, name in enumerate(STYLE_LAYERS)},
        "content_distance": content_distance_from(out),
        "ssim": ssim_by_tiles(output, content_image),
    }
    rows = [{k: float(v[i]) for k, v in scores.items()} for i in range(output.shape[0])]
    if regions is not None:
        for i, row in enumerate(rows):
            row["style_distance_regions"] = [float(x) for x in geometric_mean(regions[i])]
    return rows


def layer_key(layer: str) -> str:
    """The key of one layer's style distance in a score: ``style_relu1_1``."""
    return f"style_{layer}"


LAYER_KEYS = tuple(layer_key(name) for name in STYLE_LAYERS)


def score_file(
    output: Path_,
    content: Path_,
    styles: Sequence[Path_],
    size: int | None = None,
    style_weights: Sequence[float] | None = None,
    style_scale: float = 1.0,
    masks: Sequence[Path_] = (),
) -> dict[str, float]:
    """Score an image file from any tool; ``size`` resizes it (bicubic) to that long edge first."""
    image = load_bicubic(output, "output image", long_edge=size)
    row = score_tensor(image, content, styles, style_weights, style_scale, masks)[0]
    return {**row, "width": image.shape[-1], "height": image.shape[-2]}


def format_score(row: dict[str, float]) -> str:
    """``style 0.0196 (relu1_1 … relu5_1: 0.0025 0.0075 0.0188 0.0646 0.127)  content 0.501  SSIM 0.612``."""
    text = f"style {row['style_distance']:.4g}"
    if all(k in row for k in LAYER_KEYS):
        text += f" (relu1_1 … relu5_1: {' '.join(f'{row[k]:.3g}' for k in LAYER_KEYS)})"
    return f"{text}  content {row['content_distance']:.4g}  SSIM {row['ssim']:.3f}"
