"""Lattice field theories: fields, actions, forces and staples.

* :mod:`~latticeml.theories.phi4` -- real scalar phi^4 (Albergo-Kanwar-Shanahan form, standard and hopping forms)
* :mod:`~latticeml.theories.u1`   -- compact U(1) gauge theory, Wilson action, any D >= 2
* :mod:`~latticeml.theories.sun`  -- SU(N) gauge theory, Wilson action, any D >= 2

Each module works on plain NumPy arrays (layouts in :mod:`latticeml.lattice`) and exposes the
per-site Numba helpers that local update algorithms need (``local_delta_action``, ``staple_at``,
``staple_into``).
"""

import contextlib

import numba


# Defined before the submodules are imported, which use it.
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


def _n_chunks(total: int) -> int:
    """How many chunks to cut ``total`` sites into: a few per thread (each chunk allocates its work
    arrays once). Computed in Python: calling get_num_threads inside a kernel stops Numba caching it."""
    return max(1, min(int(total), 4 * numba.get_num_threads()))


from . import phi4, sun, u1  # noqa: E402

__all__ = ["phi4", "u1", "sun"]
