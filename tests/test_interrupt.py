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

from nst_lightning.cli import main

from .helpers import expect_one_line_error, read_png, run_args, wait_until_running


@pytest.fixture
def one_thread():
    """The child and the in-process runs use the same single CPU thread: bit-exact comparisons need the same
    thread count, and one thread does not slow down on a machine whose cores other processes share."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def start_child(tmp_path: Path, optimizer: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD="1")
    command = [sys.executable, "-m", "nst_lightning.cli",
               *run_args(tmp_path, optimizer, 100_000, "out.png", "--snapshot_every", "1")]
    return subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize(("signum", "optimizer"), [(signal.SIGINT, "ImageLBFGS"), (signal.SIGTERM, "ImageAdam")])
def test_signal_saves_image_and_checkpoint_and_resume_matches_uninterrupted(tmp_path, one_thread, signum, optimizer):
    child = start_child(tmp_path, optimizer)
    try:
        wait_until_running(child, tmp_path / "out.run" / "step00002.png")
        child.send_signal(signum)
        _, err = child.communicate(timeout=120)
    finally:
        child.kill()
    name = signal.Signals(signum).name
    image_path, ckpt_path = tmp_path / "out.run" / "interrupted.png", tmp_path / "out.run" / "interrupted.ckpt"
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
    assert (saved[0].mul(255).round() - read_png(image_path)[0].mul(255)).abs().max() <= 1
    # Not the frozen backbone's weights (they come from the weights file on resume): a small file.
    assert not [key for key in ckpt["state_dict"] if key.startswith("backbone.")]
    assert ckpt_path.stat().st_size < 5 * 2**20
    state = ckpt["optimizer_states"][0]["state"][0]
    if optimizer == "ImageLBFGS":
        assert int(state["step"]) == step and int(state["count"][0]) == step - 1  # the L-BFGS history's pairs
    else:
        assert state["step"] == step and state["exp_avg"].abs().sum() > 0

    # Resume for three more steps; an uninterrupted run of the same length gives the same image, bit for bit.
    interrupted = read_png(image_path)
    main(run_args(tmp_path, optimizer, step + 3, "out.png", "--ckpt_path", str(ckpt_path)))
    # the finished resume removed the interrupted image and checkpoint it consumed
    assert not image_path.exists() and not ckpt_path.exists()
    main(run_args(tmp_path, optimizer, step + 3, "uninterrupted.png"))
    resumed, uninterrupted = read_png(tmp_path / "out.png"), read_png(tmp_path / "uninterrupted.png")
    assert torch.equal(resumed, uninterrupted)
    assert (resumed - interrupted).mul(255).abs().mean() > 0.5  # it did go on from there


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
    last_good = tmp_path / "out.run" / "last_good.png"
    assert f"NaN or Inf after step {last_good_step}" in lines[0] and str(last_good) in lines[0]
    assert not (tmp_path / "out.png").exists()
    assert Image.open(last_good).text["nst-lightning:step"] == str(last_good_step)
    # The image kept is the one the snapshot of that step shows; no later snapshot was written.
    assert torch.equal(read_png(last_good), read_png(tmp_path / "out.run" / f"step{last_good_step:05d}.png"))
    assert not (tmp_path / "out.run" / f"step{last_good_step + 10:05d}.png").exists()


def test_ctrl_c_while_the_command_is_still_importing_exits_130_with_one_line(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD="1")
    command = [sys.executable, "-m", "nst_lightning.cli", *run_args(tmp_path, "ImageAdam", 100_000)]
    child = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    maps = Path(f"/proc/{child.pid}/maps")
    try:
        deadline = time.monotonic() + 60
        while "libtorch" not in maps.read_text():  # torch is being imported: the command's first seconds
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 130
    assert err == "nst-lightning: error: interrupted\n" and out == ""


def test_a_multiscale_run_saved_at_a_coarse_scale_resumes_there_exactly(tmp_path, one_thread):
    """The checkpoint of a run stopped at a coarse scale holds a smaller image than a fresh run starts with;
    the resumed run takes that size, continues the scale with the optimizer state it saved, and ends with
    the uninterrupted run's image, bit for bit."""
    from lightning.pytorch.callbacks import Callback

    from nst_lightning.cli.fit import build_cli

    scales = ("--trainer.callbacks+=MultiScale", "--trainer.callbacks.scales", "2", "--trainer.callbacks.steps_per_scale", "6")
    ckpt = tmp_path / "coarse.ckpt"

    class SaveAtStep3(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if trainer.global_step == 3:
                trainer.save_checkpoint(ckpt)

    for optimizer in ("ImageLBFGS", "ImageAdam"):
        cli = build_cli(run_args(tmp_path, optimizer, 9, f"first_{optimizer}.png", *scales)[1:], run=False)
        cli.trainer.callbacks.append(SaveAtStep3())
        cli.trainer.fit(cli.model, cli.datamodule)
        saved = torch.load(ckpt, weights_only=True, map_location="cpu")
        assert saved["global_step"] == 3 and tuple(saved["state_dict"]["image"].shape[-2:]) == (26, 34)  # the 34 px scale
        main(run_args(tmp_path, optimizer, 9, f"resumed_{optimizer}.png", *scales, "--ckpt_path", str(ckpt)))
        main(run_args(tmp_path, optimizer, 9, f"uninterrupted_{optimizer}.png", *scales))
        resumed = read_png(tmp_path / f"resumed_{optimizer}.png")
        assert resumed.shape == (1, 3, 36, 48)
        assert torch.equal(resumed, read_png(tmp_path / f"uninterrupted_{optimizer}.png")), optimizer


def test_a_checkpoint_restores_state_only_and_another_runs_is_refused(tmp_path, capsys):
    """A checkpoint's hyper_parameters never change the command's config, and a checkpoint of another kind of
    run (another optimizer) is a one-line error naming --ckpt_path and what differs."""
    main(run_args(tmp_path, "ImageAdam", 2, "first.png", "--trainer.enable_checkpointing", "true"))
    (ckpt,) = list(tmp_path.rglob("*.ckpt"))
    saved = torch.load(ckpt, weights_only=True, map_location="cpu")
    assert saved["nst_lightning_run"] == {"backbone": "VGG19", "optimizer": "ImageAdam", "images": 1, "size": "48x36",
                                         "parametrization": "pixels"}
    saved["hyper_parameters"] = {"preserve_colour": True}  # a crafted checkpoint
    crafted = tmp_path / "crafted.ckpt"
    torch.save(saved, crafted)
    main(run_args(tmp_path, "ImageAdam", 3, "second.png", "--ckpt_path", str(crafted)))
    config = yaml.safe_load(Image.open(tmp_path / "second.png").text["nst-lightning:config"])
    assert config["model"]["preserve_colour"] is False
    with pytest.raises(SystemExit):
        main(run_args(tmp_path, "ImageLBFGS", 3, "third.png", "--ckpt_path", str(crafted)))
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("nst-lightning: error: --ckpt_path: the checkpoint was made by another kind of run")
    assert "optimizer 'ImageAdam' (this run: 'ImageLBFGS')" in line


def test_a_checkpoint_of_another_size_or_with_no_steps_left_is_refused(tmp_path, capsys):
    """Resuming at another --data.size is one line naming both sizes (not a tensor-size error from a loss term);
    resuming a checkpoint that already reached --trainer.max_steps is one line (not exit 0 with no image)."""
    main(run_args(tmp_path, "ImageAdam", 2, "first.png", "--trainer.enable_checkpointing", "true"))
    ckpt = tmp_path / "first.run" / "last.ckpt"
    expect_one_line_error(capsys, run_args(tmp_path, "ImageAdam", 4, "second.png", "--data.size", "32",
                                           "--ckpt_path", str(ckpt)), "--ckpt_path",
                          "size '48x36' (this run: '32x24')", tmp_path=tmp_path, code=2)
    expect_one_line_error(capsys, run_args(tmp_path, "ImageAdam", 2, "third.png", "--ckpt_path", str(ckpt)),
                          "--ckpt_path", "at step 2 and --trainer.max_steps is 2", tmp_path=tmp_path, code=2)
    assert not (tmp_path / "second.png").exists() and not (tmp_path / "third.png").exists()
