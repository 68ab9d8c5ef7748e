"""`python -m slmlib`: the command line (slmlib.cli)."""

import sys

from .cli import main

sys.exit(main())
