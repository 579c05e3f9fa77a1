"""Lecture 05, "L-CNN": the regression study and figure shared by ``lectures/05_lcnn_wilson_loops.ipynb``
and the figure maker ``lcnn_generalisation`` registered here (the nets are :mod:`latticeml.nets.lcnn`).

* :func:`make_data` -- SU(2) configurations with their Wilson-loop labels: the paper's protocol
  (heatbath at beta = 0.1..6, :func:`latticeml.nets.lcnn_train.generate_dataset`) in the full mode,
  Haar-random links (the beta = 0 ensemble) in FAST mode, where the heatbath's compile would dominate.
* :func:`regression_study` -- train L-CNNs on 8 x 8 and measure the test MSE of the lattice-averaged
  prediction on larger lattices (Favoni, Ipp, Mueller, Schuh, PRL 128 (2022) 032003, Fig. 2's metric).
* :func:`generalisation_figure` -- that MSE against the lattice size, one line per (target, architecture).

Every random number comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..figures import register, save_figures
from ..groups import haar_su
from ..nets import lcnn
from ..nets import lcnn_train as lt

__all__ = ["make_data", "regression_study", "generalisation_figure", "make"]


def make_data(rng: np.random.Generator, shape, n_per_beta: int, *, fast: bool) -> dict:
    """``{"U": (B, D, *shape, 2, 2), "beta": (B,), "y_<target>": labels}`` for SU(2) on ``shape``."""
    if not fast:
        return lt.generate_dataset(rng, shape, n_per_beta=n_per_beta, n_therm=100, every=10)
    U = haar_su(rng, 2, (10 * n_per_beta, len(shape)) + tuple(shape))
    return {"U": U, "beta": np.zeros(len(U)), **{f"y_{t}": lt.labels(U, t) for t in lt.TARGETS}}


def regression_study(train: dict, tests: dict, jobs, seeds, *, epochs: int, log=print) -> dict:
    """``{(target, arch): median over seeds of the test MSE on each lattice of tests}``.

    ``train`` is a dataset of :func:`make_data`; ``tests`` maps a lattice shape to a dataset on it;
    ``jobs`` lists (target, architecture) pairs of :func:`latticeml.nets.lcnn.build_lcnn`.
    """
    shapes = list(tests)
    results = {}
    for target, arch in jobs:
        mses = []
        for seed in seeds:
            model = lcnn.build_lcnn(target, arch, rng=np.random.default_rng(seed))
            lr = 0.05 if target == "1x1" else 1e-2
            lt.train(model, (train["U"], train[f"y_{target}"]), rng=np.random.default_rng(seed), epochs=epochs, batch=4, lr=lr, progress=False)
            mses.append([lt.test_mse(model, tests[s]["U"], tests[s][f"y_{target}"]) for s in shapes])
        results[(target, arch)] = np.median(mses, axis=0)
        log(f"W{target} {arch:6s}: " + "  ".join(f"{'x'.join(map(str, s))}: {v:.2e}" for s, v in zip(shapes, results[(target, arch)])))
    return results


def generalisation_figure(results: dict, shapes) -> Figure:
    """Test MSE against the linear lattice size L (trained on 8 x 8): flat lines are what equivariance buys."""
    fig = Figure(figsize=(5.2, 3.4))
    ax = fig.subplots()
    sizes = [s[0] for s in shapes]
    for (target, arch), mse in results.items():
        ax.semilogy(sizes, np.maximum(mse, 1e-300), "o-", label=f"W{target} {arch}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(L) for L in sizes])
    ax.set_xlabel("L of the L x L test lattice (trained on 8 x 8)")
    ax.set_ylabel("test MSE of the lattice average")
    ax.set_title("L-CNN regression of Wilson loops, SU(2)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def study(*, fast: bool, seed: int = 2022, split=None, log=print) -> tuple[dict, list]:
    """The lecture's section 3 at its FAST or full size: returns (results, test shapes).

    ``split = (train, test)`` reuses 8 x 8 datasets already drawn (the lecture's section 1);
    without it they are drawn here.
    """
    rng = np.random.default_rng(seed)
    if split is None:
        train, _, test = lt.split(make_data(rng, (8, 8), 2 if fast else 20, fast=fast), rng)
    else:
        train, test = split
    shapes = [(8, 8), (16, 16)] if fast else [(8, 8), (16, 16), (32, 32), (64, 64)]
    tests = {s: (test if s == (8, 8) else make_data(rng, s, 1 if fast else 4, fast=fast)) for s in shapes}
    jobs = [("1x1", "small"), ("2x2", "small")] if fast else [(t, a) for t in lt.TARGETS for a in ("small", "medium", "large")]
    seeds = [0] if fast else [0, 1, 2]
    return regression_study(train, tests, jobs, seeds, epochs=30 if fast else 200, log=log), shapes


@register("lcnn_generalisation", "L-CNN: test MSE of Wilson-loop regression vs lattice size (lecture 05)")
def make(outdir, *, fast=False):
    results, shapes = study(fast=fast, log=lambda *_: None)
    return save_figures({"lcnn_generalisation": generalisation_figure(results, shapes)}, outdir)
