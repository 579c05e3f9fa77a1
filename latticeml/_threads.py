"""Thread-count helpers shared by the parallel Numba kernels (theories, groups, samplers, smearing, flows).

Numba's parallel regions have a fixed cost (waking the worker threads) that dominates small
inputs, and on a shared machine a descheduled worker can stall a region for milliseconds; these
helpers run small inputs on one thread and cut large ones into a few chunks per thread.
"""

from __future__ import annotations

import contextlib

import numba


@contextlib.contextmanager
def _threads_for(n_sites: int, min_sites: int):
    """Run the enclosed kernels on one thread when there are fewer than ``min_sites`` sites.

    Waking a second thread costs ~10 us on an idle machine and milliseconds on a loaded one (the
    parallel region waits for a descheduled thread), more than a small lattice's whole kernel.
    Results do not depend on the thread count. ``numba.set_num_threads`` acts on the calling
    thread only, so this is thread-safe.
    """
    old = numba.get_num_threads()
    if old == 1 or n_sites >= min_sites:
        yield
        return
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def single_threaded():
    """Run the enclosed Numba kernels on the calling thread only (the setting is thread-local)."""
    return _threads_for(0, 1)


def _n_chunks(total: int, per_thread: int = 4) -> int:
    """How many chunks to cut ``total`` sites into: ``per_thread`` per thread (each chunk allocates its
    work arrays once). Computed in Python: calling get_num_threads inside a kernel stops Numba caching it."""
    return max(1, min(int(total), per_thread * numba.get_num_threads()))
