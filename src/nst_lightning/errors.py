"""The errors a user sees: each is printed as one line by the command, with its exit status.

Every error that the user can act on derives from :class:`NstLightningError`. Where the error is
about one config key (``data.size``, ``model.losses.style``) it carries that key, and its message
starts with it. Plugins raise them too (``nst_lightning.plugin`` exports them), so that a bad
init value of a plugin's component is reported like a built-in one's.
"""

from __future__ import annotations

import signal


class NstLightningError(Exception):
    """An error reported to the user as one line, ``nst-lightning: error: <message>``.

    Args:
        message: what is wrong, and where it helps, what to do instead.
        key: the config key it is about, if there is one; the message is prefixed with it.
    """

    exit_code = 1

    def __init__(self, message: str, key: str | None = None) -> None:
        self.key = key
        if key and not message.startswith(key):
            message = f"{key}: {message}"
        super().__init__(message)


class ComponentFault(NstLightningError):
    """A component (backbone, loss term, optimizer; built-in or a plugin's) broke its contract while the run used it:
    a loss of the wrong shape, a NaN from a finite image, a write into the image it reads.

    Args:
        detail: what it did, and what the contract asks instead.
        key: the component's config key (``model.losses.mine``).
        component: its class; the command adds the plugin that registered it.
    """

    def __init__(self, detail: str, key: str, component: type) -> None:
        self.detail = detail
        self.component = component
        super().__init__(f"{key} ({component.__name__}): {detail}", key=key)


class ConfigError(NstLightningError):
    """A command line or config that cannot run; exit status 2, as argparse's."""

    exit_code = 2


class ConfigValueError(NstLightningError, ValueError):
    """A config value out of its range (also a ``ValueError``, for code that catches those)."""


class Interrupted(BaseException):
    """Ctrl-C (or a second SIGTERM) that stops the command at once; it exits with ``128 + signum`` (130 for Ctrl-C).

    A ``BaseException``, as ``KeyboardInterrupt``, so that no ``except Exception`` swallows it; but not a
    ``KeyboardInterrupt``, which Lightning's ``Trainer.fit`` turns into exit status 1.
    """

    def __init__(self, signum: int = signal.SIGINT) -> None:
        self.signum = int(signum)
        self.exit_code = 128 + self.signum
        super().__init__(f"interrupted by {signal.Signals(self.signum).name}")
