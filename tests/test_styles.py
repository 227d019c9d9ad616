"""Several style images with blend weights, style scale, and the init options."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nst_lightning.data import StyleTransferData
from nst_lightning.image.image_set import ImageSet
from nst_lightning.image.io import load_image
from nst_lightning.model.backbones.vgg import VGG19
from nst_lightning.model.style_transfer import StyleTransfer

from .conftest import CONTENT, STYLE
from .fit_helpers import SCREAM, fit


def test_blend_weights_one_and_zero_reproduce_the_single_style_result():
    single = fit(StyleTransfer(), StyleTransferData(str(CONTENT), str(STYLE), size=64), 5)
    blend = StyleTransferData(str(CONTENT), [str(STYLE), str(SCREAM)], size=64, style_blend_weights=[1.0, 0.0])
    blended = fit(StyleTransfer(), blend, 5)
    assert blend.style_weights == [1.0, 0.0]
    assert not torch.equal(single.image, load_image(CONTENT, 64))  # it did stylize
    torch.testing.assert_close(blended.image, single.image, rtol=0, atol=1e-6)


def test_blend_weights_are_normalized_and_blend_the_style_targets():
    data = StyleTransferData(str(CONTENT), [str(STYLE), str(SCREAM)], size=64, style_blend_weights=[7, 3])
    assert data.style_weights == pytest.approx([0.7, 0.3])
    with pytest.raises(ValueError, match="2 style images"):
        StyleTransferData(str(CONTENT), [str(STYLE), str(SCREAM)], style_blend_weights=[1.0])


@pytest.mark.parametrize(("scale", "long_edge"), [(0.5, 40), (1.0, 80), (2.0, 160)])
def test_style_scale_sizes_the_style_relative_to_the_output(scale, long_edge):
    data = StyleTransferData(str(CONTENT), str(STYLE), size=80, style_scale=scale)
    data.setup()
    assert max(data.sets[0].styles[0].shape[-2:]) == long_edge
    # Relative to every size it is asked for, as multi-scale does per scale.
    content, styles, _ = data.load_images(64)
    assert max(content.shape[-2:]) == 64 and max(styles[0].shape[-2:]) == round(64 * scale)


@pytest.mark.parametrize("init", ["content", "noise", "style", "file"])
def test_init_options(init, tmp_path):
    content, style = load_image(CONTENT, 64), load_image(STYLE, 80)
    path = tmp_path / "init.png"
    if init == "file":
        from nst_lightning.image.io import save_png

        save_png(style, path)
    model = StyleTransfer(backbone=VGG19(weights="none"), init=str(path) if init == "file" else init)
    model.set_image_sets([ImageSet(content, [style], [1.0], [])])
    image = model.initial_image()
    assert image.shape == content.shape
    if init == "content":
        assert torch.equal(image, content)
    elif init == "noise":
        assert 0.45 < image.mean() < 0.55 and image.std() > 0.25
    else:  # the style image (first one), or the file, stretched to the content's size
        want = F.interpolate(style, size=content.shape[-2:], mode="bilinear", antialias=True)
        assert (image - want).abs().max() < 0.01
