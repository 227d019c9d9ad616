"""Fake installed distributions with ``nst_lightning`` entry points, as pluggy's own tests do."""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap
from pathlib import Path


class FakeDistribution(importlib.metadata.Distribution):
    """An installed distribution that exists only in memory, with ``nst_lightning`` entry points."""

    def __init__(self, name: str, version: str, entry_points: list[tuple[str, str]]) -> None:
        self._files = {
            "METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
            "entry_points.txt": "[nst_lightning]\n" + "".join(f"{n} = {v}\n" for n, v in entry_points),
        }

    def read_text(self, filename: str) -> str | None:
        return self._files.get(filename)

    def locate_file(self, path):
        return None


def install_fake_distributions(monkeypatch, *dists: FakeDistribution) -> None:
    """Add ``dists`` in front of the real installed distributions, and switch autoloading on."""
    real = importlib.metadata.distributions
    monkeypatch.setattr(importlib.metadata, "distributions", lambda **kw: [*dists, *real(**kw)] if not kw else real(**kw))
    monkeypatch.delenv("NST_LIGHTNING_DISABLE_PLUGIN_AUTOLOAD", raising=False)


def write_module(monkeypatch, tmp_path: Path, name: str, source: str) -> None:
    """Write ``name.py`` under ``tmp_path`` and make it importable for this test."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
