"""``model.compile``: the loss and the L-BFGS update run through torch.compile and give the eager run's image."""

from __future__ import annotations

import pytest
import torch

from nst_lightning.data import StyleTransferData
from nst_lightning.model.backbones.vgg import VGG19
from nst_lightning.model.style_transfer import StyleTransfer

from .conftest import CONTENT, STYLE
from .fit_helpers import fit


def test_compiled_loss_gives_the_eager_image(monkeypatch):
    modes: list[str] = []
    real_compile = torch.compile

    def traced(fn, mode=None, **kwargs):
        # aot_eager traces forward and backward as inductor would, without a C++ build (minutes on a CI CPU).
        modes.append(mode)
        return real_compile(fn, backend="aot_eager", **kwargs)

    monkeypatch.setattr(torch, "compile", traced)
    torch.manual_seed(0)
    weights = VGG19(weights="none").state_dict()
    images = []
    for mode in ("off", "reduce-overhead"):
        backbone = VGG19(weights="none")
        backbone.load_state_dict(weights)
        model = StyleTransfer(backbone=backbone, compile=mode)
        fit(model, StyleTransferData(content=str(CONTENT), style=[str(STYLE)], size=32), 5)
        images.append(model.image.detach())
    assert modes == ["reduce-overhead", "reduce-overhead"]  # the loss, and the L-BFGS update
    start = StyleTransferData(content=str(CONTENT), style=[str(STYLE)], size=32)
    start.setup()
    assert (images[0] - start.sets[0].content).abs().max() > 1e-3  # the optimization moved the image
    assert torch.allclose(images[0], images[1], atol=1e-4)


def test_unknown_compile_mode_is_refused():
    with pytest.raises(ValueError, match="model.compile must be"):
        StyleTransfer(backbone=VGG19(weights="none"), compile="fast")
