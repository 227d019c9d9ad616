"""Reading and writing images: Pillow in, RGB float tensors in [0, 1] inside, PNG out."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor, to_pil_image

from nst_lightning.errors import NstLightningError
from nst_lightning.files import atomic_write
from nst_lightning.image.png16 import write_png16

# The backbone pools its input four times before relu5_1: a smaller edge leaves no feature map.
MIN_EDGE = 16


class ImageError(NstLightningError):
    """An input image cannot be used."""


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB from any mode: alpha is composited over white, 16-bit is scaled, CMYK and palettes converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = torch.from_numpy(np.asarray(image, dtype="float32"))
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        gray = (array / peak).clamp(0, 1)
        return to_pil_image(gray.unsqueeze(0).expand(3, -1, -1).contiguous())
    if image.mode == "F":
        return image.convert("L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def open_rgb(path: str | os.PathLike, what: str = "image") -> Image.Image:
    """Open ``path`` as an RGB Pillow image, honouring EXIF orientation. Errors name the file."""
    p = Path(path)
    if not p.exists():
        raise ImageError(f"{what} {str(p)!r} does not exist")
    if p.is_dir():
        raise ImageError(f"{what} {str(p)!r} is a directory, not an image file")
    if p.stat().st_size == 0:
        raise ImageError(f"{what} {str(p)!r} is an empty file")
    try:
        with Image.open(p) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image)
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"{what} {str(p)!r} is too large to open safely ({exc}); shrink it first: "
            "the run resizes it to --data.size pixels on the long edge anyway"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"{what} {str(p)!r} is not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{what} {str(p)!r} is truncated or corrupt ({exc})") from None


def resize_long_edge(image: Image.Image, long_edge: int) -> Image.Image:
    w, h = image.size
    scale = long_edge / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS)


def load_image(path: str | os.PathLike, long_edge: int | None = None, what: str = "image") -> Tensor:
    """Load ``path`` as a 1×3×H×W float32 tensor in [0, 1], resized so its long edge is ``long_edge``."""
    image = open_rgb(path, what)
    if long_edge is not None:
        original = image.size
        image = resize_long_edge(image, long_edge)
        if min(image.size) < MIN_EDGE:
            raise ImageError(
                f"{what} {str(path)!r} is {original[0]}x{original[1]} px: at a long edge of {long_edge} px its "
                f"short edge is {min(image.size)} px, under the {MIN_EDGE} px the backbone needs; "
                "crop it, or raise --data.size (or --data.style_scale)"
            )
    return pil_to_tensor(image).float().div_(255).unsqueeze(0).contiguous()


def to_pil(image: Tensor) -> Image.Image:
    """The first image of a N×3×H×W (or 3×H×W) tensor in [0, 1] as an 8-bit RGB Pillow image."""
    if image.ndim == 4:
        image = image[0]
    return to_pil_image(image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu())


def png_metadata(step: int, config: str | None = None) -> dict[str, str]:
    """The text chunks of every PNG the project writes: the software, the step, and the run's config (YAML)."""
    meta = {"Software": "nst-lightning", "nst-lightning:step": str(step)}
    if config:
        meta["nst-lightning:config"] = config
    return meta


def save_png(
    image: Tensor, path: str | os.PathLike, metadata: dict[str, str] | None = None, bit_depth: int = 8
) -> Path:
    """Write ``image`` as PNG atomically: a temporary file in the same directory, then a rename.

    ``bit_depth`` 16 writes 16 bits per channel (for prints: no banding in smooth gradients)."""
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, not {bit_depth!r}")
    if bit_depth == 16:
        with atomic_write(path) as f:
            write_png16(image, f, metadata)
        return Path(path)
    info = PngImagePlugin.PngInfo()
    for key, value in (metadata or {}).items():
        info.add_itxt(key, value)
    with atomic_write(path) as f:
        to_pil(image).save(f, format="PNG", pnginfo=info)
    return Path(path)
