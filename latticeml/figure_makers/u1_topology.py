"""Lecture 02, "2D U(1): topology and topological freezing": the runs, tables and figures shared by
``lectures/02_u1_topology_freezing.ipynb``, ``benchmarks/bench_u1_freezing.py`` and the figure
maker ``u1_topology`` registered here.

Physics and conventions (:mod:`latticeml.theories.u1`, :mod:`latticeml.exact`)
------------------------------------------------------------------------------
2D compact U(1) with the Wilson action ``S = beta sum_P (1 - cos theta_P)`` on an L x L torus,
links ``theta`` float64 ``(2, L, L)``; geometric charge ``Q = sum_P wrap(theta_P) / 2 pi``
(an integer); ``chi_t = <Q^2> / V``. The exact finite-volume plaquette, Wilson loops, chi_t and
P(Q) come from the character (Bessel) expansion in :mod:`latticeml.exact`.

The freezing study
------------------
At fixed physical volume the coupling grows like the number of sites: ``beta = L^2 / 64``
(:data:`VOLUME_OVER_BETA`; in the continuum ``chi_t V -> V / (4 pi^2 beta)``, here ~1.6, so
|Q| <= 3 matters). Three samplers of :mod:`latticeml.samplers` run at each L:

* ``"hmc"``: HMC (Duane et al. 1987), trajectory length 1, leapfrog with
  ``n_steps = ceil(sqrt(8 beta) V^(1/4) / 2)`` (:func:`hmc_n_steps`: the highest mode frequency
  is ``sqrt(8 beta)`` and ``dH ~ V (eps omega)^4``, so this keeps the acceptance near 0.85);
* ``"heatbath"``: one U(1) heatbath sweep + :data:`OVERRELAX` overrelaxation sweep per step;
* ``"hmc+instanton"``: the HMC above with an instanton move after every trajectory
  (:mod:`latticeml.samplers.instanton`, Albandea et al., EPJC 81 (2021) 873).

Each run records Q and the plaquette after every step and is analysed with the Gamma method
(:func:`latticeml.stats.gamma_method`, Wolff 2004, S = 1.5). A run in which Q changed fewer than
:data:`MIN_CHARGE_CHANGES` times is reported as *frozen*: its tau_int(Q) cannot be measured
(the Gamma method would return the meaningless 1/2 of a constant series). The cost per
independent sample of Q is ``2 tau_int(Q)`` steps, given in wall-clock milliseconds (timed
single-threaded on the machine at hand, without measurements) and in force evaluations (HMC) or
sweeps (heatbath + overrelaxation).

All runs are single-threaded (``numba.set_num_threads(1)`` for their duration, then restored):
on lattices of at most 32^2 sites the thread start-up costs more than it saves, and on a shared
machine it costs a lot more. Every random number comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import math
import pathlib
import time
from typing import Callable, NamedTuple

import numpy as np
from matplotlib.figure import Figure

from .. import exact
from .._threads import single_threaded
from ..figures import register, save_figures
from ..observables import loops, topology
from ..samplers import build_sampler, run_chain
from ..stats import gamma_method
from ..theories.u1 import U1

__all__ = [
    "SEED",
    "VOLUME_OVER_BETA",
    "OVERRELAX",
    "INSTANTON_EVERY",
    "MIN_CHARGE_CHANGES",
    "ALGORITHMS",
    "LABELS",
    "LOOPS",
    "single_threaded",
    "beta_at_fixed_volume",
    "hmc_n_steps",
    "make_sampler",
    "measure_topology",
    "measure_loops",
    "History",
    "run_history",
    "Summary",
    "summarise",
    "charge_distribution",
    "StudyPlan",
    "study_plan",
    "freezing_study",
    "exponential_fit",
    "format_table",
    "ExactScan",
    "exact_scan",
    "figure_exact",
    "figure_histories",
    "figure_charge_distribution",
    "figure_tau_int",
    "lecture_figures",
    "save_figures",
    "make",
]

SEED = 2021
#: V / beta, fixed along the line of constant physical volume: beta = L^2 / 64.
VOLUME_OVER_BETA = 64.0
#: Overrelaxation sweeps per heatbath sweep in the "heatbath" runs.
OVERRELAX = 1
#: HMC trajectories per instanton move in the "hmc+instanton" runs.
INSTANTON_EVERY = 1
#: Fewer changes of Q than this in a run: reported as frozen (no tau_int(Q)).
MIN_CHARGE_CHANGES = 20
ALGORITHMS = ("hmc", "heatbath", "hmc+instanton")
LABELS = {"hmc": "HMC", "heatbath": f"heatbath + {OVERRELAX} OR", "hmc+instanton": "HMC + instanton move"}
_COLOURS = {"hmc": "C0", "heatbath": "C2", "hmc+instanton": "C3"}
_MARKERS = {"hmc": "o", "heatbath": "s", "hmc+instanton": "D"}
#: R x T Wilson loops measured in the exact-results scan.
LOOPS = ((1, 1), (1, 2), (2, 2), (2, 3), (3, 3), (3, 4), (4, 4))


def beta_at_fixed_volume(L: int, *, volume_over_beta: float = VOLUME_OVER_BETA) -> float:
    """``beta = L^2 / (V / beta)``: the coupling of an L x L lattice at fixed physical volume."""
    return L * L / volume_over_beta


def hmc_n_steps(L: int, beta: float) -> int:
    """Leapfrog steps for a unit trajectory on an L x L lattice: ``ceil(sqrt(8 beta) V^(1/4) / 2)``."""
    return max(2, math.ceil(math.sqrt(8.0 * beta) * (L * L) ** 0.25 / 2.0))


def make_sampler(theory: U1, algorithm: str):
    """The sampler of the study for ``algorithm`` in :data:`ALGORITHMS` (settings in the module docstring)."""
    L = theory.shape[0]
    if algorithm == "heatbath":
        return build_sampler(theory, "heatbath", overrelax=OVERRELAX)
    settings = dict(trajectory_length=1.0, n_steps=hmc_n_steps(L, theory.beta))
    if algorithm == "hmc":
        return build_sampler(theory, "hmc", **settings)
    if algorithm == "hmc+instanton":
        return build_sampler(theory, "hmc", instanton_every=INSTANTON_EVERY, **settings)
    raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")


def measure_topology(field) -> dict:
    """``{"Q": geometric charge, "plaquette": <cos theta_P>}`` of one configuration."""
    return {"Q": float(topology.topological_charge_u1(field)), "plaquette": float(loops.plaquette(field))}


def measure_loops(field) -> dict:
    """:func:`measure_topology` plus the R x T Wilson loops of :data:`LOOPS` (keys ``"W{R}x{T}"``)."""
    out = measure_topology(field)
    for R, T in LOOPS:
        out[f"W{R}x{T}"] = float(loops.wilson_loop(field, R, T))
    return out


def _cost_units(sampler, info) -> float:
    """Force evaluations (HMC) or sweeps (heatbath + overrelaxation) of one step."""
    if sampler.name == "heatbath":
        return 1.0 + info.overrelax
    return float(info.n_force_evaluations)


# ----------------------------------------------------------------------------- one run


class History(NamedTuple):
    """One Markov chain of the study.

    algorithm, L, beta:  which run.
    records:             dict of float arrays ``(n,)``, one entry per step after thermalisation
                         (``"Q"``, ``"plaquette"``, and Wilson loops if measured).
    acceptance:          mean acceptance of the recorded steps (HMC trajectories; 1 for the heatbath).
    instanton_acceptance: acceptance of the instanton moves over the timing steps (nan without them).
    seconds_per_step:    wall-clock time of one step without measurements (``n_timing`` steps after the chain).
    units_per_step:      force evaluations (HMC) or sweeps (heatbath + OR) per step, over the same steps.
    """

    algorithm: str
    L: int
    beta: float
    records: dict
    acceptance: float
    instanton_acceptance: float
    seconds_per_step: float
    units_per_step: float


def run_history(
    algorithm: str,
    L: int,
    beta: float,
    *,
    n: int,
    n_therm: int,
    seed: int,
    measure: Callable = measure_topology,
    n_timing: int = 200,
) -> History:
    """Run ``algorithm`` on an L x L lattice at ``beta`` from a cold start: ``n_therm`` + ``n`` steps, measuring every step.

    Afterwards ``n_timing`` more steps (not recorded) time one step and count its force
    evaluations or sweeps. Runs single-threaded (see the module docstring).
    """
    theory = U1((L, L), beta=beta)
    sampler = make_sampler(theory, algorithm)
    rng = np.random.default_rng(seed)
    with single_threaded():
        result = run_chain(sampler, theory.cold_start(), rng, n_measure=n, n_therm=n_therm, measure=measure, progress=False)
        state, units, instanton = result.state, 0.0, []
        start = time.perf_counter()
        for _ in range(n_timing):
            state, info = sampler.step(rng, state)
            units += _cost_units(sampler, info)
            if hasattr(info, "instanton_accepted"):
                instanton.append(info.instanton_accepted)
        seconds = (time.perf_counter() - start) / n_timing
    return History(
        algorithm=algorithm,
        L=L,
        beta=float(beta),
        records=result.records,
        acceptance=float(np.mean(result.acceptance[n_therm:])),
        instanton_acceptance=float(np.mean(instanton)) if instanton else float("nan"),
        seconds_per_step=seconds,
        units_per_step=units / n_timing,
    )


class Summary(NamedTuple):
    """Gamma-method analysis of one :class:`History` (errors are one sigma).

    n:                    measurements; charge_changes: steps in which Q changed; frozen: fewer than
                          :data:`MIN_CHARGE_CHANGES` of them (then the tau_Q fields are nan).
    tau_Q, tau_Q_error:   tau_int of Q (in steps); tau_P, tau_P_error: of the plaquette.
    chi, chi_error:       <Q^2>/V with its Gamma-method error; chi_exact: the exact finite-volume value.
    plaquette, plaquette_error, plaquette_exact: the same for <cos theta_P>.
    ms_per_step, units_per_step: cost of one step (see :class:`History`).
    cost_ms, cost_units:  cost of one independent sample of Q, ``2 tau_Q`` steps.
    """

    algorithm: str
    L: int
    beta: float
    n: int
    acceptance: float
    instanton_acceptance: float
    charge_changes: int
    frozen: bool
    tau_Q: float
    tau_Q_error: float
    tau_P: float
    tau_P_error: float
    chi: float
    chi_error: float
    chi_exact: float
    plaquette: float
    plaquette_error: float
    plaquette_exact: float
    ms_per_step: float
    units_per_step: float
    cost_ms: float
    cost_units: float


def summarise(history: History) -> Summary:
    """Gamma-method summary of a run, with the exact chi_t and plaquette for comparison."""
    Q = history.records["Q"]
    V = history.L**2
    changes = int(np.count_nonzero(np.diff(Q)))
    frozen = changes < MIN_CHARGE_CHANGES
    gq = gamma_method(Q)
    gp = gamma_method(history.records["plaquette"])
    gchi = gamma_method(Q**2 / V)
    tau_Q = float("nan") if frozen else gq.tau_int
    return Summary(
        algorithm=history.algorithm,
        L=history.L,
        beta=history.beta,
        n=len(Q),
        acceptance=history.acceptance,
        instanton_acceptance=history.instanton_acceptance,
        charge_changes=changes,
        frozen=frozen,
        tau_Q=tau_Q,
        tau_Q_error=float("nan") if frozen else gq.tau_int_error,
        tau_P=gp.tau_int,
        tau_P_error=gp.tau_int_error,
        chi=gchi.value,
        chi_error=gchi.error,
        chi_exact=float(exact.u1_2d_topological_susceptibility(history.beta, V)),
        plaquette=gp.value,
        plaquette_error=gp.error,
        plaquette_exact=float(exact.u1_2d_plaquette(history.beta, V)),
        ms_per_step=1e3 * history.seconds_per_step,
        units_per_step=history.units_per_step,
        cost_ms=2 * tau_Q * 1e3 * history.seconds_per_step,
        cost_units=2 * tau_Q * history.units_per_step,
    )


def charge_distribution(Q, charges) -> tuple[np.ndarray, np.ndarray]:
    """P(Q = q) for each q in ``charges`` from a chain of charges, with Gamma-method errors (indicator series)."""
    Q = np.asarray(Q)
    values, errors = [], []
    for q in charges:
        g = gamma_method((Q == q).astype(np.float64))
        values.append(g.value)
        errors.append(g.error)
    return np.array(values), np.array(errors)


# ----------------------------------------------------------------------------- the study


class StudyPlan(NamedTuple):
    """Which runs :func:`freezing_study` makes: ``runs`` is a tuple of ``(algorithm, L, n_steps)``."""

    runs: tuple
    n_therm: int


def study_plan(*, fast: bool) -> StudyPlan:
    """The runs of the freezing study: L = 8 ... 20 for all three samplers (longer chains where
    tau_int(Q) is long), and L = 24, 32, where HMC and the heatbath are frozen, for the cure.
    FAST: L = 8 and 16, plus 24 for the cure, with short chains (seconds)."""
    if fast:
        runs = [(a, L, 1200) for L in (8, 16) for a in ALGORITHMS]
        runs += [(a, 24, 400) for a in ALGORITHMS]
        return StudyPlan(tuple(runs), n_therm=100)
    long = {8: 4000, 10: 4000, 12: 4000, 14: 8000, 16: 16000, 18: 40000, 20: 60000}
    runs = []
    for L, n in long.items():
        runs += [("hmc", L, n), ("heatbath", L, n), ("hmc+instanton", L, 4000)]
    for L in (24, 32):
        runs += [("hmc", L, 4000), ("heatbath", L, 4000), ("hmc+instanton", L, 4000)]
    return StudyPlan(tuple(runs), n_therm=500)


def _timed_run(algorithm, L, n, n_therm, seed):
    start = time.perf_counter()
    h = run_history(algorithm, L, beta_at_fixed_volume(L), n=n, n_therm=n_therm, seed=seed)
    return h, time.perf_counter() - start


def freezing_study(*, fast: bool, seed: int = SEED, log: Callable | None = None, jobs: int = 1) -> list[History]:
    """Run every chain of :func:`study_plan` (each with its own seed derived from ``seed``).

    The runs are independent: ``jobs > 1`` runs them in that many processes (the results are
    the same; the timings stay single-core ones as long as ``jobs`` does not exceed the idle cores).
    """
    plan = study_plan(fast=fast)
    seeds = [int(s) for s in np.random.SeedSequence(seed).generate_state(len(plan.runs))]
    tasks = [(algorithm, L, n, plan.n_therm, s) for (algorithm, L, n), s in zip(plan.runs, seeds)]

    def report(h, seconds):
        if log is not None:
            log(f"{LABELS[h.algorithm]:22s} L={h.L:3d} beta={h.beta:6.3f} n={len(h.records['Q']):6d}  {seconds:6.1f} s")

    if jobs <= 1:
        histories = []
        for task in tasks:
            h, seconds = _timed_run(*task)
            report(h, seconds)
            histories.append(h)
        return histories
    from concurrent.futures import ProcessPoolExecutor

    # longest runs first, so that the pool finishes together
    order = sorted(range(len(tasks)), key=lambda i: -tasks[i][2] * tasks[i][1] ** 2.5)
    results = [None] * len(tasks)
    with ProcessPoolExecutor(max_workers=int(jobs)) as pool:
        futures = {i: pool.submit(_timed_run, *tasks[i]) for i in order}
        for i in order:
            results[i] = futures[i].result()
            report(*results[i])
    return [h for h, _ in results]


def exponential_fit(summaries, algorithm: str) -> tuple[float, float] | None:
    """Weighted least-squares fit ``ln tau_int(Q) = a + b beta`` over the unfrozen runs of ``algorithm``
    with tau_int(Q) >= 1 (below that the exponential regime has not started); ``(a, b)`` or None."""
    pts = [s for s in summaries if s.algorithm == algorithm and not s.frozen and s.tau_Q >= 1.0]
    if len(pts) < 2:
        return None
    beta = np.array([s.beta for s in pts])
    y = np.log([s.tau_Q for s in pts])
    w = 1.0 / np.maximum(np.array([s.tau_Q_error / s.tau_Q for s in pts]), 1e-3) ** 2
    A = np.stack([np.ones_like(beta), beta], axis=1)
    coef = np.linalg.solve(A.T @ (w[:, None] * A), A.T @ (w * y))
    return float(coef[0]), float(coef[1])


def format_table(summaries) -> str:
    """A markdown table: tau_int(Q), tau_int(P), chi_t vs exact and the cost per independent sample of Q."""

    def num(x, err=None, fmt=".3g"):
        if not np.isfinite(x):
            return "-"
        return f"{x:{fmt}}" if err is None else f"{x:{fmt}} ± {err:.2g}"

    head = (
        "| algorithm | L | beta | steps | acc. | Q changes | tau_int(Q) | tau_int(plaq) | chi_t V (MC) | chi_t V (exact) "
        "| ms/step | units/step | cost/indep. Q: ms | cost: units |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for s in summaries:
        V = s.L**2
        unit = "sweeps" if s.algorithm == "heatbath" else "force ev."
        tau = "frozen" if s.frozen else num(s.tau_Q, s.tau_Q_error)
        rows.append(
            f"| {LABELS[s.algorithm]} | {s.L} | {s.beta:.3g} | {s.n} | {s.acceptance:.2f} | {s.charge_changes} | {tau} "
            f"| {num(s.tau_P, s.tau_P_error)} | {num(s.chi * V, s.chi_error * V)} | {s.chi_exact * V:.3f} "
            f"| {s.ms_per_step:.2f} | {s.units_per_step:.0f} {unit} | {num(s.cost_ms)} | {num(s.cost_units)} |"
        )
    return head + "\n".join(rows) + "\n"


# ----------------------------------------------------------------------------- exact results vs MC


class ExactScan(NamedTuple):
    """MC vs exact on one L x L lattice over a range of beta.

    L, betas:  lattice and couplings; algorithm: the sampler used.
    results:   dict observable -> (values, errors) arrays over betas: "plaquette", "chi" (<Q^2>/V)
               and "W{R}x{T}" for the loops of :data:`LOOPS`.
    hmc_chi:   (values, errors) of chi from plain HMC chains of the same length, for contrast.
    """

    L: int
    betas: np.ndarray
    algorithm: str
    results: dict
    hmc_chi: tuple


def exact_scan(*, fast: bool, seed: int = SEED + 1, L: int = 8) -> ExactScan:
    """HMC + instanton moves (and plain HMC for chi_t) on an L x L lattice at several beta."""
    betas = np.array([1.0, 4.0] if fast else [0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0])
    n, n_therm = (600, 100) if fast else (4000, 300)
    seeds = np.random.SeedSequence(seed).generate_state(2 * len(betas))
    results: dict = {}
    hmc_chi = ([], [])
    V = L * L
    for i, beta in enumerate(betas):
        h = run_history("hmc+instanton", L, beta, n=n, n_therm=n_therm, seed=int(seeds[2 * i]), measure=measure_loops, n_timing=1)
        for key, series in h.records.items():
            if key == "Q":
                g = gamma_method(series**2 / V)
                key = "chi"
            else:
                g = gamma_method(series)
            results.setdefault(key, ([], []))
            results[key][0].append(g.value)
            results[key][1].append(g.error)
        plain = run_history("hmc", L, beta, n=n, n_therm=n_therm, seed=int(seeds[2 * i + 1]), n_timing=1)
        g = gamma_method(plain.records["Q"] ** 2 / V)
        hmc_chi[0].append(g.value)
        hmc_chi[1].append(g.error)
    results = {k: (np.array(v), np.array(e)) for k, (v, e) in results.items()}
    return ExactScan(L, betas, "hmc+instanton", results, (np.array(hmc_chi[0]), np.array(hmc_chi[1])))


# ----------------------------------------------------------------------------- figures


def _new_figure(ncols=1, *, width=4.0, height=3.1, nrows=1, sharex=False):
    fig = Figure(figsize=(width * ncols, height * nrows), dpi=90, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex)
    return fig, axes


def figure_exact(scan: ExactScan) -> Figure:
    """Plaquette, Wilson loops (area law) and chi_t: exact finite-volume curves vs MC points."""
    fig, axes = _new_figure(3)
    ax, bx, cx = axes[0]
    V = scan.L**2
    grid = np.linspace(0.05, scan.betas.max() * 1.05, 200)
    mc = dict(color=_COLOURS["hmc+instanton"], marker=_MARKERS["hmc+instanton"], ls="none", ms=4, capsize=2)

    ax.plot(grid, exact.u1_2d_plaquette(grid, V), "k-", lw=1, label=f"exact, {scan.L}x{scan.L} torus")
    ax.plot(grid, exact.u1_2d_plaquette(grid), "k:", lw=1, label=r"exact, $V=\infty$: $I_1/I_0$")
    ax.errorbar(scan.betas, *scan.results["plaquette"], **mc, label=LABELS[scan.algorithm])
    ax.set(xlabel=r"$\beta$", ylabel=r"$\langle\cos\theta_P\rangle$", title="plaquette")
    ax.legend(fontsize=7)

    areas = np.array([R * T for R, T in LOOPS])
    order = np.argsort(areas)
    shown = [b for b in (2.0, 4.0, 8.0) if b in scan.betas] or list(scan.betas[-2:])
    for j, beta in enumerate(shown):
        i = int(np.flatnonzero(scan.betas == beta)[0])
        vals = np.array([scan.results[f"W{R}x{T}"][0][i] for R, T in LOOPS])
        errs = np.array([scan.results[f"W{R}x{T}"][1][i] for R, T in LOOPS])
        ex = np.array([exact.u1_2d_wilson_loop(beta, R, T, V) for R, T in LOOPS])
        bx.plot(areas[order], ex[order], "-", color=f"C{j}", lw=1)
        bx.errorbar(areas, vals, errs, color=f"C{j}", marker="o", ls="none", ms=3, capsize=2, label=rf"$\beta={beta:g}$")
    bx.set_yscale("log")
    bx.set(xlabel="area R T", ylabel=r"$\langle W(R\times T)\rangle$", title="Wilson loops: area law")
    bx.legend(fontsize=7, title="lines: exact", title_fontsize=7)

    coarse = np.linspace(0.25, scan.betas.max() * 1.05, 16)  # exact chi_t: a Gauss-Legendre rule per beta
    cx.plot(coarse, V * exact.u1_2d_topological_susceptibility(coarse, V), "k-", lw=1, label="exact")
    cx.plot(grid, V / (4 * np.pi**2 * grid), "k:", lw=1, label=r"$V/(4\pi^2\beta)$")
    cx.errorbar(scan.betas, V * scan.results["chi"][0], V * scan.results["chi"][1], **mc, label=LABELS[scan.algorithm])
    cx.errorbar(scan.betas * 1.02, V * scan.hmc_chi[0], V * scan.hmc_chi[1], color=_COLOURS["hmc"], marker="o",
                ls="none", ms=4, capsize=2, mfc="none", label=LABELS["hmc"])
    top = 1.5 * V * exact.u1_2d_topological_susceptibility(scan.betas.min(), V)
    cx.set(xlabel=r"$\beta$", ylabel=r"$\chi_t V = \langle Q^2\rangle$", title="topological susceptibility", ylim=(0, top))
    cx.legend(fontsize=7)
    return fig


def _pick(histories, algorithm, L):
    return next(h for h in histories if h.algorithm == algorithm and h.L == L)


def figure_histories(histories, L: int, *, max_steps: int = 20000) -> Figure:
    """Q along the chain for the three samplers at one L (the first ``max_steps`` steps, at most the shortest chain)."""
    fig, axes = _new_figure(1, width=8.0, height=1.4, nrows=len(ALGORITHMS), sharex=True)
    n_show = min([max_steps] + [len(_pick(histories, a, L).records["Q"]) for a in ALGORITHMS])  # same length for all
    series = {a: _pick(histories, a, L).records["Q"][:n_show] for a in ALGORITHMS}
    lim = max(3, max(int(np.abs(Q).max()) for Q in series.values()) + 1)
    for ax, algorithm in zip(axes[:, 0], ALGORITHMS):
        Q = series[algorithm]
        ax.plot(np.arange(len(Q)), Q, color=_COLOURS[algorithm], lw=0.5, drawstyle="steps-post")
        ax.set_ylabel("Q")
        ax.set_ylim(-lim, lim)
        ax.text(0.005, 0.93, LABELS[algorithm], transform=ax.transAxes, fontsize=8, va="top",
                bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=1))
    axes[0, 0].set_title(rf"history of the topological charge, L = {L}, $\beta$ = {beta_at_fixed_volume(L):g}")
    axes[-1, 0].set_xlabel("step (HMC trajectory, or heatbath + OR sweep)")
    return fig


def figure_charge_distribution(histories, L: int) -> Figure:
    """P(Q) measured by the three samplers at one L against the exact distribution."""
    fig, axes = _new_figure(1, width=5.0)
    ax = axes[0, 0]
    beta = beta_at_fixed_volume(L)
    charges = np.arange(-5, 6)
    ax.bar(charges, exact.u1_2d_charge_distribution(beta, L * L, charges), width=0.8, color="0.85", label="exact")
    for k, algorithm in enumerate(ALGORITHMS):
        h = _pick(histories, algorithm, L)
        p, e = charge_distribution(h.records["Q"], charges)
        ax.errorbar(charges + 0.2 * (k - 1), p, e, color=_COLOURS[algorithm], marker=_MARKERS[algorithm], ls="none",
                    ms=4, capsize=2, label=f"{LABELS[algorithm]} ({len(h.records['Q'])} steps)")
    ax.set(xlabel="Q", ylabel="P(Q)", title=rf"charge distribution, L = {L}, $\beta$ = {beta:g}")
    ax.set_ylim(0, 1.5 * ax.get_ylim()[1])
    ax.legend(fontsize=7, loc="upper right")
    return fig


def figure_tau_int(summaries) -> Figure:
    """tau_int(Q) (filled) and tau_int(plaquette) (open) vs beta; cost per independent sample of Q."""
    fig, axes = _new_figure(2, width=4.4, height=3.7)
    ax, bx = axes[0]
    for algorithm in ALGORITHMS:
        pts = [s for s in summaries if s.algorithm == algorithm]
        c, m = _COLOURS[algorithm], _MARKERS[algorithm]
        live = [s for s in pts if not s.frozen]
        ax.errorbar([s.beta for s in live], [s.tau_Q for s in live], [s.tau_Q_error for s in live], color=c, marker=m,
                    ms=4, capsize=2, ls="-", lw=0.8, label=rf"{LABELS[algorithm]}: $\tau_{{int}}(Q)$")
        ax.errorbar([s.beta for s in pts], [s.tau_P for s in pts], [s.tau_P_error for s in pts], color=c, marker=m,
                    ms=4, mfc="none", capsize=2, ls=":", lw=0.8)
        frozen = [s for s in pts if s.frozen]
        if frozen:
            y = 9e3 if algorithm == "hmc" else 4.5e3  # one row per algorithm, so the markers do not hide each other
            ax.plot([s.beta for s in frozen], [y] * len(frozen), ls="none", marker="^", color=c, ms=6)
        fit = exponential_fit(summaries, algorithm) if algorithm != "hmc+instanton" else None
        if fit is not None and live:
            b = np.linspace(min(s.beta for s in live), max(s.beta for s in live), 50)
            ax.plot(b, np.exp(fit[0] + fit[1] * b), color=c, lw=2, alpha=0.3)
        cost = [s for s in live]
        bx.plot([s.beta for s in cost], [s.cost_ms for s in cost], color=c, marker=m, ms=4, lw=0.8, label=LABELS[algorithm])
    ax.plot([], [], "k:", marker="o", mfc="none", ms=4, label=r"open: $\tau_{int}$(plaquette)")
    ax.plot([], [], "k^", ls="none", label="frozen: Q never changes")
    ax.set_yscale("log")
    ax.set_ylim(top=2e4)
    ax.set(xlabel=r"$\beta$ ($= L^2/64$)", ylabel=r"$\tau_{int}$ [steps]", title="autocorrelation at fixed physical volume")
    ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    bx.set_yscale("log")
    bx.set(xlabel=r"$\beta$", ylabel="ms of CPU per independent Q", title=r"cost $2\tau_{int}(Q)\times$ time/step")
    bx.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    return fig


def lecture_figures(scan: ExactScan, histories) -> dict[str, Figure]:
    """The lecture's figures, keyed by file stem; histories and P(Q) at the largest L of the freezing range
    where every sampler has data (L = 20 in the full study)."""
    summaries = [summarise(h) for h in histories]
    L_show = max(h.L for h in histories if h.algorithm == "hmc" and not summarise(h).frozen)
    return {
        "u1_topology_exact": figure_exact(scan),
        "u1_topology_histories": figure_histories(histories, L_show),
        "u1_topology_charge_distribution": figure_charge_distribution(histories, L_show),
        "u1_topology_tau_int": figure_tau_int(summaries),
    }


@register("u1_topology", "Lecture 02: 2D U(1) exact results vs MC, topological freezing of HMC/heatbath, the instanton cure")
def make(outdir, *, fast: bool = False) -> list[pathlib.Path]:
    scan = exact_scan(fast=fast)
    histories = freezing_study(fast=fast)
    return save_figures(lecture_figures(scan, histories), outdir)
