"""Lecture 08 library code: dynamical staggered fermions, the Schwinger-model check, and Nagai-Tomiya's table.

``lectures/08_dynamical_fermions_slhmc.ipynb`` calls these functions and the figure maker registered
here draws its figures. Two studies:

* :func:`schwinger_study` -- the 2D Schwinger model (U(1) + staggered) on the 2 x 2 torus: pseudofermion
  HMC for ``det M`` (k = 1, even-odd) and ``det M^2`` (k = 2) against the exact values from direct
  numerical integration over the links (:func:`latticeml.fermions.exact_torus.schwinger_2x2`).
* :func:`table_study` -- the seed's table (Y. Nagai, A. Tomiya, arXiv:2103.11965; A. Tomiya's talk):
  SU(2), 4^4, beta = 2.7, one staggered field (N_f = 4, no rooting), m = 0.3, by HMC and by SLHMC
  (m_h = 0.4 and the 6-weight stout net in the molecular dynamics), with Gamma-method errors;
  acceptance of SLHMC before and after training.

Their normalisations (the issue): plaquette ``(1/(6 N_c V)) sum_P Re tr U_P`` (= ours),
Polyakov loop ``(1/V_s) sum_x tr prod_t U_t`` with the trace *not* divided by N_c (our
``polyakov_loop_trace``), condensate ``(1/V) Re tr M^-1`` summed over colour (= ours).
"""

from __future__ import annotations

import pathlib
import time

import numpy as np

from ..figures import register, save_figures
from ..fermions import StaggeredFermions
from ..fermions import selflearning as sl
from ..fermions.exact_torus import schwinger_2x2
from ..samplers import hmc
from ..samplers.chain import run_chain
from ..stats import gamma_method
from ..theories import make_theory

__all__ = ["PUBLISHED", "settings", "schwinger_study", "table_study", "lecture_figures", "run_lecture"]

SEED = 808

#: Nagai-Tomiya's table (value, error): HMC and SLHMC, and SLHMC's acceptance.
PUBLISHED = {
    "hmc": {"plaquette": (0.7025, 0.0001), "polyakov_loop_trace": (0.82, 0.01), "chiral_condensate": (0.4245, 0.0005)},
    "slhmc": {"plaquette": (0.7023, 0.0002), "polyakov_loop_trace": (0.83, 0.01), "chiral_condensate": (0.4241, 0.0005)},
    "slhmc_acceptance": 0.40,
}
OBSERVABLES = ("plaquette", "polyakov_loop_trace", "chiral_condensate")


def settings(fast: bool) -> dict:
    """Chain lengths: FAST for CI (seconds, a smoke test of the table's code on a 4 x 2^3 lattice), full for the table."""
    if fast:
        return dict(schwinger_n=300, schwinger_grid=8, table_shape=(4, 2, 2, 2), hmc_n=12, hmc_therm=2, train_n=6,
                    train_therm=1, accept_n=3, slhmc_n=12, slhmc_therm=1)
    return dict(schwinger_n=3000, schwinger_grid=12, table_shape=(4, 4, 4, 4), hmc_n=3000, hmc_therm=200, train_n=150,
                train_therm=30, accept_n=40, slhmc_n=900, slhmc_therm=10)


def _summary(records, keys) -> dict:
    return {k: gamma_method(records[k]) for k in keys}


def schwinger_study(*, fast: bool, beta: float = 1.0, mass: float = 0.5, seed: int = SEED) -> dict:
    """HMC of the 2x2 Schwinger model for k = 1, 2 against direct integration: ``{k: {"exact", "hmc", "acceptance"}}``."""
    s = settings(fast)
    rng = np.random.default_rng(seed)
    out = {}
    for k in (1, 2):
        exact = schwinger_2x2(beta, mass, k, n=s["schwinger_grid"])
        theory = StaggeredFermions(make_theory("u1", (2, 2), beta=beta), mass=mass, n_staggered=k)
        sampler = hmc.sampler(theory, step_size=0.25, n_steps=4, integrator="omelyan")
        res = run_chain(sampler, theory.hot_start(rng), rng, n_measure=s["schwinger_n"], n_therm=50, progress=False)
        out[k] = {"exact": exact, "hmc": _summary(res.records, ("plaquette", "chiral_condensate")),
                  "acceptance": float(res.acceptance.mean()), "records": res.records}
    return out


def table_study(*, fast: bool, seed: int = SEED, log=print) -> dict:
    """HMC and SLHMC at the table's point (module docstring): Gamma-method results, acceptances, the trained net."""
    s = settings(fast)
    rng = np.random.default_rng(seed)
    gauge = make_theory("su2", s["table_shape"], beta=2.7)
    target = StaggeredFermions(gauge, mass=0.3, n_staggered=1)
    t0 = time.perf_counter()
    sampler = hmc.sampler(target, step_size=0.2, n_steps=5, integrator="omelyan")
    res = run_chain(sampler, gauge.cold_start(), rng, n_measure=s["hmc_n"], n_therm=s["hmc_therm"], progress=False)
    out = {"hmc": _summary(res.records, OBSERVABLES), "hmc_acceptance": float(res.acceptance.mean()),
           "hmc_records": res.records, "cg_iterations": target.mean_cg_iterations}
    log(f"HMC: {s['hmc_n']} trajectories in {time.perf_counter() - t0:.0f} s")
    net = sl.make_net()
    train = sl.train_online(target, net, rng, gauge.cold_start(), md_mass=0.4, n_trajectories=s["train_n"],
                            n_therm=s["train_therm"], step_size=0.2, n_steps=5, lr=0.002)
    out.update(net=net, train_loss=train.loss, train_rho=train.rho)
    for label, model in (("untrained", sl.make_net()), ("trained", net)):
        r = run_chain(sl.slhmc_sampler(target, model, md_mass=0.4, step_size=0.2, n_steps=5), train.field, rng,
                      n_measure=s["accept_n"], n_therm=0, progress=False)
        out[f"acceptance_{label}"] = float(r.acceptance.mean())
    r = run_chain(sl.slhmc_sampler(target, net, md_mass=0.4, step_size=0.2, n_steps=5), train.field, rng,
                  n_measure=s["slhmc_n"], n_therm=s["slhmc_therm"], progress=False)
    out.update(slhmc=_summary(r.records, OBSERVABLES), slhmc_acceptance=float(r.acceptance.mean()), slhmc_records=r.records,
               seconds=time.perf_counter() - t0)
    log(f"training + SLHMC done after {out['seconds']:.0f} s")
    return out


def table_rows(table: dict) -> list[tuple]:
    """``(algorithm, observable, ours, our error, theirs, their error, combined sigmas)`` for the lecture's table."""
    rows = []
    for alg in ("hmc", "slhmc"):
        for k in OBSERVABLES:
            g = table[alg][k]
            v, e = PUBLISHED[alg][k]
            rows.append((alg, k, g.value, g.error, v, e, (g.value - v) / np.hypot(g.error, e)))
    return rows


def lecture_figures(*, schwinger: dict, table: dict) -> dict:
    """``{stem: Figure}``: the Schwinger check and the table (ours vs theirs) with the training curve."""
    import matplotlib.pyplot as plt

    fig1, ax = plt.subplots(1, 2, figsize=(7.5, 3.0))
    for i, key in enumerate(("plaquette", "chiral_condensate")):
        for k, marker in ((1, "o"), (2, "s")):
            g = schwinger[k]["hmc"][key]
            ax[i].errorbar([k], [g.value], yerr=[g.error], fmt=marker, label=f"HMC, det M^{k}")
            ax[i].plot([k - 0.3, k + 0.3], [schwinger[k]["exact"][key]] * 2, "k-", lw=1)
        ax[i].set_xticks([1, 2], ["k = 1", "k = 2"])
        ax[i].set_title(f"2x2 Schwinger: {key.replace('_', ' ')}", fontsize=9)
    ax[0].legend(fontsize=7)
    fig1.tight_layout()

    fig2, ax = plt.subplots(1, 4, figsize=(11, 2.8))
    for i, key in enumerate(OBSERVABLES):
        for j, alg in enumerate(("hmc", "slhmc")):
            g = table[alg][key]
            v, e = PUBLISHED[alg][key]
            ax[i].errorbar([j - 0.08], [g.value], yerr=[g.error], fmt="o", color="C0", label="latticeml" if j == 0 else None)
            ax[i].errorbar([j + 0.08], [v], yerr=[e], fmt="s", color="C3", label="Nagai-Tomiya" if j == 0 else None)
        ax[i].set_xticks([0, 1], ["HMC", "SLHMC"])
        ax[i].set_title(key.replace("_", " "), fontsize=9)
    ax[0].legend(fontsize=7)
    ax[3].semilogy(np.maximum(table["train_loss"], 1e-6), ".", ms=2)
    ax[3].set_title("training loss 1/2 (S_theta - S - c)^2", fontsize=9)
    ax[3].set_xlabel("trajectory")
    fig2.tight_layout()
    return {"fermions_schwinger": fig1, "fermions_table": fig2}


def run_lecture(*, fast: bool) -> dict:
    return {"schwinger": schwinger_study(fast=fast), "table": table_study(fast=fast, log=lambda *a: None)}


@register("fermions_slhmc", "Lecture 08: Schwinger model vs direct integration; Nagai-Tomiya's SU(2) staggered table, HMC and SLHMC")
def make(outdir, *, fast: bool = False) -> list[pathlib.Path]:
    r = run_lecture(fast=fast)
    return save_figures(lecture_figures(**r), outdir)
