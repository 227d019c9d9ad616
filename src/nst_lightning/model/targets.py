"""The loss terms' targets: content features and each term's own style statistics, by tiles when needed.

:func:`set_targets` is the one place that computes what :class:`~nst_lightning.model.losses.base.Targets`
holds and hands each term its own copy: the content features (assembled from tiles for a large image), the
style images' feature maps (for terms that read them; only of style images that fit one tile) and, for a
term that defines ``style_statistics``, that term's statistics of each style image summed over all
positions with the same tile loop as the tiled loss (:func:`~nst_lightning.model.tiled_loss.sum_over_tiles`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import torch
from torch import Tensor

from nst_lightning.image.image_set import ImageSet
from nst_lightning.model.backbones.base import Backbone
from nst_lightning.model.losses.base import LossTerm, Targets
from nst_lightning.model.run_plan import content_layers
from nst_lightning.model.tiled_loss import Forward, assembled_features, sum_over_tiles
from nst_lightning.model.tiling import TilePlan


def reads_style_statistics(term: LossTerm) -> bool:
    """Whether ``term`` builds its style targets from its own ``style_statistics`` (then it tiles at any size)."""
    return type(term).style_statistics is not LossTerm.style_statistics


@torch.no_grad()
def set_targets(
    backbone: Backbone | Forward,
    losses: Mapping[str, LossTerm],
    content_image: Tensor,
    style_images: Sequence[Tensor],
    style_weights: Sequence[float],
    masks: Sequence[Tensor] = (),
    content_plan: TilePlan | None = None,
    style_plans: Sequence[TilePlan | None] | None = None,
) -> None:
    """Compute the targets of every term in ``losses`` and call its ``set_targets`` (plans: None runs whole)."""
    style_plans = list(style_plans) if style_plans is not None else [None] * len(style_images)
    layers = sorted({name for term in losses.values() for name in term.layers})
    keep = layers if content_plan is None else content_layers(losses)
    content = assembled_features(backbone, content_image, content_plan, keep)
    styles = [backbone(style, layers) if plan is None and layers else {} for style, plan in zip(style_images, style_plans)]
    targets = Targets(
        content_image=content_image,
        content={k: v.float() for k, v in content.items()},
        style_images=list(style_images),
        styles=[{k: v.float() for k, v in s.items()} for s in styles],
        style_weights=list(style_weights),
        masks=list(masks),
    )
    for term in losses.values():
        statistics = []
        if reads_style_statistics(term):
            statistics = [sum_over_tiles(backbone, style, plan, term.layers, term.style_statistics)
                          for style, plan in zip(style_images, style_plans)]
        term.set_targets(replace(targets, style_statistics=statistics))


def set_targets_per_image(
    backbone: Backbone | Forward,
    losses: Mapping[str, LossTerm],
    sets: Sequence[ImageSet],
    tile_plan: Callable[..., TilePlan | None],
) -> None:
    """The targets of a run whose images share one :class:`ImageSet`, or each have their own.

    With several sets, each term's ``set_targets`` runs once per set, and the buffers it made are stacked along
    the batch dimension: image i is compared with its own set's targets (a scalar per set becomes one value per
    image; a target of leading size 1 becomes N). ``tile_plan(image, choice_for=...)`` gives each image's tiles.
    """

    def one(image_set: ImageSet) -> None:
        set_targets(
            backbone, losses, image_set.content, image_set.styles, image_set.style_weights, image_set.masks,
            content_plan=tile_plan(image_set.content),
            style_plans=[tile_plan(style, choice_for=image_set.content) for style in image_set.styles],
        )

    if len(sets) == 1:
        one(sets[0])
        return
    made: dict[str, dict[str, list[Tensor]]] = {name: {} for name in losses}
    for image_set in sets:
        before = {name: dict(term.named_buffers(recurse=False)) for name, term in losses.items()}
        one(image_set)
        for name, term in losses.items():
            for key, buffer in term.named_buffers(recurse=False):
                if before[name].get(key) is not buffer:  # made by this set_targets
                    made[name].setdefault(key, []).append(buffer)
    for name, term in losses.items():
        for key, buffers in made[name].items():
            stacked = torch.stack(buffers) if buffers[0].dim() == 0 else torch.cat(buffers)
            term.register_buffer(key, stacked, persistent=False)
