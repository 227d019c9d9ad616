"""Loss values against numbers computed by hand on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from nst_lightning.model.losses.base import Targets
from nst_lightning.model.losses.content import ContentLoss
from nst_lightning.model.losses.gram import GramStyleLoss, gram_matrix
from nst_lightning.model.losses.total_variation import TotalVariationLoss


def test_gram_matrix_by_hand():
    # One image, 2 channels, 1x2 positions: F = [[1, 2], [3, 4]]
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    g = gram_matrix(f)
    # F F^T = [[1+4, 3+8], [3+8, 9+16]] = [[5, 11], [11, 25]], divided by M = 2
    assert torch.equal(g, torch.tensor([[[2.5, 5.5], [5.5, 12.5]]]))
    assert g.dtype == torch.float32


def test_gram_matrix_fp16_features_do_not_overflow():
    # 300² * 4096 positions = 3.7e8, far beyond fp16's 65504: the Gram matrix is float32.
    f = torch.full((1, 2, 64, 64), 300.0, dtype=torch.float16)
    g = gram_matrix(f)
    assert g.dtype == torch.float32
    assert torch.isfinite(g).all()
    assert g[0, 0, 0].item() == pytest.approx(90000.0)


def _targets(content_feats, style_feats=None, weights=None):
    image = torch.zeros(1, 3, 2, 2)
    styles = style_feats or []
    return Targets(image, content_feats, [image] * len(styles), styles, weights or [1.0 / max(1, len(styles))] * len(styles))


def test_content_loss_by_hand():
    target = torch.tensor([[[[1.0, 3.0]]]])  # mean square = (1 + 9) / 2 = 5
    loss = ContentLoss(weight=2.0, layers=["a"])
    loss.set_targets(_targets({"a": target}))
    x = torch.tensor([[[[2.0, 1.0]]]])  # mse = ((1)² + (2)²) / 2 = 2.5
    value = loss({"a": x}, torch.zeros(1, 3, 2, 2))
    assert value.item() == pytest.approx(2.0 * 2.5 / 5.0)


def test_style_loss_literal_gatys_normalization():
    # With normalize=False the loss is 1/(4 N² M²) Σ (G - A)² with unnormalized Gram matrices.
    style = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])  # N = 2 channels, M = 2 positions
    x = torch.tensor([[[[1.0, 1.0]], [[1.0, 1.0]]]])
    loss = GramStyleLoss(weight=3.0, layers=["a"], normalize=False)
    loss.set_targets(_targets({}, [{"a": style}]))
    G = x[0].reshape(2, 2) @ x[0].reshape(2, 2).T  # [[2, 2], [2, 2]]
    A = style[0].reshape(2, 2) @ style[0].reshape(2, 2).T  # [[1, 0], [0, 1]]
    expected = 3.0 * ((G - A) ** 2).sum().item() / (4 * 2**2 * 2**2)  # G - A = [[1, 2], [2, 1]]: 3 * 10 / 64
    assert expected == pytest.approx(0.46875)
    assert loss({"a": x}, x).item() == pytest.approx(expected)


def test_style_loss_normalized_is_relative_and_size_invariant():
    torch.manual_seed(0)
    style = torch.rand(1, 4, 8, 8)
    loss = GramStyleLoss(weight=1.0, layers=["a"])
    loss.set_targets(_targets({}, [{"a": style}]))
    assert loss({"a": style}, style).item() == pytest.approx(0.0, abs=1e-7)
    x = torch.rand(1, 4, 8, 8) * 2
    small = loss({"a": x}, x).item()
    # Tiling the image 2x2 keeps the Gram matrix (a mean over positions), and so the loss.
    big = loss({"a": x.repeat(1, 1, 2, 2)}, x).item()
    assert big == pytest.approx(small, rel=1e-5)
    A = gram_matrix(style)
    expected = 0.25 * ((gram_matrix(x) - A) ** 2).mean() / (A**2).mean()
    assert small == pytest.approx(expected.item(), rel=1e-5)


def test_style_targets_blend_by_weight():
    s1, s2 = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
    loss = GramStyleLoss(layers=["a"])
    loss.set_targets(_targets({}, [{"a": s1}, {"a": s2}], [0.7, 0.3]))
    assert torch.allclose(loss.target_0, 0.7 * gram_matrix(s1) + 0.3 * gram_matrix(s2))


def test_total_variation_by_hand():
    x = torch.tensor([[[[0.0, 1.0], [1.0, 3.0]]]])
    # dx: (1-0)², (3-1)² -> mean 2.5; dy: (1-0)², (3-1)² -> mean 2.5
    assert TotalVariationLoss(weight=0.5)({}, x).item() == pytest.approx(0.5 * 5.0)


def test_losses_are_float32_under_autocast():
    torch.manual_seed(0)
    feats = torch.rand(1, 8, 4, 4)
    content, style = ContentLoss(layers=["a"]), GramStyleLoss(layers=["a"])
    t = _targets({"a": feats}, [{"a": feats.flip(-1) * 3}])
    content.set_targets(t)
    style.set_targets(t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = (feats + 0.5).to(torch.bfloat16)
        image = torch.rand(1, 3, 4, 4)
        values = [content({"a": low}, image), style({"a": low}, image), TotalVariationLoss()({}, image)]
    assert all(v.dtype == torch.float32 for v in values)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ContentLoss(weight=-1.0),
        lambda: GramStyleLoss(weight=math.nan),
        lambda: GramStyleLoss(layers=[]),
        lambda: GramStyleLoss(layers=["a", "b"], layer_weights=[1.0]),
        lambda: ContentLoss(layers=[]),
    ],
)
def test_bad_loss_arguments_raise(make):
    with pytest.raises(ValueError):
        make()
