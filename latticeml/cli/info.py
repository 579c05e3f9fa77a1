"""``latticeml info``: versions, Numba threads and cache directory, CUDA availability.

    latticeml info

What to paste into a bug report; it compiles nothing.
"""

from __future__ import annotations

import os
import platform
import sys

from .. import __version__
from .common import described

__all__ = ["register"]


def _cuda_status() -> str:
    try:
        from numba import cuda
    except Exception as exc:  # numba built without the CUDA target
        return f"unavailable ({type(exc).__name__})"
    try:
        if cuda.is_available():
            name = cuda.get_current_device().name
            return f"available: {name.decode() if isinstance(name, bytes) else name}"
        return "not available (no GPU or driver)"
    except Exception as exc:  # a broken driver raises all sorts of errors: report it, do not crash
        return f"not available ({exc})"


def _cmd_info(args) -> int:
    import numba
    import numpy
    import scipy

    lines = [
        f"latticeml   {__version__}",
        f"python      {platform.python_version()} ({sys.executable})",
        f"numpy       {numpy.__version__}",
        f"scipy       {scipy.__version__}",
        f"numba       {numba.__version__}",
        f"threads     {numba.get_num_threads()} Numba threads ({numba.config.THREADING_LAYER} layer), {os.cpu_count()} CPUs",
        f"numba cache {os.environ.get('NUMBA_CACHE_DIR') or '(next to the sources: __pycache__)'}",
        f"cuda        {_cuda_status()}",
    ]
    print("\n".join(lines))
    return 0


def register(subparsers) -> None:
    """Add ``latticeml info``."""
    s = subparsers.add_parser(
        "info",
        help="versions, threads, Numba cache directory, CUDA availability",
        **described(
            "Print the versions of latticeml and its dependencies, the Numba threads and cache directory "
            "(NUMBA_CACHE_DIR), and whether a CUDA GPU is usable.",
            "latticeml info",
            "NUMBA_NUM_THREADS=2 NUMBA_CACHE_DIR=~/.cache/numba latticeml info",
        ),
    )
    s.set_defaults(func=_cmd_info)
