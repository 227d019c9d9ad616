"""The memory ``nst-lightning score`` needs, told from the files' headers before anything is decoded.

Scoring decodes each file at the size it declares (Pillow cannot decode a PNG smaller), then works on the
scored size: the output (resized to ``--size``), the content at the same size, the styles at ``style_scale``
times its long edge, and the feature passes, which go tile by tile (``SCORE_TILE`` px, see
:mod:`~nst_lightning.quality.distances`): a large image costs its pixels' tensors, not a larger pass. Measured
on a CPU (peak resident memory of ``score`` on 256, 768 and 1536 px images over the process with its
backbone loaded: 293, 959 and 1026 MiB; this estimate: 1.07 to 1.17 times that).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

from PIL import Image

from nst_lightning.errors import ConfigError
from nst_lightning.image.io import input_path
from nst_lightning.model.memory_estimate import largest_fitting_size
from nst_lightning.quality.distances import SCORE_TILE

SCORE_FIXED_BYTES = 256 * 2**20  # work buffers and the libraries' first-use allocations
TILE_PIXEL_BYTES = 1300  # per pixel of one tile: the caffe VGG19 forward pass without gradients and its statistics
SCORED_PIXEL_BYTES = 64  # per scored pixel: the output, its 8-bit rounding, the content, SSIM's maps (float32)
DECODED_PIXEL_BYTES = 8  # per declared pixel: Pillow's decoded image and its RGB copy (4 bytes a pixel each)

Size = tuple[int, int]  # (width, height), as Pillow gives it


class ScoreMemoryError(ConfigError):
    """Scoring these files would need more memory than there is."""


def declared_size(path: str | os.PathLike) -> Size | None:
    """(width, height) that an image file's header declares, nothing decoded; None if it cannot be read now
    (decoding it later says why)."""
    try:
        p = input_path(path)
        if not p.is_file():
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as image:
                return image.size
    except Exception:  # noqa: BLE001 - reported properly when the image is decoded
        return None


def _gb(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def scored_size(output: Size, long_edge: int | None) -> Size:
    """The size the output is scored at: its own, or resized to ``long_edge``."""
    if long_edge is None:
        return output
    w, h = output
    scale = long_edge / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def score_bytes(output: Size, styles: Sequence[Size], long_edge: int | None = None, style_scale: float = 1.0,
                masks: int = 0) -> int:
    """Bytes scoring needs at its peak after the files are decoded: the images at the scored size, the masks
    and one tile's feature pass."""
    w, h = scored_size(output, long_edge)
    style_edge = max(w, h) * style_scale
    style_pixels = sum(style_edge**2 * min(sw, sh) / max(sw, sh) for sw, sh in styles)
    tile = max([min(w, SCORE_TILE) * min(h, SCORE_TILE),
                *(min(style_edge, SCORE_TILE) ** 2 for _ in styles)])
    pixels = w * h
    return int(SCORE_FIXED_BYTES + TILE_PIXEL_BYTES * tile + SCORED_PIXEL_BYTES * pixels
               + 12 * style_pixels + 4 * masks * pixels)


def check_score_memory(available: int | None, output: str, content: str, styles: Sequence[str],
                       long_edge: int | None = None, style_scale: float = 1.0, masks: int = 0) -> None:
    """Raise :class:`ScoreMemoryError` when decoding a file, or scoring at the scored size, cannot fit in
    ``available`` bytes (None: unknown, no check): the first names the file, the second ``--size`` and the
    largest that fits."""
    if available is None:
        return
    files = [("the output", output), ("--content", content), *(("--style", s) for s in styles)]
    sizes = {path: declared_size(path) for _, path in files}
    for what, path in files:
        size = sizes[path]
        if size is not None and size[0] * size[1] * DECODED_PIXEL_BYTES > available:
            raise ScoreMemoryError(
                f"score: {what} {path!r} declares {size[0]}x{size[1]} px: decoding it needs about "
                f"{_gb(size[0] * size[1] * DECODED_PIXEL_BYTES)}, but cpu has {_gb(available)} available; "
                "shrink the file first")
    out = sizes[output]
    if out is None:
        return
    style_sizes = [s for s in (sizes[path] for path in styles) if s is not None]
    needed = score_bytes(out, style_sizes, long_edge, style_scale, masks)
    if needed <= available:
        return
    w, h = scored_size(out, long_edge)
    fits = largest_fitting_size(available, max(w, h),
                                lambda edge: score_bytes(out, style_sizes, edge, style_scale, masks))
    raise ScoreMemoryError(
        f"score: scoring {output!r} at {w}x{h} px needs about {_gb(needed)} of memory, but cpu has {_gb(available)} "
        "available; " + (f"the largest that fits is --size {fits}" if fits else "not even --size 16 fits"))
