"""Linear algebra shared by colour matching and statistics-based losses."""

from __future__ import annotations

import torch
from torch import Tensor


def psd_matrix_power(matrix: Tensor, power: float, floor: float = 0.0) -> Tensor:
    """``matrix ** power`` for a symmetric positive semi-definite matrix (or a batch of them).

    Computed through ``eigh``; eigenvalues are clamped at ``floor`` first (use a small positive
    floor for negative powers). ``power=0.5`` is the symmetric matrix square root.
    """
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(floor).pow(power).unsqueeze(-2)) @ vectors.transpose(-2, -1)


def gram_sum(features: Tensor, weights: Tensor | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """``Σ_p w_p F_p F_pᵀ`` over the positions p of N×C×H×W (or N×C×P) features: an N×C×C tensor (float32 by default).

    The one Gram product of the project: the style losses, their tiled statistics, the style targets and the
    quality metrics all divide it by what they need (the positions, the mask's sum, C·H·W). ``weights``
    (N or 1 × 1 × H×W or P) weights the positions, as a mask does; None weighs them all 1. ``dtype``: float32,
    or float64 for statistics computed once (targets) whose later differences must not cancel.
    """
    flat = features.to(dtype).flatten(2)
    left = flat if weights is None else flat * weights.to(dtype).flatten(2)
    return torch.bmm(left, flat.transpose(1, 2))
