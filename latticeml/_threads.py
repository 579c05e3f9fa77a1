"""Thread dispatch for the parallel Numba kernels: one helper and one table of thresholds.

Numba's parallel regions have a fixed cost (waking the worker threads, ~10 us on an idle machine)
and on a shared machine a descheduled worker can stall a region for milliseconds; below some
amount of work a second thread loses. Every public wrapper therefore runs its kernel as::

    with parallel_threads("sun", n_sites):
        _kernel(..., n_chunks(n_sites))

:data:`PARALLEL_MIN` holds the thresholds, one per kernel family, each with where it was measured
(``benchmarks/bench_threads.py`` times 1 against 2 threads over lattice sizes for every family).
Results never depend on the thread count or the chunk count (every kernel computes each site or
link independently, or sums per-chunk partials in a fixed order), only the speed does.
"""

from __future__ import annotations

import contextlib

import numba

__all__ = ["PARALLEL_MIN", "parallel_threads", "single_threaded", "n_chunks"]

#: Work items (sites, links, matrices: what the kernel's ``prange`` runs over, batch included)
#: below which a kernel family runs on one thread. Each comment says where the value was measured.
#: ``benchmarks/bench_threads.py`` (1 against 2 threads over lattice sizes, interleaved rounds) was
#: run on 2026-12-03 at 16:58 UTC at load average ~10 on the shared 2-core machine (six agents'
#: jobs): there a parallel region waits 15-240 ms for a descheduled worker at every size while one
#: thread takes 0.02-30 ms, so two threads lost everywhere and that run could not place any
#: threshold (none was changed). Rerun it on a quiet machine to place them.
PARALLEL_MIN = {
    # theories: action, plaquette and force kernels (sites B * V)
    "phi4": 1024,  # crossover ~1000 sites: issue-2 measurements (bench_foundation, phi^4 16^2 .. 256^2)
    "u1": 1024,  # crossover ~1000 sites: issue-2 measurements (bench_foundation, U(1) 16^2 .. 256^2)
    "sun": 64,  # crossover 32-64 sites: issue-2 measurements (SU(3) 2^4 .. 8^4: 3x3 products are heavy)
    # local updates: sites (links at fixed mu) of one checkerboard colour
    "local_phi4": 2048,  # bench_local_updates.py --crossover: 1.3-1.4x below, 1.8-2x from 64^2 up
    "local_u1": 2048,  # bench_local_updates.py --crossover
    "local_sun": 256,  # bench_local_updates.py --crossover (SU(3) 4^4 gains 1.3x, 8^4 1.8x)
    # group algebra: SU(N) matrices checked for unitarity, exponentiated or re-unitarised
    "matrices": 256,  # groups' unitarity check (commit 404d84b, 2026-11-22); no table of sizes was kept
    # smearing, gradient flow and improved actions: links B * D * V (generic path kernels)
    "smearing": 8192,  # the old smearing._PARALLEL_MIN_LINKS ("thread start-up costs more than a 4^4 lattice's work"); no table kept
}


@contextlib.contextmanager
def parallel_threads(kind: str, n_items: int):
    """Run the enclosed kernels on one thread when ``n_items < PARALLEL_MIN[kind]``.

    ``numba.set_num_threads`` acts on the calling thread only, so this is thread-safe.
    """
    old = numba.get_num_threads()
    if old == 1 or n_items >= PARALLEL_MIN[kind]:
        yield
        return
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(old)


@contextlib.contextmanager
def single_threaded():
    """Run the enclosed Numba kernels on the calling thread only (the setting is thread-local)."""
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def n_chunks(total: int, per_thread: int = 4) -> int:
    """How many chunks a ``prange`` cuts ``total`` items into: ``per_thread`` per thread.

    Each chunk allocates its work arrays once. Computed in Python: ``get_num_threads`` inside a
    kernel would stop Numba from caching it.
    """
    return max(1, min(int(total), per_thread * numba.get_num_threads()))

