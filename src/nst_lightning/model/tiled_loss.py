"""The exact loss and gradient of an image computed tile by tile, in two passes.

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

from collections.abc import Callable, Collection, Mapping

import torch
from torch import Tensor

from nst_lightning.model.backbones.base import Backbone
from nst_lightning.model.losses.base import LossTerm, float32_only
from nst_lightning.model.tiling import TilePlan, tileable_terms

Forward = Callable[[Tensor, Collection[str]], dict[str, Tensor]]


def _crop(image: Tensor, rows: tuple[int, int], cols: tuple[int, int]) -> Tensor:
    return image[..., rows[0] : rows[1], cols[0] : cols[1]]


def _add(into: dict[str, Tensor], stats: Mapping[str, Tensor]) -> None:
    for key, value in stats.items():
        into[key] = into[key] + value if key in into else value.clone()


def tiled_loss_and_grad(
    backbone: Backbone | Forward, losses: Mapping[str, LossTerm], image: Tensor, plan: TilePlan
) -> tuple[dict[str, Tensor], Tensor]:
    """Each term's loss (detached, as its ``forward`` returns it) and the gradient of their sum w.r.t. ``image``."""
    tileable_terms(list(losses.items()))
    feature_terms = {name: term for name, term in losses.items() if term.layers}
    image_terms = {name: term for name, term in losses.items() if not term.layers}
    layers = sorted({layer for term in feature_terms.values() for layer in term.layers})
    device = image.device
    windows = [plan.window(tile, layers) for tile in plan.tiles]

    # 1. The global statistics, without gradients.
    totals: dict[str, dict[str, Tensor]] = {name: {} for name in feature_terms}
    with torch.no_grad():
        for tile, window in zip(plan.tiles, windows):
            x = _crop(image.detach(), tile.rows, tile.cols)
            features = backbone(x, layers)
            with float32_only(device):
                for name, term in feature_terms.items():
                    _add(totals[name], term.statistics(features, x, window))
            del features

    # 2. The loss, and its gradient with respect to the global statistics.
    leaves = {name: {k: v.detach().requires_grad_(v.is_floating_point()) for k, v in s.items()} for name, s in totals.items()}
    values: dict[str, Tensor] = {}
    with torch.enable_grad(), float32_only(device):
        for name, term in feature_terms.items():
            values[name] = term.loss_from_statistics(leaves[name])
        flat = [(name, k, leaf) for name, s in leaves.items() for k, leaf in s.items() if leaf.requires_grad]
        grad = torch.zeros_like(image, dtype=torch.float32)
        if flat:
            total = torch.stack([values[name].sum() for name in feature_terms]).sum()
            grads = torch.autograd.grad(total, [leaf for _, _, leaf in flat], allow_unused=True)
        else:
            grads = []
        dstats: dict[str, dict[str, Tensor]] = {name: {} for name in feature_terms}
        for (name, k, _), g in zip(flat, grads):
            if g is not None:
                dstats[name][k] = g.detach()

        # Terms that read no layers: on the whole image.
        for name, term in image_terms.items():
            x = image.detach().requires_grad_(True)
            value = term({}, x)
            (g,) = torch.autograd.grad(value.sum(), x, allow_unused=True)
            if g is not None:
                grad += g.float()
            values[name] = value.detach()

        # 3. Each tile's share of the gradient.
        if any(dstats.values()):
            for tile, window in zip(plan.tiles, windows):
                x = _crop(image.detach(), tile.rows, tile.cols).requires_grad_(True)
                features = backbone(x, layers)
                with float32_only(device):
                    parts = []
                    for name, term in feature_terms.items():
                        stats = term.statistics(features, x, window)
                        parts += [(dstats[name][k] * stats[k]).sum() for k in dstats[name] if stats[k].requires_grad]
                if parts:
                    (g,) = torch.autograd.grad(torch.stack(parts).sum(), x)
                    _crop(grad, tile.rows, tile.cols).add_(g.float())
                del features
    return {name: v.detach() for name, v in values.items()}, grad.to(image.dtype)


@torch.no_grad()
def tiled_features(
    backbone: Backbone | Forward, image: Tensor, plan: TilePlan, keep: Collection[str], gram: Collection[str]
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The whole image's feature maps at ``keep`` and its Gram matrices (``gram_matrix``'s) at ``gram``,
    computed tile by tile: for targets of images larger than a tile."""
    layers = sorted(set(keep) | set(gram))
    maps: dict[str, Tensor] = {}
    sums: dict[str, Tensor] = {}
    counts = dict.fromkeys(gram, 0)
    for tile in plan.tiles:
        window = plan.window(tile, layers)
        features = backbone(_crop(image, tile.rows, tile.cols), layers)
        for name in keep:
            owned = window.owned(features, name)
            if name not in maps:
                n, c = owned.shape[:2]
                maps[name] = owned.new_empty((n, c, *window.full_size[name]))
            window.crop(maps[name], name).copy_(owned)
        with float32_only(image.device):
            for name in gram:
                owned = window.owned(features, name)
                n, c, h, w = owned.shape
                flat = owned.float().reshape(n, c, h * w)
                part = torch.bmm(flat, flat.transpose(1, 2))
                sums[name] = sums[name] + part if name in sums else part
                counts[name] += h * w
        del features
    return maps, {name: sums[name] / counts[name] for name in gram}
