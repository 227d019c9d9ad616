from __future__ import annotations

import importlib.resources
from pathlib import Path

import pytest


@pytest.fixture
def assets() -> Path:
    """The sample images that ship with nst-lightning."""
    return Path(str(importlib.resources.files("nst_lightning") / "assets"))
