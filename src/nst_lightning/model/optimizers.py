"""Optimizers for the generated image, with style-transfer defaults.

They are thin subclasses of torch's optimizers whose defaults suit the task.
Their names differ from torch's so that configs can use the short names
(``class_path: ImageLBFGS``); any ``torch.optim`` class also works by its
full path. Under Lightning one training step is one optimizer step, so with
``max_iter=1`` one step of :class:`ImageLBFGS` is one L-BFGS iteration.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


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

    def __init__(
        self,
        params: Iterable,
        lr: float = 0.02,
        betas: tuple[float, float] = (0.99, 0.999),
        eps: float = 0.1,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
