"""A plugin loss that is not a Gram loss tiles: the Wasserstein-2 (mean and covariance) style loss with a style
image larger than a tile gives the untiled loss and gradient, tile by tile, targets included."""

from __future__ import annotations

import pytest

pytest.importorskip("nst_lightning_extras")

import torch

from nst_lightning.model.backbones.vgg import VGG19
from nst_lightning.model.losses.content import ContentLoss
from nst_lightning.model.targets import set_targets
from nst_lightning.model.tiled_loss import tiled_loss_and_grad
from nst_lightning.model.tiling import plan_tiles, tile_geometry
from nst_lightning_extras.losses import WassersteinStyleLoss

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]
TILE = 192


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    backbone = VGG19(weights="none")
    backbone.truncate(LAYERS)
    return backbone


def losses(weights=None):
    w2 = WassersteinStyleLoss(weight=5.0)
    if weights is not None:
        w2.set_sample_weights(weights)
    return {"content": ContentLoss(), "style": w2}


def test_w2_tiles_with_a_style_image_larger_than_a_tile(vgg):
    torch.manual_seed(1)
    content = torch.rand(1, 3, 200, 216)
    style = torch.rand(1, 3, 208, 224)  # larger than a tile: 4 tiles of at most 192 px
    geometry = tile_geometry(vgg, LAYERS)
    content_plan, style_plan = plan_tiles(200, 216, TILE, geometry), plan_tiles(208, 224, TILE, geometry)
    assert len(style_plan) == 4

    whole, tiled = losses(), losses()
    set_targets(vgg, whole, content, [style], [1.0])
    set_targets(vgg, tiled, content, [style], [1.0], content_plan=content_plan, style_plans=[style_plan])
    for name in ("mean_0", "cov_sqrt_4", "scale_2"):  # the style's Gaussians, from tiles and whole
        assert torch.allclose(getattr(tiled["style"], name), getattr(whole["style"], name), rtol=1e-4, atol=1e-5), name

    image = torch.rand(1, 3, 200, 216, requires_grad=True)
    features = vgg(image, LAYERS)
    values = {name: term(features, image) for name, term in whole.items()}
    torch.stack([v.sum() for v in values.values()]).sum().backward()
    by_tiles, grad = tiled_loss_and_grad(vgg, tiled, image.detach(), content_plan)
    for name in values:
        assert torch.allclose(by_tiles[name], values[name].detach(), rtol=1e-5, atol=0), name
    assert float((grad - image.grad).norm() / image.grad.norm()) < 1e-4


def test_w2_gives_each_image_of_a_batch_its_own_weighted_loss(vgg):
    torch.manual_seed(2)
    content, style = torch.rand(1, 3, 64, 80), torch.rand(1, 3, 72, 72)
    images = torch.rand(3, 3, 64, 80)
    batched = losses(weights=[1.0, 5.0, 20.0])
    set_targets(vgg, batched, content, [style], [1.0])
    with torch.no_grad():
        per_image = batched["style"](vgg(images, LAYERS), images)
    assert per_image.shape == (3,)
    for i, weight in enumerate([1.0, 5.0, 20.0]):
        alone = {"style": WassersteinStyleLoss(weight=weight)}
        set_targets(vgg, alone, content, [style], [1.0])
        with torch.no_grad():
            value = alone["style"](vgg(images[i : i + 1], LAYERS), images[i : i + 1])
        assert torch.allclose(per_image[i], value, rtol=1e-4), i
