"""nst-lightning: Gatys neural style transfer as a Lightning module with pluggy plugins."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nst-lightning")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

from .hookspecs import hookimpl  # noqa: E402 - plugin authors import it from here

__all__ = ["__version__", "hookimpl"]
