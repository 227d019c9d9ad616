"""The Python API (``stylize``, ``score``, ``Result``) and the example notebook, run at a tiny size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import nst_lightning
from nst_lightning.errors import NstLightningError

from .conftest import CONTENT, ROOT, STYLE


def test_stylize_takes_paths_arrays_and_tensors_and_reports_the_run():
    content = np.asarray(Image.open(CONTENT).convert("RGB"))  # an H×W×3 uint8 array
    style = torch.rand(3, 40, 40)  # a tensor in [0, 1]
    result = nst_lightning.stylize(content, [style, "sample:the_scream.jpg"], size=48, steps=3, progress=False,
                                   config="faithful", overrides={"model.backbone.init_args.weights": "none"})
    assert result.image.size == (48, 36)
    assert {"style_distance", "content_distance", "ssim"} <= set(result.distances)
    assert result.stop_reason is not None and "max_steps (3)" in result.stop_reason
    assert len(result.losses) == 3 and result.losses[0]["total"] > 0
    assert {"content", "style", "tv", "total"} == set(result.losses[0])
    assert result._repr_png_().startswith(b"\x89PNG")
    assert "model:" in result.config and "weights: none" in result.config


def test_stylize_refuses_bad_input_with_the_commands_message(tmp_path):
    with pytest.raises(NstLightningError, match="does not exist"):
        nst_lightning.stylize(tmp_path / "missing.jpg", STYLE, size=32, steps=1, progress=False)
    with pytest.raises(ValueError, match="H×W×3"):
        nst_lightning.stylize(np.zeros((4, 4)), STYLE, size=32, steps=1, progress=False)


def test_score_scores_a_pil_image():
    scores = nst_lightning.score(Image.open(CONTENT), CONTENT, "sample:starry_night.jpg", size=64)
    assert scores["content_distance"] == pytest.approx(0.0, abs=1e-6) and scores["style_distance"] > 0


def test_the_example_notebook_runs(monkeypatch, tmp_path):
    """Every code cell of examples/python_api.ipynb, in order, at a tiny size (random weights, 2 steps at one
    scale: the default's coarse scales need 61 steps and 64 px)."""
    notebook = json.loads((ROOT / "examples" / "python_api.ipynb").read_text())
    cells = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    cells[0] = "SIZE = 32\nSTEPS = 2"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    from nst_lightning import api

    real = api.stylize

    def tiny(*args, **kwargs):
        kwargs.setdefault("overrides", {})
        kwargs["overrides"] = {**kwargs["overrides"], "model.backbone.init_args.weights": "none", "trainer.callbacks": []}
        return real(*args, progress=False, **kwargs)

    monkeypatch.setattr(api, "stylize", tiny)
    for source in cells:
        exec(compile(source, "python_api.ipynb", "exec"), namespace)  # noqa: S102 - our own notebook
    assert namespace["result"].image.size == (32, 24) and namespace["bold"].image.size == (32, 24)
    assert list(tmp_path.iterdir()) == []  # the API writes nothing into the working directory
