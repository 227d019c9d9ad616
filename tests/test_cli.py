"""The command line, driven in-process through main() with tiny settings (torchgeo's style)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from nst_lightning.cli import main
from nst_lightning.cli.fit import build_cli
from nst_lightning.image.io import load_image
from nst_lightning.model.style_transfer import PrecisionError, StyleTransfer, check_precision

from .conftest import CONTENT, ROOT, STYLE
from .helpers import SIZE, losses_of, read_png, tiny
from .plugin_helpers import FakeDistribution, install_fake_distributions, write_module


@pytest.mark.parametrize(
    ("optimizer", "min_factor", "min_change"),
    # Measured at 80 px after 30 steps: L-BFGS lowers the style loss 8.1x, Adam (lr 0.02) 1.8x.
    [("ImageLBFGS", 5.0, 0.02), ("ImageAdam", 1.5, 0.01)],
)
def test_real_run_stylizes(tmp_path, capsys, vgg19_caffe, optimizer, min_factor, min_change):
    main(tiny(tmp_path, "--model.optimizer", optimizer))
    out = tmp_path / "out.png"
    assert f"Stylized image written to {out}" in capsys.readouterr().out
    image = read_png(out)
    content = load_image(CONTENT, SIZE)
    assert image.shape == content.shape == (1, 3, 60, 80)
    style_before, _ = losses_of(content, vgg19_caffe)
    style_after, content_after = losses_of(image, vgg19_caffe)
    assert style_before / style_after > min_factor, (style_before, style_after)
    assert (image - content).abs().mean() > min_change
    assert content_after < 1.0
    # The PNG carries the full config, which parses and names the run's settings.
    config = yaml.safe_load(Image.open(out).text["nst-lightning:config"])
    assert config["data"]["size"] == SIZE
    assert config["model"]["optimizer"]["class_path"].endswith(optimizer)


def test_print_config_round_trips(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(tiny(tmp_path, "--print_config"))
    assert exit_info.value.code == 0
    first = capsys.readouterr().out
    saved = tmp_path / "printed.yaml"
    saved.write_text(first)
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(saved), "--print_config"])
    assert capsys.readouterr().out == first
    config = yaml.safe_load(first)
    assert config["model"]["losses"]["style"]["class_path"] == "nst_lightning.model.losses.gram.GramStyleLoss"
    assert config["model"]["optimizer"]["class_path"] == "nst_lightning.model.optimizers.ImageLBFGS"
    # The printed config runs again unchanged.
    main(["fit", "--config", str(saved), "--trainer.max_steps", "2"])
    assert (tmp_path / "out.png").is_file()


def test_overrides_reach_the_objects(tmp_path):
    cli = build_cli(
        tiny(tmp_path, "--model.losses.style.init_args.weight", "123", "--model.optimizer", "ImageAdam",
             "--model.optimizer.init_args.lr", "0.5", "--data.style_scale", "0.5")[1:],
        run=False,
    )
    assert isinstance(cli.model, StyleTransfer)
    assert cli.model.losses["style"].weight == 123.0
    assert cli.datamodule.size == SIZE and cli.datamodule.style_scale == 0.5
    optimizer = cli.model.optimizer_factory([torch.nn.Parameter(torch.zeros(1))])
    assert type(optimizer).__name__ == "ImageAdam"
    # Switching class_path does not leak L-BFGS's arguments into Adam (jsonargparse #460).
    assert optimizer.defaults["lr"] == 0.5 and optimizer.defaults["eps"] == 0.1


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_config_parses(config, tmp_path):
    clip = ["--data.video", str(tmp_path / "clip.mp4")] if config.name == "video.yaml" else []  # the user's to give
    cli = build_cli(["--config", str(config), "--output", str(tmp_path / "x.png"), *clip], run=False)
    assert isinstance(cli.model, StyleTransfer)


def test_the_large_config_is_the_default_at_512_px_continued_to_2048_px(tmp_path):
    """What ``configs/large.yaml``'s comment and docs/large_images.md say of it: the default's losses, the default's
    first three scales and steps at 512 px (256, 362, 512 px; 30, 30, 27), then 724 to 2048 px, the stopping rule,
    and L-BFGS's first step of 0.001."""
    from nst_lightning.callbacks.convergence import StopWhenConverged
    from nst_lightning.callbacks.multiscale import MultiScale, scale_sizes

    def built(*args):
        return build_cli([*args, "--output", str(tmp_path / "x.png")], run=False)

    large, default = built("--config", str(ROOT / "configs" / "large.yaml")), built("--config", str(ROOT / "configs" / "default.yaml"))
    for name in ("content", "style", "tv"):
        assert vars(large.model.losses[name]) == vars(default.model.losses[name]), name
    multiscale = next(c for c in large.trainer.callbacks if isinstance(c, MultiScale))
    assert scale_sizes(large.datamodule.size, multiscale.scales) == [256, 362, 512, 724, 1024, 1448, 2048]
    default_scale = next(c for c in default.trainer.callbacks if isinstance(c, MultiScale))
    first = [default_scale.steps_per_scale] * 2 + [default.trainer.max_steps - 2 * default_scale.steps_per_scale]
    assert multiscale.steps_per_scale[:3] == first == [30, 30, 27]
    assert large.trainer.max_steps - sum(multiscale.steps_per_scale) == 40  # the cap at 2048 px
    rule = next(c for c in large.trainer.callbacks if isinstance(c, StopWhenConverged))
    assert (rule.tolerance, rule.window) == (0.005, 20)  # faithful's rule (docs/quality.md: 10 steps is too short)
    optimizer = large.model.optimizer_factory([torch.nn.Parameter(torch.zeros(1))])
    assert optimizer.defaults["first_step"] == 0.001


def test_help_lists_components(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = capsys.readouterr().out
    for name in ["VGG19", "VGG16", "ContentLoss", "GramStyleLoss", "TotalVariationLoss", "ImageLBFGS", "ImageAdam",
                 "--data.size", "--output"]:
        assert name in text, name
    assert len(text.splitlines()) < 40 and "--help full" in text  # the options people use; the rest one flag away
    with pytest.raises(SystemExit):
        main(["fit", "--help", "full"])
    assert "--trainer.gradient_clip_val" in capsys.readouterr().out


def test_plugin_loss_usable_by_short_name_from_yaml(monkeypatch, tmp_path):
    write_module(monkeypatch, tmp_path, "nstp_brightness", """
        import torch
        from nst_lightning.plugin import hookimpl
        from nst_lightning.model.losses.base import LossTerm

        class BrightnessLoss(LossTerm):
            '''Pulls the mean brightness towards ``level``.'''
            def __init__(self, weight: float = 1.0, level: float = 0.5):
                super().__init__(weight)
                self.level = level
            def forward(self, features, image):
                return self.weight * (image.mean() - self.level) ** 2

        @hookimpl
        def nst_register_losses(register):
            register(BrightnessLoss)
    """)
    install_fake_distributions(monkeypatch, FakeDistribution("nst-brightness", "0.1", [("brightness", "nstp_brightness")]))
    config = tmp_path / "plugin.yaml"
    config.write_text(yaml.safe_dump({"model": {"losses": {"bright": {"class_path": "BrightnessLoss",
                                                                     "init_args": {"weight": 1000.0, "level": 0.9}}}}}))
    main(tiny(tmp_path, "--config", str(config), steps=10))
    assert read_png(tmp_path / "out.png").mean() > load_image(CONTENT, SIZE).mean() + 0.1


def test_existing_output_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    with pytest.raises(SystemExit) as exit_info:
        main(tiny(tmp_path, steps=1))
    assert exit_info.value.code != 0
    assert out.read_bytes() == b"precious"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists" in err and "--overwrite" in err
    main(tiny(tmp_path, "--overwrite", "true", steps=1))
    assert out.read_bytes() != b"precious"


def test_bad_input_is_one_line_without_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(tiny(tmp_path, "--data.content", str(tmp_path / "missing.jpg"), steps=1))
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "missing.jpg" in err and "does not exist" in err
    assert not (tmp_path / "out.png").exists()


def test_lbfgs_with_16_mixed_is_refused_on_every_device():
    image = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(PrecisionError, match="bf16-mixed"):
        check_precision("16-mixed", torch.optim.LBFGS([image]))
    check_precision("bf16-mixed", torch.optim.LBFGS([image]))
    check_precision("16-mixed", torch.optim.Adam([image]))


def test_bf16_mixed_runs_on_cpu(tmp_path, vgg19_caffe):
    main(tiny(tmp_path, "--trainer.precision", "bf16-mixed", steps=10))
    style_before, _ = losses_of(load_image(CONTENT, SIZE), vgg19_caffe)
    style_after, _ = losses_of(read_png(tmp_path / "out.png"), vgg19_caffe)
    assert style_before / style_after > 3


def test_several_devices_are_refused_before_any_process_starts(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(tiny(tmp_path, "--trainer.accelerator", "cpu", "--trainer.devices", "2", steps=1))
    assert exit_info.value.code != 0
    assert "--trainer.devices 1" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


def test_no_config_file_is_written_without_a_logger(tmp_path):
    # Without a logger Lightning's log_dir is the root dir (the working directory by default).
    work = tmp_path / "work"
    work.mkdir()
    (work / "config.yaml").write_text("mine")
    main(tiny(tmp_path, "--trainer.default_root_dir", str(work), steps=1))
    assert (work / "config.yaml").read_text() == "mine"
    assert sorted(p.name for p in work.iterdir()) == ["config.yaml"]


def test_save_png_is_atomic_and_gets_the_usual_mode(tmp_path, monkeypatch):
    import os

    from nst_lightning.image.io import save_png

    path = save_png(torch.rand(1, 3, 8, 8), tmp_path / "a.png", {"k": "v"})
    assert Image.open(path).text["k"] == "v"
    assert (path.stat().st_mode & 0o777) == (0o666 & ~_current_umask())
    # A failure while encoding leaves neither a partial file nor a temporary one behind.
    monkeypatch.setattr(Image.Image, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        save_png(torch.rand(1, 3, 8, 8), tmp_path / "b.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    assert os.path.exists(path)


def _current_umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_version_help_and_a_missing_subcommand_answer_without_torch():
    """``--version``, ``--help`` and a missing or misspelt subcommand: every subcommand named, the program's
    name under ``python -m``, and torch never imported (they answer in a fraction of a second)."""
    import subprocess
    import sys

    code = ("import sys, runpy; sys.argv = ['x', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('nst_lightning', run_name='__main__')\n"
            "except SystemExit as e:\n    print('torch' in sys.modules, e.code, file=sys.stderr)\n")

    def run(*args: str) -> tuple[str, str]:
        child = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
        return child.stdout, child.stderr

    out, err = run("--version")
    assert out.startswith("nst-lightning ") and err.strip() == "False 0"
    out, err = run("--help")
    assert out.startswith("usage: nst-lightning ") and all(name in out for name in ("fit", "sweep", "score", "plugins"))
    assert err.strip() == "False 0"
    _, err = run()
    assert err.startswith("nst-lightning: error: no subcommand; give one of: fit, sweep, score, plugins")
    assert err.strip().endswith("False 2")
    _, err = run("fitt")
    assert "unknown subcommand 'fitt' (did you mean 'fit'?)" in err and err.strip().endswith("False 2")


def test_shipped_configs_work_by_name_from_any_folder(tmp_path, monkeypatch, capsys):
    """``--config default`` names the shipped config, its inputs are ``sample:`` images, and ``fit`` without a
    config is the default; a user's config finds its inputs beside it, whatever the working directory."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["fit", "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["content"] == "sample:tubingen.jpg" and printed["seed_everything"] == 0
    assert printed["output"] == "outputs/default.png"
    assert printed["trainer"]["callbacks"][0]["class_path"].endswith("MultiScale")
    folder = tmp_path / "project"
    folder.mkdir()
    load_image(CONTENT, 48)  # readable
    (folder / "mine.jpg").write_bytes(CONTENT.read_bytes())
    (folder / "run.yaml").write_text("data:\n  content: mine.jpg\n  style: sample:the_scream.jpg\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    main(["fit", "--config", "single_scale", "--config", str(folder / "run.yaml"), "--data.size", "32",
          "--trainer.max_steps", "1", "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
          "--output", "out.png"])
    assert (elsewhere / "out.png").is_file()


def test_the_final_line_names_the_log_folder_and_the_checkpoint(tmp_path, capsys):
    main(tiny(tmp_path, "--trainer.logger", "true", "--trainer.enable_checkpointing", "true", steps=2))
    last = capsys.readouterr().out.strip().splitlines()[-1]
    logs = last.split("logs: ")[1].split(";")[0]
    checkpoint = last.split("checkpoint: ")[1].strip()
    assert Path(logs).is_dir() and Path(checkpoint).is_file() and checkpoint.endswith(".ckpt")
    assert str(tmp_path) in logs


def test_one_flag_style_for_fit_sweep_and_score(tmp_path, capsys):
    """Underscores everywhere (as the config keys), and a boolean given alone means true: ``fit --overwrite``
    as ``sweep --overwrite``; ``score`` takes ``--style_scale`` (the dashed spelling still works)."""
    main(tiny(tmp_path, steps=1))
    main([*tiny(tmp_path, steps=1), "--overwrite"])  # bare: replaces the output
    assert (tmp_path / "out.png").is_file()
    capsys.readouterr()
    main(["score", str(tmp_path / "out.png"), "--content", str(CONTENT), "--style", str(STYLE), "--style_scale", "0.5"])
    underscored = capsys.readouterr().out
    main(["score", str(tmp_path / "out.png"), "--content", str(CONTENT), "--style", str(STYLE), "--style-scale", "0.5"])
    assert capsys.readouterr().out == underscored and "style " in underscored
