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


# Pillow refuses PNG text and ICC chunks that decompress to more than PngImagePlugin.MAX_TEXT_CHUNK (1 MiB):
# a guard against decompression bombs. The pixels do not depend on them, so an image refused for that alone
# is opened again with this larger bound, and its profile dropped (the run does not colour-manage).
METADATA_LIMIT = 256 * 2**20


class _NotFinite(ValueError):
    """A floating-point image with NaN or infinite values."""


def gray_range(array: np.ndarray, mode: str) -> tuple[float, float]:
    """The (black, white) values of a single-channel image of Pillow ``mode`` (``F``, ``I``, ``I;16``...).

    16-bit images span 0–65535. Floating-point and 32-bit integer images are taken in the first of
    the usual ranges that holds all their values (0–1 for floating point, then 0–255, then 0–65535);
    values outside all of them (negative, or beyond 65535) are scaled by the image's own minimum and maximum.
    """
    if mode.startswith("I;16"):
        return 0.0, 65535.0
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    candidates = (1.0, 255.0, 65535.0) if mode == "F" else (255.0, 65535.0)
    for white in candidates:
        if low >= 0 and high <= white:
            return 0.0, white
    return low, high if high > low else low + 1.0


def _scaled_gray(image: Image.Image) -> Image.Image:
    """A high-bit-depth single-channel image as 8-bit RGB, scaled by :func:`gray_range` (never clipped to black)."""
    array = np.asarray(image, dtype=np.float64)
    if not np.isfinite(array).all():
        raise _NotFinite("has NaN or infinite pixel values")
    black, white = gray_range(array, image.mode)
    gray = torch.from_numpy(((array - black) / (white - black)).astype("float32")).clamp(0, 1)
    return to_pil_image(gray.mul(255).round().to(torch.uint8).unsqueeze(0).expand(3, -1, -1).contiguous())


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB from any mode: alpha is composited over white, high bit depths are scaled, CMYK and palettes converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _scaled_gray(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _decode(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        image = ImageOps.exif_transpose(image)
        return _to_rgb(image)


def _decode_with_large_metadata(path: Path) -> Image.Image:
    """:func:`_decode` with Pillow's PNG text/ICC limit raised to ``METADATA_LIMIT``; the profile is dropped."""
    before = PngImagePlugin.MAX_TEXT_CHUNK
    PngImagePlugin.MAX_TEXT_CHUNK = METADATA_LIMIT
    try:
        image = _decode(path)
    finally:
        PngImagePlugin.MAX_TEXT_CHUNK = before
    image.info.pop("icc_profile", None)
    return image


SAMPLE_PREFIX = "sample:"
SAMPLES = Path(__file__).resolve().parents[1] / "assets"


def input_path(path: str | os.PathLike) -> Path:
    """The file an input names: ``sample:NAME`` is one of the sample images shipped with the package (``sample:
    tubingen.jpg``, ``sample:starry_night.jpg``, ``sample:the_scream.jpg``, ``sample:mask_left.png``, ...),
    reachable from any folder and from an installed wheel; anything else is a path."""
    text = os.fspath(path)
    if isinstance(text, str) and text.startswith(SAMPLE_PREFIX):
        return SAMPLES / text[len(SAMPLE_PREFIX):]
    return Path(text)


def sample_names() -> list[str]:
    """The sample images' names, ``sample:...``."""
    return sorted(SAMPLE_PREFIX + p.name for p in SAMPLES.iterdir() if p.suffix.lower() in (".jpg", ".png"))


def check_image_file(path: str | os.PathLike, what: str = "image") -> Path:
    """The file ``path`` names, if it is a non-empty regular file whose header Pillow reads (nothing decoded):
    the checks an input gets before a run starts. Errors name the file."""
    p = input_path(path)
    name = f"{what} {str(p)!r}"
    if not p.exists():
        raise ImageError(f"{name} does not exist")
    if p.is_dir():
        raise ImageError(f"{name} is a directory, not an image file")
    if not p.is_file():
        raise ImageError(f"{name} is not a regular file (a FIFO, socket or device); give an image file")
    if p.stat().st_size == 0:
        raise ImageError(f"{name} is an empty file")
    try:
        with Image.open(p):
            pass
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image file Pillow can read") from None
    except PermissionError:
        raise ImageError(f"{name} cannot be read: permission denied") from None
    except (OSError, ValueError, Image.DecompressionBombError):
        pass  # decoding reports these with the whole story
    return p


def open_rgb(path: str | os.PathLike, what: str = "image") -> Image.Image:
    """Open ``path`` as an RGB Pillow image, honouring EXIF orientation. Errors name the file."""
    p = check_image_file(path, what)
    name = f"{what} {str(p)!r}"
    try:
        try:
            return _decode(p)
        except ValueError as exc:
            if "MAX_TEXT_CHUNK" not in str(exc):
                raise
            return _decode_with_large_metadata(p)
    except _NotFinite as exc:
        raise ImageError(f"{name} {exc}; only finite values can be scaled to colours") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"{name} is too large to open safely ({exc}); shrink it first: "
            "the run resizes it to --data.size pixels on the long edge anyway"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image file Pillow can read") from None
    except PermissionError:
        raise ImageError(f"{name} cannot be read: permission denied") from None
    except ValueError as exc:
        if "MAX_TEXT_CHUNK" in str(exc):
            raise ImageError(
                f"{name} has a metadata chunk (text or ICC profile) that decompresses to over "
                f"{METADATA_LIMIT // 2**20} MiB, the limit here; strip its metadata first"
            ) from None
        raise ImageError(f"{name} is truncated or corrupt ({exc})") from None
    except (OSError, SyntaxError) as exc:
        raise ImageError(f"{name} is truncated or corrupt ({exc})") from None


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
    image: Tensor,
    path: str | os.PathLike,
    metadata: dict[str, str] | None = None,
    bit_depth: int = 8,
    *,
    replace: bool = True,
) -> Path:
    """Write ``image`` as PNG atomically: a temporary file in the same directory, then a rename.

    With ``replace=False`` an existing ``path`` is never replaced (:class:`FileExistsError`).
    ``bit_depth`` 16 writes 16 bits per channel (for prints: no banding in smooth gradients).
    """
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, not {bit_depth!r}")
    if bit_depth == 16:
        with atomic_write(path, replace=replace) as f:
            write_png16(image, f, metadata)
        return Path(path)
    info = PngImagePlugin.PngInfo()
    for key, value in (metadata or {}).items():
        info.add_itxt(key, value)
    with atomic_write(path, replace=replace) as f:
        to_pil(image).save(f, format="PNG", pnginfo=info)
    return Path(path)


def shape_at(path: str | Path, long_edge: int) -> tuple[int, int]:
    """(height, width) of the image file ``path`` resized to ``long_edge``, read from its header (nothing
    decoded); a square when the file cannot be read now (loading it later reports why)."""
    try:
        path = input_path(path)
        if not path.is_file():  # never open a FIFO: it would wait for a writer
            raise OSError("not a regular file")
        with Image.open(path) as image:
            w, h = image.size
    except Exception:  # noqa: BLE001 - reported properly when the image is loaded
        return long_edge, long_edge
    scale = long_edge / max(w, h)
    return max(1, round(h * scale)), max(1, round(w * scale))
