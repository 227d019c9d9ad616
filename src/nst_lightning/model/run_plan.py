"""The run plan: made once when ``fit`` starts, it answers every question about the run's memory and tiles.

One place owns:

- the memory available (:func:`nst_lightning.available_memory.available_bytes`: cgroup- and allocator-aware),
  measured once, when the plan is made;
- the cost model (:class:`~nst_lightning.model.memory_estimate.CostModel`, from the backbone's own layers);
- the optimizer's memory and batching behaviour, as its class declares them
  (:func:`~nst_lightning.model.optimizers.optimizer_traits`);
- the tile choice and plan for each image size (each scale of a multi-scale run), and L-BFGS's history size.

``StyleTransfer`` (its steps and targets), the CLI's memory pre-check, multi-scale (through the model's
``tile_plan``) and the sweep planner (the optimizer's traits) ask it; none of them computes its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch

from nst_lightning.available_memory import available_bytes
from nst_lightning.model.backbones.base import Backbone
from nst_lightning.model.losses.base import LossTerm
from nst_lightning.model.memory_estimate import CostModel
from nst_lightning.model.optimizers import OptimizerTraits
from nst_lightning.model.tiling import (
    RUNTIME_BYTES,
    GiB,
    TileChoice,
    TileGeometry,
    TilePlan,
    Tiling,
    TilingError,
    choose_tiles,
    plan_tiles,
    tile_geometry,
)

# The budget when neither the user nor the system tells (a device whose free memory cannot be read).
UNKNOWN_MEMORY = 8 * GiB


def content_layers(losses: Mapping[str, LossTerm]) -> list[str]:
    """The layers whose content targets are kept at full size: those of the terms that read the content."""
    return sorted({name for term in losses.values() if term.reads_content for name in term.layers})


class RunPlan:
    """The plan of one run (see the module's docstring).

    Args:
        backbone: the frozen feature extractor (its layers give the cost model and the tile geometry).
        losses: the loss terms (the layers they read; which read the content).
        tiling: the user's tiling settings.
        optimizer: the optimizer's traits.
        images: images optimized together (a batched sweep).
        styles, style_scale: the style images (over all images' sets) and their size relative to the content's.
        contents: the content images (one per image when each image of a batch has its own).
        device: where the run happens; its available memory is read now, once.
        available: bytes available, instead of reading them (tests, benchmarks).
    """

    def __init__(
        self,
        backbone: Backbone,
        losses: Mapping[str, LossTerm],
        tiling: Tiling,
        optimizer: OptimizerTraits,
        images: int = 1,
        styles: int = 1,
        style_scale: float = 1.0,
        device: torch.device | str = "cpu",
        available: int | None = None,
        contents: int = 1,
    ) -> None:
        self.tiling = tiling
        self.optimizer = optimizer
        self.images = images
        self.layers = sorted({name for term in losses.values() for name in term.layers})
        self.checkpointing = backbone.activation_checkpointing
        self.available = available if available is not None else available_bytes(device)
        self.cost = CostModel(tuple(backbone.feature_layers() or ()), frozenset(self.layers),
                              frozenset(content_layers(losses)), self.checkpointing, styles, style_scale, contents)
        try:
            self.geometry: TileGeometry | TilingError = tile_geometry(backbone, self.layers)
        except TilingError as exc:  # raised only if an image needs tiles
            self.geometry = exc
        self._choices: dict[tuple[int, int], TileChoice] = {}
        self._plans: dict[tuple[int, int, int], TilePlan] = {}

    # -- memory -----------------------------------------------------------------------------------

    @property
    def budget(self) -> int:
        """Bytes the run may use: ``tiling.memory_budget`` when given (never more than is available), else
        the memory available when the plan was made."""
        available = self.available if self.available is not None else UNKNOWN_MEMORY
        if self.tiling.memory_budget is None:
            return available
        return min(available, int(self.tiling.memory_budget * GiB)) if self.available is not None else int(
            self.tiling.memory_budget * GiB)

    def run_bytes(self, height: int, width: int, checkpointing: bool | None = None) -> int | None:
        """The untiled run's peak at ``height``×``width`` (None when the backbone does not describe its layers)."""
        cost = self.cost if checkpointing is None else CostModel(
            self.cost.layers, self.cost.requested, self.cost.content_layers, checkpointing, self.cost.styles,
            self.cost.style_scale, self.cost.contents)
        return cost.run_bytes(height, width, self.images, self.optimizer_vectors)

    @property
    def optimizer_vectors(self) -> int:
        """Image-sized vectors the optimizer keeps at the full history."""
        return self.optimizer.state_copies + 2 * (self.optimizer.history or 0)

    # -- tiles ------------------------------------------------------------------------------------

    def tile_choice(self, height: int, width: int) -> TileChoice:
        """The tile size (None: untiled) and L-BFGS history for an image of this size, chosen once per size."""
        key = (height, width)
        if key not in self._choices:
            usable = self.geometry if isinstance(self.geometry, TileGeometry) else TileGeometry({}, 0, 1, "")
            runtime = RUNTIME_BYTES if self.tiling.memory_budget is not None else 0
            choice = choose_tiles(self.tiling, usable, height, width, budget=self.budget, cost=self.cost,
                                  optimizer=self.optimizer, images=self.images, runtime=runtime)
            if choice.tile_size is not None and isinstance(self.geometry, TilingError):
                raise self.geometry
            self._choices[key] = choice
        return self._choices[key]

    def target_bytes(self, height: int, width: int) -> int | None:
        """The peak while the targets are made untiled: the style images' passes at ``style_scale`` (None when the
        backbone does not describe its layers)."""
        return self.cost.target_bytes(height, width, self.images)

    def style_bound(self, height: int, width: int) -> bool:
        """Whether making the style targets, not the steps, is what the untiled run cannot fit."""
        target = self.target_bytes(height, width)
        step = self.cost.step_bytes(height, width, self.images, self.optimizer_vectors)
        return target is not None and step is not None and target > max(step, self.budget)

    def largest_style_scale(self, height: int, width: int) -> float:
        """The largest ``style_scale`` (to 0.05, at most the run's) whose untiled targets fit the budget; 0 if none."""
        low, high = 0, int(self.cost.style_scale * 20)
        while low < high:  # the largest k with target_bytes at style_scale k / 20 <= budget
            mid = (low + high + 1) // 2
            cost = dataclasses.replace(self.cost, style_scale=mid / 20)
            if (cost.target_bytes(height, width, self.images) or 0) <= self.budget:
                low = mid
            else:
                high = mid - 1
        return low / 20

    def fits(self, height: int, width: int) -> bool:
        """Whether the run fits the budget at this size, whole or in tiles (its style images are cut with the
        content's tiles; an untiled run makes its style targets whole)."""
        run = self.run_bytes(height, width)
        if run is None or run <= self.budget:
            return True
        if self.tiling.mode == "off" or not isinstance(self.geometry, TileGeometry):
            return False
        try:
            choice = self.tile_choice(height, width)
        except TilingError:
            return False
        return choice.tile_size is not None or not self.style_bound(height, width)

    def tile_plan(self, height: int, width: int, choice_for: tuple[int, int] | None = None) -> TilePlan | None:
        """The tiles of a ``height``×``width`` image (None: it runs whole), with the tile size chosen for an
        image of ``choice_for`` (default: itself; a style image is cut with its content's tiles)."""
        choice = self.tile_choice(*(choice_for or (height, width)))
        if choice.tile_size is None or (height <= choice.tile_size and width <= choice.tile_size):
            return None
        key = (height, width, choice.tile_size)
        if key not in self._plans:
            assert isinstance(self.geometry, TileGeometry)  # tile_choice raised the TilingError otherwise
            self._plans[key] = plan_tiles(height, width, choice.tile_size, self.geometry)
        return self._plans[key]

    def history_size(self, height: int, width: int) -> int | None:
        """L-BFGS's history at this size: what the budget holds when tiled, else the optimizer's own."""
        return self.tile_choice(height, width).history or self.optimizer.history

    def describe(self, height: int, width: int) -> str | None:
        """A line for the log when the image is tiled (None when it is not)."""
        plan = self.tile_plan(height, width)
        if plan is None:
            return None
        return f"Tiling: {plan.describe()}; {self.tile_choice(height, width).describe(self.optimizer.history)}"
