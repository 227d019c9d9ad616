"""Multi-scale (coarse-to-fine) style transfer as a Lightning callback.

The run starts at a low resolution; at each scale boundary (counted in optimizer steps) the image is
upsampled by ``factor`` (√2, as crowsonkb/style-transfer-pytorch) and optimization continues. At every
scale the content image is loaded at that size, the style images at ``data.style_scale`` times that size
(so strokes keep their size relative to the image) and the masks at the content's size; the targets are
computed again.

The image stays the same ``nn.Parameter``: only its data is replaced, so the optimizer (and Lightning's
wrapper around it) keeps pointing at it. The optimizer's state is cleared at each boundary: L-BFGS's
curvature history (and Adam's moments) are vectors of the old size and mean nothing at the new one, so
each scale starts a fresh history, as restarting the optimizer per scale does in other tools.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info

from nst_lightning.errors import ConfigValueError


def scale_sizes(size: int, scales: int | None = None, min_size: int | None = None, factor: float = math.sqrt(2)) -> list[int]:
    """Long edges from the smallest scale to ``size``, each ``factor`` times the previous (rounded).

    Give ``scales`` (how many sizes, ``size`` included) or ``min_size`` (the smallest long edge allowed).
    """
    if not factor > 1:
        raise ConfigValueError(f"MultiScale: factor must be > 1, not {factor!r}")
    if min_size is not None:
        if not 16 <= min_size <= size:
            raise ConfigValueError(f"MultiScale: min_size must be between 16 and data.size ({size}), not {min_size!r}")
        scales = 1 + int(math.floor(math.log(size / min_size, factor) + 1e-9))
    if scales is None or scales < 1:
        raise ConfigValueError(f"MultiScale: scales must be >= 1, not {scales!r}")
    sizes = [round(size / factor**k) for k in reversed(range(scales))]
    if sizes[0] < 16:
        raise ConfigValueError(f"MultiScale: {scales} scales from {size} px go below 16 px ({sizes[0]} px); use fewer")
    return sizes


class MultiScale(pl.Callback):
    """Optimize coarse to fine: ``scales`` sizes, each ``factor`` larger, ending at ``data.size``.

    Args:
        scales: the number of sizes, the final one included (1: a plain single-scale run).
        min_size: instead of ``scales``, the smallest long edge; the sizes go down from ``data.size`` by
            ``factor`` while they stay at or above it.
        steps_per_scale: optimizer steps at each scale below the final one: one number for all, or a list
            from the smallest scale up. The final scale runs the remaining ``trainer.max_steps``.
        factor: the ratio of neighbouring sizes.
        mode: the interpolation that upsamples the image between scales (``bicubic``, ``bilinear``).
    """

    def __init__(
        self,
        scales: int = 3,
        min_size: int | None = None,
        steps_per_scale: int | list[int] = 50,
        factor: float = math.sqrt(2),
        mode: str = "bicubic",
    ) -> None:
        self.scales = scales
        self.min_size = min_size
        self.steps_per_scale = steps_per_scale
        self.factor = factor
        self.mode = mode
        self.sizes: list[int] = []
        self.boundaries: list[int] = []  # the global step at which each scale starts
        self.scale_index = -1

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.sizes = scale_sizes(trainer.datamodule.size, self.scales, self.min_size, self.factor)
        coarse = len(self.sizes) - 1
        steps = self.steps_per_scale
        steps = [steps] * coarse if isinstance(steps, int) else list(steps)
        if len(steps) != coarse or any(s < 1 for s in steps):
            raise ConfigValueError(f"MultiScale: steps_per_scale needs {coarse} values >= 1 (one per coarse scale), not {steps}")
        if trainer.max_steps is not None and 0 < trainer.max_steps <= sum(steps):
            raise ConfigValueError(
                f"MultiScale: trainer.max_steps ({trainer.max_steps}) must exceed the coarse scales' steps "
                f"({sum(steps)}) so that the final size gets steps too; give the coarse scales fewer "
                f"(--trainer.callbacks.steps_per_scale N) or run one scale (--config faithful)"
            )
        self.boundaries = [sum(steps[:k]) for k in range(len(self.sizes))]

    def scale_at(self, step: int) -> int:
        """The index of the scale that the optimizer step ``step`` runs at."""
        return max(k for k, start in enumerate(self.boundaries) if step >= start)

    def scale_start(self) -> int:
        """The optimizer step at which the current scale started (0 before the first)."""
        return self.boundaries[self.scale_index] if self.scale_index >= 0 else 0

    def at_final_scale(self) -> bool:
        """Whether the current scale is the final size (a plateau here ends the run, not the scale)."""
        return self.scale_index >= len(self.sizes) - 1

    def current_size(self) -> int:
        """The long edge of the current scale, in pixels."""
        return self.sizes[max(0, self.scale_index)]

    def end_scale(self, step: int) -> None:
        """End the current scale now (``StopWhenConverged`` found it done): the next scale starts at optimizer
        step ``step`` and the later boundaries move by as much, so each coarse scale keeps its own budget."""
        k = self.scale_index
        if 0 <= k < len(self.boundaries) - 1 and step < self.boundaries[k + 1]:
            shift = self.boundaries[k + 1] - step
            self.boundaries = self.boundaries[: k + 1] + [b - shift for b in self.boundaries[k + 1:]]

    def state_dict(self) -> dict:
        return {"boundaries": list(self.boundaries)}

    def load_state_dict(self, state_dict: dict) -> None:
        """On resume: the boundaries as the interrupted run had moved them (set after ``setup``)."""
        if len(state_dict.get("boundaries", [])) == len(self.boundaries):
            self.boundaries = list(state_dict["boundaries"])

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.scale_index = -1
        self._enter_scale(trainer, pl_module, self.scale_at(trainer.global_step))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        k = self.scale_at(trainer.global_step)
        if k != self.scale_index:
            self._enter_scale(trainer, pl_module, k)

    @torch.no_grad()
    def _enter_scale(self, trainer: pl.Trainer, pl_module: pl.LightningModule, k: int) -> None:
        first = self.scale_index < 0
        self.scale_index = k
        sets = trainer.datamodule.image_sets(self.sizes[k])
        size = tuple(sets[0].content.shape[-2:])
        resized = True
        if first and trainer.global_step == 0 and len(self.sizes) > 1:
            pl_module.set_image_sets(sets)
            # Start the coarsest scale from its own init, not a shrunk one (each image of a batch its own).
            image = pl_module.initial_image()
        elif tuple(pl_module.image.shape[-2:]) == size:
            image, resized = pl_module.image.detach(), False  # a run resumed at this scale
        else:
            image = F.interpolate(pl_module.image.detach(), size=size, mode=self.mode, align_corners=False)
        pl_module.set_image_sets(sets)
        rank_zero_info(f"Scale {k + 1}/{len(self.sizes)}: {size[1]}x{size[0]} px from step {trainer.global_step}")
        pl_module.image.data = image.clamp(0, 1).contiguous()
        pl_module.image.grad = None
        pl_module.compute_targets()
        if resized:  # a resumed run keeps the optimizer state it saved at this scale
            for optimizer in trainer.optimizers:
                reset_optimizer_state(optimizer)


def reset_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Forget the per-parameter state (L-BFGS history, Adam moments) after the parameter changed size."""
    optimizer.state.clear()
    if hasattr(optimizer, "_numel_cache"):  # torch.optim.LBFGS caches the parameter's element count
        optimizer._numel_cache = None
