"""Lecture 03, "a normalizing flow for phi^4": training, chains, analysis and figures, shared by the
notebook ``lectures/03_phi4_normalizing_flow.ipynb`` and the figure maker registered here.

The phi^4 part of the MIT tutorial (M. S. Albergo, D. Boyda, D. C. Hackett, G. Kanwar,
K. Cranmer, S. Racaniere, D. J. Rezende, P. E. Shanahan, arXiv:2101.08176), itself a reproduction of
Albergo, Kanwar & Shanahan, PRD 100 (2019) 034515: 2D phi^4 on 8x8 at m^2 = -4, lambda = 8 (the
symmetric phase), a flow of 16 affine coupling layers with checkerboard masks and conv nets of
2 hidden layers of 8 channels, trained by reverse KL (batch 64, Adam lr 1e-3, 2500 steps), then
used as the proposal of an independence Metropolis chain and compared with HMC and local
Metropolis: |M|, the susceptibility, the zero-momentum correlator and its effective mass, and the
integrated autocorrelation time of |M|.

FAST mode (CI, ``fast=True``) demonstrates the training loop for a few steps on a fresh flow and
then samples with the small pretrained model committed beside the lecture
(``latticeml/data/phi4_flow_8x8_pretrained.npz``), with short chains. (Continuing the pretrained model
with a fresh Adam would not do: Adam's first updates move every weight by about the learning rate
whatever its gradient, which visibly degrades a converged flow.) The full mode trains from
scratch with the tutorial's budget and samples with that model.

Shapes: fields ``(n, 8, 8)``; records ``(n,)`` per chain.
"""

from __future__ import annotations

import importlib.resources
import pathlib
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from ..figures import lecture_figures_dir, register, save_figures
from ..flows import Flow, FlowMCMCResult, flow_mcmc, load_flow, phi4_flow, train
from ..flows.target import one_numba_thread
from ..flows.training import TrainResult
from ..observables.correlators import zero_momentum_correlator
from ..samplers import hmc, metropolis, run_chain
from ..samplers.chain import ChainResult
from ..stats import GammaResult, gamma_method
from ..theories.phi4 import Phi4

__all__ = [
    "SHAPE",
    "M2",
    "LAM",
    "SEED",
    "Settings",
    "settings_for",
    "lecture_theory",
    "pretrained_path",
    "load_pretrained",
    "train_lecture_flow",
    "sampling_flow",
    "Chains",
    "METHODS",
    "run_chains",
    "correlator",
    "effective_mass",
    "tau_int_abs_m",
    "figure_training",
    "figure_samples",
    "figure_action_scatter",
    "figure_magnetization",
    "figure_correlators",
    "figure_tau_int",
    "lecture_figures",
    "save_figures",
    "figures_dir",
    "make",
]

SHAPE, M2, LAM = (8, 8), -4.0, 8.0
SEED = 1  # the 2500-step training of this seed ends near the median over seeds (benchmarks/RESULTS.md)
HMC_SETTINGS = {"step_size": 0.1, "n_steps": 10}  # trajectory length 1, acceptance ~0.9 at this point
METROPOLIS_STEP = 1.0  # proposal width, acceptance ~0.5


@dataclass(frozen=True)
class Settings:
    """Budgets of one lecture run (steps of each algorithm)."""

    train_steps: int
    n_flow_mcmc: int
    n_hmc: int
    n_metropolis: int
    n_therm: int


def settings_for(fast: bool) -> Settings:
    """FAST (CI): a few training steps on the pretrained model, short chains; full: the tutorial's budget."""
    if fast:
        return Settings(train_steps=20, n_flow_mcmc=4096, n_hmc=2000, n_metropolis=2000, n_therm=100)
    return Settings(train_steps=2500, n_flow_mcmc=32768, n_hmc=20000, n_metropolis=20000, n_therm=500)


def lecture_theory() -> Phi4:
    return Phi4(SHAPE, m2=M2, lam=LAM)


def pretrained_path() -> pathlib.Path:
    """The small pretrained model of lecture 03, shipped with the package (``latticeml/data``)."""
    return pathlib.Path(str(importlib.resources.files("latticeml") / "data" / "phi4_flow_8x8_pretrained.npz"))


def load_pretrained() -> Flow:
    path = pretrained_path()
    if not path.exists():
        raise FileNotFoundError(f"the pretrained lecture model is missing: {path}")
    return load_flow(path)


def train_lecture_flow(*, fast: bool, seed: int = SEED, progress: bool = False) -> TrainResult:
    """The tutorial's training from scratch: 16 couplings, batch 64, Adam lr 1e-3, 2500 steps
    (``settings_for(True).train_steps`` = 20 steps in FAST mode)."""
    flow = phi4_flow(SHAPE, rng=np.random.default_rng([seed, 0]))
    steps = settings_for(fast).train_steps
    return train(flow, lecture_theory(), steps=steps, batch_size=64, lr=1e-3, rng=np.random.default_rng([seed, 1]), progress=progress)


def sampling_flow(result: TrainResult, *, fast: bool) -> Flow:
    """The flow the lecture samples with: the trained one, or in FAST mode the pretrained model."""
    return load_pretrained() if fast else result.flow


@dataclass
class Chains:
    """The three Markov chains of the comparison, each measured after every step."""

    flow: FlowMCMCResult
    hmc: ChainResult
    metropolis: ChainResult

    def fields(self, method: str) -> np.ndarray:
        return {"flow-MCMC": self.flow.fields, "HMC": self.hmc.fields, "Metropolis": self.metropolis.fields}[method]

    def records(self, method: str) -> dict:
        return {"flow-MCMC": self.flow.records, "HMC": self.hmc.records, "Metropolis": self.metropolis.records}[method]


METHODS = ("flow-MCMC", "HMC", "Metropolis")


def run_chains(flow: Flow, theory: Phi4, *, fast: bool, seed: int = SEED, progress: bool = False) -> Chains:
    """Flow-MCMC with ``flow``; HMC and checkerboard Metropolis from phi = 0, thermalised.

    (A hot start with N(0, 1) values can put a site so far out that the phi^4 force makes the
    first HMC trajectories diverge; phi = 0 is a typical configuration of the symmetric phase.)
    """
    s = settings_for(fast)
    flow_chain = flow_mcmc(flow, theory, np.random.default_rng([seed, 2]), n_steps=s.n_flow_mcmc, batch_size=1024)
    with one_numba_thread():  # tiny kernels: threads cost more than they give on 64 sites
        rng = np.random.default_rng([seed, 3])
        hmc_chain = run_chain(hmc.sampler(theory, **HMC_SETTINGS), theory.cold_start(), rng,
                              n_measure=s.n_hmc, n_therm=s.n_therm, keep_fields=True, progress=progress)
        rng = np.random.default_rng([seed, 4])
        met_chain = run_chain(metropolis.sampler(theory, step_size=METROPOLIS_STEP), theory.cold_start(), rng,
                              n_measure=s.n_metropolis, n_therm=s.n_therm, keep_fields=True, progress=progress)
    return Chains(flow=flow_chain, hmc=hmc_chain, metropolis=met_chain)


# ----------------------------------------------------------------------------- analysis


def correlator(fields) -> tuple[np.ndarray, np.ndarray]:
    """Zero-momentum correlator C(t) of a chain with Gamma-method errors: ``(mean, error)``, each ``(L_t,)``."""
    per_config = zero_momentum_correlator(fields, per_config=True)
    res = [gamma_method(per_config[:, t]) for t in range(per_config.shape[1])]
    return np.array([r.value for r in res]), np.array([r.error for r in res])


def effective_mass(fields) -> tuple[np.ndarray, np.ndarray]:
    """cosh effective mass ``arccosh[(C(t-1) + C(t+1)) / 2 C(t)]`` for t = 1 .. L_t/2, with Gamma-method errors."""
    per_config = zero_momentum_correlator(fields, per_config=True)
    L = per_config.shape[1]
    values, errors = [], []
    for t in range(1, L // 2 + 1):
        cols = per_config[:, [(t - 1) % L, t, (t + 1) % L]]
        r = gamma_method(cols, func=lambda c: float(np.arccosh(max((c[0] + c[2]) / (2.0 * c[1]), 1.0))))
        values.append(r.value)
        errors.append(r.error)
    return np.array(values), np.array(errors)


def tau_int_abs_m(chains: Chains) -> dict[str, GammaResult]:
    """Gamma-method analysis of |M| on each chain (tau_int in units of that chain's steps)."""
    return {m: gamma_method(chains.records(m)["abs_magnetization"]) for m in METHODS}


# ----------------------------------------------------------------------------- figures


_COLORS = {"flow-MCMC": "C3", "HMC": "C0", "Metropolis": "C2", "flow samples": "C1"}


def _new_figure(ncols=1, *, width=4.0, height=3.0):
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _running_mean(x, window):
    window = max(1, min(window, len(x)))
    c = np.cumsum(np.insert(np.asarray(x, dtype=float), 0, 0.0))
    return (c[window:] - c[:-window]) / window, np.arange(window, len(x) + 1)


def figure_training(history: dict, *, title: str = "reverse-KL training") -> Figure:
    """Loss, ESS of the batch and expected acceptance against the training step (running means)."""
    fig, axes = _new_figure(3, width=3.2)
    n = len(history["loss"])
    window = max(1, n // 50)
    for ax, key, label in zip(axes, ("loss", "ess", "acceptance"),
                              ("loss = <log q + S>", "ESS / 64 (batch of 64)", "expected acceptance")):
        ax.plot(np.arange(1, n + 1), history[key], color="0.8", lw=0.5)
        y, x = _running_mean(history[key], window)
        ax.plot(x, y, color="C3", lw=1.2)
        ax.set(xlabel="training step", ylabel=label)
    axes[0].set_title(title, fontsize=9)
    if n and np.nanmax(history["loss"]) > 20 * max(abs(np.nanmin(history["loss"])), 1.0):
        axes[0].set_yscale("symlog")
    return fig


def figure_samples(flow: Flow, hmc_fields: np.ndarray, *, rng: np.random.Generator, n: int = 4) -> Figure:
    """A few independent flow samples (top) next to HMC configurations (bottom), same colour scale."""
    phi, _ = flow.sample(rng, n)
    picks = hmc_fields[np.linspace(0, len(hmc_fields) - 1, n).astype(int)]
    fig = Figure(figsize=(1.6 * n, 3.4), layout="constrained")
    axes = fig.subplots(2, n)
    vmax = float(np.max(np.abs(np.concatenate([phi, picks]))))
    for j in range(n):
        for row, (data, label) in enumerate(((phi, "flow"), (picks, "HMC"))):
            ax = axes[row, j]
            im = ax.imshow(data[j], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label)
    fig.colorbar(im, ax=axes, shrink=0.8, label=r"$\phi(x)$")
    return fig


def figure_action_scatter(flow: Flow, theory: Phi4, *, rng: np.random.Generator, n: int = 1024) -> Figure:
    """S_eff = -log q against S for flow samples: a perfect flow puts them on a line of slope 1."""
    from ..flows import action, effective_sample_size

    phi, log_q = flow.sample(rng, n)
    S = action(theory, phi)
    S_eff = -log_q
    fig, (ax,) = _new_figure()
    ax.plot(S, S_eff - np.mean(S_eff - S), ".", ms=2, alpha=0.5, color="C3")
    lo, hi = np.percentile(S, [0.5, 99.5])
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="slope 1")
    ess = effective_sample_size(-S - log_q)
    ax.set(xlabel=r"$S(\phi)$", ylabel=r"$S_\mathrm{eff} = -\log q(\phi)$ (shifted)",
           title=f"ESS = {ess:.2f} on {n} samples", xlim=(lo, hi))
    ax.legend(fontsize=7)
    return fig


def figure_magnetization(chains: Chains, flow_samples: np.ndarray) -> Figure:
    """Histograms of M: raw flow samples (biased), flow-MCMC and HMC (both exact)."""
    fig, (ax,) = _new_figure()
    bins = np.linspace(-0.4, 0.4, 41)
    M_flow = flow_samples.reshape(len(flow_samples), -1).mean(axis=1)
    ax.hist(M_flow, bins=bins, density=True, histtype="step", color=_COLORS["flow samples"], label="flow samples (unweighted)")
    for m in ("flow-MCMC", "HMC"):
        ax.hist(chains.records(m)["magnetization"], bins=bins, density=True, histtype="step", color=_COLORS[m], label=m)
    ax.set(xlabel=r"$M = \frac{1}{V}\sum_x \phi(x)$", ylabel="density")
    ax.legend(fontsize=7)
    return fig


def figure_correlators(chains: Chains) -> Figure:
    """C(t) (log scale) and the cosh effective mass for each chain, Gamma-method errors."""
    fig, (ax, bx) = _new_figure(2)
    for j, m in enumerate(METHODS):
        fields = chains.fields(m)
        C, dC = correlator(fields)
        t = np.arange(len(C))
        ax.errorbar(t + 0.1 * (j - 1), C, dC, fmt="o", ms=3, capsize=2, color=_COLORS[m], label=m)
        me, dme = effective_mass(fields)
        bx.errorbar(np.arange(1, len(me) + 1) + 0.1 * (j - 1), me, dme, fmt="o", ms=3, capsize=2, color=_COLORS[m], label=m)
    ax.set(yscale="log", xlabel="t", ylabel="C(t)", title="zero-momentum correlator")
    bx.set(xlabel="t", ylabel=r"$m_\mathrm{eff}(t)$", title="effective mass")
    ax.legend(fontsize=7)
    return fig


def figure_tau_int(chains: Chains) -> Figure:
    """tau_int of |M| per step of each algorithm (one step: a proposal, a trajectory, a sweep)."""
    res = tau_int_abs_m(chains)
    fig, (ax,) = _new_figure()
    x = np.arange(len(METHODS))
    ax.bar(x, [res[m].tau_int for m in METHODS], yerr=[res[m].tau_int_error for m in METHODS], capsize=3,
           color=[_COLORS[m] for m in METHODS])
    ax.set_xticks(x, [f"{m}\n(acc. {a:.2f})" for m, a in zip(METHODS, (chains.flow.acceptance, chains.hmc.acceptance.mean(),
                                                                          chains.metropolis.acceptance.mean()))], fontsize=8)
    ax.set(ylabel=r"$\tau_\mathrm{int}(|M|)$ [steps]", yscale="log", title="autocorrelation of |M|")
    return fig


def lecture_figures(result: TrainResult, flow: Flow, chains: Chains, *, seed: int = SEED) -> dict[str, Figure]:
    """All lecture figures, keyed by file stem: the training history of ``result``, samples of ``flow``."""
    rng = np.random.default_rng([seed, 5])
    theory = result.theory
    flow_samples, _ = flow.sample(np.random.default_rng([seed, 6]), 4096)
    return {
        "phi4_flow_training": figure_training(result.history),
        "phi4_flow_samples": figure_samples(flow, chains.hmc.fields, rng=rng),
        "phi4_flow_action_scatter": figure_action_scatter(flow, theory, rng=rng),
        "phi4_flow_magnetization": figure_magnetization(chains, flow_samples),
        "phi4_flow_correlators": figure_correlators(chains),
        "phi4_flow_tau_int": figure_tau_int(chains),
    }


def figures_dir(fast: bool) -> pathlib.Path:
    """Where the notebook writes figures (:func:`latticeml.figures.lecture_figures_dir`)."""
    return lecture_figures_dir(fast)


@register("phi4_flow", "Lecture 03: normalizing flow for phi^4 on 8x8 (Albergo et al. 2019/2021): training, flow-MCMC vs HMC vs Metropolis")
def make(outdir, *, fast: bool = False) -> list[pathlib.Path]:
    result = train_lecture_flow(fast=fast)
    flow = sampling_flow(result, fast=fast)
    chains = run_chains(flow, result.theory, fast=fast)
    return save_figures(lecture_figures(result, flow, chains), outdir)
