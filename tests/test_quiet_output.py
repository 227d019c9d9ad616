"""What a run prints besides its result: no Lightning adverts, no model summary by default, a plugin's
import failure as plain text, and plain progress lines (no carriage returns) when stderr is not a terminal."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from nst_lightning.callbacks.progress_bar import (
    LossProgressBar,
    PlainProgress,
    progress_for,
)
from nst_lightning.cli import main
from nst_lightning.cli.messages import (
    filter_lightning_banners,
    filter_lightning_tips,
    show_plugin_warnings_plainly,
)
from nst_lightning.plugin.manager import PluginImportWarning

from .conftest import CONTENT, DEFAULT, STYLE


def fit_args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "fit", "--config", str(DEFAULT), "--data.content", str(CONTENT), "--data.style", str(STYLE),
        "--data.size", "32", "--model.backbone.init_args.weights", "none", "--model.optimizer", "ImageAdam",
        "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_checkpointing", "false",
        "--output", str(tmp_path / "out.png"), *extra,
    ]


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_lightning_tips_are_dropped_and_nothing_else():
    filter_lightning_banners(verbose=True)  # this test is about the tips filter alone
    filter_lightning_tips()
    filter_lightning_tips()  # once is enough; twice is harmless
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")  # where rank_zero_info logs
    recorder, level = Recorder(), logger.level
    logger.addHandler(recorder)
    logger.setLevel(logging.INFO)  # whatever an earlier run set on Lightning's loggers
    try:
        rank_zero_info("💡 Tip: For seamless cloud uploads and versioning, try installing [litmodels]")
        rank_zero_info("GPU available: False, used: False")
        rank_zero_info("Tiling: 224x168 px in 2 tiles")
    finally:
        filter_lightning_banners(verbose=False)
        logger.removeHandler(recorder)
        logger.setLevel(level)
    assert recorder.messages == ["GPU available: False, used: False", "Tiling: 224x168 px in 2 tiles"]


def test_lightning_banners_are_dropped_unless_verbose():
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    recorder, level = Recorder(), logger.level
    logger.addHandler(recorder)
    logger.setLevel(logging.INFO)
    try:
        for verbose in (False, True):
            filter_lightning_banners(verbose)
            rank_zero_info("GPU available: False, used: False")
            rank_zero_info("`Trainer.fit` stopped: `max_steps=3` reached.")
            rank_zero_info("Tiling: 224x168 px in 2 tiles")
    finally:
        filter_lightning_banners(False)
        logger.removeHandler(recorder)
        logger.setLevel(level)
    assert recorder.messages == ["Tiling: 224x168 px in 2 tiles", "GPU available: False, used: False",
                                 "`Trainer.fit` stopped: `max_steps=3` reached.", "Tiling: 224x168 px in 2 tiles"]


def test_an_error_is_one_line_and_a_run_prints_no_banner(tmp_path):
    """In a real process, where Lightning's own log handler writes: nothing before the error line, and a
    successful run's output is the final line only."""
    env = dict(os.environ, NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD="1")
    command = [sys.executable, "-m", "nst_lightning"]
    bad = subprocess.run([*command, *fit_args(tmp_path, "--data.content", str(tmp_path / "missing.jpg"))],
                         env=env, capture_output=True, text=True, timeout=300, check=False)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("nst-lightning: error: "), bad.stderr
    good = subprocess.run([*command, *fit_args(tmp_path, "--trainer.max_steps", "2")],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert good.returncode == 0, good.stderr
    printed = good.stdout + good.stderr
    for banner in ("Seed set", "GPU available", "TPU available", "`Trainer.fit` stopped"):
        assert banner not in printed, printed
    assert good.stdout.strip().startswith("Stylized image written to")


def test_a_run_prints_no_tips_nor_summary_unless_asked(tmp_path, capsys):
    main(fit_args(tmp_path, "--trainer.max_steps", "1", "--trainer.logger", "true"))
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert "💡" not in printed and "Tip:" not in printed
    assert "Total params" not in printed and "Stylized image written to" in printed
    # Asked for, the summary is printed: on stdout when `rich` is installed, through Lightning's logger (on stderr)
    # when it is not; a child process sees both, whatever this environment installed.
    env = dict(os.environ, NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD="1")
    child = subprocess.run(
        [sys.executable, "-m", "nst_lightning.cli",
         *fit_args(tmp_path, "--trainer.max_steps", "1", "--overwrite", "true", "--trainer.enable_model_summary", "true")],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert "Total params" in child.stdout + child.stderr


def test_a_plugin_import_failure_is_printed_as_its_text_alone():
    show_plugin_warnings_plainly()
    show_plugin_warnings_plainly()  # once is enough; twice is harmless
    text = "plugin 'broken' from package nst-broken 0.1 failed to import"
    shown = warnings.formatwarning(PluginImportWarning(text), PluginImportWarning, "/site/nst_lightning/cli.py", 194)
    assert shown == f"nst-lightning: warning: {text}\n"
    other = warnings.formatwarning(UserWarning("something else"), UserWarning, "/site/lib.py", 7)
    assert other.startswith("/site/lib.py:7: UserWarning: something else")  # other warnings keep the usual format


def test_a_plugin_import_failure_prints_one_plain_line_from_the_command(tmp_path):
    """In a real process (no test harness recording the warnings): the line the user sees."""
    (tmp_path / "nstp_broken3.py").write_text("raise ImportError('needs libbaz')\n")
    dist = tmp_path / "nst_broken3-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nst-broken3\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[nst_lightning]\nbroken3 = nstp_broken3\n")
    env = {k: v for k, v in os.environ.items() if k != "NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    child = subprocess.run([sys.executable, "-m", "nst_lightning.cli", "plugins"], env=env, capture_output=True,
                           text=True, timeout=120, check=False)
    assert child.returncode == 0, child.stderr
    assert child.stderr == ("nst-lightning: warning: plugin 'broken3' from package nst-broken3 0.1 failed to import "
                            "(ImportError: needs libbaz); it is skipped and its components are unavailable\n")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_needs_a_terminal():
    assert isinstance(progress_for(FakeTerminal()), LossProgressBar)
    assert isinstance(progress_for(io.StringIO()), PlainProgress)


def test_without_a_terminal_progress_is_a_plain_line_per_logging_step(tmp_path, capsys):
    main(fit_args(tmp_path, "--trainer.max_steps", "12", "--trainer.log_every_n_steps", "5",
                  "--trainer.logger", "false"))
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["1/12", "5/12", "10/12", "12/12"]
    assert all("loss/content" in line and "loss/style" in line for line in lines)
    value = float(lines[-1].split("loss/style ")[1].split()[0])
    assert value > 0


@pytest.mark.parametrize("disabled", ["--trainer.enable_progress_bar=false"])
def test_no_progress_lines_when_the_bar_is_off(tmp_path, capsys, disabled):
    main(fit_args(tmp_path, "--trainer.max_steps", "3", "--trainer.logger", "false", disabled))
    assert not [line for line in capsys.readouterr().err.splitlines() if line.startswith("step ")]
