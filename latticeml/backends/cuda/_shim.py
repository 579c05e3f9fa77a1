"""The one import of ``numba.cuda`` in latticeml, and the launch geometry of every kernel.

``numba.cuda`` is the maintained CUDA target of Numba, the ``numba-cuda`` package (the ``cuda``
extra). Importing this module when no GPU and no simulator is there raises ImportError with the
one-line reason of :func:`latticeml.backends.cuda.unavailable_reason`; the backend seam
(:func:`latticeml.backends.check_backend`) asks first, so users see that line as a ValueError.

Every kernel is a grid-stride loop over its sites or links (``for i in range(cuda.grid(1), n,
cuda.gridsize(1))``) launched by :func:`grid`: on a GPU with one thread per site or link
(:data:`THREADS` per block), so the loop body runs once per thread; under the simulator, which
runs every CUDA thread as a Python thread, with one block of a few threads that loop over many
sites (the same arithmetic, without thousands of Python threads). ``kernel`` and ``device`` are
the two decorators (``cache=True`` on a GPU: the compiled code is kept in Numba's cache, so a
second run does not compile again).
"""

from __future__ import annotations

from . import _compile_only, unavailable_reason

_reason = unavailable_reason()
if _reason is not None and not _compile_only():
    raise ImportError(f"the CUDA backend is not available: {_reason}")

from numba import cuda
from numba.cuda.core import config as _config

__all__ = ["MAX_BLOCKS", "SIMULATOR", "THREADS", "cuda", "device", "grid", "kernel"]

#: True under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1).
SIMULATOR = bool(_config.ENABLE_CUDASIM)

#: Threads per block (a power of two: the reductions halve it). 128 keeps several blocks per
#: multiprocessor busy for the register-heavy SU(3) kernels.
THREADS = 4 if SIMULATOR else 128

#: Most blocks of a launch (the grid-stride loops cover the rest).
MAX_BLOCKS = 1 if SIMULATOR else 1 << 16

kernel = cuda.jit(cache=not SIMULATOR)
device = cuda.jit(device=True)  # compiled into each kernel that calls it (and cached with it)


def grid(n: int) -> tuple[int, int]:
    """``(blocks, threads)`` of a 1-D launch over ``n`` sites or links (module docstring)."""
    blocks = (max(int(n), 1) + THREADS - 1) // THREADS
    return min(blocks, MAX_BLOCKS), THREADS
