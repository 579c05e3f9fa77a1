"""Lecture 04, "smearing and gauge-covariant nets": computations and figures, shared by the notebook
``lectures/04_smearing_covariant_nets.ipynb`` and the figure maker registered here.

1. Smoothing with gauge symmetry: APE (Albanese et al., PLB 192 (1987) 163) and stout
   (Morningstar & Peardon, PRD 69 (2004) 054501) steps raise the plaquette of a thermalised field.
2. The Wilson flow (Luscher, JHEP 08 (2010) 071) as the continuous-depth limit of stout smearing:
   Luscher's RK3 integrator converges with the third power of the step, E(t) with the plaquette
   and clover definitions, t^2 E(t) and the scale t0 (<t0^2 E(t0)> = 0.3) on an ensemble from a
   heatbath + overrelaxation chain, with Gamma-method errors (t0 as a derived quantity of the
   primaries E(t_k), :func:`t0_estimate`).
3. Self-learning HMC (Nagai & Tomiya, arXiv:2103.11965): a covariant net (trainable stout) is
   trained on configurations of a plaquette + rectangle (Luscher-Weisz) target, its action drives
   the molecular dynamics, the Metropolis test uses the target; acceptance before and after training,
   and the SLHMC observables against plain HMC.

Full mode: SU(3) at beta = 5.96 for sections 1-2, 12 configurations of 16^4, the lattice of Luscher's
table 1 (t0/a^2 = 2.7854(62)): sqrt(8 t0) = 4.7, so L = 16 is 3.4 smoothing radii (on 8^4, 1.7: most
configurations never reach t^2 E = 0.3; see ``benchmarks/bench_t0_volume.py``). SU(2) on 4^4 for section 3.
Fast mode (CI, ``fast=True``): SU(2) on 4^4 throughout, short chains (t0 is not reached there).
"""

from __future__ import annotations

import pathlib
import time
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from .. import smearing
from ..figures import register, save_figures
from ..groups import random_near_identity
from ..nets.covariant import CovariantNet, TrainingLog, train_to_mimic
from ..observables import loops
from ..samplers import build_sampler
from ..samplers import chain, hmc, slhmc
from ..stats import gamma_method
from ..theories import make_theory, sun
from ..theories.improved import ImprovedSUN, SmearedSUN

__all__ = [
    "SEED",
    "LUSCHER_T0_BETA596",
    "T0_REFERENCE",
    "settings",
    "thermalised_field",
    "smoothing_curves",
    "flow_to_t0",
    "FlowEnsemble",
    "flow_ensemble",
    "t0_estimate",
    "t0_table",
    "compare_luscher",
    "rk3_convergence",
    "SLHMCStudy",
    "slhmc_study",
    "compare",
    "fitted_order",
    "figure_smoothing",
    "figure_flow",
    "figure_rk3",
    "figure_training",
    "figure_slhmc",
    "lecture_figures",
    "save_figures",
    "run_lecture",
    "make",
]

SEED = 2103
#: t0/a^2 at beta = 5.96 (SU(3), Wilson action, 16^4), Luscher, JHEP 08 (2010) 071, table 1.
LUSCHER_T0_BETA596 = (2.7854, 0.0062)
#: Luscher's definition of t0: t0^2 <E(t0)> = 0.3.
T0_REFERENCE = 0.3


def settings(fast: bool) -> dict:
    """Lattices, couplings and run lengths of the lecture (``fast``: the CI version)."""
    # sweeps: one heatbath + `overrelax` overrelaxation sweeps; every `sweeps_between`-th configuration is flowed
    if fast:
        flow = dict(N=2, shape=(4, 4, 4, 4), beta=2.3, overrelax=2, start="hot", n_therm=10, n_configs=8,
                    sweeps_between=1, flow_step=0.05, t_max=1.0)
        mc = dict(n_ref=60, n_therm=10, n_train_every=3, epochs=2, batch_size=5, lr=0.005, n_before=6, n_slhmc=40)
    else:
        flow = dict(N=3, shape=(16, 16, 16, 16), beta=5.96, overrelax=4, start="hot", n_therm=60, n_configs=12,
                    sweeps_between=5, flow_step=0.1, t_max=4.5)
        mc = dict(n_ref=2000, n_therm=100, n_train_every=10, epochs=15, batch_size=20, lr=0.001, n_before=50, n_slhmc=2000)
    slhmc_common = dict(shape=(4, 4, 4, 4), beta=1.5, c1=smearing.LUSCHER_WEISZ_C1, step=0.1, n_steps_hmc=5, n_steps_slhmc=3,
                        terms=("plaquette", "polyakov_time", "polyakov_space"), n_layers=1)
    return {"flow": flow, "slhmc": {**slhmc_common, **mc}}


# ----------------------------------------------------------------------------- 1. fields and smoothing


def _wilson_theory(N: int, shape, beta: float):
    return make_theory(f"su{N}", tuple(shape), beta=beta)


def thermalised_field(*, N: int, shape, beta: float, overrelax: int, start: str, n_therm: int, rng: np.random.Generator):
    """A Wilson-action field after ``n_therm`` sweeps from a ``"cold"`` or ``"hot"`` start: (field, plaquette after each sweep).

    A sweep is one Cabibbo-Marinari heatbath sweep and ``overrelax`` overrelaxation sweeps
    (:mod:`latticeml.samplers.heatbath`), per decorrelated configuration much cheaper than HMC.
    """
    theory = _wilson_theory(N, shape, beta)
    if start not in ("cold", "hot"):
        raise ValueError(f"start must be 'cold' or 'hot', got {start!r}")
    field = theory.cold_start() if start == "cold" else theory.hot_start(rng)
    res = chain.run_chain(
        build_sampler(theory, "heatbath", overrelax=overrelax), field, rng, n_measure=n_therm,
        measure=lambda U: {"plaquette": sun.mean_plaquette(U, check=False)}, progress=False,
    )
    return res.state.field, res.records["plaquette"]


def smoothing_curves(U, *, n_steps: int, alpha: float = 0.5, rho: float = 0.1) -> dict:
    """Mean plaquette after 0 .. n_steps APE (alpha) and stout (rho) steps, and along the Euler flow with eps = rho."""
    out = {"APE": [sun.mean_plaquette(U)], "stout": [sun.mean_plaquette(U)]}
    A, S = U, U
    for _ in range(n_steps):
        A = smearing.ape(A, alpha=alpha)
        S = smearing.stout(S, rho=rho)
        out["APE"].append(sun.mean_plaquette(A))
        out["stout"].append(sun.mean_plaquette(S))
    return {k: np.array(v) for k, v in out.items()}


# ----------------------------------------------------------------------------- 2. Wilson flow and t0


def flow_to_t0(
    U, *, step_size: float, t_max: float, measure_every: int = 2, chunk_steps: int = 4, margin: float = 0.1,
    reference: float = T0_REFERENCE,
) -> smearing.FlowResult:
    """Luscher's RK3 flow of one configuration, ``E(t)`` every ``measure_every`` steps, stopped just past ``t0``.

    Every flow step costs the same, so the flow runs in stretches of ``chunk_steps`` steps
    (:func:`latticeml.smearing.wilson_flow`) and stops after the first stretch that ends at
    ``t >= (1 + margin) t_c``, with ``t_c`` the first measured time where ``t^2 E_clover >= reference``;
    the margin leaves room for the *ensemble mean* to cross inside every configuration's range.
    Stops at ``t_max`` at the latest (then ``t0`` is not reached). Returns a
    :class:`~latticeml.smearing.FlowResult` over the whole range (``t = 0`` first).
    """
    if chunk_steps % measure_every:
        raise ValueError(f"chunk_steps ({chunk_steps}) must be a multiple of measure_every ({measure_every})")
    n_chunks = max(1, int(np.ceil(t_max / (chunk_steps * step_size) - 1e-9)))
    t, e_plaq, e_clov = [np.zeros(0)] * 3
    t_stop, V = t_max, U
    for k in range(n_chunks):
        part = smearing.wilson_flow(V, t_max=chunk_steps * step_size, step_size=step_size, measure_every=measure_every)
        skip = 0 if k == 0 else 1  # a stretch re-measures its first time, the last one of the stretch before
        t = np.concatenate([t, k * chunk_steps * step_size + part.t[skip:]])
        e_plaq = np.concatenate([e_plaq, part.energy_plaquette[skip:]])
        e_clov = np.concatenate([e_clov, part.energy_clover[skip:]])
        V = part.links
        crossed = np.flatnonzero(t**2 * e_clov >= reference)
        if crossed.size and t_stop == t_max:
            t_stop = min(t_max, (1 + margin) * t[crossed[0]])
        if t[-1] >= t_stop - 1e-9:
            break
    return smearing.FlowResult(t, e_plaq, e_clov, V)


def _t0_or_nan(t, E, reference=T0_REFERENCE) -> float:
    try:
        return smearing.scale_t0(t, E, reference=reference)
    except ValueError:  # t^2 E stays below the reference on this range
        return float("nan")


@dataclass
class FlowEnsemble:
    """The Wilson flow of every measured configuration of a heatbath chain (:func:`flow_ensemble`).

    t:             flow times common to all configurations, ``(n_t,)``.
    energy:        ``{"clover": (n_configs, n_t), "plaquette": (n_configs, n_t)}``: ``E(t)`` per configuration.
    t0_per_config: ``{"clover": (n_configs,), "plaquette": ...}``: each configuration's own crossing (NaN if none).
    plaquette:     the unflowed mean plaquette of each configuration, ``(n_configs,)``.
    links:         the last configuration, flowed to its last time (for the unitarity check).
    settings:      how the ensemble was made (lattice, coupling, sweeps, flow step); ``seconds``: wall time.
    """

    t: np.ndarray
    energy: dict
    t0_per_config: dict
    plaquette: np.ndarray
    links: np.ndarray
    settings: dict
    seconds: float


def flow_ensemble(
    U, rng: np.random.Generator, *, beta: float, overrelax: int, n_configs: int, sweeps_between: int,
    flow_step: float, t_max: float, measure_every: int = 2, chunk_steps: int = 4, margin: float = 0.1,
) -> FlowEnsemble:
    """Continue the heatbath chain from the thermalised ``U``; flow every ``sweeps_between``-th configuration to just past ``t0``.

    Each configuration is flowed inside the chain's measurement (only ``E(t)`` is kept, so the
    memory does not grow with the ensemble); see :func:`flow_to_t0` for the flow settings.
    """
    N, shape = U.shape[-1], U.shape[1:-2]
    theory = _wilson_theory(N, shape, beta)
    flows, last = [], []
    flow_args = dict(step_size=flow_step, t_max=t_max, measure_every=measure_every, chunk_steps=chunk_steps, margin=margin)

    def measure(V):
        res = flow_to_t0(V, **flow_args)
        flows.append(res._replace(links=None))
        last[:] = [res.links]
        return {"plaquette": sun.mean_plaquette(V, check=False)}

    clock = time.perf_counter()
    res = chain.run_chain(build_sampler(theory, "heatbath", overrelax=overrelax), U, rng, n_measure=n_configs,
                          every=sweeps_between, measure=measure, progress=False)
    n_t = min(len(f.t) for f in flows)  # every configuration was flowed at least this far
    energy = {
        "clover": np.array([f.energy_clover[:n_t] for f in flows]),
        "plaquette": np.array([f.energy_plaquette[:n_t] for f in flows]),
    }
    t0_each = {
        "clover": np.array([_t0_or_nan(f.t, f.energy_clover) for f in flows]),
        "plaquette": np.array([_t0_or_nan(f.t, f.energy_plaquette) for f in flows]),
    }
    settings_used = dict(N=N, shape=tuple(shape), beta=beta, overrelax=overrelax, n_configs=n_configs,
                         sweeps_between=sweeps_between, **flow_args)
    return FlowEnsemble(flows[0].t[:n_t], energy, t0_each, res.records["plaquette"], last[0], settings_used,
                        time.perf_counter() - clock)


def t0_estimate(ens: FlowEnsemble, definition: str = "clover", *, reference: float = T0_REFERENCE):
    """``t0`` of the ensemble, ``<t0^2 E(t0)> = reference``, with Gamma-method errors; None if ``<t^2 E>`` never gets there.

    Luscher defines ``t0`` through the ensemble average of ``E(t)``, so ``t0`` is a *derived*
    quantity: a function of the means of the primary observables ``E(t_k)`` on the common grid
    (solved by linear interpolation, :func:`latticeml.smearing.scale_t0`). Its error comes from
    Wolff's linearisation (projected fluctuations, Comput. Phys. Commun. 156 (2004) 143, sec. 3),
    which also measures its integrated autocorrelation time along the chain. The mean of the
    per-configuration crossings would be a different estimator, biased at O(1/V) because the
    root of a mean is not the mean of the roots.
    """
    E = ens.energy[definition]

    def solve(means):
        return smearing.scale_t0(ens.t, means, reference=reference)

    try:
        solve(E.mean(axis=0))
    except ValueError:
        return None
    return gamma_method(E, func=solve)


def t0_table(ens: FlowEnsemble) -> dict:
    """t0 from both definitions of E (:func:`t0_estimate`) and the chain's plaquette, each as a GammaResult (t0 None if not reached)."""
    out = {name: t0_estimate(ens, name) for name in ("clover", "plaquette")}
    out["plaquette_unflowed"] = gamma_method(ens.plaquette)
    return out


def compare_luscher(result, reference=LUSCHER_T0_BETA596) -> dict:
    """Ours against Luscher's t0: relative difference and distance in combined standard deviations."""
    value, error = reference
    sigma = float(np.hypot(result.error, error))
    return {"relative": result.value / value - 1.0, "n_sigma": abs(result.value - value) / sigma}


def rk3_convergence(U, *, t: float, ns=(4, 8, 16, 32)) -> dict:
    """Global error at flow time t against a 4x finer RK3 solution, for RK3 and Euler: {name: (eps, err)}."""

    def flow(n, integrator):
        V = U
        for _ in range(n):
            V = smearing.flow_step(V, step_size=t / n, integrator=integrator)
        return V

    ref = flow(4 * max(ns), "rk3")
    out = {}
    for integrator in ("rk3", "euler"):
        errs = [np.abs(flow(n, integrator) - ref).max() for n in ns]
        out[integrator] = (t / np.array(ns), np.array(errs))
    return out


def fitted_order(eps, err) -> float:
    """Slope of log(err) against log(eps) over the two smallest steps."""
    return float(np.log(err[-2] / err[-1]) / np.log(eps[-2] / eps[-1]))


# ----------------------------------------------------------------------------- 3. SLHMC


def _measure(U):
    return {
        "plaquette": sun.mean_plaquette(U, check=False),
        "rectangle": float(loops.wilson_loop(U, 1, 2)),
        "polyakov_abs": abs(loops.polyakov_loop_mean(U)),
    }


@dataclass
class SLHMCStudy:
    """Everything section 3 computes.

    reference: plain HMC on the target (ChainResult with fields); log: the training log; net: the
    trained net; linear_only: acceptance with rho = 0 and the fitted (beta_theta, s_theta);
    before / after: SLHMC chains with the untrained (Wilson action at the target's beta) and the
    trained molecular-dynamics action; target: the target theory.
    """

    target: ImprovedSUN
    reference: chain.ChainResult
    log: TrainingLog
    net: CovariantNet
    before: chain.ChainResult
    linear_only: chain.ChainResult
    after: chain.ChainResult


def slhmc_study(*, fast: bool, seed: int = SEED) -> SLHMCStudy:
    """Reference HMC chain of the Luscher-Weisz target, training, SLHMC before / after (see module docstring)."""
    p = settings(fast)["slhmc"]
    target = ImprovedSUN(p["shape"], beta=p["beta"], N=2, c1=p["c1"])
    seeds = np.random.SeedSequence(seed).spawn(6)
    rng = [np.random.default_rng(s) for s in seeds]
    reference = chain.run_chain(
        hmc.sampler(target, step_size=p["step"], n_steps=p["n_steps_hmc"]), target.hot_start(rng[0]), rng[1],
        n_measure=p["n_ref"], n_therm=p["n_therm"], measure=_measure, keep_fields=True, progress=False,
    )
    n_train = len(reference.fields) // 2
    configs = reference.fields[:n_train : p["n_train_every"]]
    S = np.array([target.action(U) for U in configs])
    net = CovariantNet(p["n_layers"], terms=p["terms"], beta=p["beta"])
    untrained = SmearedSUN.from_net(net, p["shape"], N=2)
    log = train_to_mimic(net, configs, S, epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"], rng=rng[2])
    linear = CovariantNet(p["n_layers"], terms=p["terms"], beta=p["beta"])
    linear.fit_linear(configs, S)

    def run(md, r, n, therm=0):
        s = slhmc.sampler(target, md, step_size=p["step"], n_steps=p["n_steps_slhmc"])
        return chain.run_chain(s, configs[-1], r, n_measure=n, n_therm=therm, measure=_measure, progress=False)

    before = run(untrained, rng[3], p["n_before"])
    linear_only = run(SmearedSUN.from_net(linear, p["shape"], N=2), rng[4], p["n_before"])
    after = run(SmearedSUN.from_net(net, p["shape"], N=2), rng[5], p["n_slhmc"], therm=10)
    return SLHMCStudy(target, reference, log, net, before, linear_only, after)


def compare(a_series, b_series) -> dict:
    """Gamma-method means and errors of two chains and their distance in combined sigmas."""
    a, b = gamma_method(a_series), gamma_method(b_series)
    sigma = float(np.hypot(a.error, b.error))
    return {"a": a, "b": b, "n_sigma": abs(a.value - b.value) / sigma if sigma > 0 else 0.0}


# ----------------------------------------------------------------------------- figures


def _new_figure(ncols=1, width=4.2):
    fig = Figure(figsize=(width * ncols, 3.2), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def figure_smoothing(curves: dict, *, alpha: float, rho: float, title: str) -> Figure:
    fig, (ax,) = _new_figure()
    n = np.arange(len(curves["APE"]))
    ax.plot(n, curves["APE"], "o-", ms=3, label=rf"APE, $\alpha = {alpha}$")
    ax.plot(n, curves["stout"], "s-", ms=3, label=rf"stout, $\rho = {rho}$")
    ax.set(xlabel="smearing steps", ylabel=r"$\langle \mathrm{Re\,tr}\, U_P \rangle / N$", title=title)
    ax.legend(fontsize=8)
    return fig


def figure_flow(ens: FlowEnsemble, t0: dict, *, title: str) -> Figure:
    """Ensemble mean of t^2 E(t) (band: one standard error, naive) for both definitions; t0 (ours, Luscher's)."""
    fig, (ax,) = _new_figure(width=4.6)
    n = len(ens.plaquette)
    for name, c in (("plaquette", "C0"), ("clover", "C1")):
        y = ens.t**2 * ens.energy[name]
        mean, err = y.mean(axis=0), y.std(axis=0, ddof=1) / np.sqrt(n)
        ax.plot(ens.t, mean, color=c, label=f"{name} $E$")
        ax.fill_between(ens.t, mean - err, mean + err, color=c, alpha=0.3, lw=0)
        if t0.get(name) is not None:
            ax.axvline(t0[name].value, color=c, lw=0.8, ls=":")
    ax.axhline(T0_REFERENCE, color="k", lw=0.6, ls="--")
    if ens.settings["N"] == 3 and t0.get("clover") is not None:
        value, error = LUSCHER_T0_BETA596
        ax.errorbar([value], [T0_REFERENCE], xerr=[error], fmt="kx", ms=6, label="Luscher 2010, $16^4$")
    ax.set(xlabel="$t / a^2$", ylabel=r"$t^2 \langle E(t) \rangle$", title=f"{title}, {n} configurations")
    ax.legend(fontsize=8)
    return fig


def figure_rk3(conv: dict) -> Figure:
    fig, (ax,) = _new_figure()
    for name, marker in (("rk3", "o"), ("euler", "s")):
        eps, err = conv[name]
        p = fitted_order(eps, err)
        ax.loglog(eps, err, marker + "-", ms=4, label=f"{name.upper() if name == 'rk3' else 'Euler'} (slope {p:.2f})")
    eps = conv["rk3"][0]
    ax.loglog(eps, conv["rk3"][1][-1] * (eps / eps[-1]) ** 3, "k--", lw=0.7, label=r"$\propto \epsilon^3$")
    ax.set(xlabel=r"step $\epsilon$", ylabel=r"$\max |V_\epsilon(t) - V(t)|$", title="flow integrators: global error")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=8)
    return fig


def figure_training(log: TrainingLog, *, terms, epochs: int) -> Figure:
    """Mini-batch loss (thin), loss on the whole training set after each epoch (dots); weights of layer 1."""
    fig, (ax, bx) = _new_figure(2)
    steps = np.arange(1, len(log.loss) + 1)
    ax.plot(steps, log.loss, lw=0.5, color="0.6", label="mini-batch")
    per = len(log.loss) / max(epochs, 1)
    ax.plot(per * np.arange(len(log.epoch_loss)), log.epoch_loss, "o-", color="C0", ms=3, label="training set")
    ax.set(xlabel="Adam step", ylabel=r"loss $\frac{1}{2}\langle (S_\theta - S)^2 \rangle$", yscale="log",
           title=r"training ($\beta_\theta$, $s_\theta$ fitted)")
    ax.legend(fontsize=7)
    for k, term in enumerate(terms):
        bx.plot(steps, log.rho[:, 0, k], lw=1, label=term)
    bx.axhline(0, color="k", lw=0.5)
    bx.set(xlabel="Adam step", ylabel=r"$\rho$ (layer 1)", title="smearing weights")
    bx.legend(fontsize=7)
    return fig


def figure_slhmc(study: SLHMCStudy) -> Figure:
    fig, (ax, bx) = _new_figure(2, width=4.4)
    ax.plot(study.reference.records["plaquette"], lw=0.6, label=f"HMC (acc. {study.reference.acceptance.mean():.2f})")
    ax.plot(study.after.records["plaquette"], lw=0.6, label=f"SLHMC trained (acc. {study.after.acceptance.mean():.2f})")
    ax.set(xlabel="trajectory", ylabel="plaquette", title="Luscher-Weisz target, SU(2) $4^4$")
    ax.legend(fontsize=7)
    names = ["plaquette", "rectangle", "polyakov_abs"]
    for i, name in enumerate(names):
        c = compare(study.reference.records[name], study.after.records[name])
        bx.errorbar([i - 0.1], [0.0], [c["a"].error], fmt="o", color="C0", ms=4, label="HMC" if i == 0 else None)
        bx.errorbar([i + 0.1], [c["b"].value - c["a"].value], [c["b"].error], fmt="s", color="C1", ms=4,
                    label="SLHMC - HMC" if i == 0 else None)
        bx.annotate(f"{c['n_sigma']:.1f}$\\sigma$", (i, 0), textcoords="offset points", xytext=(-8, 28), fontsize=7)
    bx.axhline(0, color="k", lw=0.5)
    bx.set_xticks(range(len(names)), ["plaquette", r"$1\times2$ loop", "|Polyakov|"])
    bx.set(ylabel="difference to HMC", title="exactness")
    bx.legend(fontsize=7)
    return fig


def lecture_figures(*, smoothing, flow, t0, conv, study, flow_settings, fast) -> dict:
    """The five lecture figures, keyed by file stem."""
    label = f"SU({flow_settings['N']}), $\\beta = {flow_settings['beta']}$, ${flow_settings['shape'][0]}^4$"
    return {
        "smearing_plaquette_vs_steps": figure_smoothing(smoothing, alpha=0.5, rho=0.1, title=label),
        "smearing_flow_t2E": figure_flow(flow, t0, title=label),
        "smearing_rk3_order": figure_rk3(conv),
        "smearing_slhmc_training": figure_training(study.log, terms=study.net.terms, epochs=settings(fast)["slhmc"]["epochs"]),
        "smearing_slhmc_exactness": figure_slhmc(study),
    }


def run_lecture(*, fast: bool, seed: int = SEED) -> dict:
    """Every computation of the lecture, in the notebook's order; returns the inputs of :func:`lecture_figures`."""
    f = settings(fast)["flow"]
    rng = np.random.default_rng(seed)
    U, _ = thermalised_field(N=f["N"], shape=f["shape"], beta=f["beta"], overrelax=f["overrelax"], start=f["start"],
                             n_therm=f["n_therm"], rng=rng)
    smoothing = smoothing_curves(U, n_steps=10)
    flow = flow_ensemble(U, rng, beta=f["beta"], overrelax=f["overrelax"], n_configs=f["n_configs"],
                         sweeps_between=f["sweeps_between"], flow_step=f["flow_step"], t_max=f["t_max"])
    t0 = t0_table(flow)
    smooth = random_near_identity(np.random.default_rng(seed + 1), f["N"], (4, 3, 3, 2, 2), spread=0.5)
    conv = rk3_convergence(smooth, t=0.4)
    study = slhmc_study(fast=fast, seed=seed)
    return dict(smoothing=smoothing, flow=flow, t0=t0, conv=conv, study=study, flow_settings=f, fast=fast)


@register("smearing_flow_slhmc", "Lecture 04: APE/stout smoothing, Wilson flow (RK3 order, t^2 E, t0), covariant net + SLHMC")
def make(outdir, *, fast: bool = False) -> list[pathlib.Path]:
    r = run_lecture(fast=fast)
    return save_figures(lecture_figures(**r), outdir)
