"""Logging must not turn the losses into Python numbers (a host sync on a GPU) on every step."""

from __future__ import annotations

import io
import sys

import lightning.pytorch as pl
import pytest
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.trainer.connectors.logger_connector import result

from nst_lightning.callbacks import progress_bar
from nst_lightning.callbacks.progress_bar import LossProgressBar, PlainProgress
from nst_lightning.cli.fit import build_cli
from nst_lightning.data import StyleTransferData
from nst_lightning.model.backbones.vgg import VGG19
from nst_lightning.model.optimizers import ImageAdam
from nst_lightning.model.style_transfer import StyleTransfer

from .conftest import CONTENT, DEFAULT, STYLE


@pytest.mark.parametrize(("every", "steps", "expected"), [(5, 12, [1, 5, 10, 12]), (1, 3, [1, 2, 3])])
def test_losses_are_read_from_the_device_only_on_logging_steps(monkeypatch, every, steps, expected):
    trainer: pl.Trainer | None = None
    lightning_conversions: list[int] = []
    bar_conversions: list[int] = []
    real_lightning, real_bar = result.convert_tensors_to_scalars, progress_bar.to_numbers

    def lightning_counting(value):
        lightning_conversions.append(trainer.global_step)
        return real_lightning(value)

    def bar_counting(values):
        bar_conversions.append(trainer.global_step)
        return real_bar(values)

    monkeypatch.setattr(result, "convert_tensors_to_scalars", lightning_counting)
    monkeypatch.setattr(progress_bar, "to_numbers", bar_counting)
    model = StyleTransfer(backbone=VGG19(weights="none"), optimizer=lambda p: ImageAdam(p))
    data = StyleTransferData(content=str(CONTENT), style=[str(STYLE)], size=32)
    trainer = pl.Trainer(
        max_steps=steps, log_every_n_steps=every, logger=False, enable_checkpointing=False,
        enable_model_summary=False, callbacks=[LossProgressBar()],
    )
    trainer.fit(model, data)
    assert lightning_conversions == []
    assert bar_conversions == expected
    # The bar shows the last step's losses, and anything reading the callback metrics after fit finds them.
    shown = trainer.progress_bar_callback.get_metrics(trainer, model)
    assert {"loss/content", "loss/style", "loss/tv"} <= set(shown)
    assert shown["loss/style"] == pytest.approx(float(model.report.logged_losses["loss/style"]))
    assert set(trainer.callback_metrics) >= {"loss/content", "loss/style", "loss/tv", "loss/total"}
    logged = model.report.logged_losses
    assert float(trainer.callback_metrics["loss/total"]) == pytest.approx(
        float(sum(v for k, v in logged.items() if k != "loss/total"))
    )


def _cli(tmp_path, *extra: str):
    return build_cli(
        ["--config", str(DEFAULT), "--model.backbone.init_args.weights", "none",
         "--output", str(tmp_path / "out.png"), "--trainer.logger", "false", *extra],
        run=False,
    )


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_uses_the_loss_progress_bar_unless_the_bar_is_off_or_configured(tmp_path, monkeypatch):
    assert type(_cli(tmp_path).trainer.progress_bar_callback) is PlainProgress  # stderr is not a terminal here
    monkeypatch.setattr(sys, "stderr", FakeTerminal())
    assert type(_cli(tmp_path).trainer.progress_bar_callback) is LossProgressBar
    assert _cli(tmp_path, "--trainer.enable_progress_bar", "false").trainer.progress_bar_callback is None
    configured = _cli(
        tmp_path, "--trainer.callbacks+=TQDMProgressBar", "--trainer.callbacks.refresh_rate=7"
    ).trainer.progress_bar_callback
    assert type(configured) is TQDMProgressBar and configured.refresh_rate == 7


def test_the_logs_have_step_1_every_nth_step_and_the_last_with_losses_and_metrics_at_the_same_step(tmp_path, capsys):
    """Written to the logger (CSV here): the losses at steps 1, 5, 10 and the last (a stop by the rule, or
    max_steps), each at its step's own index, where the quality metrics of that step are too."""
    import csv
    import json

    import yaml

    from nst_lightning.cli import main

    from .conftest import fit_args

    csv_logger = json.dumps({"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path)}})
    main(fit_args(tmp_path, "--trainer.max_steps", "12", "--trainer.log_every_n_steps", "5", "--score_every", "5",
                  "--trainer.logger", csv_logger, "--data.size", "32"))
    last = capsys.readouterr().out.strip().splitlines()[-1]
    logs = last.split("logs: ")[1].split(";")[0]
    rows = list(csv.DictReader(open(f"{logs}/metrics.csv")))
    loss_steps = sorted({int(r["step"]) for r in rows if r.get("loss/total")})
    metric_steps = sorted({int(r["step"]) for r in rows if r.get("metric/style_distance")})
    assert loss_steps == [1, 5, 10, 12], loss_steps
    hparams = yaml.safe_load(open(f"{logs}/hparams.yaml"))  # the run's config, for the HPARAMS tab
    assert hparams["data.size"] == 32 and hparams["model.losses.style.init_args.weight"] == 30.0
    assert {5, 10, 12} <= set(metric_steps), metric_steps
    # A run the stopping rule ends between two logging steps logs the step it stopped at.
    stopped = tmp_path / "stopped"
    csv_logger = json.dumps({"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(stopped)}})
    main(fit_args(tmp_path, "--trainer.max_steps", "50", "--trainer.log_every_n_steps", "10", "--trainer.logger",
                  csv_logger, "--data.size", "32", "--output", str(tmp_path / "stopped.png"),
                  "--trainer.callbacks+=StopWhenConverged", "--trainer.callbacks.tolerance=0.5",
                  "--trainer.callbacks.window=3"))
    last = capsys.readouterr().out.strip().splitlines()[-1]
    step = int(last.split("converged at step ")[1].split()[0])
    assert step % 10 != 0 and step < 50
    rows = list(csv.DictReader(open(f"{last.split('logs: ')[1].split(';')[0]}/metrics.csv")))
    assert max(int(r["step"]) for r in rows if r.get("loss/total")) == step
