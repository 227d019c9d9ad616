"""The built-in flow methods beyond DIS: DeepFlow (OpenCV's contrib modules), its one-line error when they are
missing, and the flow it finds for a known motion."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from PIL import Image

from nst_lightning.errors import ConfigError
from nst_lightning.video import flow as flow_module
from nst_lightning.video.flow import DeepFlow, DISFlow

from .conftest import CONTENT, TINY
from .helpers import expect_one_line_error

cv2 = pytest.importorskip("cv2")
has_contrib = hasattr(cv2, "optflow")
needs_contrib = pytest.mark.skipif(not has_contrib, reason="OpenCV's contrib modules (cv2.optflow) are not installed: "
                                   "pip install opencv-contrib-python-headless in place of opencv-python-headless")

SHIFT = 3


def pan(shift: int = SHIFT) -> list[torch.Tensor]:
    """Two 96×128 crops of the content photograph, the second ``shift`` px further right (8-bit 3×H×W). (DeepFlow's
    pyramid needs some size: on 48×64 crops its error is 0.9 px, four times DIS's.)"""
    photo = np.asarray(Image.open(CONTENT).convert("RGB").resize((200, 150), Image.Resampling.LANCZOS))
    crops = [np.ascontiguousarray(photo[10:106, 8 + shift * t : 136 + shift * t]) for t in range(2)]
    return [torch.from_numpy(c).permute(2, 0, 1).contiguous() for c in crops]


@pytest.fixture
def no_contrib(monkeypatch):
    """OpenCV as opencv-python-headless installs it: everything but ``cv2.optflow``."""
    without = types.SimpleNamespace(**{k: getattr(cv2, k) for k in ("cvtColor", "COLOR_RGB2GRAY")})
    monkeypatch.setattr(flow_module, "require", lambda module, package: without)


def test_deepflow_without_the_contrib_modules_names_the_package_to_install(no_contrib):
    with pytest.raises(ConfigError, match=r"cv2\.optflow.*pip install opencv-contrib-python-headless") as info:
        DeepFlow()
    assert "\n" not in str(info.value)


def test_the_command_stops_with_one_line_when_deepflow_has_no_contrib_modules(no_contrib, tmp_path, capsys):
    folder = tmp_path / "clip"
    folder.mkdir()
    for t, frame in enumerate(pan()):
        Image.fromarray(frame.permute(1, 2, 0).numpy()).save(folder / f"{t:03d}.png")
    argv = ["fit", "--config", "video", "--config", str(TINY), "--data.video", str(folder), "--data.size", "128",
            "--data.flow", "DeepFlow", "--data.flow_cache", str(tmp_path / "flows"),
            "--trainer.default_root_dir", str(tmp_path), "--output", f"{tmp_path / 'out'}/"]
    expect_one_line_error(capsys, argv, "DeepFlow needs OpenCV's contrib modules", "opencv-contrib-python-headless",
                          tmp_path=tmp_path)
    assert not (tmp_path / "flows").exists()


@needs_contrib
def test_deepflow_recovers_a_pan_more_closely_than_dis():
    first, second = pan()
    backward = DeepFlow().compute(second, first)  # the second frame's pixels were 3 px to the right in the first
    assert backward.shape == (1, 2, 96, 128) and backward.dtype == torch.float32
    core = backward[..., 8:-8, 8:-8]
    error = ((core[:, 0] - SHIFT).pow(2) + core[:, 1].pow(2)).sqrt().mean()
    assert error < 0.05
    dis = DISFlow().compute(second, first)[..., 8:-8, 8:-8]
    assert error < ((dis[:, 0] - SHIFT).pow(2) + dis[:, 1].pow(2)).sqrt().mean()
    assert DeepFlow().identity() == "DeepFlow()"  # no settings: one cache key per pair of frames
