from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch  # noqa: F401 - before any test captures stderr: Lightning's log handler keeps the stderr of its import
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "src" / "nst_lightning" / "assets"
CONTENT = ASSETS / "tubingen.jpg"
STYLE = ASSETS / "starry_night.jpg"
SHARED_IMAGES = ROOT.parent / "shared" / "images"
# The tests run the fixed-length single-scale config (the shipped default also stops when converged).
DEFAULT = ROOT / "configs" / "single_scale.yaml"
TINY = ROOT / "tests" / "conf" / "tiny.yaml"


def fit_args(tmp_path: Path, *extra: str, output: str = "out.png") -> list[str]:
    """``nst-lightning fit`` arguments for a quiet one-step 32 px run of the default config (tests/conf/tiny.yaml)
    that writes ``tmp_path / output`` and nothing else; ``extra`` overrides any of it."""
    return [
        "fit", "--config", str(DEFAULT), "--config", str(TINY),
        "--trainer.default_root_dir", str(tmp_path), "--output", str(tmp_path / output), *extra,
    ]

# Tests never download anything, and never pick up plugins installed in the environment
# unless a test asks for them.
os.environ.setdefault("NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    import torch.hub

    def refuse(*args, **kwargs):
        raise AssertionError("tests must not download anything")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.fixture
def content_path() -> Path:
    return CONTENT


@pytest.fixture
def style_path() -> Path:
    return STYLE


@pytest.fixture(scope="session")
def vgg19_caffe():
    from nst_lightning.model.backbones.vgg import VGG19

    return VGG19(weights="caffe")
