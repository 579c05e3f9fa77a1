"""Reference rates the benchmarks compare against, measured in the same run (imported by the bench_*.py scripts)."""

from __future__ import annotations

import time

import numpy as np


def best_time(fn, repeats: int) -> float:
    """Best of ``repeats`` timed calls, in seconds, after one warm-up call."""
    fn()
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def dgemm_gflops(repeats: int = 3) -> float:
    """GFLOP/s of a 2000 x 2000 float64 matmul through NumPy's BLAS (all its threads), best of ``repeats``."""
    a = np.random.default_rng(0).standard_normal((2000, 2000))
    b = a.T.copy()
    return 2 * 2000**3 / best_time(lambda: a @ b, repeats) / 1e9
