"""Optimizers for the generated image, with style-transfer defaults.

They are thin subclasses of torch's optimizers whose defaults suit the task.
Their names differ from torch's so that configs can use the short names
(``class_path: ImageLBFGS``); any ``torch.optim`` class also works by its
full path. Under Lightning one training step is one optimizer step, so with
``max_iter=1`` one step of :class:`ImageLBFGS` is one L-BFGS iteration.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import torch


@dataclass(frozen=True)
class OptimizerTraits:
    """What the run plan and the sweep planner need to know of an optimizer class.

    ``per_image``: its step on a batch of images equals each image's own step (an element-wise rule such as
    Adam or SGD): then a sweep may optimize several points as one batch. ``state_copies``: the image-sized
    vectors it keeps (moments, work vectors), besides an L-BFGS history. ``history``: the L-BFGS history pairs
    it wants (None: it keeps none; each pair is two more image-sized vectors).
    """

    per_image: bool
    state_copies: int
    history: int | None = None


# torch's own classes, which cannot carry our class attributes. Any other class declares itself with the
# class attributes ``per_image`` and ``state_copies`` (as ImageAdam does); one that does not is unknown:
# it is never batched and counted as ``UNKNOWN.state_copies`` vectors.
_TORCH_OPTIMIZERS: dict[type, OptimizerTraits] = {
    torch.optim.SGD: OptimizerTraits(per_image=True, state_copies=2),
    torch.optim.Adam: OptimizerTraits(per_image=True, state_copies=3),
    torch.optim.AdamW: OptimizerTraits(per_image=True, state_copies=3),
    torch.optim.Adagrad: OptimizerTraits(per_image=True, state_copies=2),
    torch.optim.RMSprop: OptimizerTraits(per_image=True, state_copies=3),
    # One history and one step size for everything it optimizes: it couples the images of a batch.
    torch.optim.LBFGS: OptimizerTraits(per_image=False, state_copies=4, history=100),
}
UNKNOWN = OptimizerTraits(per_image=False, state_copies=4)


def optimizer_traits(optimizer: type | torch.optim.Optimizer | None) -> OptimizerTraits:
    """The traits of an optimizer class or instance (None: the default, :class:`ImageLBFGS`).

    A class's own ``per_image`` and ``state_copies`` attributes win; then torch's classes by their nearest
    ancestor in the table above; anything else is :data:`UNKNOWN`. For L-BFGS the history is the instance's
    (or the class's default) ``history_size``.
    """
    instance = optimizer if isinstance(optimizer, torch.optim.Optimizer) else None
    cls = type(optimizer) if instance is not None else (optimizer or ImageLBFGS)
    if not isinstance(cls, type):
        return UNKNOWN
    traits = next((t for base in cls.__mro__ if (t := _TORCH_OPTIMIZERS.get(base)) is not None), None)
    own = {name: vars(base)[name] for name in ("per_image", "state_copies")
           for base in reversed(cls.__mro__) if name in vars(base)}
    if traits is None and len(own) < 2:
        return UNKNOWN
    traits = traits or UNKNOWN
    history = traits.history
    if history is not None:
        if instance is not None:
            # defaults, not param_groups: a resumed run's groups hold the history size chosen for its tiles
            history = int(instance.defaults.get("history_size", history))
        else:
            history = int(_default_argument(cls, "history_size", history))
    return OptimizerTraits(bool(own.get("per_image", traits.per_image)),
                           int(own.get("state_copies", traits.state_copies)), history)


def _default_argument(cls: type, name: str, fallback: int) -> int:
    parameter = inspect.signature(cls.__init__).parameters.get(name)
    if parameter is None or not isinstance(parameter.default, int):
        return fallback
    return parameter.default


class ImageLBFGS(torch.optim.LBFGS):
    """L-BFGS, one iteration per training step, without a line search by default (as jcjohnson/neural-style).

    ``line_search_fn="strong_wolfe"`` is steadier but costs about two loss evaluations per step. With it,
    ``max_eval`` defaults to ``max_iter + 24`` (the line search's own default of 25 trials). torch's default,
    ``max_iter * 5 // 4``, is 1 for one iteration per step: the line search then gets no trial beyond its first,
    returns a step of 0 whenever that trial does not lower the loss, and the run stays at the same image for
    every later step.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1.0,
        max_iter: int = 1,
        max_eval: int | None = None,
        history_size: int = 100,
        tolerance_grad: float = 0.0,
        tolerance_change: float = 0.0,
        line_search_fn: str | None = None,
    ) -> None:
        if max_eval is None and line_search_fn is not None:
            max_eval = max_iter + 24
        super().__init__(
            params,
            lr=lr,
            max_iter=max_iter,
            max_eval=max_eval,
            tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change,
            history_size=history_size,
            line_search_fn=line_search_fn,
        )


class ImageAdam(torch.optim.Adam):
    """Adam with the style-transfer tutorials' defaults: lr 0.02, beta1 0.99, eps 0.1."""

    per_image: ClassVar[bool] = True  # element-wise: each image of a batch moves as it would alone
    state_copies: ClassVar[int] = 3  # two moments and a temporary

    def __init__(
        self,
        params: Iterable,
        lr: float = 0.02,
        betas: tuple[float, float] = (0.99, 0.999),
        eps: float = 0.1,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
