"""``python -m vggnp.cam``."""

import sys

from .run import main

sys.exit(main())
