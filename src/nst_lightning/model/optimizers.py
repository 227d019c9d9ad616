"""Optimizers for the generated image, and what each optimizer class declares about itself.

:class:`ImageLBFGS` (:mod:`nst_lightning.model.lbfgs`) is the project's own L-BFGS, per image of a batch and
without host reads; :class:`ImageAdam` is torch's Adam with style-transfer defaults. Their names differ from
torch's so that configs can use the short names (``class_path: ImageLBFGS``); any ``torch.optim`` class also
works by its full path. Under Lightning one training step is one optimizer step, so with ``max_iter=1`` one
step of :class:`ImageLBFGS` is one L-BFGS iteration.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from nst_lightning.model.lbfgs import HISTORY_DTYPES, empty_state, lbfgs_update, resized_history
from nst_lightning.model.pyramid import LaplacianPyramid


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


def optimizer_traits(optimizer: type | torch.optim.Optimizer | None, init_args: dict | None = None) -> OptimizerTraits:
    """The traits of an optimizer class or instance (None: the default, :class:`ImageLBFGS`).

    A class's own ``per_image`` and ``state_copies`` attributes win; then torch's classes by their nearest
    ancestor in the table above; anything else is :data:`UNKNOWN`. For L-BFGS the history is the instance's
    (or the class's default) ``history_size``. A class whose traits depend on its settings defines
    ``traits_for(init_args) -> (per_image, history)`` (:class:`ImageLBFGS`: its strong-Wolfe path couples
    the images); ``init_args`` are the config's (for a class) or the instance's ``defaults``.
    """
    instance = optimizer if isinstance(optimizer, torch.optim.Optimizer) else None
    cls = type(optimizer) if instance is not None else (optimizer or ImageLBFGS)
    if not isinstance(cls, type):
        return UNKNOWN
    if "traits_for" in dir(cls):
        settings = dict(instance.defaults) if instance is not None else (init_args or {})
        per_image, history = cls.traits_for(settings)
        return OptimizerTraits(per_image, int(cls.state_copies), history)
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
    """The default of ``cls.__init__``'s argument ``name`` when it is an int, else ``fallback``."""
    parameter = inspect.signature(cls.__init__).parameters.get(name)
    if parameter is None or not isinstance(parameter.default, int):
        return fallback
    return parameter.default


class ImageLBFGS(torch.optim.Optimizer):
    """L-BFGS for the image, per image of a batch, without host reads (the algorithm: :mod:`nst_lightning.model.lbfgs`).

    One training step is ``max_iter`` L-BFGS iterations (1 by default, without a line search, as
    jcjohnson/neural-style), each with its own closure evaluation after the first.

    Args:
        params: one tensor, the image (N×3×H×W: dimension 0 is the batch; a tensor of 1 dimension is one image).
        lr: the step size after the first step (the first is ``min(1, 1/|g|₁) · lr``, as torch's).
        max_iter: L-BFGS iterations per ``step``.
        max_eval: the line search's most closure evaluations per step (``strong_wolfe`` only); default
            ``max_iter + 24``, the line search's own 25 trials (torch's ``max_iter * 5 // 4`` is 1 for one
            iteration: the line search then returns a step of 0 whenever its first trial does not lower
            the loss, and the run stands still).
        history_size: curvature pairs kept per image (the run plan lowers it to fit the memory budget).
        tolerance_grad: an image whose gradient's largest entry is at most this does not move.
        tolerance_change: an image does not move when its directional derivative is above ``-tolerance_change``.
        line_search_fn: None, or ``strong_wolfe``: torch's own L-BFGS with its strong-Wolfe line search, for
            one image (its line search spans everything it optimizes: never batched; it reads the device).
        history_dtype: the curvature pairs' dtype, ``float32`` or ``bfloat16`` (half the memory, for prints);
            None: the image's dtype.
        bounds: each image is clamped to this range after its step and the stored step is the step taken;
            None: unbounded.
        max_step: the most any value of an image may move in one step (a trust region; the step is scaled down,
            its direction kept); None: no limit. The default, 0.25 of the pixel range, stops the rare step that
            would throw an image into noise (a curvature pair made of rounding). It never binds in the default run
            on The Starry Night, but with ``first_step`` 0.001 it bound on most steps of a start from the content
            image at 256 to 724 px (the largest move 0.25 while the RMS move was about 1e-3: a few pixels' spikes
            in the direction), which slows those steps.
        first_step: the first step moves the value with the largest gradient by this much (a step of the same
            size in pixels at any image size), and each further step without a curvature pair yet twice as far
            as the one before; None: torch's ``min(1, 1/|g|₁) · lr``, whose moves shrink with the pixel count.
    """

    per_image: ClassVar[bool] = True  # each image has its own history, step size and done mask
    state_copies: ClassVar[int] = 4  # the last step, the previous gradient, the gradient and the direction

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
        history_dtype: str | None = "float32",
        bounds: tuple[float, float] | None = (0.0, 1.0),
        max_step: float | None = 0.25,
        first_step: float | None = None,
    ) -> None:
        params = list(params)
        if first_step is not None and not (first_step > 0 and math.isfinite(first_step)):
            raise ValueError(f"ImageLBFGS: first_step must be a finite number > 0 or null, not {first_step!r}")
        if max_step is not None and not (max_step > 0 and math.isfinite(max_step)):
            raise ValueError(f"ImageLBFGS: max_step must be a finite number > 0 or null, not {max_step!r}")
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"ImageLBFGS: line_search_fn must be null or 'strong_wolfe', not {line_search_fn!r}")
        if history_dtype is not None and history_dtype not in HISTORY_DTYPES:
            raise ValueError(f"ImageLBFGS: history_dtype must be one of {sorted(HISTORY_DTYPES)} or null, not {history_dtype!r}")
        if not (isinstance(history_size, int) and history_size >= 1) or not (isinstance(max_iter, int) and max_iter >= 1):
            raise ValueError(f"ImageLBFGS: history_size and max_iter must be >= 1, not {history_size!r}, {max_iter!r}")
        if not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"ImageLBFGS: lr must be a finite number > 0, not {lr!r}")
        if max_eval is None:  # torch's default without a line search (unused there), 25 trials with one
            max_eval = max_iter + 24 if line_search_fn is not None else max_iter * 5 // 4
        defaults = {"lr": lr, "max_iter": max_iter, "max_eval": max_eval, "history_size": history_size,
                    "tolerance_grad": tolerance_grad, "tolerance_change": tolerance_change,
                    "line_search_fn": line_search_fn, "history_dtype": history_dtype,
                    "bounds": None if bounds is None else (float(bounds[0]), float(bounds[1])),
                    "max_step": max_step, "first_step": first_step}
        super().__init__(params, defaults)
        if len(self.param_groups) != 1 or len(self.param_groups[0]["params"]) != 1:
            raise ValueError("ImageLBFGS optimizes one tensor: the image")
        self._update = lbfgs_update
        self.pyramid: LaplacianPyramid | None = None
        self._wolfe: torch.optim.LBFGS | None = None
        if line_search_fn is not None:
            self._wolfe = torch.optim.LBFGS(params, lr=lr, max_iter=max_iter, max_eval=max_eval,
                                            tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                                            history_size=history_size, line_search_fn=line_search_fn)
            self.state = self._wolfe.state  # one state: checkpoints hold torch's
            self.param_groups = self._wolfe.param_groups

    def compile_update(self, mode: str) -> None:
        """Run the update through ``torch.compile(fullgraph=True)`` with this mode (``--model.compile``): one
        graph with no host reads (``reduce-overhead`` records it as a CUDA graph on a GPU)."""
        self._update = torch.compile(lbfgs_update, mode=mode, fullgraph=True)

    def set_pyramid(self, pyramid: LaplacianPyramid | None) -> None:
        """Optimize the coefficients of ``pyramid`` (:mod:`nst_lightning.model.pyramid`) instead of the pixels (None:
        the pixels). The image stays the parameter: each iteration takes the coefficients' gradient Sᵀg, runs the
        L-BFGS update on the coefficients (their history, step size and stopping state per image, as for pixels)
        and adds the synthesis of its step, S(Δc), to the image. That is L-BFGS on c with x = S(c), without
        keeping c. With ``bounds`` the image is clamped after its step, and the part the clamp removed is taken
        off the finest level's step, so the stored step is still the one taken (S of it is the image's change).
        Not with the strong-Wolfe line search (torch's L-BFGS steps the pixels); set before the first step."""
        if pyramid is not None and self._wolfe is not None:
            raise ValueError("ImageLBFGS: the Laplacian pyramid needs line_search_fn null (strong_wolfe steps the pixels)")
        self.pyramid = pyramid

    @classmethod
    def traits_for(cls, init_args: dict) -> tuple[bool, int]:
        """(per_image, history) for these settings: the strong-Wolfe path couples the images of a batch."""
        return init_args.get("line_search_fn") is None, int(init_args.get("history_size", 100))

    @property
    def image(self) -> Tensor:
        return self.param_groups[0]["params"][0]

    def _flat(self, tensor: Tensor) -> Tensor:
        return tensor.reshape(tensor.shape[0] if tensor.dim() > 1 else 1, -1)

    def freeze(self, done: Tensor) -> None:
        """Mark images done (a bool per image): from the next step they keep their pixels and their state."""
        state = self.state[self.image]
        if "done" in state:
            state["done"] = state["done"] | done.to(state["done"].device, torch.bool)
        else:
            self._pending_done = done.to(self.image.device, torch.bool)

    def set_history_size(self, size: int) -> None:
        """Keep at most ``size`` curvature pairs per image from now on (each image's newest ones)."""
        group = self.param_groups[0]
        if group["history_size"] == size:
            return
        group["history_size"] = int(size)
        if self._wolfe is not None:
            for state in self._wolfe.state.values():
                for key in ("old_dirs", "old_stps", "ro"):
                    if key in state and len(state[key]) > size:
                        del state[key][: len(state[key]) - size]
            return
        state = self.state[self.image]
        if "S" in state:
            self.state[self.image] = resized_history(state, int(size))

    @torch.no_grad()
    def step(self, closure):
        """``max_iter`` L-BFGS iterations; ``closure`` re-evaluates the loss and its gradient."""
        if self._wolfe is not None:
            if self.image.dim() > 1 and self.image.shape[0] > 1:
                raise ValueError("ImageLBFGS: the strong_wolfe line search spans the whole batch; use one image, "
                                 "or line_search_fn null")
            return self._wolfe.step(closure)
        group = self.param_groups[0]
        image = self.image
        dtype = HISTORY_DTYPES[group["history_dtype"]] if group["history_dtype"] else image.dtype
        with torch.enable_grad():
            loss = closure()
        for iteration in range(group["max_iter"]):
            if iteration > 0:
                with torch.enable_grad():
                    closure()
            x, g = self._flat(image), self._flat(image.grad)
            if self.pyramid is not None:
                if image.dim() != 4:
                    raise ValueError(f"ImageLBFGS: the Laplacian pyramid needs N×C×H×W images, not {tuple(image.shape)}")
                g = self.pyramid.flatten(self.pyramid.adjoint(image.grad))  # the coefficients' gradient Sᵀg
                x = torch.zeros_like(g)  # the update's result is then the coefficients' step
            state = self.state[image]
            if "S" not in state:
                state.update(empty_state(x, group["history_size"], dtype))
                pending = self.__dict__.pop("_pending_done", None)
                if pending is not None:
                    state["done"] = pending
            bounds = group["bounds"] if self.pyramid is None else None
            x_new, new_state = self._update(x, g, state, group["lr"], group["tolerance_grad"],
                                            group["tolerance_change"], bounds, group.get("max_step"),
                                            group.get("first_step"))
            if self.pyramid is not None:
                x_new = self._pyramid_step(image, x_new, new_state, group["bounds"])
            image.copy_(x_new.view_as(image))
            state.update(new_state)
        return loss

    def _pyramid_step(self, image: Tensor, step: Tensor, state: dict[str, Tensor],
                      bounds: tuple[float, float] | None) -> Tensor:
        """The new image (flat) after the coefficients' ``step`` (N×D_c); the clamp's cut goes into the stored step's
        finest level (an image that did not move is in bounds already: its cut is exactly 0)."""
        pyramid = self.pyramid
        planned = image + pyramid.synthesise(pyramid.unflatten(step, image.shape))
        if bounds is None:
            return self._flat(planned)
        clamped = planned.clamp(*bounds)
        cut = self._flat(clamped - planned)
        state["last_step"] = torch.cat([state["last_step"][:, : cut.shape[1]] + cut,
                                        state["last_step"][:, cut.shape[1] :]], dim=1)
        return self._flat(clamped)

    def state_dict(self) -> dict:
        """As torch's, but the L-BFGS history holds only its filled pairs: a run that made 27 steps at its last
        scale saves 27 pairs, not ``history_size`` (100) of which 73 are empty. :meth:`load_state_dict` puts
        them back in the same ring-buffer slots (a pair of age a sits at slot a mod the size), so a resumed run is
        bit for bit the same. The fill count is read from the device here only, when a checkpoint is saved."""
        if self._wolfe is not None:
            return self._wolfe.state_dict()
        saved = super().state_dict()
        for key, state in list(saved["state"].items()):
            if "age" in state:
                size = state["age"].shape[1]
                filled = int((state["age"] >= 0).sum(1).max())
                if filled < size:  # ages 0 … filled-1: the same slots in a ring of either size
                    saved["state"][key] = resized_history(state, max(1, filled))
        return saved

    def load_state_dict(self, state_dict: dict) -> None:
        """As torch's, but the state keeps its dtypes: torch casts every state tensor to the parameter's dtype
        (the float64 small matrices, the bfloat16 history, the integer ages), which would change a resumed run."""
        if self._wolfe is not None:
            self._wolfe.load_state_dict(state_dict)
            return
        saved = state_dict.get("state", {})
        super().load_state_dict({**state_dict, "state": {}})
        image = self.image
        for key, values in saved.items():
            if int(key) == 0:
                state = {k: v.to(image.device) if torch.is_tensor(v) else v for k, v in values.items()}
                if "age" in state:  # the filled pairs :meth:`state_dict` kept, back in a ring of the group's size
                    state = resized_history(state, int(self.param_groups[0]["history_size"]))
                self.state[image] = state


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
