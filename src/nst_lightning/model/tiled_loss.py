"""The one tile loop, and the exact loss and gradient of an image computed tile by tile, in two passes.

:func:`tile_passes` runs the backbone over each tile of an image (or over the whole image) and yields the
tile's features with the :class:`~nst_lightning.model.losses.base.Window` of positions it owns;
:func:`sum_over_tiles` adds up statistics over them. They serve the tiled loss below, the targets
(content maps assembled from tiles, each term's style statistics) and the quality metrics' scoring.

The loss terms that read backbone layers depend on the image only through sums over feature positions
(:meth:`LossTerm.statistics`: Gram sums, squared errors, mask sums). So:

1. a pass without gradients over all tiles adds up each term's statistics over the positions each tile owns;
2. the loss and its gradient with respect to those global statistics are computed once
   (:meth:`LossTerm.loss_from_statistics`);
3. a second pass, tile by tile, back-propagates the inner product of that gradient with the tile's own
   statistics, and adds the tile's pixel gradient into the image's gradient.

With the margins and alignment of :mod:`nst_lightning.model.tiling` the owned features equal the whole
image's, so the sum over tiles is the untiled gradient (up to float rounding). Terms that read no layers
(total variation) are computed on the whole image at once: they cost a few copies of the image.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

from nst_lightning.model.backbones.base import Backbone
from nst_lightning.model.losses.base import LossTerm, Window, float32_only
from nst_lightning.model.step import own_copy, wrote_into
from nst_lightning.model.tiling import TilePlan, tileable_terms

Forward = Callable[[Tensor, Collection[str]], dict[str, Tensor]]
Statistics = Callable[[dict[str, Tensor], Tensor, Window], Mapping[Any, Tensor]]


def tile_passes(
    backbone: Backbone | Forward, image: Tensor, plan: TilePlan | None, layers: Collection[str]
) -> Iterator[tuple[tuple[slice, slice], Window, Tensor, dict[str, Tensor]]]:
    """For each tile of ``image`` (the whole image when ``plan`` is None): the (rows, columns) it reads, the
    window of feature positions it owns, its pixels and the backbone's features of them at ``layers``."""
    if plan is None:
        features = backbone(image, layers)
        yield (slice(None), slice(None)), Window.whole(features), image, features
        return
    for tile in plan.tiles:
        where = (slice(*tile.rows), slice(*tile.cols))
        x = image[..., where[0], where[1]]
        yield where, plan.window(tile, layers), x, backbone(x, layers)


def add_into(totals: dict[Any, Tensor], parts: Mapping[Any, Tensor]) -> None:
    """``totals += parts``, key by key (a new key is copied in)."""
    for key, value in parts.items():
        totals[key] = totals[key] + value if key in totals else value.clone()


def sum_over_tiles(
    backbone: Backbone | Forward, image: Tensor, plan: TilePlan | None, layers: Collection[str], statistics: Statistics
) -> dict[Any, Tensor]:
    """``statistics(features, pixels, window)`` summed over the tiles of ``image`` (float32, autocast off)."""
    totals: dict[Any, Tensor] = {}
    for _, window, x, features in tile_passes(backbone, image, plan, layers):
        with float32_only(image.device):
            add_into(totals, statistics(features, x, window))
        del features
    return totals


def terms_statistics(terms: Mapping[str, LossTerm], wrote: dict[str, Tensor] | None = None) -> Statistics:
    """Every term's :meth:`LossTerm.statistics` of one window, keyed by (term name, statistic); each term reads its
    own copy of the tile's pixels, and ``wrote`` (when given) gathers whether it wrote into one (device bools)."""

    def statistics(features: dict[str, Tensor], x: Tensor, window: Window) -> dict[tuple[str, str], Tensor]:
        out = {}
        for name, term in terms.items():
            copy = own_copy(x)
            out.update({(name, k): v for k, v in term.statistics(features, copy, window).items()})
            if wrote is not None:
                wrote[name] = wrote_into(copy, x) | wrote.get(name, False)
        return out

    return statistics


def tiled_loss_and_grad(
    backbone: Backbone | Forward, losses: Mapping[str, LossTerm], image: Tensor, plan: TilePlan,
    wrote: dict[str, Tensor] | None = None,
) -> tuple[dict[str, Tensor], Tensor]:
    """Each term's loss (detached, as its ``forward`` returns it) and the gradient of their sum w.r.t. ``image``.
    Each term reads its own copy of the pixels; ``wrote`` (when given) gathers whether it wrote into one."""
    tileable_terms(list(losses.items()))
    feature_terms = {name: term for name, term in losses.items() if term.layers}
    image_terms = {name: term for name, term in losses.items() if not term.layers}
    layers = sorted({layer for term in feature_terms.values() for layer in term.layers})
    device = image.device

    # 1. The global statistics, without gradients.
    with torch.no_grad():
        totals = sum_over_tiles(backbone, image.detach(), plan, layers, terms_statistics(feature_terms, wrote))

    # 2. The loss, and its gradient with respect to the global statistics.
    leaves = {key: v.detach().requires_grad_(v.is_floating_point()) for key, v in totals.items()}
    values: dict[str, Tensor] = {}
    with torch.enable_grad(), float32_only(device):
        for name, term in feature_terms.items():
            values[name] = term.loss_from_statistics({k: v for (owner, k), v in leaves.items() if owner == name})
        flat = [(key, leaf) for key, leaf in leaves.items() if leaf.requires_grad]
        grad = torch.zeros_like(image, dtype=torch.float32)
        grads = []
        if flat:
            total = torch.stack([values[name].sum() for name in feature_terms]).sum()
            grads = torch.autograd.grad(total, [leaf for _, leaf in flat], allow_unused=True)
        dstats = {key: g.detach() for (key, _), g in zip(flat, grads) if g is not None}

        # Terms that read no layers: on the whole image.
        for name, term in image_terms.items():
            x = own_copy(image.detach()).requires_grad_(True)
            value = term({}, x)
            (g,) = torch.autograd.grad(value.sum(), x, allow_unused=True)
            if g is not None:
                grad += g.float()
            values[name] = value.detach()
            if wrote is not None:
                wrote[name] = wrote_into(x, image)

        # 3. Each tile's share of the gradient.
        if dstats:
            statistics = terms_statistics(feature_terms, wrote)
            for where, window, x, features in tile_passes(backbone, image.detach().requires_grad_(True), plan, layers):
                with float32_only(device):
                    stats = statistics(features, x, window)
                    parts = [(dstats[key] * stats[key]).sum() for key in dstats if stats[key].requires_grad]
                if parts:
                    (g,) = torch.autograd.grad(torch.stack(parts).sum(), x)
                    grad[..., where[0], where[1]].add_(g.float())
                del features
    return {name: v.detach() for name, v in values.items()}, grad.to(image.dtype)


@torch.no_grad()
def assembled_features(
    backbone: Backbone | Forward, image: Tensor, plan: TilePlan | None, keep: Collection[str]
) -> dict[str, Tensor]:
    """The whole image's feature maps at ``keep``, assembled from the positions each tile owns (for the content
    targets of an image larger than a tile)."""
    if plan is None:
        return backbone(image, keep) if keep else {}
    maps: dict[str, Tensor] = {}
    for _, window, _, features in tile_passes(backbone, image, plan, keep):
        for name in keep:
            owned = window.owned(features, name)
            if name not in maps:
                maps[name] = owned.new_empty((*owned.shape[:2], *window.full_size[name]))
            window.crop(maps[name], name).copy_(owned)
        del features
    return maps
