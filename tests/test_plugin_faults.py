"""A plugin's faults are named: a loss of the wrong shape, a NaN from a finite image, a write into the image, a
registration hook that raises. Each names the plugin, the class and the config key; the image stays intact."""

from __future__ import annotations

import warnings

import pytest
import torch

from nst_lightning.callbacks.nonfinite_guard import LossTermFault
from nst_lightning.cli import main
from nst_lightning.errors import ComponentFault
from nst_lightning.model.losses.content import ContentLoss
from nst_lightning.model.step import check_term_values, own_copy, wrote_into
from nst_lightning.plugin.manager import PluginImportWarning, load_plugins

from .conftest import DEFAULT, fit_args
from .helpers import expect_one_line_error, read_png
from .plugin_helpers import FakeDistribution, install_fake_distributions, write_module

FAULTY = """
    import torch
    from nst_lightning.plugin import LossTerm, hookimpl

    class MapLoss(LossTerm):
        '''Returns an image-sized map instead of a scalar.'''
        def forward(self, features, image):
            return self.weight * image.float()

    class FloatLoss(LossTerm):
        '''Returns a Python number.'''
        def forward(self, features, image):
            return 0.5

    class NaNLoss(LossTerm):
        def forward(self, features, image):
            return image.float().mean() * float("nan")

    class DataWriter(LossTerm):
        '''Blackens the image through .data (autograd does not see it).'''
        def forward(self, features, image):
            image.data.zero_()
            return self.weight * image.float().mean()

    class InPlaceWriter(LossTerm):
        def forward(self, features, image):
            image.mul_(0.5)
            return self.weight * image.float().mean()

    class TiledTerm(LossTerm):
        '''A tileable term; ``fault`` picks what it does wrong.'''
        tileable = True
        reads_content = False

        def __init__(self, weight: float = 1.0, fault: str = "shape"):
            super().__init__(weight, ["relu1_1"])
            self.fault = fault

        def statistics(self, features, image, window):
            if self.fault == "write":
                image.data.fill_(0.0)
            return {"sum": window.owned(features, "relu1_1").float().flatten(2).sum(-1)}

        def loss_from_statistics(self, stats):
            per_channel = self.weight * stats["sum"] * 1e-9
            return per_channel if self.fault == "shape" else per_channel.sum(-1)

        def forward(self, features, image):
            return self.loss_by_windows(features, image)

    class NaNStep(torch.optim.SGD):
        '''Puts NaN into the image after its first step: the image diverges, no term is at fault.'''
        def __init__(self, params, lr: float = 0.0):
            super().__init__(params, lr=lr)
            self.steps = 0

        @torch.no_grad()
        def step(self, closure=None):
            loss = super().step(closure)
            self.steps += 1
            if self.steps > 1:
                self.param_groups[0]["params"][0].fill_(float("nan"))
            return loss

    @hookimpl
    def nst_register_losses(register):
        for cls in (MapLoss, FloatLoss, NaNLoss, DataWriter, InPlaceWriter, TiledTerm):
            register(cls)

    @hookimpl
    def nst_register_optimizers(register):
        register(NaNStep)
"""

QUICK = ("--model.backbone.init_args.weights", "none")
TILED = ("--data.size", "224", "--model.tiling.tile_size", "192", *QUICK)


@pytest.fixture
def faulty(monkeypatch, tmp_path):
    """The plugin 'faulty' (package nst-faulty 0.1), installed."""
    write_module(monkeypatch, tmp_path, "nstp_faulty", FAULTY)
    install_fake_distributions(monkeypatch, FakeDistribution("nst-faulty", "0.1", [("faulty", "nstp_faulty")]))


def one_line(capsys, tmp_path, *args, code=1):
    """The one error line of a run (the contract of tests/helpers.py); no final image is written."""
    line = expect_one_line_error(capsys, fit_args(tmp_path / "run", *args), tmp_path=tmp_path, code=code)
    assert not (tmp_path / "run" / "out.png").exists()
    return line.removeprefix("nst-lightning: error: ")


@pytest.mark.parametrize(("cls", "extra", "got"), [
    ("MapLoss", (), "a loss of shape (1, 3, 24, 32)"),
    ("FloatLoss", (), "float"),
    ("TiledTerm", TILED, "a loss of shape (1, 64)"),  # the tiled path: loss_from_statistics, never forward
])
def test_a_loss_of_the_wrong_shape_is_an_error_naming_the_key_the_class_and_the_plugin(
        faulty, tmp_path, capsys, cls, extra, got):
    line = one_line(capsys, tmp_path, "--model.losses.mine", cls, *QUICK, *extra)
    assert line == (f"model.losses.mine ({cls} from plugin 'faulty'): forward returned {got}; a loss term returns "
                    "a scalar or one value per image, shape (1,)")


def test_the_shape_contract_is_a_scalar_or_one_value_per_image():
    term = ContentLoss()
    term.config_key = "model.losses.content"
    for shape in [(), (3,)]:
        check_term_values({"content": term}, {"content": torch.zeros(shape)}, 3)
    for shape in [(1,), (3, 1), (1, 3), (9,)]:
        with pytest.raises(ComponentFault, match=rf"model.losses.content \(ContentLoss\): forward returned a loss of "
                                                 rf"shape \({shape[0]},"):
            check_term_values({"content": term}, {"content": torch.zeros(shape)}, 3)


def test_a_nan_from_a_term_names_the_term_not_the_learning_rate(faulty, tmp_path, capsys):
    line = one_line(capsys, tmp_path, "--model.losses.mine", "NaNLoss", "--model.losses.other", "NaNLoss", *QUICK,
                    "--trainer.max_steps", "3", "--model.optimizer", "ImageAdam")
    assert line.startswith("model.losses.mine (NaNLoss from plugin 'faulty'): its loss became NaN or Inf after step 0 "
                           "(found at step 3) while the image was finite (so did model.losses.other); "), line
    assert "learning rate" not in line and "last good image (step 0) is saved to" in line


def test_an_image_that_diverges_keeps_the_learning_rate_message(faulty, tmp_path, capsys):
    line = one_line(capsys, tmp_path, "--model.optimizer", "NaNStep", "--trainer.max_steps", "4", *QUICK)
    assert line.startswith("the loss became NaN or Inf after step 0 (found at step 4)"), line
    assert "Lower the learning rate" in line and "model.losses" not in line


WRITERS = [
    ("DataWriter", ()),
    ("InPlaceWriter", ()),
    ("TiledTerm", ("--model.losses.mine.init_args.fault", "write", *TILED)),
]
STILL = ("--trainer.max_steps", "2", "--model.optimizer", "ImageAdam", "--model.optimizer.init_args.lr", "0.0")


@pytest.mark.parametrize(("cls", "extra"), WRITERS)
def test_a_term_that_writes_into_the_image_is_named(faulty, tmp_path, capsys, cls, extra):
    line = one_line(capsys, tmp_path, "--model.losses.mine", cls, *QUICK, *STILL, *extra)
    assert line.startswith(f"model.losses.mine ({cls} from plugin 'faulty'): wrote into the image it reads (in place, "
                           "or through .data) by step 2; "), line
    saved = line.rpartition(" is saved to ")[2]
    assert read_png(saved).mean() > 0.2  # the content image, not black


@pytest.mark.parametrize(("cls", "extra"), [WRITERS[0], WRITERS[2]])
def test_the_optimized_image_never_sees_a_terms_write(faulty, tmp_path, cls, extra):
    from nst_lightning.cli.fit import build_cli

    load_plugins()
    cli = build_cli(fit_args(tmp_path, "--model.losses.mine", cls, *QUICK, *STILL, *extra)[1:], run=False)
    with pytest.raises(LossTermFault, match=r"^model.losses.mine \(" + cls):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    # The learning rate is 0: the image is the content image still, not the black one the term wrote.
    assert torch.equal(cli.model.image.detach(), cli.model.content_image) and cli.model.image.mean() > 0.2


def test_a_terms_copy_of_the_image_carries_gradients_and_tells_of_writes():
    image = torch.rand(1, 3, 8, 8, requires_grad=True)
    copy = own_copy(image)
    (copy * 2).sum().backward()
    assert torch.equal(image.grad, torch.full_like(image, 2.0))
    assert not wrote_into(copy, image)
    copy.data[0, 0, 0, 0] = float("nan")  # a NaN differs from a number; NaN against NaN does not
    assert wrote_into(copy, image) and not wrote_into(copy, copy.detach().clone())
    assert torch.equal(image.detach(), image.detach().clone()) and torch.isfinite(image).all()


BROKEN = """
    import torch
    from nst_lightning.plugin import Backbone, LossTerm, hookimpl

    class BrokenLoss(LossTerm):
        def forward(self, features, image):
            return image.mean()

    class SpareLoss(LossTerm):
        def forward(self, features, image):
            return image.mean()

    @hookimpl
    def nst_register_losses(register):
        register(SpareLoss)
        raise RuntimeError("hook blew up")
"""


@pytest.fixture
def broken(monkeypatch, tmp_path):
    """The plugin 'bad' (nst-bad 0.1), whose loss hook raises after registering one class, and 'gone', which fails
    to import."""
    write_module(monkeypatch, tmp_path, "nstp_bad", BROKEN)
    write_module(monkeypatch, tmp_path, "nstp_gone", "raise ImportError('needs libgone')\n")
    install_fake_distributions(monkeypatch, FakeDistribution("nst-bad", "0.1", [("bad", "nstp_bad")]),
                               FakeDistribution("nst-gone", "0.2", [("gone", "nstp_gone")]))


def test_a_hook_that_raises_is_reported_and_skipped_by_plugins(broken, capsys):
    with pytest.warns(PluginImportWarning) as caught:
        main(["plugins"])
    out = capsys.readouterr().out
    assert "bad (nst-bad 0.1)\n  broken, skipped: nst_register_losses() raised RuntimeError: hook blew up\n" in out
    assert "gone (nst-gone 0.2)\n  failed to import: ImportError: needs libgone" in out
    assert "SpareLoss" not in out and "loss: ContentLoss" in out  # nothing of a broken plugin is kept
    lines = sorted(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught)
    assert lines == [
        "nst-lightning: warning: plugin 'bad' from package nst-bad 0.1 is broken: nst_register_losses() raised "
        "RuntimeError: hook blew up; it is skipped and its components are unavailable\n",
        "nst-lightning: warning: plugin 'gone' from package nst-gone 0.2 failed to import (ImportError: needs "
        "libgone); it is skipped and its components are unavailable\n",
    ]


def test_a_broken_plugin_leaves_other_commands_running_and_is_named_by_those_that_use_it(broken, tmp_path, capsys):
    plugins = load_plugins()
    assert "SpareLoss" not in plugins.registry.names("loss") and plugins.manager.get_plugin("bad") is None
    with pytest.warns(PluginImportWarning):
        main(fit_args(tmp_path, *QUICK))
    assert read_png(tmp_path / "out.png").shape == (1, 3, 24, 32)
    for cls in ("BrokenLoss", "SpareLoss"):  # defined in its module; registered before the hook raised
        with pytest.warns(PluginImportWarning):
            line = one_line(capsys, tmp_path, "--model.losses.mine", cls, *QUICK, code=2)
        assert line == (f"model.losses.mine: loss {cls!r} is from plugin 'bad', which is broken and skipped "
                        "(nst_register_losses() raised RuntimeError: hook blew up)")
    with pytest.warns(PluginImportWarning):
        line = one_line(capsys, tmp_path, "--model.losses.mine", "GoneLoss", *QUICK, code=2)
    assert line.startswith("model.losses.mine: unknown loss 'GoneLoss'")
    assert line.endswith("; broken plugins were skipped, which may provide it ('bad': nst_register_losses() raised "
                         "RuntimeError: hook blew up; 'gone': ImportError: needs libgone)")


def test_a_sweep_over_a_config_that_uses_a_broken_plugin_is_refused_naming_it(broken, tmp_path, capsys):
    config, spec = tmp_path / "mine.yaml", tmp_path / "sweep.yaml"
    config.write_text("model:\n  losses:\n    mine: {class_path: BrokenLoss}\n")
    spec.write_text("grid:\n  model.losses.style.init_args.weight: [10, 100]\n")
    with pytest.warns(PluginImportWarning):
        line = expect_one_line_error(capsys, ["sweep", "--config", str(DEFAULT), "--config", str(config), "--sweep",
                                              str(spec), "--output_dir", str(tmp_path / "out")], tmp_path=tmp_path,
                                     code=2)
    assert line == ("nst-lightning: error: model.losses.mine: loss 'BrokenLoss' is from plugin 'bad', which is broken "
                    "and skipped (nst_register_losses() raised RuntimeError: hook blew up)")


def test_a_loss_named_by_class_path_whose_init_raises_names_the_key_and_the_class(monkeypatch, tmp_path, capsys):
    """A loss that no plugin registered (a config names it by its import path) is a component too: its error names
    the key, the class path and the exception's type, not just the exception's text."""
    write_module(monkeypatch, tmp_path, "nstp_by_path", """
        from nst_lightning.plugin import LossTerm

        class Boom(LossTerm):
            def __init__(self, weight: float = 1.0):
                raise RuntimeError("boom in init")

            def forward(self, features, image):
                return image.sum()
    """)
    line = one_line(capsys, tmp_path, "--model.losses.boom.class_path", "nstp_by_path.Boom", *QUICK)
    assert line == "model.losses.boom (nstp_by_path.Boom): RuntimeError: boom in init"


def test_a_class_path_whose_module_raises_on_import_says_so(monkeypatch, tmp_path, capsys):
    """Not "unknown loss": the module exists and its own import error is what to fix."""
    write_module(monkeypatch, tmp_path, "nstp_raises", "raise ImportError('broken on purpose')\n")
    line = one_line(capsys, tmp_path, "--model.losses.x.class_path", "nstp_raises.Loss", *QUICK, code=2)
    assert line == "model.losses.x: 'nstp_raises.Loss': importing 'nstp_raises' failed: ImportError: broken on purpose"
