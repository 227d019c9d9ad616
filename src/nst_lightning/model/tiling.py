"""Tile geometry for images larger than memory allows: the settings, the margin, the plan of tiles, the budget.

A tile *owns* a block of the image (its interior) and carries a *margin* of real neighbouring pixels on
every side that is not the image's edge. The margin is the reach of the deepest layer's receptive field
(computed from the backbone: 70 px for VGG19's relu5_1, whose field is 156 px wide), rounded up to the
*alignment*, the deepest layer's stride (16 px for VGG19), so that every tile's origin lies on the pooling
grid. Then the features a tile computes at the positions it owns equal the whole image's, and the Gram,
content and mask statistics summed over the tiles equal the untiled ones (see :mod:`tiled_loss`).

Memory is then bounded by one tile's activations plus what is kept per pixel of the image (the image, its
gradient, the content target and the optimizer's state). :func:`choose_tiles` chooses the tile size and, for
L-BFGS, the history size from a memory budget, with the run's one cost model
(:class:`~nst_lightning.model.memory_estimate.CostModel`); :class:`~nst_lightning.model.run_plan.RunPlan`
asks it once per image size.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from nst_lightning.errors import ConfigError, ConfigValueError
from nst_lightning.model.backbones.base import Backbone
from nst_lightning.model.backbones.geometry import LayerGeometry
from nst_lightning.model.losses.base import Window
from nst_lightning.model.memory_estimate import FIXED_BYTES, CostModel
from nst_lightning.model.optimizers import OptimizerTraits

GiB = 2**30
# torch, the backbone's weights and Python, before any image: counted when the budget is the user's
# ``memory_budget`` (what the whole run may use), not when it is the memory still available at the start.
RUNTIME_BYTES = int(0.7 * GiB)
# Image-sized copies a tiled step keeps beyond the cost model's images: the tiled gradient, the NaN guard's
# last good image, and the step's transients.
TILED_COPIES = 4
MIN_TILE = 512  # the budget keeps at least a tile this large before giving memory to L-BFGS's history


class TilingError(ConfigError):
    """Tiling settings that cannot work, or a component that cannot be tiled."""


@dataclass
class Tiling:
    """Optimize large images tile by tile, with the exact loss and gradient (README: Large images).

    Args:
        mode: ``auto`` tiles an image that does not fit ``memory_budget`` (or is larger than ``tile_size``);
            ``off`` never tiles.
        tile_size: the largest tile edge in pixels, margins included; a multiple of the alignment (16 px for
            VGG19). Default: chosen from ``memory_budget``.
        memory_budget: GiB the run may use; default: the memory available when the run starts (on a GPU the
            device's free memory). Sets the tile size when ``tile_size`` is not given, and L-BFGS's history.
        lbfgs_history: L-BFGS's ``history_size`` when tiling; default: the optimizer's own, lowered to what
            the budget holds (each pair of history vectors is two copies of the image).
    """

    mode: Literal["auto", "off"] = "auto"
    tile_size: int | None = None
    memory_budget: float | None = None
    lbfgs_history: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "off"):
            raise ConfigValueError(f"must be 'auto' or 'off', not {self.mode!r}", key="model.tiling.mode")
        if self.tile_size is not None and (isinstance(self.tile_size, bool) or self.tile_size < 1):
            raise ConfigValueError(f"must be a positive number of pixels, not {self.tile_size!r}", key="model.tiling.tile_size")
        if self.memory_budget is not None and not 0 < self.memory_budget < float("inf"):
            raise ConfigValueError(f"must be a positive number of GiB, not {self.memory_budget!r}", key="model.tiling.memory_budget")
        if self.lbfgs_history is not None and self.lbfgs_history < 1:
            raise ConfigValueError(f"must be at least 1, not {self.lbfgs_history!r}", key="model.tiling.lbfgs_history")


# -- geometry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TileGeometry:
    """What tiling needs to know of the backbone for the layers in use."""

    layers: dict[str, LayerGeometry]
    margin: int  # pixels of real neighbours every tile carries on each inner side
    align: int  # tile origins are multiples of this
    deepest: str  # the layer with the widest receptive field

    @property
    def min_tile(self) -> int:
        return 2 * self.margin + self.align


def tile_geometry(backbone: Backbone, layers: Collection[str]) -> TileGeometry:
    """Margin and alignment from the backbone's receptive fields at ``layers``."""
    geometries = {}
    for name in layers:
        try:
            g = backbone.layer_geometry(name)
        except (TypeError, ValueError) as exc:
            raise TilingError(f"cannot be tiled: {exc}", key="model.backbone") from None
        if g is None:
            raise TilingError(
                f"{type(backbone).__name__} does not describe its receptive fields (Backbone.layer_geometry), "
                "so its images cannot be tiled; use a smaller --data.size or --model.tiling.mode off",
                key="model.backbone",
            )
        geometries[name] = g
    if not geometries:
        return TileGeometry({}, 0, 1, "")
    align = math.lcm(*(g.jump for g in geometries.values()))
    reach = max(max(g.margin_before, g.margin_after) for g in geometries.values())
    deepest = max(geometries, key=lambda n: geometries[n].size)
    return TileGeometry(geometries, -(-reach // align) * align, align, deepest)


# -- the plan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tile:
    """One tile: the pixels it reads (``rows``, ``cols``: [start, stop)) and the block it owns."""

    rows: tuple[int, int]
    cols: tuple[int, int]
    own_rows: tuple[int, int]
    own_cols: tuple[int, int]


def axis_tiles(length: int, tile_size: int, margin: int, align: int) -> list[tuple[int, int, int, int]]:
    """(read start, read stop, own start, own stop) along one axis: as few tiles as fit ``tile_size``, their
    owned blocks as even as the alignment allows; the edge tiles carry no margin beyond the image."""
    if length <= tile_size:
        return [(0, length, 0, length)]
    units = -(-length // align)
    for n in range(2, units + 1):
        cuts = [0] + [min(length, round(i * units / n) * align) for i in range(1, n)] + [length]
        if any(b <= a for a, b in pairwise(cuts)):
            continue
        tiles = [(max(0, a - margin), min(length, b + margin), a, b) for a, b in pairwise(cuts)]
        if max(stop - start for start, stop, _, _ in tiles) <= tile_size:
            return tiles
    raise TilingError(f"tiles of {tile_size} px cannot cover {length} px", key="model.tiling.tile_size")


@dataclass(frozen=True)
class TilePlan:
    """The tiles of an image of ``height``×``width`` px and the windows of feature positions they own."""

    height: int
    width: int
    tiles: tuple[Tile, ...]
    geometry: TileGeometry

    def __len__(self) -> int:
        return len(self.tiles)

    def window(self, tile: Tile, layers: Collection[str] | None = None) -> Window:
        """The feature positions ``tile`` owns at each layer, in the tile's and in the whole image's maps."""
        in_tile, in_full, sizes = {}, {}, {}
        for name, g in self.geometry.layers.items():
            if layers is not None and name not in layers:
                continue
            full = (g.feature_size(self.height), g.feature_size(self.width))
            spans = []
            for (start, _), (own0, own1), length, n in (
                (tile.rows, tile.own_rows, self.height, full[0]),
                (tile.cols, tile.own_cols, self.width, full[1]),
            ):
                first = own0 // g.jump
                last = n if own1 == length else own1 // g.jump
                spans.append((first, last, start // g.jump))
            in_full[name] = tuple(slice(a, b) for a, b, _ in spans)
            in_tile[name] = tuple(slice(a - o, b - o) for a, b, o in spans)
            sizes[name] = full
        return Window(in_tile, in_full, sizes)

    def describe(self) -> str:
        largest = max(max(t.rows[1] - t.rows[0], t.cols[1] - t.cols[0]) for t in self.tiles)
        g = self.geometry
        field = g.layers[g.deepest].size if g.deepest else 0
        return (
            f"{self.width}x{self.height} px in {len(self.tiles)} tiles of at most {largest} px "
            f"(margin {g.margin} px: {g.deepest}'s receptive field is {field} px; origins on a {g.align} px grid)"
        )


def plan_tiles(height: int, width: int, tile_size: int, geometry: TileGeometry) -> TilePlan:
    """The tiles of a ``height``×``width`` image, each at most ``tile_size`` px on an edge."""
    rows = axis_tiles(height, tile_size, geometry.margin, geometry.align)
    cols = axis_tiles(width, tile_size, geometry.margin, geometry.align)
    tiles = tuple(Tile((r0, r1), (c0, c1), (a0, a1), (b0, b1)) for r0, r1, a0, a1 in rows for c0, c1, b0, b1 in cols)
    return TilePlan(height, width, tiles, geometry)


def whole_plan(height: int, width: int, geometry: TileGeometry) -> TilePlan:
    """One tile that is the whole image."""
    return TilePlan(height, width, (Tile((0, height), (0, width), (0, height), (0, width)),), geometry)


# -- the memory budget ------------------------------------------------------------------------


@dataclass(frozen=True)
class TileChoice:
    """What the budget chose: a tile size (None: untiled) and L-BFGS's history size (None: unchanged)."""

    tile_size: int | None
    history: int | None
    budget: int

    def describe(self, wanted_history: int | None) -> str:
        text = f"memory budget {self.budget / GiB:.1f} GiB"
        if self.history is not None and wanted_history is not None and self.history != wanted_history:
            text += f"; L-BFGS history {self.history} pairs (of {wanted_history}) to fit it"
        elif self.history is not None:
            text += f"; L-BFGS history {self.history} pairs"
        return text


def choose_tiles(
    tiling: Tiling,
    geometry: TileGeometry,
    height: int,
    width: int,
    *,
    budget: int,
    cost: CostModel,
    optimizer: OptimizerTraits,
    images: int = 1,
    runtime: int = 0,
) -> TileChoice:
    """The tile size and L-BFGS history for ``images`` images of ``height``×``width`` within ``budget`` bytes.

    Without ``tile_size``, the budget holds ``runtime`` bytes, the per-image state (``cost.state_bytes`` with the
    optimizer's vectors and :data:`TILED_COPIES`) and then either the whole image's pass with the full history
    (untiled), or a tile: L-BFGS's history gets at most half of what is left after a tile of :data:`MIN_TILE`
    px, the tile the rest.
    """
    pixels = height * width
    lbfgs = optimizer.history is not None
    wanted = (tiling.lbfgs_history or optimizer.history) if lbfgs else None
    fixed = runtime + FIXED_BYTES + cost.state_bytes(height, width, images, optimizer.state_copies + TILED_COPIES)
    pair = 2 * 12 * images * pixels  # two float32 RGB vectors per image
    left = budget - fixed

    def tile_bytes(size: int) -> int:
        return cost.pass_bytes(min(size, height), min(size, width), images)

    if tiling.mode == "off":
        return TileChoice(None, None, budget)
    if tiling.tile_size is not None:
        size = tiling.tile_size
        if size < geometry.min_tile:
            raise TilingError(
                f"{size} px leaves no interior: tiles carry a {geometry.margin} px margin on each side "
                f"({geometry.deepest}'s receptive field) and own multiples of {geometry.align} px, so they need "
                f"at least {geometry.min_tile} px",
                key="model.tiling.tile_size",
            )
        size -= size % geometry.align
        if height <= size and width <= size:
            return TileChoice(None, None, budget)
        h = max(1, min(wanted, (left - tile_bytes(size)) // pair)) if wanted else None
        return TileChoice(size, h, budget)
    whole = tile_bytes(max(height, width)) + (wanted * pair if wanted else 0)
    if left - whole >= 0:
        return TileChoice(None, None, budget)
    smallest = max(geometry.min_tile, min(MIN_TILE, max(height, width)))
    if left < tile_bytes(smallest) + (pair if lbfgs else 0):
        need = fixed + tile_bytes(smallest) + (pair if lbfgs else 0)
        raise TilingError(
            f"{budget / GiB:.2f} GiB cannot hold a {width}x{height} px image's state and one tile of {smallest} px: "
            f"it needs about {need / GiB:.2f} GiB (give more, or use a smaller --data.size, or ImageAdam)",
            key="model.tiling.memory_budget",
        )
    h = None
    if wanted:
        h = max(1, min(wanted, ((left - tile_bytes(smallest)) // 2) // pair))
        left -= h * pair
    size = int(math.isqrt(int(max(0, left) // cost.pass_bytes_per_pixel(images))))
    size = max(smallest, size - size % geometry.align)
    if height <= size and width <= size:
        return TileChoice(None, None, budget)
    return TileChoice(size, h, budget)


def tileable_terms(terms: Sequence[tuple[str, object]]) -> None:
    """Every term that reads backbone layers must be tileable; the error names the first that is not."""
    for name, term in terms:
        if term.layers and not term.tileable:
            raise TilingError(
                f"{type(term).__name__} cannot be tiled (it does not declare tileable statistics, see "
                "LossTerm.statistics); use a smaller --data.size, a larger --model.tiling.memory_budget or "
                "--model.tiling.tile_size, or --model.tiling.mode off",
                key=f"model.losses.{name}",
            )
