"""Where a second thread starts to pay: 1 against 2 threads for each kind of ``latticeml._threads.PARALLEL_MIN``.

For every kernel family (kind) in the table this times a representative kernel over a range of
lattice sizes, once on one thread and once on two with the threshold switched off (so the kernel
runs its parallel region however small the work), and prints, per size, the work items the
kernel's ``prange`` runs over (what ``PARALLEL_MIN`` counts), both times and their ratio, then the
crossover: the first size from which two threads win by more than 10 % at every larger size,
beside the threshold in the table.

| kind       | representative kernel                           | items                    |
|------------|-------------------------------------------------|--------------------------|
| phi4       | phi^4 force, 2D                                 | sites                    |
| u1         | U(1) Wilson force, 2D                           | sites                    |
| sun        | SU(3) Wilson force, 4D                          | sites                    |
| local_phi4 | phi^4 Metropolis sweep (1 hit), 2D              | sites of one colour      |
| local_u1   | U(1) Metropolis sweep (1 hit), 2D               | sites of one colour      |
| local_sun  | SU(3) Metropolis sweep (1 hit), 4D              | sites of one colour      |
| matrices   | SU(3) unitarity check of the links, 4D          | matrices (D V)           |
| smearing   | one stout step of SU(3) links, 4D               | links (D V)              |

(The heatbath sweeps draw their random numbers inside one serial kernel, so the thread count does
not matter to them; Metropolis and overrelaxation are the parallel local updates.)

Each time is the median of ``--rounds`` rounds, each the best of the calls in a short window,
with the 1- and 2-thread measurements interleaved round by round (a shared machine's speed
drifts within minutes; interleaving lets both see the same drift). On a machine where other jobs
compete for the cores the second thread is worth less than on an idle one, and the crossover moves
up: say what else was running beside the numbers.

Usage::

    python benchmarks/bench_threads.py                 # every kind
    python benchmarks/bench_threads.py --only sun u1   # some kinds
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numba
import numpy as np

from latticeml import _threads, groups
from latticeml.theories import make_theory


def _window_best(fn, window: float) -> float:
    """Best time of the calls of fn in about ``window`` seconds (at least 3 calls)."""
    best, n, t_end = float("inf"), 0, time.perf_counter() + window
    while n < 3 or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        n += 1
    return best


# ----------------------------------------------------------------------------- the kernels


def _theory_force(name, couplings, shape):
    theory = make_theory(name, shape, **couplings)
    field = theory.hot_start(np.random.default_rng(1))
    return lambda: theory.force(field)


def _local(name, couplings, shape, algorithm):
    theory = make_theory(name, shape, **couplings)
    field = np.ascontiguousarray(theory.hot_start(np.random.default_rng(1)))
    rng = np.random.default_rng(2)
    if algorithm == "metropolis":
        return lambda: theory.metropolis_sweep(rng, field, step_size=0.5, hits=1)
    return lambda: theory.heatbath_sweep(rng, field)


def _unitarity(shape):
    U = groups.haar_su(np.random.default_rng(1), 3, (len(shape),) + shape)
    return lambda: groups.check_special_unitary(U)


def _stout(shape):
    from latticeml.smearing import stout

    U = groups.haar_su(np.random.default_rng(1), 3, (len(shape),) + shape)
    return lambda: stout(U, rho=0.1)


def _square(L):
    return (L, L)


def _hyper(L):
    return (L, L, L, L)


#: kind -> (lattice shapes, items of a shape, kernel builder)
KINDS = {
    "phi4": ([_square(L) for L in (8, 16, 24, 32, 48, 64, 128)], lambda s: int(np.prod(s)),
             lambda s: _theory_force("phi4", {"m2": -4.0, "lam": 8.0}, s)),
    "u1": ([_square(L) for L in (8, 16, 24, 32, 48, 64, 128)], lambda s: int(np.prod(s)),
           lambda s: _theory_force("u1", {"beta": 2.0}, s)),
    "sun": ([_hyper(L) for L in (2, 3, 4, 6, 8)] + [(2, 2, 2, 4), (2, 2, 4, 4)], lambda s: int(np.prod(s)),
            lambda s: _theory_force("su3", {"beta": 5.7}, s)),
    "local_phi4": ([_square(L) for L in (16, 32, 48, 64, 96, 128)], lambda s: int(np.prod(s)) // 2,
                   lambda s: _local("phi4", {"m2": -4.0, "lam": 8.0}, s, "metropolis")),
    "local_u1": ([_square(L) for L in (16, 32, 48, 64, 96, 128)], lambda s: int(np.prod(s)) // 2,
                 lambda s: _local("u1", {"beta": 2.0}, s, "metropolis")),
    "local_sun": ([_hyper(L) for L in (2, 4, 6, 8)] + [(2, 2, 4, 4), (4, 4, 4, 2)], lambda s: int(np.prod(s)) // 2,
                  lambda s: _local("su3", {"beta": 5.7}, s, "metropolis")),
    "matrices": ([_hyper(L) for L in (2, 3, 4, 6, 8)] + [(2, 2, 2, 4), (2, 2, 4, 4)], lambda s: 4 * int(np.prod(s)),
                 _unitarity),
    "smearing": ([_hyper(L) for L in (2, 3, 4, 6, 8)], lambda s: 4 * int(np.prod(s)), _stout),
}


def measure(kind: str, rounds: int, window: float):
    shapes, items, build = KINDS[kind]
    shapes = sorted(shapes, key=items)
    saved = dict(_threads.PARALLEL_MIN)
    rows = []
    try:
        _threads.PARALLEL_MIN.update({k: 0 for k in saved})  # parallel regions at any size
        for shape in shapes:
            fn = build(shape)
            t1, t2 = [], []
            for _ in range(rounds):
                numba.set_num_threads(1)
                t1.append(_window_best(fn, window))
                numba.set_num_threads(2)
                t2.append(_window_best(fn, window))
            rows.append((shape, items(shape), statistics.median(t1), statistics.median(t2)))
    finally:
        _threads.PARALLEL_MIN.update(saved)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    return rows


def crossover(rows, gain: float = 1.10):
    """Items of the first size from which 2 threads beat 1 by more than ``gain`` at every larger size."""
    wins = [t1 / t2 > gain for _, _, t1, t2 in rows]
    for i in range(len(rows)):
        if all(wins[i:]):
            return rows[i][1]
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", choices=sorted(KINDS), help="kinds to measure (default: all)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds per size (default 5)")
    ap.add_argument("--window", type=float, default=0.2, help="seconds per timing window (default 0.2)")
    args = ap.parse_args(argv)
    if numba.config.NUMBA_NUM_THREADS < 2:
        print("needs at least 2 Numba threads")
        return 1
    kinds = args.only or list(_threads.PARALLEL_MIN)
    missing = [k for k in _threads.PARALLEL_MIN if k not in KINDS]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; numba {numba.__version__}; "
          f"load average {os.getloadavg()[0]:.1f} at start; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if missing:
        print(f"(no representative kernel here for {', '.join(missing)}: add one to KINDS)")
    summary = []
    for kind in kinds:
        if kind not in KINDS:
            continue
        # compile first (both thread counts use the same compiled kernel)
        KINDS[kind][2](KINDS[kind][0][0])()
        rows = measure(kind, args.rounds, args.window)
        print(f"\n{kind}: 1 thread vs 2 threads (median of {args.rounds} interleaved rounds)")
        print("| shape | items | 1 thread ms | 2 threads ms | 1 / 2 |")
        print("|---|---|---|---|---|")
        for shape, n, t1, t2 in rows:
            print(f"| {'x'.join(map(str, shape))} | {n} | {1e3 * t1:.4f} | {1e3 * t2:.4f} | {t1 / t2:.2f} |")
        c = crossover(rows)
        summary.append((kind, _threads.PARALLEL_MIN[kind], c, rows[0][1], rows[-1][1]))
        print(f"crossover (2 threads > 10 % faster from here on): {c if c is not None else 'not reached'} items; "
              f"PARALLEL_MIN[{kind!r}] = {_threads.PARALLEL_MIN[kind]}", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.1f} at end\n")
    print("| kind | PARALLEL_MIN | measured crossover (items) | sizes tried (items) |")
    print("|---|---|---|---|")
    for kind, table, c, lo, hi in summary:
        print(f"| {kind} | {table} | {c if c is not None else 'not reached'} | {lo} .. {hi} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
