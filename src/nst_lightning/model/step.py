"""What one training step computed: the contract between ``StyleTransfer.training_step`` and everything that
reads a step's losses (the stopping rule, the progress bar, logging, a sweep's final losses).

``training_step`` returns ``{"loss": total, "terms": {name: per-image values}}`` on both paths, tiled and
untiled. Lightning hands that dict, detached, to every callback's ``on_train_batch_end`` as ``outputs``;
:func:`step_losses` reads it back as a :class:`StepLosses`. Nothing listens on the loss terms' ``forward``
(the tiled path never calls it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

TERMS = "terms"


def per_image(value: Tensor, images: int) -> Tensor:
    """A term's value as one float32 value per image, (N,): a per-image vector as it is, a scalar (a term
    without per-image weights) shared equally between the images."""
    value = value.detach().float().reshape(-1)
    return value if value.numel() == images else (value.sum() / images).expand(images)


@dataclass(frozen=True)
class StepLosses:
    """Each loss term's weighted value per image, (N,) float32 on the step's device (no host read)."""

    terms: dict[str, Tensor]

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


def step_output(total: Tensor, terms: Mapping[str, Tensor], images: int) -> dict[str, Any]:
    """What ``training_step`` returns: the loss to minimize and each term's per-image values."""
    return {"loss": total, TERMS: {name: per_image(value, images) for name, value in terms.items()}}


def step_losses(outputs: Any) -> StepLosses | None:
    """The :class:`StepLosses` in a step's ``outputs`` (as callbacks receive them); None when the step returned
    none (a skipped step)."""
    if isinstance(outputs, Mapping) and isinstance(outputs.get(TERMS), Mapping) and outputs[TERMS]:
        return StepLosses({name: value.detach() for name, value in outputs[TERMS].items()})
    return None
