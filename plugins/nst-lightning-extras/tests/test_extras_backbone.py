"""The ResNet backbone: layer names, the input contract, local weights, freezing and truncation."""

from __future__ import annotations

import pytest

pytest.importorskip("nst_lightning_extras")

import torch
import torchvision

from nst_lightning.model.backbones.weights import WeightsError
from nst_lightning_extras.backbones import ResNet


def test_resnet50_layer_names_and_feature_shapes():
    backbone = ResNet("resnet50", weights="none")
    names = backbone.layer_names
    assert names[:5] == ("conv1", "bn1", "relu", "maxpool", "layer1.0")
    # ResNet-50 has 3, 4, 6 and 3 bottleneck blocks; each stage's name follows its last block.
    assert [n for n in names if n.startswith("layer") and "." not in n] == ["layer1", "layer2", "layer3", "layer4"]
    assert names.index("layer3") == names.index("layer3.5") + 1 and len(names) == 4 + 16 + 4
    features = backbone(torch.rand(2, 3, 64, 96), ["relu", "layer1", "layer2.1", "layer4"])
    assert {k: tuple(v.shape) for k, v in features.items()} == {
        "relu": (2, 64, 32, 48), "layer1": (2, 256, 16, 24), "layer2.1": (2, 512, 8, 12), "layer4": (2, 2048, 2, 3),
    }
    with pytest.raises(ValueError, match="unknown layer.*'layer5'.*known layers: conv1"):
        backbone.check_layers(["layer5"])


def test_local_state_dict_gives_torchvisions_features_on_imagenet_normalized_input(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18().eval()
    path = tmp_path / "resnet18.pt"
    torch.save(reference.state_dict(), path)
    image = torch.rand(1, 3, 48, 64)
    backbone = ResNet("resnet18", weights=str(path))
    with torch.no_grad():
        x = torchvision.transforms.functional.normalize(image, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
        expected = reference.layer2(reference.layer1(reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))))
        got = backbone(image, ["layer2"])["layer2"]
        other = ResNet("resnet18", weights="none")(image, ["layer2"])["layer2"]
    torch.testing.assert_close(got, expected)
    assert (other - expected).abs().mean() > 0.01 * expected.abs().mean()


def test_weights_that_do_not_fit_name_the_file(tmp_path):
    path = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(WeightsError, match=r"r18\.pt.*do not fit resnet50"):
        ResNet("resnet50", weights=str(path))
    with pytest.raises(WeightsError, match="does not exist"):
        ResNet("resnet18", weights=str(tmp_path / "missing.pt"))


def test_frozen_in_eval_mode_and_truncated():
    backbone = ResNet("resnet18", weights="none")
    backbone.train()
    assert not backbone.training and all(not m.training for m in backbone.modules())
    assert not any(p.requires_grad for p in backbone.parameters())
    backbone.truncate(["relu", "layer2"])
    assert len(backbone.blocks) == 4 + 2 + 2  # stem, layer1's 2 blocks, layer2's 2 blocks
    image = torch.rand(1, 3, 32, 32, requires_grad=True)
    features = backbone(image, ["relu", "layer2"])
    features["layer2"].sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
