"""Every private API of a dependency that the command line relies on, in one place, each with the version it was
written against. When a dependency changes one of them, this module (and its test, ``tests/test_compat.py``)
is where it shows.

- LightningCLI (lightning 2.6): three private methods are the only places to act at those moments of a run;
  :class:`CompatCLI` overrides them and calls public hooks that ``StyleTransferCLI`` implements (and no longer
  lets a checkpoint's ``hyper_parameters`` change the parsed config).
- jsonargparse (4.53): when a class's ``__init__`` raises while jsonargparse builds a ``dict[str, Class]``
  entry, the entry's key is only known as the local variable ``k`` of jsonargparse's frame
  (:func:`dict_key_being_built`).
"""

from __future__ import annotations

from types import FrameType

from lightning.pytorch.cli import LightningCLI

LIGHTNING_WRITTEN_AGAINST = "2.6"
JSONARGPARSE_WRITTEN_AGAINST = "4.53"


class CompatCLI(LightningCLI):
    """LightningCLI with public hooks where Lightning 2.6 has only private methods."""

    def check_before_checkpoint_is_read(self) -> None:
        """Called before Lightning reads ``--ckpt_path``'s hyperparameters (right after parsing)."""

    def seed_error(self, exc: ValueError) -> BaseException:
        """The error to raise when Lightning refuses ``seed_everything``'s value."""
        return exc

    def after_subcommand(self) -> None:
        """Called on every way out of the subcommand's run (success, error, interrupt)."""

    def _parse_ckpt_path(self) -> None:  # lightning 2.6: LightningCLI._parse_ckpt_path
        # Lightning's version copies the checkpoint's ``hyper_parameters`` over the parsed config: a checkpoint
        # could then change the run (another loss, preserve_colour) behind the command line's back. A checkpoint
        # here restores state only (the image, the optimizer, the step counters); the config is the command's.
        self.check_before_checkpoint_is_read()

    def _set_seed(self) -> None:  # lightning 2.6: LightningCLI._set_seed
        try:
            super()._set_seed()
        except ValueError as exc:
            raise self.seed_error(exc) from None

    def _run_subcommand(self, subcommand: str) -> None:  # lightning 2.6: LightningCLI._run_subcommand
        try:
            super()._run_subcommand(subcommand)
        finally:
            self.after_subcommand()


def dict_key_being_built(frame: FrameType) -> str | None:
    """The key of the ``dict[str, Class]`` entry that jsonargparse (4.53) is building in ``frame``, if it is
    one of jsonargparse's frames that holds one (its local ``k``); None otherwise."""
    if not frame.f_globals.get("__name__", "").startswith("jsonargparse"):
        return None
    key = frame.f_locals.get("k")
    return key if isinstance(key, str) else None
