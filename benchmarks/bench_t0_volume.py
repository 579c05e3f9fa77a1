"""t0/a^2 of SU(3) at beta = 5.96 (Wilson action) against Luscher's 2.7854(62) on 16^4, on several volumes.

M. Luscher, JHEP 08 (2010) 071 [arXiv:1006.4518], table 1. The ensembles are those of lecture 04
(:func:`latticeml.figure_makers.smearing.flow_ensemble`): heatbath + overrelaxation from a hot start,
every ``--sweeps-between``-th configuration flowed with RK3 (step ``--flow-step``) to just past t0;
t0 from the ensemble mean of E(t) (clover definition, as Luscher's) with Gamma-method errors.

    NUMBA_NUM_THREADS=1 python benchmarks/bench_t0_volume.py --L 8 12 --n-configs 16 --json out.json

prints one row per volume: t0 (clover, plaquette), its error and tau_int, the relative difference
to Luscher and the distance in combined sigmas, sqrt(8 t0)/L, and the wall time; then t^2 <E(t)>
(clover) at a few fixed flow times and how many configurations reach t^2 E = 0.3 at all (in a box
not much wider than sqrt(8 t0), most do not: the flow drives the field towards a flat connection).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from latticeml.figure_makers import smearing as lec
from latticeml.stats import gamma_method


#: flow times at which t^2 <E_clover(t)> is compared between volumes (t0 itself may not exist in a small box)
T_COMPARE = (1.0, 2.0, 2.8)


def run(L: int, *, n_therm: int, n_configs: int, sweeps_between: int, overrelax: int, flow_step: float, t_max: float,
        seed: int) -> dict:
    rng = np.random.default_rng([seed, L])
    clock = time.perf_counter()
    U, plaquette = lec.thermalised_field(N=3, shape=(L,) * 4, beta=5.96, overrelax=overrelax, start="hot",
                                        n_therm=n_therm, rng=rng)
    ens = lec.flow_ensemble(U, rng, beta=5.96, overrelax=overrelax, n_configs=n_configs, sweeps_between=sweeps_between,
                            flow_step=flow_step, t_max=t_max)
    table = lec.t0_table(ens)
    row = {"L": L, "n_therm": n_therm, "n_configs": n_configs, "sweeps_between": sweeps_between, "flow_step": flow_step,
           "seconds": time.perf_counter() - clock, "plaquette": [table["plaquette_unflowed"].value, table["plaquette_unflowed"].error],
           "t0_per_config_clover": ens.t0_per_config["clover"].tolist(), "therm_plaquette": plaquette.tolist(),
           "crossed": int(np.sum(np.isfinite(ens.t0_per_config["clover"])))}
    for t in T_COMPARE:  # t^2 <E_clover(t)> where every configuration was flowed that far
        k = np.flatnonzero(np.isclose(ens.t, t))
        if k.size:
            g = gamma_method(t**2 * ens.energy["clover"][:, k[0]])
            row[f"t2E({t})"] = [g.value, g.error]
    for name in ("clover", "plaquette"):
        g = table[name]
        row[name] = None if g is None else {"value": g.value, "error": g.error, "tau_int": g.tau_int, **lec.compare_luscher(g)}
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--L", type=int, nargs="+", default=[8, 12])
    ap.add_argument("--n-therm", type=int, default=60)
    ap.add_argument("--n-configs", type=int, default=16)
    ap.add_argument("--sweeps-between", type=int, default=5)
    ap.add_argument("--overrelax", type=int, default=4)
    ap.add_argument("--flow-step", type=float, default=0.1)
    ap.add_argument("--t-max", type=float, default=4.5, help="flow no further than this (a flow also stops just past t0)")
    ap.add_argument("--seed", type=int, default=lec.SEED)
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    rows = []
    print("L   configs  t0 clover        tau_int  vs Luscher        t0 plaquette   sqrt(8 t0)/L  seconds", flush=True)
    for L in args.L:
        row = run(L, n_therm=args.n_therm, n_configs=args.n_configs, sweeps_between=args.sweeps_between,
                  overrelax=args.overrelax, flow_step=args.flow_step, t_max=args.t_max, seed=args.seed)
        rows.append(row)
        c, p = row["clover"], row["plaquette"]
        cl = "not reached" if c is None else f"{c['value']:.4f}({1e4 * c['error']:.0f})  {c['tau_int']:5.2f}   {100 * c['relative']:+5.1f}% {c['n_sigma']:4.1f} sigma"
        pl = "-" if p is None else f"{p['value']:.4f}({1e4 * p['error']:.0f})"
        ratio = "-" if c is None else f"{np.sqrt(8 * c['value']) / L:.2f}"
        print(f"{L:<3d} {row['n_configs']:7d}  {cl}  {pl}  {ratio}  {row['seconds']:.0f}", flush=True)
        print("    " + "  ".join(f"t^2<E>({t}) = {row[f't2E({t})'][0]:.4f}({1e4 * row[f't2E({t})'][1]:.0f})"
                                 for t in T_COMPARE if f"t2E({t})" in row)
              + f"; {row['crossed']} of {row['n_configs']} configurations reach t^2 E = 0.3", flush=True)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(rows, fh, indent=1)
    return rows


if __name__ == "__main__":
    main()
