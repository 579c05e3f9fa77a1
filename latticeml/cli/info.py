"""``latticeml info``: versions, Numba threads and cache directory, the CUDA device.

    latticeml info
    latticeml info --kernels

What to paste into a bug report; it compiles nothing, except with ``--kernels``, which compiles
every CUDA kernel of :mod:`latticeml.backends.cuda` to PTX (for the GPU's compute capability, or
8.0 without a GPU; about a minute) and says which compiled.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys

from .. import __version__
from .common import described

__all__ = ["register"]


def _cuda_status() -> str:
    """The device the CUDA backend would use, or why there is none (imports numba.cuda: only ``info`` asks)."""
    from ..backends.cuda import (
        device_description,  # plain Python: numba.cuda is imported inside
    )

    try:
        return device_description()
    except Exception as exc:  # noqa: BLE001  (a broken driver raises all sorts of errors: report it, do not crash)
        return f"not available ({type(exc).__name__}: {exc})"


def _kernel_lines() -> list[str]:
    """``latticeml info --kernels``: compile every CUDA kernel to PTX and say which compiled."""
    from ..backends.cuda import compile_kernels, unavailable_reason

    if importlib.util.find_spec("numba_cuda") is None:
        return [f"cuda kernels not compiled ({unavailable_reason()})"]
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return ["cuda kernels not compiled (the CUDA simulator runs them as Python; unset NUMBA_ENABLE_CUDASIM to compile)"]
    try:
        results = compile_kernels()
    except Exception as exc:  # noqa: BLE001  (no NVVM / toolkit: one line, not a traceback)
        first = (str(exc).strip().splitlines() or [""])[0]
        return [f"cuda kernels not compiled ({type(exc).__name__}: {first}; pip install 'latticeml[cuda]' brings the CUDA compiler)"]
    failed = [(k, err) for k, err in results if err is not None]
    lines = [f"cuda kernels {len(results) - len(failed)} of {len(results)} compiled to PTX"]
    lines += [f"  failed: {k}: {err}" for k, err in failed]
    return lines


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
    if getattr(args, "kernels", False):
        lines += _kernel_lines()
    print("\n".join(lines))
    return 0


def register(subparsers) -> None:
    """Add ``latticeml info``."""
    s = subparsers.add_parser(
        "info",
        help="versions, threads, Numba cache directory, CUDA device (--kernels: compile the CUDA kernels)",
        **described(
            "Print the versions of latticeml and its dependencies, the Numba threads and cache directory "
            "(NUMBA_CACHE_DIR), and the CUDA device the cuda backend would use (or why there is none); "
            "with --kernels, whether every CUDA kernel compiles.",
            "latticeml info",
            "latticeml info --kernels",
            "NUMBA_NUM_THREADS=2 NUMBA_CACHE_DIR=~/.cache/numba latticeml info",
        ),
    )
    s.add_argument("--kernels", action="store_true",
                   help="compile every CUDA kernel to PTX and report which compiled (no GPU needed; about a minute)")
    s.set_defaults(func=_cmd_info)
