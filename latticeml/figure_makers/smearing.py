"""Lecture 04, "smearing and gauge-covariant nets": computations and figures, shared by the notebook
``lectures/04_smearing_covariant_nets.ipynb`` and the figure maker registered here.

1. Smoothing with gauge symmetry: APE (Albanese et al., PLB 192 (1987) 163) and stout
   (Morningstar & Peardon, PRD 69 (2004) 054501) steps raise the plaquette of a thermalised field.
2. The Wilson flow (Luscher, JHEP 08 (2010) 071) as the continuous-depth limit of stout smearing:
   Luscher's RK3 integrator converges with the third power of the step, E(t) with the plaquette
   and clover definitions, t^2 E(t) and the scale t0 (t0^2 E(t0) = 0.3).
3. Self-learning HMC (Nagai & Tomiya, arXiv:2103.11965): a covariant net (trainable stout) is
   trained on configurations of a plaquette + rectangle (Luscher-Weisz) target, its action drives
   the molecular dynamics, the Metropolis test uses the target; acceptance before and after training,
   and the SLHMC observables against plain HMC.

Full mode: SU(3) at beta = 5.96 on 8^4 for sections 1-2 (Luscher's table gives t0/a^2 = 2.7854(62)
at beta = 5.96 on 16^4), SU(2) on 4^4 for section 3. Fast mode (CI, ``fast=True``): SU(2) on 4^4
throughout, short chains.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from .. import smearing
from ..figures import register, save_figures
from ..groups import random_near_identity
from ..nets.covariant import CovariantNet, TrainingLog, train_to_mimic
from ..observables import loops
from ..samplers import chain, hmc, slhmc
from ..stats import gamma_method
from ..theories import sun
from ..theories.models import SUN

__all__ = [
    "SEED",
    "LUSCHER_T0_BETA596",
    "settings",
    "thermalised_field",
    "smoothing_curves",
    "flow_study",
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


def settings(fast: bool) -> dict:
    """Lattices, couplings and run lengths of the lecture (``fast``: the CI version)."""
    if fast:
        flow = dict(N=2, shape=(4, 4, 4, 4), beta=2.3, n_traj=20, step_size=0.1, n_steps=10, t_max=1.0, flow_step=0.05)
        mc = dict(n_ref=60, n_therm=10, n_train_every=3, epochs=2, batch_size=5, lr=0.005, n_before=6, n_slhmc=40)
    else:
        flow = dict(N=3, shape=(8, 8, 8, 8), beta=5.96, n_traj=150, step_size=0.05, n_steps=20, t_max=3.6, flow_step=0.02)
        mc = dict(n_ref=2000, n_therm=100, n_train_every=10, epochs=15, batch_size=20, lr=0.001, n_before=50, n_slhmc=2000)
    slhmc_common = dict(shape=(4, 4, 4, 4), beta=1.5, c1=smearing.LUSCHER_WEISZ_C1, step=0.1, n_steps_hmc=5, n_steps_slhmc=3,
                        terms=("plaquette", "polyakov_time", "polyakov_space"), n_layers=1)
    return {"flow": flow, "slhmc": {**slhmc_common, **mc}}


# ----------------------------------------------------------------------------- 1. fields and smoothing


def thermalised_field(*, N: int, shape, beta: float, n_traj: int, step_size: float, n_steps: int, rng: np.random.Generator):
    """A Wilson-action field after ``n_traj`` HMC trajectories from a hot start: (field, plaquette history, acceptances)."""
    theory = SUN(shape, beta=beta, N=N)
    res = chain.run_chain(
        hmc.sampler(theory, step_size=step_size, n_steps=n_steps), theory.hot_start(rng), rng,
        n_measure=n_traj, measure=lambda U: {"plaquette": sun.mean_plaquette(U, check=False)}, progress=False,
    )
    return res.state.field, res.records["plaquette"], res.acceptance


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


def flow_study(U, *, t_max: float, step_size: float, measure_every: int = 5):
    """Wilson flow with RK3: (FlowResult, t0 from each definition or None where t^2 E stays below 0.3)."""
    res = smearing.wilson_flow(U, t_max=t_max, step_size=step_size, measure_every=measure_every)
    t0 = {}
    for name, E in (("plaquette", res.energy_plaquette), ("clover", res.energy_clover)):
        try:
            t0[name] = smearing.scale_t0(res.t, E)
        except ValueError:
            t0[name] = None
    return res, t0


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

    target: slhmc.ImprovedSUN
    reference: chain.ChainResult
    log: TrainingLog
    net: CovariantNet
    before: chain.ChainResult
    linear_only: chain.ChainResult
    after: chain.ChainResult


def slhmc_study(*, fast: bool, seed: int = SEED) -> SLHMCStudy:
    """Reference HMC chain of the Luscher-Weisz target, training, SLHMC before / after (see module docstring)."""
    p = settings(fast)["slhmc"]
    target = slhmc.ImprovedSUN(p["shape"], beta=p["beta"], N=2, c1=p["c1"])
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
    untrained = slhmc.SmearedSUN.from_net(net, p["shape"], N=2)
    log = train_to_mimic(net, configs, S, epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"], rng=rng[2])
    linear = CovariantNet(p["n_layers"], terms=p["terms"], beta=p["beta"])
    linear.fit_linear(configs, S)

    def run(md, r, n, therm=0):
        s = slhmc.sampler(target, md, step_size=p["step"], n_steps=p["n_steps_slhmc"])
        return chain.run_chain(s, configs[-1], r, n_measure=n, n_therm=therm, measure=_measure, progress=False)

    before = run(untrained, rng[3], p["n_before"])
    linear_only = run(slhmc.SmearedSUN.from_net(linear, p["shape"], N=2), rng[4], p["n_before"])
    after = run(slhmc.SmearedSUN.from_net(net, p["shape"], N=2), rng[5], p["n_slhmc"], therm=10)
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


def figure_flow(res, t0: dict, *, title: str) -> Figure:
    fig, (ax,) = _new_figure(width=4.6)
    ax.plot(res.t, res.t**2 * res.energy_plaquette, label="plaquette $E$")
    ax.plot(res.t, res.t**2 * res.energy_clover, label="clover $E$")
    ax.axhline(0.3, color="k", lw=0.6, ls="--")
    for name, c in (("plaquette", "C0"), ("clover", "C1")):
        if t0.get(name) is not None:
            ax.axvline(t0[name], color=c, lw=0.8, ls=":")
    ax.set(xlabel="$t / a^2$", ylabel="$t^2 E(t)$", title=title)
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
    U, _, _ = thermalised_field(N=f["N"], shape=f["shape"], beta=f["beta"], n_traj=f["n_traj"],
                                step_size=f["step_size"], n_steps=f["n_steps"], rng=rng)
    smoothing = smoothing_curves(U, n_steps=10)
    flow, t0 = flow_study(U, t_max=f["t_max"], step_size=f["flow_step"])
    smooth = random_near_identity(np.random.default_rng(seed + 1), f["N"], (4, 3, 3, 2, 2), spread=0.5)
    conv = rk3_convergence(smooth, t=0.4)
    study = slhmc_study(fast=fast, seed=seed)
    return dict(smoothing=smoothing, flow=flow, t0=t0, conv=conv, study=study, flow_settings=f, fast=fast)


@register("smearing_flow_slhmc", "Lecture 04: APE/stout smoothing, Wilson flow (RK3 order, t^2 E, t0), covariant net + SLHMC")
def make(outdir, *, fast: bool = False) -> list[pathlib.Path]:
    r = run_lecture(fast=fast)
    return save_figures(lecture_figures(**r), outdir)
