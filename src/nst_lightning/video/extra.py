"""The optional ``video`` extra: its modules are imported only when a clip is read, written or its flow computed."""

from __future__ import annotations

import importlib
from types import ModuleType

from nst_lightning.errors import NstLightningError

INSTALL_HINT = "pip install 'nst-lightning[video]'"


class MissingVideoExtraError(NstLightningError):
    """PyAV or OpenCV is not installed."""


def require(module: str, package: str) -> ModuleType:
    """Import ``module`` (``av``, ``cv2``) or raise a one-line error naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingVideoExtraError(
            f"video needs {package}, which is not installed; install the video extra: {INSTALL_HINT}"
        ) from None
