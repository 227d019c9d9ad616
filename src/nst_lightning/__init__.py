"""nst-lightning: Gatys neural style transfer as a Lightning module with pluggy plugins.

The package follows a run's pipeline: ``cli`` (the command and its configs) builds the ``data``
and the ``model`` (backbone, losses, optimizer), runs them with the ``callbacks`` around
Lightning's loop, and writes the result through ``image``. Notebooks and scripts use ``stylize`` and
``score`` (:mod:`nst_lightning.api`); plugin authors import from :mod:`nst_lightning.plugin` only.
"""

from nst_lightning.version import __version__

__all__ = ["Result", "__version__", "score", "stylize"]


def __getattr__(name: str):
    """``stylize``, ``score`` and ``Result`` (:mod:`nst_lightning.api`), imported on first use: ``import
    nst_lightning`` and ``--version`` stay instant (no torch)."""
    if name in ("stylize", "score", "Result"):
        from nst_lightning import api

        return getattr(api, name)
    raise AttributeError(f"module 'nst_lightning' has no attribute {name!r}")
