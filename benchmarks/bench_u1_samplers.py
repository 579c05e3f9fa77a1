"""2D U(1) topology on one cost axis: HMC, HMC + instanton move, L2HMC and flow-MCMC (issue 15).

Every sampler that lecture 02, 06 and 07 use to move the topological charge, on the same lattice and
coupling, measured the same way on one core in one run:

* ``ms/step``: wall-clock milliseconds of one Markov step of one chain (a trajectory, a trajectory
  plus an instanton proposal, an L2HMC trajectory *including its network evaluations*, one flow
  proposal including the flow's forward pass); batched samplers (L2HMC, flow-MCMC) are timed per
  batch and divided by the batch;
* ``tau_int(Q)``: Gamma method (U. Wolff, Comput. Phys. Commun. 156 (2004) 143) on the geometric
  integer charge, in steps; for batched chains the mean over the chains in which Q moved;
* ``ms per independent Q`` = ``2 tau_int(Q) ms/step``; for the trained samplers also with the
  training time spread over ``--amortise`` independent samples (the price of a model that is used
  once);
* the integer-charge changes per 1000 steps and chi_t against the exact finite-volume value
  (:func:`latticeml.exact.u1_2d_topological_susceptibility`): every sampler must be right first.

Force evaluations are the cost unit of the L2HMC papers (Foreman, Jin, Osborn, arXiv:2105.03418) and
of ``bench_l2hmc.py u1``; they leave out the networks of L2HMC and do not apply to the instanton move
(one action difference) or to flows (no force at all). Wall-clock time on one core is the axis on
which all four can stand.

Samplers (HMC and HMC + instanton always; L2HMC and flow-MCMC when their models are given):
  hmc            the library's Numba HMC (:func:`latticeml.samplers.build_sampler`), ``--hmc N,EPS``
                 (repeatable; default the best setting of the L2HMC benchmark, 4 x 0.15, and lecture
                 02's unit trajectory);
  hmc+instanton  lecture 02's HMC with an instanton proposal every trajectory
                 (:func:`latticeml.figure_makers.u1_topology.make_sampler`);
  l2hmc          a model of ``latticeml l2hmc train u1`` (``--l2hmc MODEL.npz``), ``--chains`` chains;
  flow           a model of ``latticeml flow train u1`` (``--flow MODEL.npz``), one chain of
                 ``--flow-n`` proposals in batches of 1024.

Run (the table in benchmarks/RESULTS.md):
  NUMBA_NUM_THREADS=1 NUMBA_CACHE_DIR=.numba_cache .venv/bin/python benchmarks/bench_u1_samplers.py \\
      --shape 16,16 --beta 4 --l2hmc u1_b4.npz --flow flow_b4_6000.npz \\
      --train-minutes l2hmc=70,flow=31 --n 20000 --hmc-chains 4 --l2hmc-n 2000 --flow-n 100000
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from latticeml import exact
from latticeml._threads import single_threaded
from latticeml.figure_makers import u1_topology
from latticeml.figure_makers.l2hmc import integer_charge, run_chains
from latticeml.flows import flow_mcmc, load_flow
from latticeml.observables import topology
from latticeml.samplers import build_sampler
from latticeml.samplers import l2hmc as L
from latticeml.stats import gamma_method
from latticeml.theories import make_theory


def summary(name, Q, seconds_per_step, acceptance, V, beta):
    """One row: Q ``(n,)`` or ``(n, chains)`` of integer charges; tau_int(Q) is the mean over the chains
    in which Q changed at least 20 times."""
    Q = np.asarray(Q, dtype=np.float64)
    Q2 = Q if Q.ndim == 2 else Q[:, None]
    taus = [gamma_method(Q2[:, c]).tau_int for c in range(Q2.shape[1]) if np.count_nonzero(np.diff(Q2[:, c])) >= 20]
    tau = float(np.mean(taus)) if taus else float("nan")
    tau_err = float(np.std(taus) / np.sqrt(len(taus))) if len(taus) > 1 else (gamma_method(Q2[:, 0]).tau_int_error if taus else float("nan"))
    chi = gamma_method(np.mean(Q2**2, axis=1) / V)
    return {"sampler": name, "acceptance": acceptance, "ms": 1e3 * seconds_per_step, "tau": tau, "tau_err": tau_err,
            "changes": 1000.0 * np.count_nonzero(np.diff(Q2, axis=0)) / ((Q2.shape[0] - 1) * Q2.shape[1]),
            "chi": chi.value, "chi_err": chi.error, "chi_exact": float(exact.u1_2d_topological_susceptibility(beta, V)),
            "cost_ms": 2 * tau * 1e3 * seconds_per_step}


def run_library_sampler(sampler, theory, n, n_therm, chains, seed):
    """``chains`` independent chains of the library's sampler from cold starts: Q ``(n, chains)``,
    seconds per step (the measured steps are the timed ones, the charge measurement outside the
    clock), acceptance."""
    Q, acc, seconds = np.empty((n, chains)), np.empty((n, chains)), 0.0
    for c in range(chains):
        rng = np.random.default_rng([seed, c])
        state = sampler.init(theory.cold_start())
        for _ in range(n_therm):
            state, _ = sampler.step(rng, state)
        for i in range(n):
            start = time.perf_counter()
            state, info = sampler.step(rng, state)
            seconds += time.perf_counter() - start
            acc[i, c] = info.acceptance
            Q[i, c] = np.rint(topology.topological_charge_u1(state.field))
    return Q, seconds / (n * chains), float(np.mean(acc))


def run_l2hmc(path, beta, chains, n, n_therm, seed):
    """The L2HMC model's chains from hot starts (lecture 07's :func:`run_chains`, which times the steps):
    Q ``(n, chains)``, seconds per chain and step (networks included), acceptance, layers."""
    dyn, _, _ = L.load_model(path)
    target = L.U1Target(tuple(dyn.event_shape[1:]), beta)
    rng = np.random.default_rng(seed)
    state = L.init_state(target, rng.uniform(-np.pi, np.pi, (chains,) + target.event_shape))
    Q, acc, seconds = run_chains(lambda r, s: L.l2hmc_step(r, s, dyn, target), state, rng, n_therm=n_therm, n=n,
                                 record=integer_charge)
    return Q, seconds / chains, acc, dyn.n_layers


def run_flow(path, shape, beta, n, seed):
    flow = load_flow(path)
    if tuple(flow.shape) != tuple(shape):
        raise SystemExit(f"bench_u1_samplers: error: the flow {path} was trained for {tuple(flow.shape)}, not {tuple(shape)}")
    theory = make_theory("u1", flow.shape, beta=beta)
    start = time.perf_counter()
    chain = flow_mcmc(flow, theory, np.random.default_rng(seed), n_steps=n, batch_size=min(n, 1024), keep_fields=False)
    seconds = (time.perf_counter() - start) / n
    return np.rint(chain.records["topological_charge"]), seconds, chain.acceptance


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="16,16")
    p.add_argument("--beta", type=float, default=4.0)
    p.add_argument("--hmc", action="append", help="N,EPS: leapfrog steps and step size (repeatable)")
    p.add_argument("--l2hmc", help="L2HMC model (latticeml l2hmc train u1)")
    p.add_argument("--flow", help="flow model (latticeml flow train u1)")
    p.add_argument("--n", type=int, default=20000, help="measured steps of each HMC chain")
    p.add_argument("--hmc-chains", type=int, default=4, help="independent chains per HMC setting")
    p.add_argument("--therm", type=int, default=500)
    p.add_argument("--chains", type=int, default=32, help="L2HMC chains (one batch)")
    p.add_argument("--l2hmc-n", type=int, default=2000, help="measured L2HMC trajectories per chain")
    p.add_argument("--flow-n", type=int, default=100000, help="flow-MCMC proposals")
    p.add_argument("--train-minutes", default="", help="e.g. l2hmc=70,flow=7: training time to amortise")
    p.add_argument("--amortise", type=int, default=1000, help="independent Q samples the training is spread over")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    for model in (a.l2hmc, a.flow):
        if model and not os.path.isfile(model):
            p.error(f"no such model file: {model}")
    shape = tuple(int(s) for s in a.shape.split(","))
    V = int(np.prod(shape))
    unit = u1_topology.hmc_n_steps(shape[0], a.beta)  # lecture 02's unit trajectory
    settings = [tuple(float(x) for x in s.split(",")) for s in (a.hmc or ["4,0.15", f"{unit},{1.0 / unit}"])]
    train = {k: float(v) for k, v in (kv.split("=") for kv in a.train_minutes.split(",") if kv)}
    theory = make_theory("u1", shape, beta=a.beta)
    rows = []
    with single_threaded():
        for n_steps, eps in settings:
            s = build_sampler(theory, "hmc", trajectory_length=n_steps * eps, n_steps=int(n_steps))
            Q, sec, acc = run_library_sampler(s, theory, a.n, a.therm, a.hmc_chains, a.seed)
            rows.append(summary(f"HMC {int(n_steps)} x {eps:.3g}", Q, sec, acc, V, a.beta) | {"force": n_steps})
        s = u1_topology.make_sampler(theory, "hmc+instanton")
        Q, sec, acc = run_library_sampler(s, theory, a.n, a.therm, a.hmc_chains, a.seed + 1)
        rows.append(summary(f"HMC {s.settings['n_steps']} x {1 / s.settings['n_steps']:.3g} + instanton", Q, sec, acc, V, a.beta)
                    | {"force": s.settings["n_steps"]})
        if a.l2hmc:
            Q, sec, acc, n_layers = run_l2hmc(a.l2hmc, a.beta, a.chains, a.l2hmc_n, a.therm, a.seed + 2)
            rows.append(summary(f"L2HMC ({n_layers} layers)", Q, sec, acc, V, a.beta) | {"force": n_layers, "train": train.get("l2hmc")})
        if a.flow:
            Q, sec, acc = run_flow(a.flow, shape, a.beta, a.flow_n, a.seed + 3)
            rows.append(summary("flow-MCMC", Q, sec, acc, V, a.beta) | {"force": 0, "train": train.get("flow")})
    print(f"2D U(1) {a.shape}, beta = {a.beta}: one core, seed {a.seed}; exact chi_t = {rows[0]['chi_exact']:.5f}")
    print("| sampler | acceptance | ms/step | force ev./step | Q changes / 1000 steps | tau_int(Q) (steps) "
          f"| ms per independent Q | with training over {a.amortise} samples | chi_t |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        with_train = r["cost_ms"] + 60e3 * r["train"] / a.amortise if r.get("train") else float("nan")
        # a chain whose Q moved fewer than 20 times has no tau_int: say "frozen", not a number
        tau, cost = ((f"{r['tau']:.1f}({r['tau_err']:.1f})", f"{r['cost_ms']:.1f}") if np.isfinite(r["tau"]) else ("frozen", "-"))
        print(f"| {r['sampler']} | {r['acceptance']:.4f} | {r['ms']:.3f} | {r['force']:g} | {r['changes']:.1f} "
              f"| {tau} | {cost} | {'-' if np.isnan(with_train) else f'{with_train:.0f}'} | {r['chi']:.5f}({r['chi_err']:.5f}) |")


if __name__ == "__main__":
    main()
