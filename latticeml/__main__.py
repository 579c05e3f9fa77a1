"""``python -m latticeml`` is the ``latticeml`` command."""

import sys

from .cli import main

if __name__ == "__main__":  # importing this module (the docs' API scan does) runs nothing
    sys.exit(main())
