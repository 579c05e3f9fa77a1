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

__all__ = ["PARALLEL_MIN", "parallel_threads", "single_threaded", "n_chunks", "run_chunks", "chunk_threads"]

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
    # staggered hopping term: complex colour multiply-adds, output sites * 2 D * N^2 (run_chunks' ``size``).
    # 2^20 take 1.3-2 ms on one thread against 0.1-0.25 ms to hand chunks to the pool: SU(3) from ~15000
    # output sites (16^4 and its even-odd blocks, not 8^4), U(1) 2D from 512^2. bench_fermions.py
    # --threads 1 2, 2026-12-04 (U(1) 64^2: 0.033 ms on one thread, 0.13-0.29 ms on two; SU(3) 16^4:
    # 6.1 ms on one, 3.6 ms on two with the second core free, 6.3 ms median with it busy)
    "staggered": 2**20,
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



# ----------------------------------------------------------------------------- chunks on Python threads
#
# Kernels written for this helper are serial ``@njit(nogil=True, cache=True)`` functions that do
# the items ``start <= i < stop`` of a loop; the helper cuts the loop into chunks and runs them on
# a pool of Python threads (the kernel releases the GIL, so the chunks run truly in parallel).
# Why not Numba's ``prange``: a ``parallel=True`` kernel compiles 3-4 s longer than the same loop
# compiled serially (its body is compiled a second time as a gufunc that links and re-optimises
# every function it calls; measured on the SU(N) plaquette and staple drivers: 3.6-4.8 s against
# 0.9-1.2 s), and a student waits for that on every first run.

_POOL = None
_POOL_SIZE = 0


def _pool(threads: int):
    global _POOL, _POOL_SIZE
    if _POOL is None or _POOL_SIZE < threads:
        from concurrent.futures import ThreadPoolExecutor

        if _POOL is not None:
            _POOL.shutdown(wait=False)
        _POOL = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="latticeml")
        _POOL_SIZE = threads
    return _POOL


def chunk_threads(kind: str, n_items: int) -> int:
    """How many threads :func:`run_chunks` uses for ``n_items`` items of a ``kind`` (PARALLEL_MIN)."""
    if n_items < PARALLEL_MIN[kind]:
        return 1
    return max(1, min(int(n_items), numba.get_num_threads()))


def run_chunks(kind: str, n_items: int, kernel, *args, size: int | None = None, per_thread: int = 4) -> list:
    """Run ``kernel(*args, start, stop)`` over ``range(n_items)`` cut into contiguous chunks.

    One call over everything below ``PARALLEL_MIN[kind]`` items (``size`` items if given: the
    work measured in the table's unit when the loop runs over coarser tasks; or with one Numba thread: the
    count set by ``NUMBA_NUM_THREADS`` / ``numba.set_num_threads`` / :func:`single_threaded`);
    otherwise ``per_thread`` chunks per thread on a pool of that many Python threads (``kernel``
    must be ``@njit(nogil=True)``). Returns the kernel's return values in chunk order, so that
    partial sums are added in a fixed order: the result depends on the thread count only in
    the last bits of such sums, never on which thread ran which chunk.
    """
    threads = min(chunk_threads(kind, n_items if size is None else size), max(1, int(n_items)))
    if threads == 1:
        return [kernel(*args, 0, n_items)]
    nchunk = min(int(n_items), per_thread * threads)
    bounds = [(c * n_items // nchunk, (c + 1) * n_items // nchunk) for c in range(nchunk)]
    return list(_pool(threads).map(lambda b: kernel(*args, b[0], b[1]), bounds))
