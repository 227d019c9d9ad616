"""``python -m nst_lightning``: the ``nst-lightning`` command."""

import sys

from nst_lightning.cli import main

sys.argv[0] = "nst-lightning"  # the program's name in usage lines, not __main__.py
main()
