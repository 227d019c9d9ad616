"""The memory pre-check: the estimate (a pure function, calibrated against real runs' peak memory) and the
refusal of a run that cannot fit, before anything large is allocated."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nst_lightning import available_memory
from nst_lightning.available_memory import _cgroup_available, available_bytes
from nst_lightning.cli import main, memory_check
from nst_lightning.cli.fit import build_cli
from nst_lightning.model import run_plan
from nst_lightning.model.backbones.vgg import VGG19
from nst_lightning.model.memory_estimate import (
    FIXED_BYTES,
    CostModel,
    estimate_bytes,
    estimate_parts,
    largest_fitting_size,
)

from .conftest import CONTENT, DEFAULT, ROOT, STYLE

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]


@pytest.fixture(scope="module")
def vgg_layers():
    vgg = VGG19(weights="none")
    vgg.truncate(LAYERS)
    return vgg.feature_layers()


def test_vgg_describes_its_layers(vgg_layers):
    assert [layer.name for layer in vgg_layers][:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert vgg_layers[-1].name == "relu5_1" and len(vgg_layers) == 30
    pool1, relu5_1 = vgg_layers[4], vgg_layers[-1]
    assert (pool1.channels, pool1.stride, pool1.keeps) == (64, 2, 12)  # output and int64 indices
    assert (relu5_1.channels, relu5_1.stride, relu5_1.keeps) == (512, 16, 0)  # in place


def test_the_estimate_is_linear_in_pixels_and_batch(vgg_layers):
    one = estimate_bytes(192, 256, 1, vgg_layers, LAYERS) - FIXED_BYTES
    assert estimate_bytes(384, 512, 1, vgg_layers, LAYERS) - FIXED_BYTES == pytest.approx(4 * one, rel=1e-6)
    assert estimate_bytes(192, 256, 3, vgg_layers, LAYERS) - FIXED_BYTES == pytest.approx(3 * one, rel=0.02)


def test_the_optimizer_state_is_counted_exactly(vgg_layers):
    pixels = 192 * 256
    parts = {h: estimate_parts(192, 256, 2, vgg_layers, LAYERS, "lbfgs", h)["optimizer"] for h in (10, 100)}
    assert parts[100] - parts[10] == 2 * 90 * 2 * 3 * pixels * 4  # two vectors per history entry, per image
    assert estimate_parts(192, 256, 1, vgg_layers, LAYERS, "ImageAdam")["optimizer"] == 3 * 3 * pixels * 4


def test_activation_checkpointing_keeps_less(vgg_layers):
    plain = estimate_parts(768, 1024, 1, vgg_layers, LAYERS)["activations"]
    checkpointed = estimate_parts(768, 1024, 1, vgg_layers, LAYERS, activation_checkpointing=True)["activations"]
    assert checkpointed < 0.75 * plain
    # Keeping only relu5_1 spans one long segment, which is computed again whole: more than keeping every layer.
    assert estimate_parts(768, 1024, 1, vgg_layers, ["relu5_1"], activation_checkpointing=True)["activations"] > \
        estimate_parts(768, 1024, 1, vgg_layers, LAYERS, activation_checkpointing=True)["activations"]


def test_largest_fitting_size_is_the_largest_multiple_of_16():
    assert largest_fitting_size(1000, 20000, lambda edge: edge * edge) == 16 * 1
    assert largest_fitting_size(100 * 100, 20000, lambda edge: edge * edge) == 96
    assert largest_fitting_size(10, 20000, lambda edge: edge * edge) == 0


def test_available_memory_is_psutils_or_a_cgroup_limits(tmp_path, monkeypatch):
    """The system's available memory comes from psutil (on Linux: /proc/meminfo's MemAvailable); a cgroup v2 limit,
    which psutil does not see, can only lower it."""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        line = next(line for line in meminfo.read_text().splitlines() if line.startswith("MemAvailable:"))
        assert available_bytes("cpu") == pytest.approx(int(line.split()[1]) * 1024, rel=0.1)
    (tmp_path / "memory.max").write_text("max\n")
    assert _cgroup_available(tmp_path) is None
    (tmp_path / "memory.max").write_text("1000000\n")
    (tmp_path / "memory.current").write_text("400000\n")
    assert _cgroup_available(tmp_path) == 600_000
    monkeypatch.setattr(available_memory, "_cgroup_available", lambda: 600_000)
    assert available_bytes("cpu") == 600_000
    monkeypatch.setattr(available_memory, "_cgroup_available", lambda: 2**62)  # a limit above the machine's
    assert available_bytes("cpu") < 2**62


def fit_args(tmp_path: Path, size: int, *extra: str) -> list[str]:
    return [
        "fit", "--config", str(DEFAULT), "--data.content", str(CONTENT), "--data.style", str(STYLE),
        "--data.size", str(size), "--model.backbone.init_args.weights", "none", "--trainer.max_steps", "1",
        "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
        "--trainer.enable_progress_bar", "false", "--output", str(tmp_path / "out.png"), *extra,
    ]


@pytest.mark.parametrize("checkpointing", [False, True])
def test_a_run_that_cannot_fit_is_refused_before_anything_large_is_allocated(tmp_path, capsys, monkeypatch,
                                                                             checkpointing):
    budget = 400 * 2**20
    monkeypatch.setattr(run_plan, "available_bytes", lambda device: budget)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    extra = ["--model.backbone.init_args.activation_checkpointing", "true"] if checkpointing else []
    with pytest.raises(SystemExit) as exit_info:
        main(fit_args(tmp_path, 20000, *extra))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200  # a 20000 px run would take over 1000 GiB
    assert exit_info.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("nst-lightning: error: data.size: a 20000 px run needs about ")
    assert "GiB of memory" in line and "but cpu has 400 MiB available" in line
    fits = int(line.split("the largest that fits is --data.size ")[1].split(",")[0].split(";")[0])
    assert 256 <= fits < 600 and fits % 16 == 0
    cli_args = fit_args(tmp_path, fits, *extra)
    monkeypatch.setattr(run_plan, "available_bytes", lambda device: None)  # build it for the estimate only
    cli = build_cli(cli_args[1:], run=False)

    def estimate(edge: int) -> int:
        return memory_check.run_estimate(cli.model, cli.datamodule, edge, checkpointing)

    assert estimate(fits) <= budget < estimate(fits + 16)
    if not checkpointing:
        more = int(line.split("activation_checkpointing true up to ")[1])
        assert more > fits
    else:
        assert "activation_checkpointing" not in line
    assert not (tmp_path / "out.png").exists()


def test_a_run_too_large_to_run_whole_is_not_refused_when_tiles_fit(tmp_path, monkeypatch):
    """4096 px needs ~66 GiB whole but a few GiB in tiles: with tiling on (the default) the pre-check lets it
    through; with --model.tiling.mode off it is refused as before."""
    monkeypatch.setattr(run_plan, "available_bytes", lambda device: 6 * 2**30)
    cli = build_cli(fit_args(tmp_path, 4096)[1:], run=False)
    assert memory_check.run_estimate(cli.model, cli.datamodule, 4096, False) > 30 * 2**30
    memory_check.check_memory(cli.model, cli.datamodule, torch.device("cpu"))  # no error
    off = build_cli(fit_args(tmp_path, 4096, "--model.tiling.mode", "off")[1:], run=False)
    with pytest.raises(memory_check.InsufficientMemoryError, match="a 4096 px run needs about"):
        memory_check.check_memory(off.model, off.datamodule, torch.device("cpu"))
    # a budget that cannot hold the image's state and one tile is still refused up front
    monkeypatch.setattr(run_plan, "available_bytes", lambda device: 1 * 2**30)
    with pytest.raises(memory_check.InsufficientMemoryError, match="a 4096 px run needs about"):
        memory_check.check_memory(cli.model, cli.datamodule, torch.device("cpu"))


def test_a_run_that_fits_is_not_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(run_plan, "available_bytes", lambda device: 400 * 2**20)
    main(fit_args(tmp_path, 64))
    assert (tmp_path / "out.png").exists()


def test_style_images_too_large_for_memory_are_refused_naming_style_scale(tmp_path, monkeypatch):
    """--data.style_scale 10 on a 64 px run: the step is small, but making the style targets sends 640 px style
    images through the backbone. The pre-check counts those passes and names data.style_scale with what fits."""
    budget = 300 * 2**20
    monkeypatch.setattr(run_plan, "available_bytes", lambda device: budget)
    cli = build_cli(fit_args(tmp_path, 64, "--data.style_scale", "10")[1:], run=False)
    with pytest.raises(memory_check.InsufficientMemoryError) as error:
        memory_check.check_memory(cli.model, cli.datamodule, torch.device("cpu"))
    assert error.value.key == "data.style_scale"
    message = str(error.value)
    assert message.startswith("data.style_scale: making the style targets at --data.style_scale 10 (640 px style "
                              "images) needs about ")
    assert "but cpu has 300 MiB available" in message
    scale = float(message.split("the largest that fits is --data.style_scale ")[1])
    assert 1 < scale < 10
    plan, shape = cli.model.plan, memory_check.content_shape(cli.datamodule, 64)
    assert plan.target_bytes(*shape) > budget > plan.cost.step_bytes(*shape, 1, plan.optimizer_vectors)
    at = {s: build_cli(fit_args(tmp_path, 64, "--data.style_scale", str(s))[1:], run=False) for s in (scale, scale + 0.05)}
    for s, fitted in at.items():
        fitted.model.make_plan(fitted.datamodule.style_count, s, "cpu")
    assert at[scale].model.plan.target_bytes(*shape) <= budget < at[scale + 0.05].model.plan.target_bytes(*shape)
    memory_check.check_memory(at[scale].model, at[scale].datamodule, torch.device("cpu"))  # no error


def test_the_style_passes_grow_with_the_style_scale_squared(vgg_layers):
    cost = CostModel(tuple(vgg_layers), frozenset({"relu1_1", "relu3_1", "relu5_1"}), style_scale=1.0)
    double = dataclasses.replace(cost, style_scale=2.0)
    assert double.style_pass_bytes(100, 100) == pytest.approx(4 * cost.style_pass_bytes(100, 100), rel=1e-6)
    two_styles = dataclasses.replace(cost, styles=2)
    # a forward pass without gradients keeps less than the step's forward and backward
    assert cost.style_pass_bytes(100, 100) < cost.pass_bytes(100, 100)
    assert two_styles.style_pass_bytes(100, 100) > cost.style_pass_bytes(100, 100)
    assert cost.run_bytes(100, 100, 1, 3) == cost.step_bytes(100, 100, 1, 3)  # at scale 1 the step is the peak
    large = dataclasses.replace(cost, style_scale=6.0)
    assert large.run_bytes(100, 100, 1, 3) == large.target_bytes(100, 100, 1) > large.step_bytes(100, 100, 1, 3)


# -- calibration: the estimate against the peak memory of real runs -------------------------------------

def _benchmark_module(name: str):  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The child process that measures a run's peak memory: the same script as the benchmark's calibration table.
CHILD = _benchmark_module("memory_estimate").CHILD


def measured_peak(tmp_path: Path, size: int, *extra: str) -> tuple[int, int]:
    """(peak resident memory the run added, the estimate) for a real run in a child process."""
    env = dict(os.environ, OMP_NUM_THREADS="2", NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD="1")
    child = subprocess.run([sys.executable, "-c", CHILD, *fit_args(tmp_path, size, "--trainer.max_steps", "3",
                                                                    "--overwrite", "true", *extra)[1:]],
                           env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    return result["peak"], result["estimate"]


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux's peak-RSS reset")
@pytest.mark.parametrize(("size", "optimizer"), [(256, "ImageAdam"), (384, "ImageLBFGS")])
def test_the_estimate_is_within_25_percent_of_a_real_runs_peak(tmp_path, size, optimizer):
    extra = ["--model.optimizer", optimizer]
    if optimizer == "ImageLBFGS":  # a short history, filled within the run's 3 steps
        extra += ["--model.optimizer.init_args.history_size", "2"]
    peak, estimate = measured_peak(tmp_path, size, *extra)
    assert peak > 100 * 2**20  # the run did allocate its activations
    assert 0.75 <= estimate / peak <= 1.25, (size, peak / 2**20, estimate / 2**20)


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux's peak-RSS reset")
def test_the_estimate_counts_large_style_images_within_25_percent(tmp_path):
    """A 64 px run with --data.style_scale 8: its peak is making the 512 px style targets, not its steps."""
    peak, estimate = measured_peak(tmp_path, 64, "--data.style_scale", "8", "--model.optimizer", "ImageAdam")
    assert 0.75 <= estimate / peak <= 1.25, (peak / 2**20, estimate / 2**20)
