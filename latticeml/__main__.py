"""``python -m latticeml`` is the ``latticeml`` command."""

import sys

from .cli import main

sys.exit(main())
