"""Lecture 01, "symmetries in a cubic fit": data, training and figures, shared by the notebook
``lectures/01_symmetries_cubic_fit.ipynb`` and the figure maker registered here.

The toy model of A. Ipp, "Symmetries and ML", SLAC Summer Institute 2023: learn f(x) = x^3
from noisy samples on a training interval with

* a generic MLP  h(x) = W3 tanh(W2 tanh(W1 x + b1) + b2) + b3, and
* the odd MLP    h(x) = W3 tanh(W2 tanh(W1 x))  (no biases, odd activation),

trained side by side (full-batch Adam on the mean squared error). The symmetric part
Delta_sym(x) = (h(x) + h(-x))/2 of the generic net is small but non-zero (it fits the noise);
for the odd net it vanishes exactly, also far outside the training interval, where neither
net extrapolates x^3. Fitting the even f(x) = x^2 with the odd net fails: an odd function is
orthogonal to every even one, and the best odd fit to symmetric data is close to zero.

Shapes: samples x, y are (N, 1) float64 arrays; nets map (N, 1) -> (N, 1).
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
from matplotlib.figure import Figure

from ..autodiff import nn, optim
from ..autodiff.tensor import as_value, no_grad
from ..figures import register, save_figures as _save_figures
from ..nets.symmetric import OddMLP, symmetric_part

__all__ = [
    "TRAIN_INTERVAL",
    "SEED",
    "cube",
    "square",
    "epochs_for",
    "run_lecture",
    "FitResult",
    "noisy_samples",
    "train_mse",
    "fit_side_by_side",
    "predict",
    "figure_predictions",
    "figure_symmetric_part",
    "figure_generalisation",
    "figure_even_target",
    "lecture_figures",
    "save_figures",
    "make",
]

TRAIN_INTERVAL = (-1.5, 1.5)


def cube(x):
    return x**3


def square(x):
    return x**2


def noisy_samples(f: Callable, *, n: int, noise: float, rng: np.random.Generator, interval=TRAIN_INTERVAL):
    """``n`` points x uniform on ``interval``, y = f(x) + noise * N(0, 1); both shaped (n, 1)."""
    x = rng.uniform(interval[0], interval[1], size=(n, 1))
    return x, f(x) + noise * rng.standard_normal((n, 1))


def train_mse(net: nn.Module, x, y, *, epochs: int, lr: float = 1e-2) -> np.ndarray:
    """Full-batch Adam on the mean squared error; returns the loss after each epoch."""
    opt = optim.Adam(net.parameters(), lr=lr)
    losses = np.empty(epochs)
    for epoch in range(epochs):
        opt.zero_grad()
        loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses[epoch] = loss.value
    return losses


def predict(net, x) -> np.ndarray:
    """Net output as a flat array for x of shape (N,) or (N, 1), no tape recorded."""
    with no_grad():
        return np.asarray(as_value(net(np.asarray(x, dtype=np.float64).reshape(-1, 1)))).ravel()


@dataclass
class FitResult:
    """Both nets trained on the same samples of ``target``."""

    target: Callable
    label: str
    x: np.ndarray
    y: np.ndarray
    generic: nn.Module
    odd: OddMLP
    losses_generic: np.ndarray
    losses_odd: np.ndarray


def fit_side_by_side(
    target: Callable,
    *,
    label: str,
    rng: np.random.Generator,
    epochs: int,
    n: int = 40,
    noise: float = 0.1,
    hidden=(16, 16),
    lr: float = 1e-2,
) -> FitResult:
    """Draw samples of ``target`` and train a generic MLP and an odd MLP on them."""
    x, y = noisy_samples(target, n=n, noise=noise, rng=rng)
    sizes = [1, *hidden, 1]
    generic = nn.mlp(sizes, activation="tanh", rng=rng)
    odd = OddMLP(sizes, activation="tanh", rng=rng)
    lg = train_mse(generic, x, y, epochs=epochs, lr=lr)
    lo = train_mse(odd, x, y, epochs=epochs, lr=lr)
    return FitResult(target, label, x, y, generic, odd, lg, lo)


# --- figures (matplotlib Figure objects: no pyplot state, displayable in Jupyter) -------------

_STYLE = {"generic": dict(color="C0", label="generic MLP"), "odd": dict(color="C3", label="odd MLP")}


def _new_figure(ncols=1):
    fig = Figure(figsize=(4.2 * ncols, 3.2), dpi=100, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _shade_training(ax):
    ax.axvspan(*TRAIN_INTERVAL, color="0.92", zorder=0, label="training interval")


def figure_predictions(res: FitResult, *, xlim=(-2.0, 2.0)) -> Figure:
    """Samples, ground truth and both nets' predictions after training."""
    fig, (ax,) = _new_figure()
    xs = np.linspace(*xlim, 401)
    ax.plot(xs, res.target(xs), "k--", lw=1, label=f"ground truth {res.label}")
    ax.plot(res.x.ravel(), res.y.ravel(), "k+", ms=5, label="training data")
    ax.plot(xs, predict(res.generic, xs), **_STYLE["generic"])
    ax.plot(xs, predict(res.odd, xs), **_STYLE["odd"])
    ax.set(xlim=xlim, ylim=(-4, 4), xlabel="input x", ylabel="output y", title=f"learn f(x) = {res.label}")
    ax.legend(fontsize=7)
    return fig


def figure_symmetric_part(res: FitResult, *, xlim=(-2.0, 2.0)) -> Figure:
    """Delta_sym(x) = (h(x) + h(-x))/2 for both nets."""
    fig, (ax,) = _new_figure()
    xs = np.linspace(*xlim, 401)[:, None]
    _shade_training(ax)
    ax.axhline(0, color="k", lw=0.5)
    ax.plot(xs, symmetric_part(res.generic, xs), **_STYLE["generic"])
    ax.plot(xs, symmetric_part(res.odd, xs), **_STYLE["odd"], ls="--")
    ax.set(xlim=xlim, xlabel="input x", ylabel=r"$\Delta_{sym}(x) = [h(x) + h(-x)]/2$", title="symmetric part")
    ax.legend(fontsize=7)
    return fig


def figure_generalisation(res: FitResult, *, xlim=(-4.0, 4.0)) -> Figure:
    """Beyond the training interval: predictions (left) and symmetric part (right)."""
    fig, (ax, bx) = _new_figure(2)
    xs = np.linspace(*xlim, 801)
    for a in (ax, bx):
        _shade_training(a)
    ax.plot(xs, res.target(xs), "k--", lw=1, label=f"ground truth {res.label}")
    ax.plot(xs, predict(res.generic, xs), **_STYLE["generic"])
    ax.plot(xs, predict(res.odd, xs), **_STYLE["odd"])
    ax.set(xlim=xlim, ylim=(-20, 20), xlabel="input x", ylabel="output y", title="generalisation")
    ax.legend(fontsize=7)
    bx.axhline(0, color="k", lw=0.5)
    bx.plot(xs, symmetric_part(res.generic, xs[:, None]), **_STYLE["generic"])
    bx.plot(xs, symmetric_part(res.odd, xs[:, None]), **_STYLE["odd"], ls="--")
    bx.set(xlim=xlim, xlabel="input x", ylabel=r"$\Delta_{sym}(x)$", title="symmetric part")
    return fig


def figure_even_target(res: FitResult, *, xlim=(-2.0, 2.0)) -> Figure:
    """The even target x^2: the generic net fits it, the odd net cannot."""
    fig, (ax,) = _new_figure()
    xs = np.linspace(*xlim, 401)
    ax.plot(xs, res.target(xs), "k--", lw=1, label=f"ground truth {res.label}")
    ax.plot(res.x.ravel(), res.y.ravel(), "k+", ms=5, label="training data")
    ax.plot(xs, predict(res.generic, xs), **_STYLE["generic"])
    ax.plot(xs, predict(res.odd, xs), **_STYLE["odd"])
    ax.set(xlim=xlim, ylim=(-1.5, 4), xlabel="input x", ylabel="output y", title="odd net, even target")
    ax.legend(fontsize=7)
    return fig


def lecture_figures(cubic: FitResult, even: FitResult) -> dict[str, Figure]:
    """The four lecture figures, keyed by file stem."""
    return {
        "symmetries_x3_predictions": figure_predictions(cubic),
        "symmetries_x3_symmetric_part": figure_symmetric_part(cubic),
        "symmetries_x3_generalisation": figure_generalisation(cubic),
        "symmetries_x2_odd_net": figure_even_target(even),
    }


def save_figures(figures: dict[str, Figure], outdir) -> list[pathlib.Path]:
    """Write the lecture's PNGs (100 dpi: the fits need the detail) and return their paths."""
    return _save_figures(figures, outdir, dpi=100)


SEED = 2023


def epochs_for(fast: bool) -> int:
    """Training epochs: 2000 for the lecture figures, 300 in FAST (CI) mode."""
    return 300 if fast else 2000


def run_lecture(*, fast: bool, seed: int = SEED) -> tuple[FitResult, FitResult]:
    """Train the x^3 and then the x^2 fits from one generator, as the notebook does."""
    rng = np.random.default_rng(seed)
    cubic = fit_side_by_side(cube, label="$x^3$", rng=rng, epochs=epochs_for(fast))
    even = fit_side_by_side(square, label="$x^2$", rng=rng, epochs=epochs_for(fast))
    return cubic, even


@register("symmetries_cubic_fit", "Lecture 01: generic vs odd MLP fitting x^3 and x^2 (Ipp, SSI 2023)")
def make(outdir, *, fast: bool = False) -> list[pathlib.Path]:
    cubic, even = run_lecture(fast=fast)
    grid = np.linspace(-4.0, 4.0, 8001)[:, None]
    if np.max(np.abs(symmetric_part(cubic.odd, grid))) >= 1e-14:
        raise RuntimeError("the odd MLP lost its symmetry: h(-x) != -h(x)")
    return save_figures(lecture_figures(cubic, even), outdir)
