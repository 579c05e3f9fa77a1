"""Cost per independent sample in 2D U(1) on 16^2: HMC vs heatbath + overrelaxation at beta = 2, 4, 6.

For each algorithm and beta one chain (cold start, fixed seed) is analysed with the Gamma method
(Wolff 2004, S = 1.5); the cost of one independent sample of an observable is
``seconds per step x 2 tau_int`` (in steps). HMC: unit trajectories, leapfrog, the step count of
lecture 02 (``u1_topology.hmc_n_steps``); heatbath: one von Mises heatbath sweep + one
overrelaxation sweep per step. Chains run single-threaded (a 16^2 lattice is below the
parallel crossover). Where Q changes fewer than 20 times the chain is "frozen" and tau_int(Q)
is not measurable (a lower bound, the chain length, is printed instead).

Run:  NUMBA_CACHE_DIR=.numba_cache .venv/bin/python benchmarks/bench_u1_cost.py [--n 20000]
"""

from __future__ import annotations

import argparse
import os
import platform

import numba
import numpy as np

from latticeml.figure_makers import u1_topology as study
from latticeml.stats import gamma_method


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000, help="measured steps per chain (default 20000)")
    p.add_argument("--L", type=int, default=16)
    args = p.parse_args(argv)
    print(f"# 2D U(1) {args.L}^2, {args.n} steps per chain; {platform.machine()}, {os.cpu_count()} CPUs, numba {numba.__version__}")
    print(f"| beta | algorithm | ms/step | tau_int(plaq) | cost/indep. plaq [ms] | tau_int(Q) | cost/indep. Q [ms] | Q changes |")
    print("|---|---|---|---|---|---|---|---|")
    for beta in (2.0, 4.0, 6.0):
        for algorithm in ("hmc", "heatbath"):
            h = study.run_history(algorithm, args.L, beta, n=args.n, n_therm=500, seed=11, measure=study.measure_topology)
            ms = 1e3 * h.seconds_per_step
            gp = gamma_method(h.records["plaquette"])
            Q = h.records["Q"]
            changes = int(np.count_nonzero(np.diff(Q)))
            if changes >= study.MIN_CHARGE_CHANGES:
                gq = gamma_method(Q)
                tq = f"{gq.tau_int:.3g} +- {gq.tau_int_error:.2g}"
                cq = f"{2 * gq.tau_int * ms:.3g}"
            else:
                tq, cq = f"> {args.n} (frozen)", f"> {2 * args.n * ms:.3g}"
            print(f"| {beta:g} | {study.LABELS[algorithm]} | {ms:.3f} | {gp.tau_int:.3g} +- {gp.tau_int_error:.2g} | "
                  f"{2 * gp.tau_int * ms:.3g} | {tq} | {cq} | {changes} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
