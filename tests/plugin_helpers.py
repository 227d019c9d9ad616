"""Fake installed distributions with ``nst_lightning`` entry points, as pluggy's own tests do."""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap
from pathlib import Path


class FakeDistribution:
    def __init__(self, name: str, version: str, entry_points: list[tuple[str, str]]) -> None:
        self.metadata = {"name": name}
        self.version = version
        self.entry_points = [
            importlib.metadata.EntryPoint(name=ep_name, value=value, group="nst_lightning")
            for ep_name, value in entry_points
        ]


def install_fake_distributions(monkeypatch, *dists: FakeDistribution) -> None:
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: list(dists))
    monkeypatch.delenv("NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD", raising=False)


def write_module(monkeypatch, tmp_path: Path, name: str, source: str) -> None:
    """Write ``name.py`` under ``tmp_path`` and make it importable for this test."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
