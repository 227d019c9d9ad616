"""The installed package's version."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nst-lightning")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"
