"""``python -m nst_lightning.cli``: the ``nst-lightning`` command."""

from nst_lightning.cli import main

main()
