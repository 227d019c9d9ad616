"""The stopping rule: on synthetic loss curves, with multi-scale, batched images, resume, and in a real short run."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from nst_lightning.callbacks.convergence import StopWhenConverged, plateaued
from nst_lightning.callbacks.multiscale import MultiScale
from nst_lightning.errors import ConfigValueError


def test_plateau_compares_the_best_loss_over_the_window():
    falling = [[100.0 * 0.9**k] for k in range(20)]  # 10% per step: never flat
    assert plateaued(falling, window=5, tolerance=0.01) == [False]
    flat = [[10.0]] * 6 + [[9.99]]
    assert plateaued(flat, window=5, tolerance=0.01) == [True]
    assert plateaued(flat[:5], window=5, tolerance=0.5) == [False]  # not yet a full window
    noisy = [[10.0], [5.0], [8.0], [5.5], [6.0], [5.2], [7.0]]  # best 5.0 since step 1: no progress
    assert plateaued(noisy, window=5, tolerance=0.001) == [True]
    two = [[10.0, 10.0 - 0.5 * k] for k in range(7)]  # image 0 flat, image 1 still falling
    assert plateaued(two, window=5, tolerance=0.01) == [True, False]


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigValueError, match="tolerance"):
        StopWhenConverged(tolerance=1.5)
    with pytest.raises(ConfigValueError, match="window"):
        StopWhenConverged(window=0)


class Harness:
    """Drives the callback with a synthetic loss curve, one optimizer step per call, as Lightning would."""

    def __init__(self, callback: StopWhenConverged, images: int = 1, callbacks=(), max_steps: int = 1000) -> None:
        self.callback = callback
        self.trainer = SimpleNamespace(global_step=0, should_stop=False, max_steps=max_steps, log_every_n_steps=10,
                                       callbacks=[callback, *callbacks], optimizers=[],
                                       strategy=SimpleNamespace(root_device=torch.device("cpu")))
        self.module = SimpleNamespace(image=torch.zeros(images, 3, 8, 8))

    def step(self, losses: list[float]) -> None:
        self.callback.on_train_batch_start(self.trainer, self.module, None, 0)
        self.trainer.global_step += 1
        # what StyleTransfer.training_step returns: the total, and each term's value per image
        outputs = {"loss": torch.tensor(sum(losses)), "terms": {"total": torch.tensor(losses)}}
        self.callback.on_train_batch_end(self.trainer, self.module, outputs, None, 0)

    def run(self, curve) -> int:
        for losses in curve:
            if self.trainer.should_stop:
                break
            self.step(losses)
        return self.trainer.global_step


def curve(k: int, rate: float = 0.5, floor: float = 1.0) -> float:
    """A loss that decays to ``floor``: 1 + 100 · rate^k."""
    return floor + 100 * rate**k


def test_stops_on_a_synthetic_curve_when_the_gain_over_the_window_is_below_tolerance():
    rule = StopWhenConverged(tolerance=1e-3, window=10)
    h = Harness(rule)
    stopped = h.run([[curve(k)] for k in range(200)])
    # the best loss falls by less than 1e-3 over 10 steps once 100·0.5^(k-10) < 1e-3 (k ≈ 27)
    assert 20 <= stopped <= 30 and h.trainer.should_stop
    rule.on_train_end(h.trainer, h.module)
    assert rule.reason.startswith(f"converged at step {stopped}") and rule.short_reason == f"converged@{stopped}"


def test_check_every_reads_the_losses_in_batches_and_stops_at_most_that_late():
    data = [[curve(k)] for k in range(200)]
    every = Harness(StopWhenConverged(tolerance=1e-3, window=10)).run(data)
    rule = StopWhenConverged(tolerance=1e-3, window=10, check_every=4)
    h = Harness(rule)
    reads = []
    original = rule._flush
    rule._flush = lambda: (reads.append(len(rule._pending)), original())[1]
    stopped = h.run(data)
    assert stopped % 4 == 0 and every <= stopped < every + 4  # the same test, up to 3 steps late
    assert set(reads) == {4}  # one transfer per 4 steps
    # the default: every step on a CPU, every log_every_n_steps steps on an accelerator (no sync per step)
    auto = StopWhenConverged()
    assert auto.interval(h.trainer) == 1
    h.trainer.strategy = SimpleNamespace(root_device=torch.device("cuda", 0))
    assert auto.interval(h.trainer) == 10
    with pytest.raises(ConfigValueError, match="check_every"):
        StopWhenConverged(check_every=0)
    # a checkpoint taken between two reads keeps the waiting steps' losses
    rule = StopWhenConverged(tolerance=1e-3, window=10, check_every=4)
    Harness(rule).run(data[:6])
    assert len(rule._pending) == 2 and len(rule.state_dict()["history"]) == 6 and rule._pending == []


def test_min_steps_and_max_steps():
    rule = StopWhenConverged(tolerance=0.5, window=2, min_steps=15)
    assert Harness(rule).run([[5.0]] * 100) == 15
    capped = StopWhenConverged(tolerance=1e-9, window=5)
    h = Harness(capped, max_steps=40)
    assert h.run([[curve(k, 0.9)] for k in range(40)]) == 40 and not h.trainer.should_stop
    capped.on_train_end(h.trainer, h.module)
    assert capped.reason == "reached trainer.max_steps (40) before converging"


def test_a_batch_stops_when_every_image_has_converged():
    rule = StopWhenConverged(tolerance=1e-3, window=5)
    h = Harness(rule, images=2)
    # image 0 is flat from the start, image 1 converges later: the batch runs until image 1 is done too
    stopped = h.run([[3.0, curve(k)] for k in range(200)])
    assert stopped > 20 and rule.done == [True, True]
    alone = Harness(StopWhenConverged(tolerance=1e-3, window=5)).run([[curve(k)] for k in range(200)])
    assert stopped == alone


def test_with_multiscale_a_plateau_ends_the_scale_not_the_run():
    scales = MultiScale(scales=3, steps_per_scale=50)
    scales.sizes, scales.boundaries, scales.scale_index = [64, 90, 128], [0, 50, 100], 0
    rule = StopWhenConverged(tolerance=1e-3, window=5)
    h = Harness(rule, callbacks=[scales])
    h.run([[5.0]] * 6)  # flat: the first scale ends after its first full window
    assert not h.trainer.should_stop and scales.boundaries == [0, 6, 56] and rule.events == ["64 px converged at step 6"]
    scales.scale_index = scales.scale_at(h.trainer.global_step)
    h.module.image = torch.zeros(1, 3, 11, 11)  # the next scale: a fresh history
    h.run([[4.0]] * 6)
    assert scales.boundaries == [0, 6, 12] and not h.trainer.should_stop
    scales.scale_index = 2
    h.module.image = torch.zeros(1, 3, 16, 16)
    assert h.run([[3.0]] * 20) == 18 and h.trainer.should_stop  # the final scale ends the run


def test_state_survives_a_resume():
    rule = StopWhenConverged(tolerance=1e-3, window=10)
    h = Harness(rule)
    data = [[curve(k)] for k in range(200)]
    h.run(data[:12])
    resumed = StopWhenConverged(tolerance=1e-3, window=10)
    resumed.load_state_dict(rule.state_dict())
    h2 = Harness(resumed)
    h2.trainer.global_step = 12
    assert h2.run(data[12:]) == Harness(StopWhenConverged(tolerance=1e-3, window=10)).run(data)
    scales = MultiScale(scales=3)
    scales.boundaries = [0, 10, 20]
    moved = MultiScale(scales=3)
    moved.boundaries = [0, 50, 100]
    moved.load_state_dict(scales.state_dict())
    assert moved.boundaries == [0, 10, 20]


def real_run(tmp_path, config: str, *extra: str, size: int = 48):
    from nst_lightning.cli import main

    from .conftest import ROOT

    out = tmp_path / "out.png"
    main(["fit", "--config", str(ROOT / "configs" / config), "--data.size", str(size), "--trainer.max_steps", "300",
          "--trainer.logger", "false", "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", "false",
          "--trainer.enable_model_summary", "false", "--output", str(out), *extra])
    assert out.is_file()
    return out


def test_a_real_run_stops_early_and_says_why(tmp_path, capsys):
    real_run(tmp_path, "single_scale.yaml", "--trainer.callbacks+=StopWhenConverged", "--trainer.callbacks.tolerance=0.05",
             "--trainer.callbacks.window=3")
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "converged at step" in last and "style " in last
    step = int(last.split("converged at step ")[1].split()[0])
    assert 3 <= step < 300


def test_the_faithful_preset_stops_by_the_rule(tmp_path, capsys):
    real_run(tmp_path, "faithful.yaml", "--trainer.callbacks.tolerance=0.05", "--trainer.callbacks.window=4",
             size=64)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "converged at step" in last
    assert int(last.split("converged at step ")[1].split()[0]) < 75  # well before max_steps


def test_a_tiled_run_is_judged_on_the_same_total_as_the_untiled_run():
    """The stopping rule reads the step's per-term losses from what the step returns, on both paths. (It used
    to listen on the terms' forward, which the tiled path never calls for the content and style terms: a
    tiled run was judged on TV alone and stopped at the first test.)"""
    from nst_lightning.data import StyleTransferData
    from nst_lightning.model.backbones.vgg import VGG19
    from nst_lightning.model.optimizers import ImageAdam
    from nst_lightning.model.style_transfer import StyleTransfer
    from nst_lightning.model.tiling import Tiling

    from .conftest import CONTENT, STYLE
    from .fit_helpers import fit

    judged = {}
    for name, tiling in (("untiled", Tiling(mode="off")), ("tiled", Tiling(tile_size=192))):
        torch.manual_seed(0)  # the same random backbone in both runs
        model = StyleTransfer(backbone=VGG19(weights="none"), tiling=tiling, optimizer=ImageAdam)
        rule = StopWhenConverged(tolerance=0.05, window=3)
        fit(model, StyleTransferData(content=str(CONTENT), style=str(STYLE), size=224), 8, rule)
        assert model.report.tile_count == (2 if name == "tiled" else 1)
        judged[name] = (torch.tensor(rule.history), rule.stopped_step, model.report.last_step.terms)
    (untiled, untiled_stop, untiled_terms), (tiled, tiled_stop, tiled_terms) = judged["untiled"], judged["tiled"]
    assert untiled.shape == tiled.shape and len(untiled) == 4  # the window's 3 steps and the one before
    assert torch.allclose(tiled, untiled, rtol=1e-4), (tiled, untiled)
    assert tiled_stop == untiled_stop
    assert set(tiled_terms) == {"content", "style", "tv"}
    for term in tiled_terms:
        assert torch.allclose(tiled_terms[term], untiled_terms[term], rtol=1e-4), term
