"""The plugin manager: built-ins, entry-point discovery, switches, failures and duplicates."""

from __future__ import annotations

import inspect

import pytest

from nst_lightning import hookspecs
from nst_lightning.plugins import BUILTIN_PLUGIN, PluginError, PluginImportWarning, load_plugins

from .plugin_helpers import FakeDistribution, install_fake_distributions, write_module

LOSS_PLUGIN = """
    import torch
    from nst_lightning import hookimpl
    from nst_lightning.losses import LossTerm

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
    assert plugins.registry.names("loss") == ["ContentLoss", "GramStyleLoss", "MaskedGramStyleLoss", "TotalVariationLoss"]
    assert plugins.registry.names("optimizer") == ["ImageAdam", "ImageLBFGS"]
    assert plugins.manager.get_plugin(BUILTIN_PLUGIN) is not None
    assert plugins.info[BUILTIN_PLUGIN].components["loss"] == ["ContentLoss", "GramStyleLoss", "MaskedGramStyleLoss", "TotalVariationLoss"]


def test_every_hookspec_is_documented_and_implemented_by_builtins():
    from nst_lightning import builtins

    specs = [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("nst_")]
    assert sorted(specs) == ["nst_register_backbones", "nst_register_losses", "nst_register_optimizers"]
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
    from nst_lightning.losses import LossTerm

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
