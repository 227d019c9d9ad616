"""Multi-scale: coarse to fine inside Lightning's loop, reaching a given loss in fewer steps at the final size."""

from __future__ import annotations

import pytest

from nst_lightning.callbacks.multiscale import MultiScale, scale_sizes
from nst_lightning.data import StyleTransferData
from nst_lightning.model.style_transfer import StyleTransfer

from .conftest import CONTENT, STYLE
from .fit_helpers import LossRecorder, fit


def test_scale_sizes():
    assert scale_sizes(512, 3) == [256, 362, 512]
    assert scale_sizes(512, 1) == [512]
    assert scale_sizes(512, min_size=128) == [128, 181, 256, 362, 512]
    assert scale_sizes(512, min_size=129) == [181, 256, 362, 512]
    assert scale_sizes(100, 3, factor=2) == [25, 50, 100]
    with pytest.raises(ValueError, match="below 16 px"):
        scale_sizes(64, 6)
    with pytest.raises(ValueError, match="min_size"):
        scale_sizes(64, min_size=100)


def test_too_few_steps_for_the_final_scale_is_an_error():
    data = StyleTransferData(str(CONTENT), str(STYLE), size=64)
    with pytest.raises(ValueError, match="must exceed the coarse scales' steps"):
        fit(StyleTransfer(), data, 10, MultiScale(scales=2, steps_per_scale=10))
    with pytest.raises(ValueError, match="steps_per_scale needs 2 values"):
        fit(StyleTransfer(), data, 10, MultiScale(scales=3, steps_per_scale=[3]))


def test_multiscale_reaches_the_loss_sooner_at_the_final_size():
    size, final_steps = 80, 20
    single = LossRecorder()
    fit(StyleTransfer(), StyleTransferData(str(CONTENT), str(STYLE), size=size), final_steps, single)
    multi, schedule = LossRecorder(), MultiScale(scales=2, steps_per_scale=10)
    model = fit(StyleTransfer(), StyleTransferData(str(CONTENT), str(STYLE), size=size), 10 + final_steps, schedule, multi)
    assert schedule.sizes == [57, 80]
    final_shape = single.rows[0][0]
    assert [shape for shape, _ in multi.rows] == [(43, 57)] * 10 + [final_shape] * final_steps
    # The image is still the optimizer's parameter, at the final size; L-BFGS restarted its history there.
    optimizer = model.trainer.optimizers[0]
    assert optimizer.param_groups[0]["params"][0] is model.image
    assert int(optimizer.state[model.image]["step"]) == final_steps
    single_losses = [loss for _, loss in single.rows]
    multi_losses = [loss for shape, loss in multi.rows if shape == final_shape]
    # Measured at 80 px: single scale 4.38 at its first step, 1.24 after 20; multi-scale starts the final
    # size at 2.14 and passes 1.24 at its 15th step there.
    target = single_losses[-1]
    steps_to_target = next(i + 1 for i, loss in enumerate(multi_losses) if loss <= target)
    assert steps_to_target <= 16, (steps_to_target, target, multi_losses)
    # At every step at the final size it is ahead of the single-scale run's same step.
    assert all(m < s for m, s in zip(multi_losses, single_losses)), (multi_losses, single_losses)


def test_multiscale_from_the_command_line(tmp_path):
    # The callback is named on the command line; the run's other callbacks (the NaN guard keeps a copy of
    # the image, the writer writes it) follow the image from 57 px to 80 px.
    import logging

    from nst_lightning.cli import main

    from .helpers import read_png, tiny

    said: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    logger.addHandler(handler)
    try:
        main(tiny(tmp_path, "--trainer.callbacks+=MultiScale", "--trainer.callbacks.scales", "2",
                  "--trainer.callbacks.steps_per_scale", "10", "--snapshot_every", "10", steps=12))
    finally:
        logger.removeHandler(handler)
    # each scale is announced as it starts
    assert [m for m in said if m.startswith("Scale ")] == ["Scale 1/2: 57x43 px from step 0",
                                                           "Scale 2/2: 80x60 px from step 10"]
    assert read_png(tmp_path / "out.png").shape == (1, 3, 60, 80)
    assert read_png(tmp_path / "out.run" / "step00010.png").shape == (1, 3, 43, 57)


def test_the_default_config_is_the_measured_coarse_to_fine_budget(tmp_path, capsys):
    """configs/default.yaml says: 30 steps at half the size, 30 at 1/√2, 27 at the size (49.5 full-size-equivalent
    iterations), style weight 150 with relu5_1 weighted 0.02, ending at trainer.max_steps. A real run of it at
    64 px does exactly that."""
    from nst_lightning.cli import main
    from nst_lightning.cli.fit import build_cli

    from .conftest import ROOT

    config = ROOT / "configs" / "default.yaml"
    cli = build_cli(["--config", str(config), "--output", str(tmp_path / "x.png")], run=False)
    schedule = next(c for c in cli.trainer.callbacks if isinstance(c, MultiScale))
    sizes = scale_sizes(256, schedule.scales)
    assert sizes == [128, 181, 256] and cli.trainer.max_steps == 87 and cli.model.losses["style"].weight == 150.0
    assert cli.model.losses["style"].layer_weights == [0.25, 0.25, 0.25, 0.25, 0.02]
    fse = sum(steps * (size / sizes[-1]) ** 2 for steps, size in zip([30, 30, 27], sizes))
    assert fse == pytest.approx(49.5, abs=0.1)  # the budget the config's comment and docs/quality.md state
    out = tmp_path / "out.png"
    main(["fit", "--config", str(config), "--data.size", "64", "--trainer.logger", "false",
          "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", "false", "--output", str(out)])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert out.is_file() and last.endswith("; ran trainer.max_steps (87))"), last
