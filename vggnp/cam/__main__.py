"""``python -m vggnp.cam``."""

import sys

from . import main

sys.exit(main())
