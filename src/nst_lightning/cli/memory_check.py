"""The memory pre-check: a run that cannot fit is refused before anything large is allocated.

``StyleTransferCLI.before_fit`` calls :func:`check_memory` once the model, data module and trainer
exist but before the images are loaded and the targets computed. It makes the run's plan
(:class:`~nst_lightning.model.run_plan.RunPlan`: the memory available, read once, and the one cost model),
which the run then uses, and asks it whether the run fits, whole or in tiles.
"""

from __future__ import annotations

import inspect

import torch

from nst_lightning.data import StyleTransferData
from nst_lightning.errors import ConfigError
from nst_lightning.model.memory_estimate import largest_fitting_size
from nst_lightning.model.style_transfer import StyleTransfer

CHECKPOINTING_KEY = "--model.backbone.init_args.activation_checkpointing"


class InsufficientMemoryError(ConfigError):
    """The run's estimated memory exceeds what the device has available."""


def _gb(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def content_shape(data: StyleTransferData, long_edge: int) -> tuple[int, int]:
    """(height, width) of the content at ``long_edge`` (the data module answers: an image file's header, a clip's frames)."""
    return data.content_shape(long_edge)


def run_estimate(model: StyleTransfer, data: StyleTransferData, long_edge: int, checkpointing: bool | None = None
                 ) -> int | None:
    """Bytes the untiled run needs at ``long_edge`` (the run plan's cost model); None when the backbone does not
    describe its layers."""
    plan = model.plan if model.plan is not None else model.make_plan(data.style_count, data.style_scale, "cpu")
    return plan.run_bytes(*content_shape(data, long_edge), checkpointing=checkpointing)


def check_memory(model: StyleTransfer, data: StyleTransferData, device: torch.device) -> None:
    """Make the run's plan and raise :class:`InsufficientMemoryError` (naming ``data.size`` and what would fit)
    if the run cannot fit, whole or (with ``model.tiling``) in tiles."""
    if not isinstance(data, StyleTransferData):
        return
    plan = model.make_plan(data.style_count, data.style_scale, device, contents=data.images_per_step)
    height, width = content_shape(data, data.size)
    needed = plan.run_bytes(height, width)
    if needed is None or plan.available is None or plan.fits(height, width):
        return
    if model.tiling.memory_budget is not None and model.tiling.mode != "off":
        plan.tile_choice(height, width)  # the user's budget binds: its TilingError names model.tiling.memory_budget
    available = plan.budget
    if plan.style_bound(height, width):
        scale = plan.largest_style_scale(height, width)
        edge = round(data.size * data.style_scale)
        raise InsufficientMemoryError(
            f"making the style targets at --data.style_scale {data.style_scale:g} ({edge} px style images) needs about "
            f"{_gb(plan.target_bytes(height, width))} of memory, but {device.type} has {_gb(available)} available; "
            + (f"the largest that fits is --data.style_scale {scale:g}" if scale else "no style_scale fits"),
            key="data.style_scale",
        )

    def at(edge: int, checkpointing: bool | None = None) -> int:
        return plan.run_bytes(*content_shape(data, edge), checkpointing=checkpointing)

    checkpointing = plan.checkpointing
    fits = largest_fitting_size(available, data.size, at)
    advice = [f"the largest that fits is --data.size {fits}" if fits else "not even --data.size 16 fits"]
    can_checkpoint = "activation_checkpointing" in inspect.signature(type(model.backbone)).parameters
    if not checkpointing and can_checkpoint:
        with_ckpt = at(data.size, True)
        if with_ckpt <= available:
            advice.append(f"or keep {data.size} with {CHECKPOINTING_KEY} true (about {_gb(with_ckpt)})")
        else:
            more = largest_fitting_size(available, data.size, lambda edge: at(edge, True))
            advice.append(f"with {CHECKPOINTING_KEY} true up to {more}")
    raise InsufficientMemoryError(
        f"a {data.size} px run needs about {_gb(needed)} of memory (activations, targets, optimizer state), "
        f"but {device.type} has {_gb(available)} available; " + ", ".join(advice),
        key="data.size",
    )
