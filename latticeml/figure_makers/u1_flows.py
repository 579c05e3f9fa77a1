"""Lecture 06, "gauge-equivariant flows for 2D U(1)": training, chains, free energies and figures,
shared by ``lectures/06_u1_gauge_equivariant_flows.ipynb`` and the figure maker ``u1_flows``
registered here.

The U(1) part of the MIT tutorial (M. S. Albergo, D. Boyda, D. C. Hackett, G. Kanwar, K. Cranmer,
S. Racaniere, D. J. Rezende, P. E. Shanahan, arXiv:2101.08176, Sec. 4), itself after G. Kanwar et
al., PRL 125 (2020) 121601: 2D U(1) with the Wilson action on 8x8 at beta = 2, 16 gauge-equivariant
coupling layers (:mod:`latticeml.flows.u1`) with a mixture of 2 non-compact projections, conv nets
2 -> 8 -> 8 -> 3, uniform Haar prior, reverse KL with batch 64 and Adam (lr 1e-3) for 1000 steps
(the tutorial reports an acceptance of 0.23 after that budget). Then:

* flow-MCMC (:func:`latticeml.flows.flow_mcmc`) against the exact plaquette and chi_t
  (:mod:`latticeml.exact`), and the importance-sampling ``ln Z`` against ``-beta V + ln sum_n I_n^V``;
* tau_int(Q) of flow-MCMC against HMC, heatbath + overrelaxation and HMC + instanton move of lecture
  02 (:func:`latticeml.figure_makers.u1_topology.run_history`) at beta = 1, 2, 3 on 8x8, with the
  cost of an independent Q including the training;
* the same trained model on 16x16 (the conv nets are local and translation equivariant, so the
  weights carry over to any lattice size whose extents are multiples of 4): the acceptance falls
  as the volume grows, because ``Var(log w)`` grows like V.

FAST mode (CI, ``fast=True``): 8 layers of one hidden layer, a few dozen training steps, short
chains: it shows every step of the pipeline in seconds, not the physics. The full mode trains with
the tutorial's budget at beta = 2 and shorter budgets at beta = 1, 3.

Shapes: links ``(n, 2, L, L)``; records ``(n,)`` per chain. Every chain runs on one thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from matplotlib.figure import Figure

from .. import exact
from .._threads import single_threaded
from ..figures import lecture_figures_dir, register, save_figures
from ..flows import Flow, flow_mcmc, log_partition_function, reverse_kl_bound, train, u1_exact_log_partition_function, u1_flow
from ..flows.training import TrainResult
from ..stats import gamma_method
from ..theories import make_theory
from . import u1_topology

__all__ = [
    "SEED",
    "L",
    "BETA",
    "Settings",
    "settings_for",
    "train_point",
    "transfer",
    "FlowRun",
    "flow_run",
    "baseline_runs",
    "Study",
    "study",
    "cost_rows",
    "figure_training",
    "figure_observables",
    "figure_tau_int",
    "figure_free_energy",
    "lecture_figures",
    "make",
]

SEED = 2020
L, BETA = 8, 2.0  # the tutorial's point
BASELINES = u1_topology.ALGORITHMS  # ("hmc", "heatbath", "hmc+instanton")


@dataclass(frozen=True)
class Settings:
    """Budgets of one lecture run.

    architecture: keyword arguments of :func:`latticeml.flows.u1_flow`.
    train_steps:  {beta: training steps} of the 8x8 flows (batch ``batch``, Adam ``lr``).
    n_chain:      flow-MCMC proposals per chain; n_baseline, n_therm: steps of the lecture-02 samplers.
    big_L:        the larger lattice the trained beta = 2 model is carried over to.
    baselines_on_big_L: whether the lecture-02 samplers also run on big_L (full mode).
    """

    fast: bool
    architecture: dict
    train_steps: dict
    batch: int
    lr: float
    n_chain: int
    n_baseline: int
    n_therm: int
    big_L: int = 16
    baselines_on_big_L: bool = True


def settings_for(fast: bool) -> Settings:
    """FAST: a small flow, 30 steps per beta, short chains (seconds); full: the tutorial's architecture
    and budget at beta = 2 (1000 steps), 300 steps at beta = 1 and 600 at beta = 3 (~0.35 s per step on
    one quiet core: about 12 min of training, 20 min in all)."""
    if fast:
        return Settings(fast=True, architecture={"n_layers": 8, "hidden": (8,)}, train_steps={1.0: 30, 2.0: 30},
                        batch=32, lr=3e-3, n_chain=1024, n_baseline=400, n_therm=50, baselines_on_big_L=False)
    return Settings(fast=False, architecture={"n_layers": 16, "hidden": (8, 8)}, train_steps={1.0: 300, 2.0: 1000, 3.0: 600},
                    batch=64, lr=1e-3, n_chain=8192, n_baseline=8000, n_therm=500)


def train_point(beta: float, settings: Settings, *, seed: int = SEED, progress: bool = False) -> tuple[TrainResult, float]:
    """Train the 8x8 flow at ``beta``: ``(result, seconds)``."""
    theory = make_theory("u1", (L, L), beta=beta)
    flow = u1_flow((L, L), rng=np.random.default_rng([seed, 0]), **settings.architecture)
    start = time.perf_counter()
    with single_threaded():
        result = train(flow, theory, steps=settings.train_steps[beta], batch_size=settings.batch, lr=settings.lr,
                       rng=np.random.default_rng([seed, 1, int(10 * beta)]), progress=progress)
    return result, time.perf_counter() - start


def transfer(flow: Flow, shape) -> Flow:
    """The same weights on another lattice: conv nets are local and translation equivariant."""
    config = dict(flow.config)
    bigger = u1_flow(tuple(shape), rng=np.random.default_rng(0), **{k: config[k] for k in
                     ("n_layers", "hidden", "kernel_size", "transform", "components", "activation")})
    bigger.load_state_dict(flow.state_dict())
    return bigger


@dataclass
class FlowRun:
    """A flow-MCMC chain at (L, beta) with its analysis.

    records: observables along the chain; acceptance; ess (of the n proposals);
    log_z, log_z_error (importance sampling) and bound, bound_error (reverse KL), log_z_exact;
    seconds_per_step (proposal + accept/reject + measurements); train_seconds (0 if carried over).
    """

    L: int
    beta: float
    records: dict
    acceptance: float
    ess: float
    log_z: float
    log_z_error: float
    bound: float
    bound_error: float
    log_z_exact: float
    seconds_per_step: float
    train_seconds: float
    summary: dict = field(default_factory=dict)


def flow_run(flow: Flow, beta: float, n: int, *, seed: int, train_seconds: float = 0.0) -> FlowRun:
    """Run flow-MCMC with ``flow`` on its lattice at ``beta`` and analyse it (Gamma method)."""
    theory = make_theory("u1", flow.shape, beta=beta)
    start = time.perf_counter()
    with single_threaded():
        chain = flow_mcmc(flow, theory, np.random.default_rng(seed), n_steps=n, batch_size=min(n, 1024), keep_fields=False)
    seconds = (time.perf_counter() - start) / n
    log_z, log_z_error = log_partition_function(chain.proposal_log_weights)
    bound, bound_error = reverse_kl_bound(chain.proposal_log_weights)
    records = {"Q": chain.records["topological_charge"], "plaquette": chain.records["plaquette"],
               "chi": chain.records["topological_susceptibility"]}
    summary = {k: gamma_method(np.asarray(v, dtype=np.float64)) for k, v in records.items()}
    return FlowRun(L=flow.shape[0], beta=float(beta), records=records, acceptance=chain.acceptance, ess=chain.ess,
                   log_z=log_z, log_z_error=log_z_error, bound=bound, bound_error=bound_error,
                   log_z_exact=u1_exact_log_partition_function(beta, flow.shape), seconds_per_step=seconds,
                   train_seconds=train_seconds, summary=summary)


def baseline_runs(Ls_betas, settings: Settings, *, seed: int = SEED) -> list:
    """Lecture 02's samplers at each ``(L, beta)``: summaries (:class:`u1_topology.Summary`)."""
    out = []
    for j, (Lx, beta) in enumerate(Ls_betas):
        for k, algorithm in enumerate(BASELINES):
            h = u1_topology.run_history(algorithm, Lx, beta, n=settings.n_baseline, n_therm=settings.n_therm,
                                        seed=seed + 100 * j + k, n_timing=20 if settings.fast else 200)
            out.append(u1_topology.summarise(h))
    return out


@dataclass
class Study:
    """Everything the lecture shows: the trained flows, their chains, the baselines."""

    settings: Settings
    trained: dict  # beta -> TrainResult (8x8)
    train_seconds: dict  # beta -> seconds
    runs: list  # FlowRun, 8x8 at every beta, then the carried-over beta = 2 model on big_L
    baselines: list  # u1_topology.Summary


def study(*, fast: bool, seed: int = SEED, log=None) -> Study:
    """Train, sample and run the baselines (see the module docstring)."""
    settings = settings_for(fast)
    trained, seconds, runs = {}, {}, []
    for beta in settings.train_steps:
        trained[beta], seconds[beta] = train_point(beta, settings, seed=seed)
        runs.append(flow_run(trained[beta].flow, beta, settings.n_chain, seed=seed + int(10 * beta), train_seconds=seconds[beta]))
        if log:
            log(f"beta {beta}: trained {settings.train_steps[beta]} steps in {seconds[beta]:.0f} s, acceptance {runs[-1].acceptance:.3f}")
    big = transfer(trained[BETA].flow, (settings.big_L, settings.big_L))
    runs.append(flow_run(big, BETA, settings.n_chain, seed=seed + 99))
    points = [(L, b) for b in settings.train_steps] + ([(settings.big_L, BETA)] if settings.baselines_on_big_L else [])
    baselines = baseline_runs(points, settings, seed=seed + 1000)
    return Study(settings=settings, trained=trained, train_seconds=seconds, runs=runs, baselines=baselines)


def cost_rows(st: Study, n_samples: int = 10_000) -> list[dict]:
    """Cost of one independent Q, ``2 tau_int(Q)`` steps in ms, for every run; flows also with the
    training spread over ``n_samples`` chain steps (``cost_with_training``)."""
    rows = []
    for r in st.runs:
        tau = r.summary["Q"].tau_int
        ms = 1e3 * r.seconds_per_step
        rows.append({"algorithm": "flow-MCMC", "L": r.L, "beta": r.beta, "acceptance": r.acceptance, "tau_Q": tau,
                     "ms_per_step": ms, "ms_per_independent_Q": 2 * tau * ms,
                     "ms_per_independent_Q_with_training": 2 * tau * (ms + 1e3 * r.train_seconds / n_samples)})
    for s in st.baselines:
        rows.append({"algorithm": s.algorithm, "L": s.L, "beta": s.beta, "acceptance": s.acceptance, "tau_Q": s.tau_Q,
                     "ms_per_step": s.ms_per_step, "ms_per_independent_Q": s.cost_ms,
                     "ms_per_independent_Q_with_training": s.cost_ms})
    return rows


# ----------------------------------------------------------------------------- figures


def _figure(ncols=1, *, width=4.0, height=3.1):
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, np.atleast_1d(axes)


def figure_training(result: TrainResult) -> Figure:
    """Loss, ESS of the batch and the expected acceptance along the training, with the exact -ln Z."""
    fig, (a, b) = _figure(2)
    h = result.history
    steps = np.arange(1, len(h["loss"]) + 1)
    a.plot(steps, h["loss"], lw=0.6, color="C0", label="loss = <log q + S>")
    a.axhline(-u1_exact_log_partition_function(result.theory.beta, result.theory.shape), color="k", ls="--",
              lw=1, label="-ln Z (exact)")
    a.set_xlabel("training step")
    a.set_ylabel("reverse-KL loss")
    a.legend(fontsize=7)
    w = max(1, len(steps) // 20)
    for key, colour in (("ess", "C1"), ("acceptance", "C2")):
        smooth = np.convolve(h[key], np.ones(w) / w, mode="valid")
        b.plot(steps[w - 1:], smooth, color=colour, label=key)
    b.set_xlabel("training step")
    b.set_ylim(0, 1)
    b.legend(fontsize=7)
    b.set_title(f"{result.theory.shape[0]}x{result.theory.shape[1]}, beta={result.theory.beta:g}", fontsize=8)
    return fig


def figure_observables(st: Study) -> Figure:
    """Plaquette and chi_t of flow-MCMC (8x8, each beta) against the exact finite-volume values."""
    fig, (a, b) = _figure(2)
    betas = np.linspace(0.5, 3.5, 61)
    V = L * L
    a.plot(betas, [exact.u1_2d_plaquette(x, V) for x in betas], "k-", lw=1, label="exact")
    b.plot(betas, [exact.u1_2d_topological_susceptibility(x, V) for x in betas], "k-", lw=1, label="exact")
    for r in st.runs:
        if r.L != L:
            continue
        p, c = r.summary["plaquette"], r.summary["chi"]
        a.errorbar(r.beta, p.value, p.error, fmt="o", color="C3", ms=4)
        b.errorbar(r.beta, c.value, c.error, fmt="o", color="C3", ms=4)
    a.set_xlabel("beta")
    a.set_ylabel("<cos theta_P>")
    b.set_xlabel("beta")
    b.set_ylabel("chi_t = <Q^2>/V")
    a.legend(["exact", "flow-MCMC"], fontsize=7)
    fig.suptitle(f"{L}x{L}", fontsize=9)
    return fig


def figure_tau_int(st: Study) -> Figure:
    """tau_int(Q) against beta on 8x8 for every sampler; acceptance of the beta = 2 model on 8x8 and 16x16."""
    fig, (a, b) = _figure(2)
    colours = {"flow-MCMC": "C3", "hmc": "C0", "heatbath": "C2", "hmc+instanton": "C4"}
    labels = {"flow-MCMC": "flow-MCMC", **u1_topology.LABELS}
    for alg in colours:
        rows = [r for r in cost_rows(st) if r["algorithm"] == alg and r["L"] == L]
        if rows:
            a.plot([r["beta"] for r in rows], [r["tau_Q"] for r in rows], "o-", color=colours[alg], label=labels[alg], ms=4)
    a.set_yscale("log")
    a.set_xlabel("beta")
    a.set_ylabel("tau_int(Q) [steps]")
    a.legend(fontsize=7)
    a.set_title(f"{L}x{L}", fontsize=8)
    runs = [r for r in st.runs if r.beta == BETA]
    b.bar([f"{r.L}x{r.L}" for r in runs], [r.acceptance for r in runs], color="C3")
    b.set_ylabel("flow-MCMC acceptance")
    b.set_title(f"the beta={BETA} model on a larger lattice", fontsize=8)
    return fig


def figure_free_energy(st: Study) -> Figure:
    """ln Z per site: importance sampling and the reverse-KL bound against the exact value."""
    fig, (a,) = _figure(1, width=4.4)
    for i, r in enumerate(st.runs):
        V = r.L * r.L
        a.errorbar(i - 0.1, r.log_z / V, r.log_z_error / V, fmt="o", color="C3", ms=4, label="importance sampling" if i == 0 else None)
        a.errorbar(i + 0.1, r.bound / V, r.bound_error / V, fmt="v", color="C0", ms=4, label="reverse-KL bound" if i == 0 else None)
        a.plot([i - 0.3, i + 0.3], [r.log_z_exact / V] * 2, "k-", lw=1.5, label="exact" if i == 0 else None)
    a.set_xticks(range(len(st.runs)), [f"{r.L}x{r.L}\nbeta={r.beta:g}" for r in st.runs], fontsize=7)
    a.set_ylabel("ln Z / V")
    a.legend(fontsize=7)
    return fig


def lecture_figures(st: Study) -> dict[str, Figure]:
    return {
        "u1_flow_training": figure_training(st.trained[BETA]),
        "u1_flow_observables": figure_observables(st),
        "u1_flow_tau_int": figure_tau_int(st),
        "u1_flow_free_energy": figure_free_energy(st),
    }


def figures_dir(fast: bool):
    """Where the notebook writes figures (:func:`latticeml.figures.lecture_figures_dir`)."""
    return lecture_figures_dir(fast)


@register("u1_flows", "Lecture 06: gauge-equivariant flows for 2D U(1) (Kanwar et al. 2020): training, flow-MCMC vs HMC/heatbath/instanton, ln Z")
def make(outdir, *, fast: bool = False) -> list:
    return save_figures(lecture_figures(study(fast=fast)), outdir)
