"""``python -m vecembed`` runs the command line (the same as the ``vecembed`` script)."""

import sys

from vecembed.cli import main

sys.exit(main())
