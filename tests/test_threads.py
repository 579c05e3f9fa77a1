"""latticeml._threads: the one-thread fallback below PARALLEL_MIN, thread-count restore, chunking.

Results never depend on the thread count (the kernels' own tests check that, e.g.
tests/test_smearing.py::test_parallel_and_serial_kernels_agree); here: the dispatch itself. Which
thread count a region ran with is read with ``numba.get_num_threads()`` inside the ``with``.
"""

import threading

import numba
import pytest

from latticeml._threads import PARALLEL_MIN, n_chunks, parallel_threads, single_threaded


@pytest.fixture
def two_threads():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs Numba with at least 2 threads")
    before = numba.get_num_threads()
    numba.set_num_threads(2)
    yield
    numba.set_num_threads(before)


def test_every_threshold_is_a_positive_int():
    assert {"phi4", "u1", "sun", "local_phi4", "local_u1", "local_sun", "matrices", "smearing"} <= set(PARALLEL_MIN)
    assert all(isinstance(v, int) and v > 0 for v in PARALLEL_MIN.values())


def test_parallel_threads_drops_to_one_thread_below_the_threshold_and_restores(two_threads):
    limit = PARALLEL_MIN["sun"]
    with parallel_threads("sun", limit - 1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == 2
    with parallel_threads("sun", limit):  # at the threshold: all threads
        assert numba.get_num_threads() == 2
    with pytest.raises(RuntimeError):  # restored on an exception too
        with parallel_threads("sun", 1):
            raise RuntimeError
    assert numba.get_num_threads() == 2
    with pytest.raises(KeyError):
        with parallel_threads("no_such_family", 10):
            pass


def test_single_threaded_is_thread_local_and_restores(two_threads):
    seen = {}

    def other():
        seen["other"] = numba.get_num_threads()

    with single_threaded():
        assert numba.get_num_threads() == 1
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert numba.get_num_threads() == 2
    assert seen["other"] >= 1  # another Python thread keeps its own setting (Numba's default there)


def test_n_chunks(two_threads):
    assert n_chunks(1000) == 8 and n_chunks(1000, per_thread=3) == 6
    assert n_chunks(5) == 5 and n_chunks(0) == 1
    with single_threaded():
        assert n_chunks(1000) == 4


def test_run_chunks_covers_the_range_once_in_order(two_threads):
    from latticeml._threads import run_chunks

    n = PARALLEL_MIN["sun"] + 13
    seen = []

    def kernel(scale, start, stop):
        seen.append((start, stop))
        return scale * sum(range(start, stop))

    parts = run_chunks("sun", n, kernel, 2)
    bounds = sorted(seen)
    assert len(parts) == 8 == len(bounds)  # 4 chunks per thread, 2 threads
    assert bounds[0][0] == 0 and bounds[-1][1] == n and all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert sum(parts) == 2 * n * (n - 1) // 2
    seen.clear()
    assert run_chunks("sun", PARALLEL_MIN["sun"] - 1, kernel, 1) == [sum(range(PARALLEL_MIN["sun"] - 1))]
    assert seen == [(0, PARALLEL_MIN["sun"] - 1)]  # below the threshold: one call over everything
    seen.clear()
    with single_threaded():
        run_chunks("sun", n, kernel, 1)
    assert seen == [(0, n)]


def test_run_chunks_with_a_nogil_kernel_matches_the_serial_sum(two_threads):
    import numpy as np

    from latticeml._threads import run_chunks

    @numba.njit(nogil=True)
    def partial_sum(x, start, stop):
        s = 0.0
        for i in range(start, stop):
            s += x[i]
        return s

    x = np.random.default_rng(0).normal(size=PARALLEL_MIN["sun"] * 3)
    assert abs(sum(run_chunks("sun", x.size, partial_sum, x)) - x.sum()) < 1e-9
