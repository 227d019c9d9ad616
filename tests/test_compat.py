"""The private APIs of dependencies that ``nst_lightning.cli.compat`` relies on still behave as it expects.

Each test fails with a message that names the dependency, the version compat.py was written against, and
what to change, so that an upgrade of Lightning or jsonargparse that breaks one of them is found here.
"""

from __future__ import annotations

import pytest
from lightning.pytorch.cli import LightningCLI

from nst_lightning.cli import compat, main

from .conftest import fit_args


@pytest.mark.parametrize("method", ["_parse_ckpt_path", "_set_seed", "_run_subcommand"])
def test_lightning_cli_still_has_the_private_methods_compat_overrides(method):
    assert callable(getattr(LightningCLI, method, None)), (
        f"LightningCLI.{method} is gone (compat.py was written against lightning {compat.LIGHTNING_WRITTEN_AGAINST}): "
        "move CompatCLI's hook to the method that replaced it"
    )


def test_jsonargparse_still_names_the_dict_entry_being_built(tmp_path, capsys):
    """A loss whose __init__ refuses a value while jsonargparse builds ``model.losses``: the error names the loss's
    key (``fancy``), which only jsonargparse's frame knows (``compat.dict_key_being_built``)."""
    config = tmp_path / "losses.yaml"
    config.write_text(
        "model:\n  losses:\n    fancy:\n      class_path: GramStyleLoss\n"
        "      init_args: {layers: [relu1_1], layer_weights: [1.0, 2.0]}\n"
    )
    with pytest.raises(SystemExit):
        main(fit_args(tmp_path, "--config", str(config)))
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "2 layer_weights for 1 layers" in line, line
    assert "model.losses.fancy" in line, (
        f"the error no longer names the loss's key ({line!r}): jsonargparse's frame no longer holds the dict "
        f"key as 'k' (compat.py was written against jsonargparse {compat.JSONARGPARSE_WRITTEN_AGAINST}); "
        "update compat.dict_key_being_built"
    )
