"""Lecture 07, "L2HMC": the runs and figures shared by ``lectures/07_l2hmc.ipynb`` and the figure maker
``l2hmc`` registered here (the samplers are :mod:`latticeml.samplers.l2hmc`).

* :func:`hmc_mixture_runs`: seed 004's demo, HMC (10 leapfrog steps of 0.25 and of 0.5) on a mixture of
  two Gaussians at -+4 (unit width), 4 chains started in the left mode: HMC never crosses.
* :func:`basin_transitions`, :func:`mixture_comparison`: transitions between the two modes per 1000
  force evaluations of HMC and of L2HMC trained with tempering (Levy, Hoffman & Sohl-Dickstein,
  ICLR 2018, who anneal the temperature for their mixture), chains started in the left mode, with <x_0> and <x_0^2> (exact 0 and 17).
* :func:`u1_tunnelling`: integer-charge changes per 1000 force evaluations, tau_int(Q) and the
  acceptance of HMC and of an L2HMC model at the same force evaluations per trajectory, 2D U(1)
  (every chain here runs through :func:`run_chains`, as do those of ``benchmarks/bench_l2hmc.py`` and
  ``benchmarks/bench_u1_samplers.py``, which also times it).

Every random number comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import functools
import pathlib
import time

import numpy as np
from matplotlib.figure import Figure

from ..figures import register, save_figures
from ..observables import topology
from ..samplers import l2hmc as L
from ..stats import gamma_method

__all__ = ["MIXTURE_MEANS", "hmc_mixture_runs", "mixture_figure", "basin_transitions", "mixture_comparison", "run_chains", "integer_charge", "u1_tunnelling", "tunnelling_figure", "make"]

MIXTURE_MEANS = ((-4.0, 0.0), (4.0, 0.0))


def hmc_mixture_runs(*, fast: bool, seed: int = 4, step_sizes=(0.25, 0.5), n_steps: int = 10) -> dict:
    """``{eps: positions (n, 4 chains, 2)}`` of HMC on the two-mode mixture, chains started at (-4, 0)."""
    target = L.MixtureTarget(MIXTURE_MEANS, 1.0)
    rng = np.random.default_rng(seed)
    runs = {}
    for eps in step_sizes:
        step = functools.partial(L.hmc_step, target=target, step_size=eps, n_steps=n_steps)
        runs[eps], _, _ = run_chains(step, L.init_state(target, np.array([MIXTURE_MEANS[0]] * 4)), rng,
                                     n=200 if fast else 2000, record=np.copy)
    return runs


def mixture_figure(runs: dict) -> Figure:
    fig = Figure(figsize=(8, 3.2))
    axes = fig.subplots(1, len(runs), sharey=True)
    for ax, (eps, xs) in zip(np.atleast_1d(axes), runs.items()):
        ax.plot(xs[:, :, 0].ravel(), xs[:, :, 1].ravel(), ".", ms=2)
        for m in MIXTURE_MEANS:
            ax.plot(*m, "k+", ms=12)
        ax.set_title(f"HMC, eps = {eps}: in the right mode {np.mean(xs[:, :, 0] > 0):.2f}", fontsize=9)
        ax.set_xlim(-8, 8)
        ax.set_xlabel("x0")
    fig.tight_layout()
    return fig


def basin_transitions(x0, core: float = 2.0) -> np.ndarray:
    """Transitions between the basins ``x_0 < -core`` and ``x_0 > core``, per chain: x0 ``(n, chains)`` -> ``(chains,)``.

    A chain's basin is the last core it visited (at the start: the sign of x_0), so a chain wandering
    near the barrier x_0 = 0 (sign changes without reaching the other mode) counts no transition.
    """
    x0 = np.asarray(x0, dtype=np.float64)
    basin = np.sign(x0[0])
    count = np.zeros(x0.shape[1])
    for row in x0[1:]:
        inside = np.where(row > core, 1.0, np.where(row < -core, -1.0, 0.0))
        moved = (inside != 0) & (inside != basin)
        count += moved
        basin = np.where(moved, inside, basin)
    return count


def mixture_comparison(samplers: dict, target, *, n_chains: int, n: int, seed: int) -> dict:
    """Run every sampler of ``{name: (step, force evaluations per step)}`` on the two-mode ``target``
    with ``n_chains`` chains started in the left mode, ``n`` steps each.

    Returns ``{name: {"rate", "rate_err", "right", "right_err", "acceptance", "x0", "x0_sq", "chains"}}``:
    basin transitions per 1000 force evaluations and the fraction of samples with x_0 > 0 (means and
    standard errors over the chains), the Gamma-method estimates (:func:`latticeml.stats.gamma_method`,
    on the chain-averaged series) of <x_0> (exact 0) and <x_0^2> (exact ``4^2 + 1 = 17`` for means at
    -+4 of unit width), and the chains' x_0 ``(n, n_chains)``.
    """
    out = {}
    for name, (step, n_force) in samplers.items():
        rng = np.random.default_rng(seed)
        state = L.init_state(target, np.array(MIXTURE_MEANS[0]) + rng.standard_normal((n_chains, 2)))
        x0, acc, _ = run_chains(step, state, rng, n=n, record=lambda x: x[:, 0])
        per_chain = 1000.0 * basin_transitions(x0) / (n * n_force)
        right = (x0 > 0).mean(axis=0)
        se = np.sqrt(n_chains)
        out[name] = {"rate": float(per_chain.mean()), "rate_err": float(per_chain.std(ddof=1) / se),
                     "right": float(right.mean()), "right_err": float(right.std(ddof=1) / se),
                     "acceptance": acc, "x0": gamma_method(x0.mean(axis=1)),
                     "x0_sq": gamma_method((x0**2).mean(axis=1)), "chains": x0}
    return out


def run_chains(step, state, rng, *, n: int, record, n_therm: int = 0):
    """Run batched chains of :mod:`latticeml.samplers.l2hmc`: ``n_therm`` steps, then ``n`` measured ones of
    ``step(rng, state) -> (state, info)`` (:func:`~latticeml.samplers.l2hmc.hmc_step` or
    :func:`~latticeml.samplers.l2hmc.l2hmc_step` with its arguments bound). Returns ``record(state.x)``
    after each measured step stacked ``(n, ...)``, the mean acceptance, and the wall-clock seconds per
    measured step spent in ``step`` (the recording is outside the clock). Runs every chain of this
    module, of ``benchmarks/bench_l2hmc.py`` and of ``benchmarks/bench_u1_samplers.py``'s L2HMC."""
    for _ in range(n_therm):
        state, _ = step(rng, state)
    records, acc, seconds = [], [], 0.0
    for _ in range(n):
        start = time.perf_counter()
        state, info = step(rng, state)
        seconds += time.perf_counter() - start
        acc.append(info.acceptance)
        records.append(record(state.x))
    return np.array(records), float(np.mean(acc)), seconds / n


def integer_charge(x) -> np.ndarray:
    """The integer topological charge of batched 2D U(1) links ``(chains, 2, L0, L1)``: ``(chains,)``
    (a ``record`` for :func:`run_chains`)."""
    return np.rint(topology.topological_charge_u1(x, batched=True))


def u1_tunnelling(dyn, target, *, n_chains: int, n_traj: int, n_therm: int, seed: int) -> dict:
    """``{"HMC"|"L2HMC": (acceptance, charge changes per 1000 force evaluations, mean tau_int(Q), Q history)}``.

    HMC: ``dyn.n_layers`` leapfrog steps of the model's initial step size (``dyn.config["step_size"]``),
    the same force evaluations per trajectory as the L2HMC model and the trajectory L2HMC started
    training from; both chains start from the same hot configurations.
    tau_int(Q) is the mean over the chains in which Q moved (nan if it moved in none).
    """
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(-np.pi, np.pi, (n_chains,) + target.event_shape)
    n, eps = dyn.n_layers, dyn.config["step_size"]
    rows = {}
    for name, step in (("HMC", lambda r, s: L.hmc_step(r, s, target, step_size=eps, n_steps=n)),
                       ("L2HMC", lambda r, s: L.l2hmc_step(r, s, dyn, target))):
        Q, acc, _ = run_chains(step, L.init_state(target, x0), rng, n_therm=n_therm, n=n_traj, record=integer_charge)
        changes = 1000.0 * np.count_nonzero(np.diff(Q, axis=0)) / (Q.size * n)
        taus = [gamma_method(Q[:, c]).tau_int for c in range(n_chains) if np.ptp(Q[:, c]) > 0]
        rows[name] = (acc, changes, float(np.mean(taus)) if taus else float("nan"), Q)
    return rows


def tunnelling_figure(rows: dict, *, chains: int = 3) -> Figure:
    """Integer charge Q against trajectory for the first ``chains`` chains of each sampler in ``rows``."""
    fig = Figure(figsize=(8, 3.0))
    axes = fig.subplots(1, len(rows), sharey=True)
    for ax, (name, (acc, changes, tau, Q)) in zip(np.atleast_1d(axes), rows.items()):
        for c in range(min(chains, Q.shape[1])):
            ax.plot(Q[:, c], lw=0.8)
        ax.set_title(f"{name}: acc {acc:.2f}, {changes:.1f} changes / 1000 force ev.", fontsize=9)
        ax.set_xlabel("trajectory")
    np.atleast_1d(axes)[0].set_ylabel("Q")
    fig.tight_layout()
    return fig


@register("l2hmc", "Lecture 07: HMC stuck in one mode of a two-Gaussian mixture (eps 0.25 and 0.5), seed 004's demo")
def make(outdir, *, fast: bool = False) -> list[pathlib.Path]:
    return save_figures({"l2hmc_hmc_mixture": mixture_figure(hmc_mixture_runs(fast=fast))}, outdir)
