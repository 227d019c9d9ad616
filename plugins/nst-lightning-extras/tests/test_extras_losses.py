"""The two style losses against hand-computed values."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("nst_lightning_extras")

import torch

from nst_lightning.model.losses.base import Targets
from nst_lightning_extras.losses import HistogramStyleLoss, WassersteinStyleLoss

# Four positions whose two channels have mean 0 and covariance exactly I (population statistics).
WHITE = torch.tensor([[-1.0, -1.0, 1.0, 1.0], [-1.0, 1.0, -1.0, 1.0]])


def gaussian_features(cov: list[list[float]], mean: list[float]) -> torch.Tensor:
    """1×2×1×4 features whose mean and covariance over positions are exactly ``mean`` and ``cov``."""
    chol = torch.linalg.cholesky(torch.tensor(cov, dtype=torch.float64)).float()
    return (chol @ WHITE + torch.tensor(mean)[:, None]).reshape(1, 2, 1, 4)


def loss_value(loss, image_features, *styles, weights=None) -> torch.Tensor:
    weights = weights or [1.0 / len(styles)] * len(styles)
    loss.set_targets(Targets(styles[0], {}, list(styles), [{"a": s} for s in styles], weights))
    return loss({"a": image_features}, image_features)


def w2(**kwargs) -> WassersteinStyleLoss:
    return WassersteinStyleLoss(**{"weight": 1.0, "layers": ["a"], "eps": 0.0, "normalize": False, **kwargs})


def test_w2_between_diagonal_gaussians():
    # |m - m_t|² + Σ (σ_i - σ_t,i)² = (1 + 4) + (2 - 1)² + (3 - 2)² = 7
    image = gaussian_features([[4.0, 0.0], [0.0, 9.0]], [1.0, 2.0])
    style = gaussian_features([[1.0, 0.0], [0.0, 4.0]], [0.0, 0.0])
    assert loss_value(w2(), image, style).item() == pytest.approx(7.0, abs=1e-5)


def test_w2_between_non_commuting_gaussians():
    # For 2×2 SPD matrices tr √M = √(tr M + 2√det M). With C = diag(4, 1), C_t = [[2, 1], [1, 2]]:
    # tr(C_t C) = 10 and det = 4 · 3 = 12, so W2² = |Δm|² + 5 + 4 − 2√(10 + 2√12) = 0.25 + 0.77122.
    image = gaussian_features([[4.0, 0.0], [0.0, 1.0]], [0.5, 0.0])
    style = gaussian_features([[2.0, 1.0], [1.0, 2.0]], [0.0, 0.0])
    expected = 0.25 + 9.0 - 2.0 * math.sqrt(10.0 + 2.0 * math.sqrt(12.0))
    assert loss_value(w2(), image, style).item() == pytest.approx(expected, abs=1e-5)
    # weight multiplies; normalize divides by the style's |m_t|² + tr(C_t) = 4.
    assert loss_value(w2(weight=3.0, normalize=True), image, style).item() == pytest.approx(3 * expected / 4, abs=1e-5)


def test_w2_is_zero_for_the_style_itself_and_blends_styles_as_a_mixture():
    torch.manual_seed(0)
    a, b = torch.randn(1, 8, 4, 6), torch.randn(1, 8, 4, 6) * 2 + 1
    loss = WassersteinStyleLoss(weight=1.0, layers=["a"])  # default eps, normalized
    assert abs(loss_value(loss, a, a).item()) < 1e-4
    # Blending two styles 1:1 is the same target as one style image holding both feature maps side by side.
    both = torch.cat([a, b], dim=-1)
    image = torch.randn(1, 8, 4, 6)
    blended = loss_value(loss, image, a, b, weights=[0.5, 0.5]).item()
    assert blended == pytest.approx(loss_value(loss, image, both).item(), rel=1e-4)
    assert blended > 0.1


def test_w2_runs_in_float32_with_finite_gradients_under_autocast():
    torch.manual_seed(0)
    style = torch.randn(1, 16, 5, 5).relu()  # rank-deficient covariance: eps keeps the gradient finite
    loss = WassersteinStyleLoss(weight=1.0, layers=["a"])
    loss.set_targets(Targets(style, {}, [style], [{"a": style}], [1.0]))
    image = torch.randn(1, 16, 5, 5).relu().bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss({"a": image}, image)
    assert value.dtype == torch.float32 and value.numel() == 1
    value.sum().backward()
    assert torch.isfinite(image.grad).all() and image.grad.abs().sum() > 0


def hist(**kwargs) -> HistogramStyleLoss:
    return HistogramStyleLoss(**{"weight": 1.0, "layers": ["a"], "normalize": False, **kwargs})


def test_histogram_loss_hand_case():
    # Sorted image values [0, 1, 2, 3] meet the style's [10, 20, 30, 40] wherever they sit:
    # (10² + 19² + 28² + 37²) / 4 = 2614 / 4 = 653.5
    style = torch.tensor([10.0, 20.0, 30.0, 40.0]).view(1, 1, 2, 2)
    image = torch.tensor([2.0, 0.0, 3.0, 1.0]).view(1, 1, 2, 2).requires_grad_()
    value = loss_value(hist(), image, style)
    assert value.item() == pytest.approx(653.5)
    # The gradient pulls each value towards its histogram-matched value: 2 (x − matched) / 4.
    value.sum().backward()
    assert image.grad.flatten().tolist() == pytest.approx([(2 - 30) / 2, (0 - 10) / 2, (3 - 40) / 2, (1 - 20) / 2])
    # normalize divides by the style's mean square (100 + 400 + 900 + 1600) / 4 = 750.
    assert loss_value(hist(normalize=True), image, style).item() == pytest.approx(653.5 / 750)


def test_histogram_loss_with_different_sizes_and_blends():
    # 2 style values, 4 image values: the quantiles at 1/8, 3/8, 5/8, 7/8 of [0, 10] read off by linear
    # interpolation between the sorted values (clamped at the ends) are [0, 2.5, 7.5, 10];
    # against [0, 0, 10, 10]: (0 + 2.5² + 2.5² + 0) / 4 = 3.125.
    style = torch.tensor([0.0, 10.0]).view(1, 1, 1, 2)
    image = torch.tensor([10.0, 0.0, 0.0, 10.0]).view(1, 1, 2, 2)
    assert loss_value(hist(), image, style).item() == pytest.approx(3.125)
    # Two styles blend through their quantile functions: 0.5·[0, 2] + 0.5·[4, 10] = [2, 6].
    low, high = torch.tensor([2.0, 0.0]).view(1, 1, 1, 2), torch.tensor([10.0, 4.0]).view(1, 1, 1, 2)
    image = torch.tensor([6.0, 2.0]).view(1, 1, 1, 2)
    assert loss_value(hist(), image, low, high, weights=[0.5, 0.5]).item() == pytest.approx(0.0)


def test_histogram_loss_is_blind_to_positions_but_not_to_values():
    torch.manual_seed(0)
    style = torch.randn(1, 4, 6, 6)
    shuffled = style.flatten(2)[..., torch.randperm(36)].reshape(1, 4, 6, 6)
    loss = HistogramStyleLoss(weight=1.0, layers=["a"])
    assert loss_value(loss, shuffled, style).item() == pytest.approx(0.0, abs=1e-7)
    # Halving every value: mean((x − x/2)²) / mean(x²) = 1/4.
    assert loss_value(loss, style / 2, style).item() == pytest.approx(0.25, rel=1e-5)
