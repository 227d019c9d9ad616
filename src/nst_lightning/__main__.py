"""``python -m nst_lightning``: the ``nst-lightning`` command."""

from nst_lightning.cli import main

main()
