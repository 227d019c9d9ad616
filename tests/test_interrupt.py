"""Nothing is lost: a real SIGINT or SIGTERM to a real child run saves the image and a checkpoint, and
``--ckpt_path`` continues to exactly the result of an uninterrupted run; a NaN loss keeps the last good image."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from nst_lightning.cli import main

from .conftest import CONTENT, ROOT, STYLE

DEFAULT = ROOT / "configs" / "single_scale.yaml"  # fixed length, one scale: the tests' runs


def run_args(tmp_path: Path, optimizer: str, steps: int, output: str = "out.png", *extra: str) -> list[str]:
    return [
        "fit", "--config", str(DEFAULT),
        "--data.content", str(CONTENT), "--data.style", str(STYLE), "--data.size", "48",
        "--model.optimizer", optimizer, "--trainer.max_steps", str(steps),
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--output", str(tmp_path / output),
        *extra,
    ]


@pytest.fixture
def one_thread():
    """The child and the in-process runs use the same single CPU thread: bit-exact comparisons need the same
    thread count, and one thread does not slow down on a machine whose cores other processes share."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def read_png(path: Path) -> torch.Tensor:
    return pil_to_tensor(Image.open(path).convert("RGB"))


def start_child(tmp_path: Path, optimizer: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD="1")
    command = [sys.executable, "-m", "nst_lightning.cli",
               *run_args(tmp_path, optimizer, 100_000, "out.png", "--snapshot_every", "1")]
    return subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until_running(child: subprocess.Popen, snapshot: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not snapshot.exists():
        if child.poll() is not None:
            pytest.fail(f"the run ended before it was signalled:\n{child.stderr.read()}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail("the run wrote no snapshot in time")
        time.sleep(0.1)


@pytest.mark.parametrize(("signum", "optimizer"), [(signal.SIGINT, "ImageLBFGS"), (signal.SIGTERM, "ImageAdam")])
def test_signal_saves_image_and_checkpoint_and_resume_matches_uninterrupted(tmp_path, one_thread, signum, optimizer):
    child = start_child(tmp_path, optimizer)
    try:
        wait_until_running(child, tmp_path / "out_step00002.png")
        child.send_signal(signum)
        _, err = child.communicate(timeout=120)
    finally:
        child.kill()
    name = signal.Signals(signum).name
    image_path, ckpt_path = tmp_path / "out_interrupted.png", tmp_path / "out_interrupted.ckpt"
    assert child.returncode == 128 + signum, err
    assert "Traceback" not in err
    said = re.search(rf"nst-lightning: interrupted by {name} after step (\d+): image saved to (.+), checkpoint to (.+);"
                     rf" to resume, run the same command with --ckpt_path (.+)", err)
    assert said, err
    assert (Path(said[2]), Path(said[3]), Path(said[4])) == (image_path, ckpt_path, ckpt_path)
    assert not (tmp_path / "out.png").exists()  # an interrupted run is not a finished one

    # The checkpoint loads with weights_only=True and holds the image and the optimizer state at that step.
    ckpt = torch.load(ckpt_path, weights_only=True, map_location="cpu")
    step = ckpt["global_step"]
    assert step == int(said[1]) >= 2
    saved = ckpt["state_dict"]["image"]
    assert (saved[0].mul(255).round() - read_png(image_path).float()).abs().max() <= 1
    state = ckpt["optimizer_states"][0]["state"][0]
    if optimizer == "ImageLBFGS":
        assert state["n_iter"] == step and len(state["old_dirs"]) == step - 1  # the L-BFGS history
    else:
        assert state["step"] == step and state["exp_avg"].abs().sum() > 0

    # Resume for three more steps; an uninterrupted run of the same length gives the same image, bit for bit.
    main(run_args(tmp_path, optimizer, step + 3, "out.png", "--ckpt_path", str(ckpt_path)))
    main(run_args(tmp_path, optimizer, step + 3, "uninterrupted.png"))
    resumed, uninterrupted = read_png(tmp_path / "out.png"), read_png(tmp_path / "uninterrupted.png")
    assert torch.equal(resumed, uninterrupted)
    assert (resumed.float() - read_png(image_path).float()).abs().mean() > 0.5  # it did go on from there


@pytest.mark.parametrize(("steps", "nan_from_step", "last_good_step"), [(30, 16, 10), (25, 22, 20)])
def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_image(
    tmp_path, capsys, one_thread, steps, nan_from_step, last_good_step
):
    config = tmp_path / "nan.yaml"
    config.write_text(yaml.safe_dump({"model": {"losses": {
        "content": {"class_path": "ContentLoss"},
        "nan": {"class_path": "tests.robustness_helpers.NaNAfterCalls", "init_args": {"calls": nan_from_step - 1}},
    }}}))
    with pytest.raises(SystemExit) as exit_info:
        main(run_args(tmp_path, "ImageAdam", steps, "out.png", "--config", str(config), "--snapshot_every", "10",
                      "--model.backbone.init_args.weights", "none"))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("nst-lightning:")]
    assert len(lines) == 1 and "Traceback" not in err
    last_good = tmp_path / "out_last_good.png"
    assert f"NaN or Inf after step {last_good_step}" in lines[0] and str(last_good) in lines[0]
    assert not (tmp_path / "out.png").exists()
    assert Image.open(last_good).text["nst-lightning:step"] == str(last_good_step)
    # The image kept is the one the snapshot of that step shows; no later snapshot was written.
    assert torch.equal(read_png(last_good), read_png(tmp_path / f"out_step{last_good_step:05d}.png"))
    assert not (tmp_path / f"out_step{last_good_step + 10:05d}.png").exists()
