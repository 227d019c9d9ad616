"""Real ``nst-lightning fit`` runs that name the installed plugin's components by short name from YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("nst_lightning_extras")

import torch
import yaml
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from nst_lightning.cli import main
from nst_lightning.image.io import load_image
from nst_lightning.model.backbones.vgg import VGG19
from nst_lightning.model.losses.base import Targets
from nst_lightning_extras.losses import HistogramStyleLoss, WassersteinStyleLoss

SIZE = 64
STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1"]


@pytest.fixture(autouse=True)
def _autoload(monkeypatch):
    """Let nst-lightning discover the installed plugin through its entry point, as a user's run does."""
    monkeypatch.delenv("NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("NST_LIGHTNING_BLOCK_PLUGINS", raising=False)


def fit(tmp_path: Path, assets: Path, config: str, steps: int, *extra: str) -> torch.Tensor:
    out = tmp_path / "out.png"
    main([
        "fit", "--config", str(Path(__file__).resolve().parents[1] / "configs" / config),
        "--data.content", str(assets / "tubingen.jpg"), "--data.style", str(assets / "starry_night.jpg"),
        "--data.size", str(SIZE), "--trainer.max_steps", str(steps),
        "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false",
        "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--output", str(out), *extra,
    ])
    return pil_to_tensor(Image.open(out).convert("RGB")).float().div(255).unsqueeze(0)


def test_plugins_command_lists_the_extras(capsys):
    main(["plugins"])
    out = capsys.readouterr().out
    assert "extras (nst-lightning-extras 0.1.0)" in out
    assert "backbone: ResNet" in out and "loss: WassersteinStyleLoss, HistogramStyleLoss" in out


def test_fit_with_wasserstein_and_histogram_losses_from_yaml(tmp_path, assets):
    # The config as it stands, with the Wasserstein term on relu1_1 … relu3_1 only: the 512-channel layers'
    # eigendecompositions would make this test slow.
    image = fit(tmp_path, assets, "wasserstein.yaml", 20, "--model.losses.style.init_args.layers", str(STYLE_LAYERS))
    config = yaml.safe_load(Image.open(tmp_path / "out.png").text["nst-lightning:config"])
    losses = {k: v["class_path"] for k, v in config["model"]["losses"].items()}
    assert losses["style"].startswith("nst_lightning_extras.") and losses["style"].endswith(".WassersteinStyleLoss")
    assert losses["histogram"].startswith("nst_lightning_extras.") and losses["histogram"].endswith(".HistogramStyleLoss")
    # Measured independently of the run: both style distances to The Starry Night fall.
    content, style = load_image(assets / "tubingen.jpg", SIZE), load_image(assets / "starry_night.jpg", SIZE)
    backbone = VGG19(weights="caffe")
    with torch.no_grad():
        targets = Targets(content, {}, [style], [backbone(style, STYLE_LAYERS)], [1.0])
        # Measured at 64 px after 20 steps: the Wasserstein distance falls 3.7x, the histogram loss 9.4x.
        for cls, factor in [(WassersteinStyleLoss, 2.5), (HistogramStyleLoss, 5.0)]:
            loss = cls(weight=1.0, layers=STYLE_LAYERS)
            loss.set_targets(targets)
            before = loss(backbone(content, STYLE_LAYERS), content).item()
            after = loss(backbone(image, STYLE_LAYERS), image).item()
            assert before / after > factor, (cls.__name__, before, after)


def test_fit_through_a_resnet_backbone_from_yaml(tmp_path, assets):
    image = fit(tmp_path, assets, "resnet.yaml", 5,
                "--model.backbone.init_args.arch", "resnet18", "--model.backbone.init_args.weights", "none")
    content = load_image(assets / "tubingen.jpg", SIZE)
    assert image.shape == content.shape and (image - content).abs().mean() > 0.005
