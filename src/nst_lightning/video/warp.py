"""Warping an image by a flow, and where a flow can be trusted (Sundaram, Brox and Keutzer 2010, as Ruder,
Dosovitskiy and Brox use it for video style transfer).

``warp(image, flow)`` samples ``image`` at ``p + flow(p)`` (bilinear, ``grid_sample``): with the flow from frame t
to frame t-1 it brings frame t-1's output into frame t. ``reliability(flow, opposite)`` is 1 where the flow is
reliable and 0 where

- the forward-backward check fails: ``|w + ŵ|² > 0.01 (|w|² + |ŵ|²) + 0.5``, with ``w`` the flow and ``ŵ`` the
  opposite flow sampled at ``p + w(p)`` (a disoccluded pixel: nothing in the other frame maps back to it);
- it lies on a motion boundary: ``|∇u|² + |∇v|² > 0.01 |w|² + 0.002``, with ``u``, ``v`` the flow's components;
- ``p + w(p)`` leaves the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

CONSISTENCY_RELATIVE = 0.01
CONSISTENCY_ABSOLUTE = 0.5
BOUNDARY_RELATIVE = 0.01
BOUNDARY_ABSOLUTE = 0.002


def sampling_grid(flow: Tensor) -> Tensor:
    """``grid_sample``'s N×H×W×2 grid for the points ``p + flow(p)`` (pixel centres, ``align_corners=True``)."""
    n, _, h, w = flow.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=flow.device, dtype=flow.dtype),
                            torch.arange(w, device=flow.device, dtype=flow.dtype), indexing="ij")
    x = (xs + flow[:, 0]) * (2 / max(w - 1, 1)) - 1
    y = (ys + flow[:, 1]) * (2 / max(h - 1, 1)) - 1
    return torch.stack((x, y), dim=-1)


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """``image`` (N×C×H×W) sampled at ``p + flow(p)``, bilinear; points outside the image take the nearest edge
    pixel (the reliability mask marks them)."""
    grid = sampling_grid(flow.to(image.device, image.dtype))
    return F.grid_sample(image, grid.expand(image.shape[0], -1, -1, -1), mode="bilinear", padding_mode="border",
                         align_corners=True)


def inside(flow: Tensor) -> Tensor:
    """N×1×H×W: 1 where ``p + flow(p)`` lies in the image."""
    _, _, h, w = flow.shape
    grid = sampling_grid(flow)
    ok = (grid.abs() <= 1 + 1e-6).all(dim=-1)
    return ok.unsqueeze(1).to(flow.dtype)


def consistent(flow: Tensor, opposite: Tensor) -> Tensor:
    """N×1×H×W: 1 where the forward-backward check passes."""
    back = warp(opposite, flow)
    error = (flow + back).pow(2).sum(1, keepdim=True)
    bound = CONSISTENCY_RELATIVE * (flow.pow(2).sum(1, keepdim=True) + back.pow(2).sum(1, keepdim=True)) + CONSISTENCY_ABSOLUTE
    return (error <= bound).to(flow.dtype)


def off_motion_boundary(flow: Tensor) -> Tensor:
    """N×1×H×W: 1 where the flow's gradient is small (central differences)."""
    dy, dx = torch.gradient(flow, dim=(2, 3))
    gradient = dx.pow(2).sum(1, keepdim=True) + dy.pow(2).sum(1, keepdim=True)
    bound = BOUNDARY_RELATIVE * flow.pow(2).sum(1, keepdim=True) + BOUNDARY_ABSOLUTE
    return (gradient <= bound).to(flow.dtype)


def reliability(flow: Tensor, opposite: Tensor) -> Tensor:
    """N×1×H×W in {0, 1}: where ``flow`` can be trusted, given the ``opposite`` flow (see the module's docstring)."""
    return inside(flow) * consistent(flow, opposite) * off_motion_boundary(flow)


def closest_reliable(masks: list[Tensor]) -> list[Tensor]:
    """Ruder et al.'s long-term weights: with ``masks`` the reliabilities of earlier frames, closest first, frame j's
    weight is ``max(c_j − Σ_{k closer} c_k, 0)``, so that each pixel is held by its closest reliable frame only."""
    weights, covered = [], None
    for mask in masks:
        weights.append(mask if covered is None else (mask - covered).clamp_min(0))
        covered = mask if covered is None else covered + mask
    return weights
