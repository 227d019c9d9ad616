"""The memory pre-check: a run that cannot fit is refused before anything large is allocated.

``StyleTransferCLI.before_fit`` calls :func:`check_memory` once the model, data module and trainer
exist but before the images are loaded and the targets computed. It estimates the run's peak
(:func:`nst_lightning.model.memory_estimate.estimate_bytes`) and compares it with the memory the
device has left (:func:`nst_lightning.available_memory.available_bytes`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from nst_lightning.available_memory import available_bytes
from nst_lightning.data import StyleTransferData
from nst_lightning.errors import ConfigError
from nst_lightning.model.losses.content import ContentLoss
from nst_lightning.model.memory_estimate import estimate_bytes, largest_fitting_size
from nst_lightning.model.style_transfer import StyleTransfer
from nst_lightning.model.tiling import GiB, TileGeometry, TilingError, choose_tiles

CHECKPOINTING_KEY = "--model.backbone.init_args.activation_checkpointing"


class InsufficientMemoryError(ConfigError):
    """The run's estimated memory exceeds what the device has available."""


def _gb(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def content_shape(data: StyleTransferData, long_edge: int) -> tuple[int, int]:
    """(height, width) of the content image at ``long_edge``, read from its header (nothing decoded);
    a square when the file cannot be read now (loading it later reports why)."""
    try:
        if not Path(data.content).is_file():  # never open a FIFO: it would wait for a writer
            raise OSError("not a regular file")
        with Image.open(data.content) as image:
            w, h = image.size
    except Exception:  # noqa: BLE001 - reported properly when the images are loaded
        return long_edge, long_edge
    scale = long_edge / max(w, h)
    return max(1, round(h * scale)), max(1, round(w * scale))


def optimizer_kind(model: StyleTransfer) -> tuple[str, int]:
    """(``lbfgs`` | ``adam`` | ``sgd``, L-BFGS history size) of the model's optimizer, built on a 1-element tensor."""
    factory = model.optimizer_factory
    if factory is None:
        return "lbfgs", 100
    try:
        optimizer = factory([torch.zeros(1, requires_grad=True)])
    except Exception:  # noqa: BLE001 - an optimizer that needs more than a tensor: count only a gradient's state
        return "sgd", 0
    if isinstance(optimizer, torch.optim.LBFGS):
        return "lbfgs", int(optimizer.defaults.get("history_size", 100))
    return ("adam" if "adam" in type(optimizer).__name__.lower() else "sgd"), 0


def run_estimate(model: StyleTransfer, data: StyleTransferData, long_edge: int, checkpointing: bool) -> int | None:
    """Bytes the run needs at ``long_edge``; None when the backbone does not describe its layers."""
    layers = model.backbone.feature_layers()
    if not layers:
        return None
    height, width = content_shape(data, long_edge)
    kind, history = optimizer_kind(model)
    content_layers = {n for t in model.losses.values() if isinstance(t, ContentLoss) for n in t.layers}
    return estimate_bytes(height, width, model.num_images, layers, model.layers, kind, history, checkpointing,
                          content_layers, len(data.style), data.style_scale)


def fits_in_tiles(model: StyleTransfer, data: StyleTransferData, available: int, checkpointing: bool) -> bool:
    """Whether ``model.tiling`` can run the image in tiles within the memory available (or its own budget, if
    smaller): the whole image's state and one tile must fit. False when tiling is off or impossible."""
    tiling = getattr(model, "tiling", None)
    if tiling is None or tiling.mode == "off":
        return False
    geometry = model._geometry()
    if not isinstance(geometry, TileGeometry):
        return False  # the backbone cannot be tiled: the untiled estimate decides
    budget = available if tiling.memory_budget is None else min(available, int(tiling.memory_budget * GiB))
    height, width = content_shape(data, data.size)
    kind, history = optimizer_kind(model)
    kind = kind if kind in ("lbfgs", "adam") else "other"
    try:
        choose_tiles(
            type(tiling)(tiling.mode, tiling.tile_size, budget / GiB, tiling.lbfgs_history), geometry, height, width,
            model.num_images, kind, history or None, checkpointing, model._content_bytes_per_pixel(),
        )
    except TilingError:
        return False
    return True


def check_memory(model: StyleTransfer, data: StyleTransferData, device: torch.device) -> None:
    """Raise :class:`InsufficientMemoryError` (naming ``data.size`` and what would fit) if the run cannot fit,
    whole or (with ``model.tiling``) in tiles."""
    if not isinstance(data, StyleTransferData):
        return
    checkpointing = bool(getattr(model.backbone, "activation_checkpointing", False))
    needed = run_estimate(model, data, data.size, checkpointing)
    available = available_bytes(device)
    if needed is None or available is None or needed <= available:
        return
    if fits_in_tiles(model, data, available, checkpointing):
        return  # tiles bound the activations; the tile choice says what it chose when the run starts
    fits = largest_fitting_size(available, data.size, lambda edge: run_estimate(model, data, edge, checkpointing))
    advice = [f"the largest that fits is --data.size {fits}" if fits else "not even --data.size 16 fits"]
    if not checkpointing and hasattr(model.backbone, "activation_checkpointing"):
        with_ckpt = run_estimate(model, data, data.size, True)
        if with_ckpt <= available:
            advice.append(f"or keep {data.size} with {CHECKPOINTING_KEY} true (about {_gb(with_ckpt)})")
        else:
            more = largest_fitting_size(available, data.size, lambda edge: run_estimate(model, data, edge, True))
            advice.append(f"with {CHECKPOINTING_KEY} true up to {more}")
    raise InsufficientMemoryError(
        f"a {data.size} px run needs about {_gb(needed)} of memory (activations, targets, optimizer state), "
        f"but {device.type} has {_gb(available)} available; " + ", ".join(advice),
        key="data.size",
    )
