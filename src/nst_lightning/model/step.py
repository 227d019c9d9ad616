"""What one training step computed: the contract between ``StyleTransfer.training_step`` and everything that
reads a step's losses (the stopping rule, the progress bar, logging, a sweep's final losses).

``training_step`` returns ``{"loss": total, "terms": {name: per-image values}, "faults": {name: flags}}`` on both
paths, tiled and untiled. Lightning hands that dict, detached, to every callback's ``on_train_batch_end`` as ``outputs``;
:func:`step_losses` reads it back as a :class:`StepLosses`. Nothing listens on the loss terms' ``forward``
(the tiled path never calls it).

The step also holds the terms to their contract, on both paths: each term's value is a scalar or one value per
image (:func:`check_term_values`, shapes only: known on the host), each term reads its own copy of the image
(:func:`own_copy`), so that nothing it writes reaches the optimized image, and the step's ``faults`` say on the
device, per term, whether its value was NaN or Inf while the image was finite and whether it wrote into its copy
(:func:`term_faults`). ``NonFiniteGuard`` reads them on its schedule (no host sync per step).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from nst_lightning.errors import ComponentFault
from nst_lightning.model.losses.base import LossTerm

TERMS = "terms"
FAULTS = "faults"
NON_FINITE, WROTE_IMAGE = 0, 1  # the columns of a term's faults


def check_term_values(losses: Mapping[str, LossTerm], values: Mapping[str, Any], images: int) -> None:
    """Each term's value against the contract, a tensor that is a scalar or one value per image, (N,); else a
    :class:`~nst_lightning.errors.ComponentFault` naming the term. Shapes only: no host read of the values."""
    for name, value in values.items():
        if isinstance(value, Tensor) and (value.dim() == 0 or tuple(value.shape) == (images,)):
            continue
        got = f"a loss of shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
        term = losses[name]
        raise ComponentFault(f"forward returned {got}; a loss term returns a scalar or one value per image, "
                             f"shape ({images},)", term.config_key, type(term))


def own_copy(image: Tensor) -> Tensor:
    """A copy of ``image`` for one loss term to read (gradients flow through it to ``image``): whatever the term
    writes into it, in place or through ``.data``, never reaches ``image``; :func:`wrote_into` tells."""
    return image.clone()


def wrote_into(copy: Tensor, image: Tensor) -> Tensor:
    """Whether ``copy`` (from :func:`own_copy`) differs from ``image`` now: a bool on the device, no host read."""
    copy, image = copy.detach(), image.detach()
    return ((copy != image) & ~(copy.isnan() & image.isnan())).any()


def term_faults(values: Mapping[str, Tensor], image: Tensor, wrote: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Per term, (2,) bools on the device: [its value is NaN or Inf while ``image`` is finite, it wrote into its
    copy of ``image``] (``wrote`` lacks the terms that got no copy)."""
    finite_image = torch.isfinite(image.detach()).all()
    no = torch.zeros((), dtype=torch.bool, device=image.device)
    return {name: torch.stack([~torch.isfinite(value.detach()).all() & finite_image, wrote.get(name, no)])
            for name, value in values.items()}


def per_image(value: Tensor, images: int) -> Tensor:
    """A term's value as one float32 value per image, (N,): a per-image vector as it is, a scalar (a term
    without per-image weights) shared equally between the images."""
    value = value.detach().float().reshape(-1)
    return value if value.numel() == images else (value.sum() / images).expand(images)


@dataclass(frozen=True)
class StepLosses:
    """Each loss term's weighted value per image, (N,) float32 on the step's device (no host read), and its
    :func:`term_faults` (empty when the step gave none)."""

    terms: dict[str, Tensor]
    faults: dict[str, Tensor] = field(default_factory=dict)

    @property
    def per_image(self) -> Tensor:
        """The total loss of each image, (N,)."""
        return torch.stack(list(self.terms.values())).sum(0)

    @property
    def total(self) -> Tensor:
        """The loss the optimizer minimized: the sum over terms and images."""
        return self.per_image.sum()

    def sums(self) -> dict[str, Tensor]:
        """Each term summed over the images: what is logged as ``loss/<term>``."""
        return {name: value.sum() for name, value in self.terms.items()}


def step_output(total: Tensor, terms: Mapping[str, Tensor], images: int,
                faults: Mapping[str, Tensor] | None = None) -> dict[str, Any]:
    """What ``training_step`` returns: the loss to minimize, each term's per-image values and its faults."""
    return {"loss": total, TERMS: {name: per_image(value, images) for name, value in terms.items()},
            FAULTS: dict(faults or {})}


def step_losses(outputs: Any) -> StepLosses | None:
    """The :class:`StepLosses` in a step's ``outputs`` (as callbacks receive them); None when the step returned
    none (a skipped step)."""
    if isinstance(outputs, Mapping) and isinstance(outputs.get(TERMS), Mapping) and outputs[TERMS]:
        faults = outputs.get(FAULTS)
        faults = {name: value.detach() for name, value in faults.items()} if isinstance(faults, Mapping) else {}
        return StepLosses({name: value.detach() for name, value in outputs[TERMS].items()}, faults)
    return None
