"""Spatial control: masks restrict each style's Gram statistics to its region."""

from __future__ import annotations

import pytest
import torch

from nst_lightning.data import StyleTransferData
from nst_lightning.image.io import load_image
from nst_lightning.image.masks import load_mask
from nst_lightning.model.losses.base import Targets
from nst_lightning.model.losses.content import ContentLoss
from nst_lightning.model.losses.gram import DEFAULT_STYLE_LAYERS, GramStyleLoss, gram_matrix
from nst_lightning.model.losses.masked_gram import MaskedGramStyleLoss, masked_gram_matrix
from nst_lightning.model.style_transfer import StyleTransfer

from .conftest import CONTENT, STYLE
from .fit_helpers import MASK_LEFT, MASK_RIGHT, SCREAM, fit


def test_masked_gram_matrix_by_hand():
    features = torch.arange(2 * 2 * 4, dtype=torch.float32).reshape(1, 2, 2, 4)
    left = torch.zeros(1, 1, 2, 4)
    left[..., :2] = 1
    # The binary mask's Gram matrix is the Gram matrix of the region alone.
    assert torch.allclose(masked_gram_matrix(features, left), gram_matrix(features[..., :2]))
    assert torch.allclose(masked_gram_matrix(features, torch.ones(1, 1, 2, 4)), gram_matrix(features))
    # By hand: channel 0 left half is 0, 1, 4, 5; channel 1 is 8, 9, 12, 13.
    c0, c1 = torch.tensor([0.0, 1, 4, 5]), torch.tensor([8.0, 9, 12, 13])
    want = torch.tensor([[c0 @ c0, c0 @ c1], [c1 @ c0, c1 @ c1]]) / 4
    assert torch.allclose(masked_gram_matrix(features, left)[0], want)
    # The mask is resized to the layer's size: a 2×8 mask on 2×4 features.
    wide = torch.zeros(1, 1, 2, 8)
    wide[..., :4] = 1
    assert torch.allclose(masked_gram_matrix(features, wide), gram_matrix(features[..., :2]), atol=1e-4)


def test_load_mask_is_grey_and_resized():
    mask = load_mask(MASK_LEFT, (30, 40))
    assert mask.shape == (1, 1, 30, 40)
    assert mask[..., :, :18].min() > 0.99 and mask[..., :, 22:].max() < 0.01


def test_mask_count_must_match_style_count_and_needs_the_masked_loss():
    with pytest.raises(ValueError, match="1 mask images for 2 style images"):
        StyleTransferData(str(CONTENT), [str(STYLE), str(SCREAM)], masks=[str(MASK_LEFT)])
    with pytest.raises(ValueError, match="style_blend_weights"):
        StyleTransferData(str(CONTENT), [str(STYLE)], masks=[str(MASK_LEFT)], style_blend_weights=[1.0])
    content, style = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    feats = {"relu1_1": content}
    with pytest.raises(ValueError, match="MaskedGramStyleLoss"):
        GramStyleLoss(layers=["relu1_1"]).set_targets(Targets(content, feats, [style], [feats], [1.0], [content[:, :1]]))
    with pytest.raises(ValueError, match="one mask per style image"):
        MaskedGramStyleLoss(layers=["relu1_1"]).set_targets(Targets(content, feats, [style], [feats], [1.0]))


def region_distances(image, masks, styles, backbone) -> torch.Tensor:
    """d[k, j]: the style loss between region k of ``image`` and style image j (normalized per layer)."""
    layers = list(DEFAULT_STYLE_LAYERS)
    with torch.no_grad():
        feats = backbone(image, layers)
        style_feats = [backbone(s, layers) for s in styles]
        d = torch.zeros(len(masks), len(styles))
        for k, mask in enumerate(masks):
            for j, sf in enumerate(style_feats):
                for name in layers:
                    target = gram_matrix(sf[name])
                    g = masked_gram_matrix(feats[name], mask)
                    d[k, j] += ((g - target).pow(2).mean() / target.pow(2).mean()).item() / len(layers)
    return d


def test_each_masked_region_moves_towards_its_own_style(vgg19_caffe):
    size = 64
    data = StyleTransferData(str(CONTENT), [str(STYLE), str(SCREAM)], size=size, masks=[str(MASK_LEFT), str(MASK_RIGHT)])
    model = StyleTransfer(losses={"content": ContentLoss(), "style": MaskedGramStyleLoss()})
    fit(model, data, 20)
    content = load_image(CONTENT, size)
    masks = [load_mask(MASK_LEFT, content.shape[-2:]), load_mask(MASK_RIGHT, content.shape[-2:])]
    styles = data.sets[0].styles[:2]
    before = region_distances(content, masks, styles, vgg19_caffe)
    after = region_distances(model.image.detach(), masks, styles, vgg19_caffe)
    # Measured at 64 px after 20 steps, d[region, style] (rows: left/Starry Night, right/Scream region):
    # before [[0.55, 0.77], [0.61, 0.85]], after [[0.15, 1.14], [0.60, 0.20]].
    for own, other in [(0, 1), (1, 0)]:
        k = own
        # Towards its own style ...
        assert after[k, own] < 0.5 * before[k, own], (k, before, after)
        # ... and relative to the other style it ends closer to its own.
        assert after[k, own] / after[k, other] < before[k, own] / before[k, other], (k, before, after)
        assert after[k, own] < after[k, other], (k, before, after)
