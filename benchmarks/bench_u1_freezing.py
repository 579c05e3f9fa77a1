"""Benchmark of topological freezing in 2D U(1): tau_int(Q) and the cost per independent sample of Q.

At fixed physical volume, beta = L^2 / 64 on L x L tori (L = 8 ... 20, and 24, 32 where HMC and
the heatbath no longer tunnel at all), three samplers of latticeml run from a cold start:

  HMC                    unit trajectories, leapfrog, n_steps = ceil(sqrt(8 beta) V^(1/4) / 2)
  heatbath + 1 OR        one von Mises heatbath sweep + one overrelaxation sweep per step
  HMC + instanton move   the same HMC with one instanton Metropolis move after every trajectory
                         (latticeml.samplers.instanton; Albandea et al., EPJC 81 (2021) 873)

For each run: acceptance, number of changes of Q, tau_int(Q) and tau_int(plaquette) by the Gamma
method (Wolff 2004, S = 1.5), chi_t V = <Q^2> against the exact finite-volume value, time per step
(single-threaded, without measurements) and the cost of one independent sample of Q,
2 tau_int(Q) steps, in milliseconds and in force evaluations (HMC) or sweeps (heatbath + OR).
A run with fewer than 20 changes of Q is "frozen": its tau_int(Q) cannot be measured.
Finally the fits ln tau_int(Q) = a + b beta for HMC and the heatbath. The runs and the analysis
are those of latticeml/figure_makers/u1_topology.py (lecture 02); --figures DIR also writes the
lecture's figures from the same runs.

Run:  NUMBA_CACHE_DIR=.numba_cache .venv/bin/python benchmarks/bench_u1_freezing.py [--fast] [--figures DIR] [--jobs N]
(the full run takes ~6-8 minutes in one process on an idle core, ~2 minutes with --jobs 8 on an idle
8-core machine; --fast ~20 seconds.)
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numba
import numpy as np

from latticeml.figure_makers import u1_topology as study


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fast", action="store_true", help="short chains on L = 8, 16, 24 (seconds; not a measurement)")
    p.add_argument("--figures", metavar="DIR", help="also write the lecture 02 figures into DIR")
    p.add_argument("--seed", type=int, default=study.SEED, help=f"seed of the study (default {study.SEED})")
    p.add_argument("--jobs", type=int, default=1, help="run the independent chains in this many processes (same results; "
                   "keep it below the number of idle cores, or the per-step timings suffer)")
    args = p.parse_args(argv)

    print(f"# 2D U(1) freezing benchmark ({'FAST' if args.fast else 'full'}), {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, numba {numba.__version__}, each chain single-threaded, {args.jobs} job(s)")
    start = time.perf_counter()
    histories = study.freezing_study(fast=args.fast, seed=args.seed, jobs=args.jobs, log=lambda line: print("  ", line, flush=True))
    summaries = [study.summarise(h) for h in histories]
    print()
    print(study.format_table(summaries))
    for algorithm in ("hmc", "heatbath"):
        fit = study.exponential_fit(summaries, algorithm)
        if fit is not None:
            a, b = fit
            print(f"fit {study.LABELS[algorithm]:16s}: tau_int(Q) ~ {np.exp(a):.3g} exp({b:.2f} beta)"
                  f"  (x {np.exp(b):.2f} per unit of beta)")
    inst = [s for s in summaries if s.algorithm == "hmc+instanton"]
    print("instanton acceptance: " + ", ".join(f"L={s.L}: {s.instanton_acceptance:.2f}" for s in inst))
    # the gain where HMC still tunnels, at the largest such L
    live = [s for s in summaries if s.algorithm == "hmc" and not s.frozen]
    if live:
        hmc_top = max(live, key=lambda s: s.L)
        cure = next(s for s in inst if s.L == hmc_top.L)
        print(f"L={hmc_top.L}: tau_int(Q) HMC / HMC+instanton = {hmc_top.tau_Q / cure.tau_Q:.0f}, "
              f"cost ratio = {hmc_top.cost_ms / cure.cost_ms:.0f}")
    print(f"\nstudy: {time.perf_counter() - start:.0f} s")
    if args.figures:
        scan = study.exact_scan(fast=args.fast)
        for path in study.save_figures(study.lecture_figures(scan, histories), args.figures):
            print("wrote", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
