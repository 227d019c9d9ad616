"""The package works from a built wheel, not only from this clone: configs by name and sample images included."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from .conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                            "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=600, check=False)
    if build.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{build.stderr[-2000:]}")
    (path,) = out.glob("nst_lightning-*.whl")
    return path


def test_the_wheel_holds_the_configs_and_the_samples(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("nst_lightning/configs/default.yaml", "nst_lightning/configs/large.yaml",
                 "nst_lightning/configs/sweeps/style_weight_x_style.yaml", "nst_lightning/assets/tubingen.jpg",
                 "nst_lightning/assets/starry_night.jpg"):
        assert name in names, name


def test_the_installed_wheel_runs_the_default_from_an_empty_folder(wheel, tmp_path):
    """Installed (not editable) into a folder of its own, with the dependencies of this environment, and run
    from an empty working directory: ``fit`` with no config at all is the default job."""
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                              str(wheel)], capture_output=True, text=True, timeout=600, check=False)
    assert install.returncode == 0, install.stderr[-2000:]
    empty = tmp_path / "empty"
    empty.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site), NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD="1")
    where = subprocess.run([sys.executable, "-c", "import nst_lightning; print(nst_lightning.__file__)"], env=env,
                           cwd=empty, capture_output=True, text=True, timeout=120, check=True)
    assert where.stdout.strip().startswith(str(site))  # the wheel's copy, not this clone's
    run = subprocess.run([sys.executable, "-m", "nst_lightning", "fit", "--data.size", "64", "--trainer.max_steps", "3",
                          "--trainer.callbacks.steps_per_scale", "1",  # the default's three scales, one step each
                          "--trainer.logger", "false", "--trainer.enable_checkpointing", "false"],
                         env=env, cwd=empty, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (empty / "outputs" / "default.png").is_file()
    assert "Stylized image written to outputs/default.png" in run.stdout
