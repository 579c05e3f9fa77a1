"""Figures of the foundation: the Gamma method checked on chains with a known answer.

``stats_ar1_tau_int``: for AR(1) chains x_{t+1} = rho x_t + sqrt(1 - rho^2) eta_t the integrated
autocorrelation time is tau_int = (1 + rho) / (2 (1 - rho)) exactly; the figure shows Wolff's
automatic-window estimate with its error bar against that line, and the estimated error of the
mean against the exact sqrt(2 tau_int / N) (the variance of x is 1).
"""

from __future__ import annotations

import pathlib

import numpy as np
from matplotlib.figure import Figure

from ..figures import register
from ..stats import gamma_method

RHOS = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)


def ar1_chain(rng: np.random.Generator, rho: float, n: int) -> np.ndarray:
    """An AR(1) chain with unit stationary variance, started in equilibrium."""
    eta = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = eta[0]
    c = np.sqrt(1.0 - rho * rho)
    for t in range(1, n):
        x[t] = rho * x[t - 1] + c * eta[t]
    return x


@register("stats_ar1_tau_int", "Gamma method on AR(1) chains: tau_int and error of the mean vs exact")
def make(outdir, *, fast: bool = False) -> list[pathlib.Path]:
    n = 4_000 if fast else 100_000
    rng = np.random.default_rng(20261122)
    res = [gamma_method(ar1_chain(rng, rho, n)) for rho in RHOS]
    rho = np.array(RHOS)
    fine = np.linspace(0, 0.96, 200)
    exact = lambda r: (1 + r) / (2 * (1 - r))  # noqa: E731

    fig = Figure(figsize=(8, 3.2))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(fine, exact(fine), "k-", lw=1, label=r"exact $(1+\rho)/(2(1-\rho))$")
    ax1.errorbar(rho, [r.tau_int for r in res], [r.tau_int_error for r in res], fmt="o", ms=4, capsize=2, label="Gamma method")
    ax1.set(xlabel=r"$\rho$", ylabel=r"$\tau_\mathrm{int}$", yscale="log", title=f"AR(1), N = {n}")
    ax1.legend(fontsize=8)
    ax2.plot(rho, [r.error / np.sqrt(2 * exact(p) / n) for r, p in zip(res, rho)], "o", ms=4)
    ax2.axhline(1.0, color="k", lw=1)
    ax2.set(xlabel=r"$\rho$", ylabel=r"$\sigma_\mathrm{est} / \sqrt{2\tau_\mathrm{int}/N}$", ylim=(0.5, 1.5), title="error of the mean / exact")
    fig.tight_layout()
    path = pathlib.Path(outdir) / "stats_ar1_tau_int.png"
    fig.savefig(path, dpi=90)
    return [path]
