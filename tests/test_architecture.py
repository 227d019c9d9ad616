"""The package's public faces and error contract: what plugins import, how errors reach the user."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from nst_lightning.errors import ConfigError, ConfigValueError, NstLightningError
from nst_lightning.plugin.manager import load_plugins
from nst_lightning.plugin.registry import PluginError

from .conftest import CONTENT, DEFAULT, ROOT, STYLE, TINY, fit_args
from .plugin_helpers import FakeDistribution, install_fake_distributions, write_module

SRC = ROOT / "src" / "nst_lightning"
EXTRAS = ROOT / "plugins" / "nst-lightning-extras" / "src" / "nst_lightning_extras"


def nst_imports(path: Path) -> set[str]:
    """The ``nst_lightning`` modules that a file imports, at any depth (inside functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n == "nst_lightning" or n.startswith("nst_lightning.")}


def test_the_example_plugin_imports_only_the_public_face():
    files = sorted(EXTRAS.glob("*.py"))
    assert len(files) >= 3
    for path in files:
        assert nst_imports(path) <= {"nst_lightning.plugin"}, path.name


def test_the_public_face_exports_what_a_plugin_needs():
    import nst_lightning.plugin as face

    for name in ("hookimpl", "Backbone", "LossTerm", "Targets", "gram_matrix", "float32_only",
                 "load_state_dict", "check_layer_weights", "psd_matrix_power", "NstLightningError",
                 "ConfigValueError", "WeightsError"):
        assert name in face.__all__ and hasattr(face, name), name


def test_every_user_facing_error_derives_from_one_base():
    from nst_lightning.callbacks.image_writer import OutputExistsError
    from nst_lightning.callbacks.interrupt import RunInterrupted
    from nst_lightning.callbacks.nonfinite_guard import NonFiniteLossError
    from nst_lightning.cli.argv_checks import ConfigFileError
    from nst_lightning.cli.component_names import UnknownComponentError
    from nst_lightning.files import OutputNotWritableError
    from nst_lightning.image.io import ImageError
    from nst_lightning.model.backbones.weights import WeightsError
    from nst_lightning.model.style_transfer import PrecisionError
    from nst_lightning.sweep.spec import SweepError

    errors = [OutputExistsError, RunInterrupted, NonFiniteLossError, UnknownComponentError, ConfigFileError,
              OutputNotWritableError, ImageError, WeightsError, PrecisionError, SweepError, PluginError]
    assert all(issubclass(e, NstLightningError) for e in errors)
    # Config errors exit 2 (as argparse); a value out of range is also a ValueError.
    assert ConfigFileError.exit_code == UnknownComponentError.exit_code == ConfigError.exit_code == 2
    assert issubclass(ConfigValueError, ValueError) and NstLightningError.exit_code == 1
    assert str(NstLightningError("must be positive", key="data.size")) == "data.size: must be positive"
    assert NstLightningError("must be positive", key="data.size").key == "data.size"


BAD_PLUGIN = """
    import torch
    from nst_lightning.plugin import LossTerm, hookimpl

    class LookupLoss(LossTerm):
        def forward(self, features, image):
            return {}["nope"]

    @hookimpl
    def nst_register_losses(register):
        register(LookupLoss)
"""


def test_an_error_in_a_plugins_code_names_the_key_the_class_the_plugin_and_the_type(monkeypatch, tmp_path, capsys):
    from nst_lightning.cli import main

    write_module(monkeypatch, tmp_path, "nstp_lookup", BAD_PLUGIN)
    install_fake_distributions(monkeypatch, FakeDistribution("nst-lookup", "1.0", [("lookup", "nstp_lookup")]))
    with pytest.raises(SystemExit) as exit_info:
        main(fit_args(tmp_path, "--model.losses.odd", "LookupLoss", "--model.backbone.init_args.weights", "none"))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err == "nst-lightning: error: model.losses.odd (LookupLoss from plugin 'lookup'): KeyError: 'nope'\n"


def test_a_value_refused_in_init_is_reported_with_its_key(tmp_path, capsys):
    from nst_lightning.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(fit_args(tmp_path, "--model.losses.style.init_args.layer_weights", "[1, 2]"))
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (
        "nst-lightning: error: model.losses.style: GramStyleLoss: 2 layer_weights for 5 layers\n")
    assert not (tmp_path / "out.png").exists()


MISSPELLED_HOOK = """
    from nst_lightning.plugin import hookimpl

    @hookimpl
    def nst_register_loss(register):
        pass
"""


def test_a_misspelled_hook_is_an_error_that_names_the_plugin(monkeypatch, tmp_path):
    write_module(monkeypatch, tmp_path, "nstp_typo", MISSPELLED_HOOK)
    install_fake_distributions(monkeypatch, FakeDistribution("nst-typo", "0.1", [("typo", "nstp_typo")]))
    with pytest.raises(PluginError, match=r"plugin 'typo' implements 'nst_register_loss', which is not an "
                                          r"nst-lightning hook; did you mean 'nst_register_losses'\?"):
        load_plugins()


def test_print_config_spells_out_every_default_component_and_runs_again(tmp_path, capsys):
    from nst_lightning.cli import main

    with pytest.raises(SystemExit):
        main(["fit", "--data.content", str(CONTENT), "--data.style", str(STYLE), "--print_config"])
    printed = capsys.readouterr().out
    model = yaml.safe_load(printed)["model"]
    assert model["backbone"]["class_path"] == "nst_lightning.model.backbones.vgg.VGG19"
    assert model["backbone"]["init_args"]["weights"] == "caffe"
    assert {k: v["class_path"].rsplit(".", 1)[1] for k, v in model["losses"].items()} == {
        "content": "ContentLoss", "style": "GramStyleLoss", "tv": "TotalVariationLoss"}
    assert model["losses"]["style"]["init_args"]["weight"] == 150.0
    assert model["losses"]["style"]["init_args"]["layer_weights"] == [0.25, 0.25, 0.25, 0.25, 0.02]
    assert model["optimizer"]["init_args"] == {"lr": 1.0, "max_iter": 1, "max_eval": None, "history_size": 100,
                                               "tolerance_grad": 0.0, "tolerance_change": 0.0, "line_search_fn": None,
                                               "history_dtype": "float32", "bounds": [0.0, 1.0], "max_step": 0.25,
                                               "first_step": None}
    saved = tmp_path / "printed.yaml"
    saved.write_text(printed)
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(saved), "--print_config"])
    assert capsys.readouterr().out == printed
    # The defaults are not parser defaults: switching the optimizer's class takes none of L-BFGS's arguments.
    from nst_lightning.cli.fit import build_cli

    cli = build_cli(["--config", str(DEFAULT), "--config", str(TINY), "--model.optimizer", "ImageAdam",
                     "--output", str(tmp_path / "x.png")], run=False)
    import torch

    assert cli.model.optimizer_factory([torch.nn.Parameter(torch.zeros(1))]).defaults["lr"] == 0.02


def test_every_module_of_the_package_is_in_a_layer_of_the_import_contract():
    """A new top-level module or package must take its place in pyproject.toml's layers, or lint-imports
    would not check it."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    layered = {name.strip() for layer in contract["layers"] for name in layer.split("|")}
    present = {p.stem for p in SRC.glob("*.py") if p.stem not in ("__init__", "__main__")}
    present |= {p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()}
    assert present == layered
