"""GPU checks. CI has no GPU: every test here skips cleanly when CUDA is absent."""

from __future__ import annotations

import pytest
import torch

from nst_lightning.cli import main

from .helpers import losses_of, read_png, tiny

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_lbfgs_with_16_mixed_on_gpu_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(tiny(tmp_path, "--trainer.accelerator", "gpu", "--trainer.precision", "16-mixed", steps=2))
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "bf16-mixed" in err and "Traceback" not in err
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize(("precision", "optimizer"), [("bf16-mixed", "ImageLBFGS"), ("16-mixed", "ImageAdam")])
def test_mixed_precision_matches_fp32_on_gpu(tmp_path, vgg19_caffe, precision, optimizer):
    results = {}
    for p in ("32-true", precision):
        out = tmp_path / f"{p}.png"
        main(tiny(tmp_path, "--trainer.accelerator", "gpu", "--trainer.precision", p, "--model.optimizer", optimizer,
                  "--output", str(out), steps=30))
        results[p] = losses_of(read_png(out), vgg19_caffe)
    (style32, content32), (style_mixed, content_mixed) = results["32-true"], results[precision]
    assert style_mixed == pytest.approx(style32, rel=0.02)
    assert content_mixed == pytest.approx(content32, rel=0.02)
    assert all(torch.isfinite(torch.tensor(v)) for v in (style_mixed, content_mixed))
