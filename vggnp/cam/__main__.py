"""``python -m vggnp.cam``."""

import sys

from . import command

sys.exit(command())
