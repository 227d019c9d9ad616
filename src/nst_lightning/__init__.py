"""nst-lightning: Gatys neural style transfer as a Lightning module with pluggy plugins.

The package follows a run's pipeline: ``cli`` (the command and its configs) builds the ``data``
and the ``model`` (backbone, losses, optimizer), runs them with the ``callbacks`` around
Lightning's loop, and writes the result through ``image``. Plugin authors import from
:mod:`nst_lightning.plugin` only.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nst-lightning")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
