"""What many tests share: the argument lists of small runs, reading a PNG back, the one-line error contract,
waiting for a child run, and measuring losses independently of a run. Tests import from here, never from
another ``test_*`` module."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from nst_lightning.cli import main
from nst_lightning.image.io import load_image
from nst_lightning.model.losses.base import Targets
from nst_lightning.model.losses.content import ContentLoss
from nst_lightning.model.losses.gram import GramStyleLoss

from .conftest import CONTENT, STYLE, fit_args

SIZE = 80  # the command-line tests' image size (tiny)


def tiny(tmp_path: Path, *extra: str, steps: int = 30) -> list[str]:
    return fit_args(tmp_path, "--data.size", str(SIZE), "--trainer.max_steps", str(steps), *extra)


def losses_of(image: torch.Tensor, backbone) -> tuple[float, float]:
    """Style and content loss of ``image`` against the sample images, measured independently of the run."""
    content = load_image(CONTENT, SIZE)
    style = load_image(STYLE, SIZE)
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]
    with torch.no_grad():
        targets = Targets(content, backbone(content, layers), [style], [backbone(style, layers)], [1.0])
        style_loss, content_loss = GramStyleLoss(weight=1.0), ContentLoss(weight=1.0)
        style_loss.set_targets(targets)
        content_loss.set_targets(targets)
        feats = backbone(image, layers)
        return style_loss(feats, image).item(), content_loss(feats, image).item()


def float64_problem(height: int, width: int, layers: list[str]) -> tuple:
    """A small real problem in float64 (seeded): a random VGG19 truncated to ``layers``, a random content image of
    ``height``×``width`` and a random 40×40 style image."""
    from nst_lightning.model.backbones.vgg import VGG19

    torch.manual_seed(0)
    vgg = VGG19(weights="none")
    vgg.truncate(layers)
    vgg.double()
    content, style = torch.rand(1, 3, height, width, dtype=torch.float64), torch.rand(1, 3, 40, 40, dtype=torch.float64)
    return vgg, content, style


def read_png(path: Path) -> torch.Tensor:
    """A PNG as a float 1×3×H×W tensor in [0, 1] (multiply by 255 for grey levels)."""
    return pil_to_tensor(Image.open(path).convert("RGB")).float().div(255).unsqueeze(0)


def expect_one_line_error(capsys, argv: list[str], *needles: str, tmp_path: Path, code: int | None = None) -> str:
    """Runs ``main(argv)`` and checks the contract: non-zero exit, one line, no traceback, no output."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("nst-lightning:")]
    assert exit_info.value.code not in (0, None), err
    if code is not None:
        assert exit_info.value.code == code, err
    assert len(lines) == 1 and lines[0].startswith("nst-lightning: error: "), err
    assert "Traceback" not in err and "usage:" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    return lines[0]


def quiet_args(tmp_path: Path, *extra: str, weights: str = "none") -> list[str]:
    """A one-step run with random weights, writing ``tmp_path/out/out.png``."""
    return fit_args(tmp_path, "--data.content", str(CONTENT), "--data.style", str(STYLE),
                    "--model.backbone.init_args.weights", weights, *extra, output="out/out.png")


def run_args(tmp_path: Path, optimizer: str, steps: int, output: str = "out.png", *extra: str) -> list[str]:
    return fit_args(tmp_path, "--data.content", str(CONTENT), "--data.style", str(STYLE), "--data.size", "48",
                    "--model.optimizer", optimizer, "--trainer.max_steps", str(steps), *extra, output=output)


def wait_until_running(child: subprocess.Popen, snapshot: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not snapshot.exists():
        if child.poll() is not None:
            pytest.fail(f"the run ended before it was signalled:\n{child.stderr.read()}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail("the run wrote no snapshot in time")
        time.sleep(0.1)
