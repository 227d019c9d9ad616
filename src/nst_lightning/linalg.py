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
