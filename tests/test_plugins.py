"""The plugin manager: built-ins, entry-point discovery, switches, failures and duplicates."""

from __future__ import annotations

import inspect

import pytest
import torch

from nst_lightning.plugin import hookspecs
from nst_lightning.plugin.manager import BUILTIN_PLUGIN, PluginImportWarning, load_plugins
from nst_lightning.plugin.registry import PluginError

from .conftest import DEFAULT
from .plugin_helpers import FakeDistribution, install_fake_distributions, write_module

LOSS_PLUGIN = """
    import torch
    from nst_lightning.plugin import hookimpl
    from nst_lightning.plugin import LossTerm

    class {cls}(LossTerm):
        def forward(self, features, image):
            return self.weight * image.mean()

    @hookimpl
    def nst_register_losses(register):
        register({cls})
"""


def test_builtins_register_through_the_hooks():
    plugins = load_plugins(autoload=False)
    assert plugins.registry.names("backbone") == ["VGG16", "VGG19"]
    assert plugins.registry.names("loss") == ["ContentLoss", "GramStyleLoss", "MaskedGramStyleLoss", "TemporalLoss", "TotalVariationLoss"]
    assert plugins.registry.names("optimizer") == ["ImageAdam", "ImageLBFGS"]
    assert plugins.registry.names("flow") == ["DISFlow", "DeepFlow", "RAFTFlow"]
    assert plugins.manager.get_plugin(BUILTIN_PLUGIN) is not None
    assert plugins.info[BUILTIN_PLUGIN].components["loss"] == ["ContentLoss", "GramStyleLoss", "MaskedGramStyleLoss", "TotalVariationLoss", "TemporalLoss"]


def test_every_hookspec_is_documented_and_implemented_by_builtins():
    from nst_lightning.plugin import builtin as builtins

    specs = [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("nst_")]
    assert sorted(specs) == ["nst_register_backbones", "nst_register_flows", "nst_register_losses", "nst_register_optimizers"]
    for name in specs:
        assert len(inspect.getdoc(getattr(hookspecs, name)) or "") > 40, name
        assert hasattr(builtins, name), name


def test_entry_point_discovery(monkeypatch, tmp_path):
    write_module(monkeypatch, tmp_path, "nstp_discovered", LOSS_PLUGIN.format(cls="DiscoveredLoss"))
    install_fake_distributions(monkeypatch, FakeDistribution("nst-discovered", "1.2.3", [("discovered", "nstp_discovered")]))
    plugins = load_plugins()
    assert "DiscoveredLoss" in plugins.registry.names("loss")
    info = plugins.info["discovered"]
    assert (info.package, info.version, info.components) == ("nst-discovered", "1.2.3", {"loss": ["DiscoveredLoss"]})


def test_autoload_switch_and_block_list(monkeypatch, tmp_path):
    write_module(monkeypatch, tmp_path, "nstp_switch", LOSS_PLUGIN.format(cls="SwitchLoss"))
    install_fake_distributions(monkeypatch, FakeDistribution("nst-switch", "1.0", [("switch", "nstp_switch")]))
    monkeypatch.setenv("NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "SwitchLoss" not in load_plugins().registry.names("loss")
    monkeypatch.setenv("NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD", "0")
    assert "SwitchLoss" in load_plugins().registry.names("loss")
    monkeypatch.setenv("NST_LIGHTNING_BLOCK_PLUGINS", "other, switch")
    assert "SwitchLoss" not in load_plugins().registry.names("loss")


def test_import_failure_names_plugin_and_package_and_others_still_load(monkeypatch, tmp_path):
    write_module(monkeypatch, tmp_path, "nstp_broken", "raise ImportError('needs libfoo')\n")
    write_module(monkeypatch, tmp_path, "nstp_fine", LOSS_PLUGIN.format(cls="FineLoss"))
    install_fake_distributions(
        monkeypatch,
        FakeDistribution("nst-broken", "0.1", [("broken", "nstp_broken")]),
        FakeDistribution("nst-fine", "0.2", [("fine", "nstp_fine")]),
    )
    with pytest.warns(PluginImportWarning, match=r"plugin 'broken' from package nst-broken 0.1 failed to import.*libfoo"):
        plugins = load_plugins()
    assert "FineLoss" in plugins.registry.names("loss")
    assert "libfoo" in plugins.info["broken"].error


def test_duplicate_names_name_both_plugins(monkeypatch, tmp_path):
    write_module(monkeypatch, tmp_path, "nstp_dup_a", LOSS_PLUGIN.format(cls="DupLoss"))
    write_module(monkeypatch, tmp_path, "nstp_dup_b", LOSS_PLUGIN.format(cls="DupLoss"))
    install_fake_distributions(
        monkeypatch,
        FakeDistribution("nst-a", "1", [("dup_a", "nstp_dup_a")]),
        FakeDistribution("nst-b", "1", [("dup_b", "nstp_dup_b")]),
    )
    with pytest.raises(PluginError, match=r"'DupLoss' is registered twice: by plugin 'dup_a'.*by plugin 'dup_b'"):
        load_plugins()


def test_registry_refuses_unusable_classes():
    from nst_lightning.plugin import LossTerm

    class Abstract(LossTerm):
        pass

    class NotALoss:
        pass

    private = type("PrivateLoss", (LossTerm,), {"forward": lambda self, f, i: i.sum(), "__module__": "pkg._impl"})
    cases = [(Abstract, "abstract"), (NotALoss, "not a subclass"), (private, "public, importable module")]
    for cls, message in cases:
        plugin = type("P", (), {})()
        plugin.nst_register_losses = hookspecs.hookimpl(lambda register, cls=cls: register(cls))
        with pytest.raises(PluginError, match=message):
            load_plugins(autoload=False, extra=[("bad", plugin)])


OPTIMIZER_PLUGIN = """
    import torch
    from nst_lightning.plugin import hookimpl

    class HalfStepSGD(torch.optim.SGD):
        def __init__(self, params, lr: float = 0.5):
            super().__init__(params, lr=lr)

    @hookimpl
    def nst_register_optimizers(register):
        register(HalfStepSGD)
"""


def test_optimizer_plugin_usable_by_short_name(monkeypatch, tmp_path):
    from nst_lightning.cli.fit import build_cli

    write_module(monkeypatch, tmp_path, "nstp_sgd", OPTIMIZER_PLUGIN)
    install_fake_distributions(monkeypatch, FakeDistribution("nst-sgd", "2.0", [("sgd", "nstp_sgd")]))
    assert load_plugins().info["sgd"].components == {"optimizer": ["HalfStepSGD"]}
    cli = build_cli(["--config", str(DEFAULT), "--model.optimizer", "HalfStepSGD", "--output", str(tmp_path / "x.png")],
                    run=False)
    optimizer = cli.model.optimizer_factory([torch.nn.Parameter(torch.zeros(1))])
    assert type(optimizer).__name__ == "HalfStepSGD" and optimizer.defaults["lr"] == 0.5


def test_plugins_command_shows_failed_plugins_and_fit_still_works(monkeypatch, tmp_path, capsys):
    from nst_lightning.cli import main

    write_module(monkeypatch, tmp_path, "nstp_broken2", "raise ImportError('needs libbar')\n")
    install_fake_distributions(monkeypatch, FakeDistribution("nst-broken2", "0.3", [("broken2", "nstp_broken2")]))
    with pytest.warns(PluginImportWarning):
        main(["plugins"])
    out = capsys.readouterr().out
    assert "nst_lightning.builtin (nst-lightning" in out and "loss: ContentLoss, GramStyleLoss" in out
    assert "broken2 (nst-broken2 0.3)\n  failed to import: ImportError: needs libbar" in out
    with pytest.warns(PluginImportWarning), pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(DEFAULT), "--print_config"])
    assert exit_info.value.code == 0 and "GramStyleLoss" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model.losses.style.class_path", "GramStyleLos"],
         "model.losses.style: unknown loss 'GramStyleLos'; did you mean 'GramStyleLoss'? known losses: ContentLoss, "
         "GramStyleLoss, MaskedGramStyleLoss, TemporalLoss, TotalVariationLoss"),
        (["--model.backbone", "VGG91"], "model.backbone: unknown backbone 'VGG91'; did you mean 'VGG19'?"),
        (["--model.optimizer", "ImageLBGFS"], "model.optimizer: unknown optimizer 'ImageLBGFS'; did you mean 'ImageLBFGS'?"),
        (["--model.backbone", "nst_lightning.model.backbones.vgg.VGG91"], "did you mean 'VGG19'?"),
        (["--config", "CONFIG"], "model.losses.tv: unknown loss 'TVLoss'; did you mean 'TotalVariationLoss'?"),
    ],
)
def test_unknown_component_names_list_the_known_ones(tmp_path, capsys, args, message):
    from nst_lightning.cli import main

    config = tmp_path / "bad.yaml"
    config.write_text("model:\n  losses:\n    tv: {class_path: TVLoss}\n")
    args = [str(config) if a == "CONFIG" else a for a in args]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(DEFAULT), *args, "--print_config"])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_known_names_pass_the_check():
    from nst_lightning.cli.component_names import check_component_names

    registry = load_plugins(autoload=False).registry
    check_component_names(["fit", "--config", str(DEFAULT), "--model.optimizer", "SGD",
                           "--model.optimizer", "torch.optim.Adam", "--model.backbone=VGG16"], registry)


def test_wrong_init_arg_type_points_at_the_key(capsys):
    from nst_lightning.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(DEFAULT), "--model.losses.style.init_args.weight", "heavy", "--print_config"])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "weight" in err and "heavy" in err and "float" in err and "Traceback" not in err


def test_a_hook_without_hookimpl_is_an_error_and_a_class_registered_twice_is_listed_once(tmp_path, monkeypatch):
    write_module(monkeypatch, tmp_path, "unmarked_plugin", """
        from nst_lightning.model.losses.total_variation import TotalVariationLoss

        def nst_register_losses(register):
            register(TotalVariationLoss)
    """)
    import unmarked_plugin

    with pytest.raises(PluginError, match=r"plugin 'unmarked' defines nst_register_losses\(\) without @hookimpl"):
        load_plugins(autoload=False, extra=[("unmarked", unmarked_plugin)])

    write_module(monkeypatch, tmp_path, "twice_plugin", """
        from nst_lightning.plugin import LossTerm, hookimpl

        class TwiceLoss(LossTerm):
            def forward(self, features, image):
                return image.sum() * 0

        @hookimpl
        def nst_register_losses(register):
            register(TwiceLoss)
            register(TwiceLoss)
    """)
    import twice_plugin

    plugins = load_plugins(autoload=False, extra=[("twice", twice_plugin)])
    assert plugins.info["twice"].components == {"loss": ["TwiceLoss"]}
