"""The Laplacian pyramid as the image's parametrization: the synthesis operator, its adjoint and its analysis.

An image x (N×C×H×W) is the synthesis of ``levels`` coefficient tensors c₀ … c_{K−1}: c₀ at the image's size,
each next one at half the previous size (odd edges rounded up), c_{K−1} the coarsest::

    x = S(c) = c₀ + U(c₁ + U(c₂ + … + U(c_{K−1})))

with U the bilinear upsampling to the next finer level's size (``align_corners=False``, as STROTSS and NNST
build their pyramids). S is linear, so optimizing c by gradients needs only S and its adjoint Sᵀ: the gradient
of a loss f(S(c)) with respect to c is Sᵀ ∇ₓf, one tensor per level (:meth:`LaplacianPyramid.adjoint`).
A coarse coefficient moves a whole neighbourhood of pixels, so a step on the coefficients changes the
picture's coarse structure faster than a step on pixels does.

The pyramid has about 4/3 as many coefficients as the image has pixels, so many c give the same image. The
optimizer never needs c itself (:class:`~nst_lightning.model.optimizers.ImageLBFGS` keeps the image and
works with steps of c); :meth:`analyse` gives one c for an image, with ``synthesise(analyse(x)) == x`` up to
float rounding, for tests and for anyone who wants the coefficients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nst_lightning.errors import ConfigValueError

PARAMETRIZATIONS = ("pixels", "laplacian")
# Coefficients per pixel, at most, for any levels and images of 16 px and more: 1 + 1/4 + 1/16 + … = 4/3 for
# even edges; odd edges round up (17×17 px: 1.436).
COEFFICIENTS_PER_PIXEL = 1.44


class LaplacianPyramid:
    """The synthesis S, its adjoint Sᵀ and an analysis of a ``levels``-level Laplacian pyramid.

    Args:
        levels: the number of levels, the image's own size included (1: the pixels themselves). Levels past
            the one whose edges are both 1 px repeat it and add nothing.
    """

    def __init__(self, levels: int = 4) -> None:
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ConfigValueError(f"must be an integer >= 1, not {levels!r}", key="model.pyramid_levels")
        self.levels = levels

    def sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """Each level's (height, width), the image's first."""
        sizes = [(height, width)]
        for _ in range(self.levels - 1):
            h, w = sizes[-1]
            sizes.append(((h + 1) // 2, (w + 1) // 2))
        return sizes

    def synthesise(self, coefficients: list[Tensor]) -> Tensor:
        """The image S(c) of the coefficients (finest first)."""
        image = coefficients[-1]
        for finer in reversed(coefficients[:-1]):
            image = finer + _up(image, finer.shape[-2:])
        return image

    def adjoint(self, image_grad: Tensor) -> list[Tensor]:
        """Sᵀ g: the gradient with respect to each level's coefficients, given ``image_grad`` with respect to the image."""
        sizes = self.sizes(*image_grad.shape[-2:])
        grads = [image_grad]
        for size in sizes[1:]:
            grads.append(_up_adjoint(grads[-1], size))
        return grads

    def analyse(self, image: Tensor) -> list[Tensor]:
        """Coefficients whose synthesis is ``image``: each level the detail its low-pass (antialiased bilinear
        downsampling) lacks, the coarsest the low-pass itself."""
        sizes = self.sizes(*image.shape[-2:])
        lowpass = [image]
        for size in sizes[1:]:
            lowpass.append(F.interpolate(lowpass[-1], size=size, mode="bilinear", align_corners=False, antialias=True))
        details = [fine - _up(coarse, fine.shape[-2:]) for fine, coarse in zip(lowpass[:-1], lowpass[1:])]
        return [*details, lowpass[-1]]

    # -- flat vectors: the optimizer's view, one row per image ------------------------------------

    def flatten(self, coefficients: list[Tensor]) -> Tensor:
        """N×D: each image's coefficients in one row, the finest level first (its first C·H·W entries)."""
        return torch.cat([c.reshape(c.shape[0], -1) for c in coefficients], dim=1)

    def unflatten(self, flat: Tensor, shape: torch.Size | tuple[int, ...]) -> list[Tensor]:
        """The levels of ``flat`` (N×D) for images of ``shape`` (N×C×H×W)."""
        n, c = shape[0], shape[1]
        levels, start = [], 0
        for h, w in self.sizes(*shape[-2:]):
            levels.append(flat[:, start : start + c * h * w].reshape(n, c, h, w))
            start += c * h * w
        return levels

    def coefficient_count(self, shape: torch.Size | tuple[int, ...]) -> int:
        """Coefficients per image of ``shape`` (N×C×H×W)."""
        return shape[1] * sum(h * w for h, w in self.sizes(*shape[-2:]))


def _up(image: Tensor, size: torch.Size | tuple[int, int]) -> Tensor:
    return F.interpolate(image, size=tuple(size), mode="bilinear", align_corners=False)


def _up_adjoint(grad: Tensor, size: tuple[int, int]) -> Tensor:
    """Uᵀ ``grad``: the adjoint of upsampling from ``size`` to ``grad``'s size (a vector-Jacobian product; U is linear)."""
    coarse = torch.zeros(*grad.shape[:2], *size, dtype=grad.dtype, device=grad.device, requires_grad=True)
    with torch.enable_grad():
        (result,) = torch.autograd.grad(_up(coarse, grad.shape[-2:]), coarse, grad)
    return result
