"""Lecture 05, "L-CNN": the regression study and figure shared by ``lectures/05_lcnn_wilson_loops.ipynb``
and the figure maker ``lcnn_generalisation`` registered here (the nets are :mod:`latticeml.nets.lcnn`).

* :func:`make_data` -- SU(2) configurations with their Wilson-loop labels: the paper's protocol
  (heatbath at beta = 0.1..6, :func:`latticeml.nets.lcnn_train.generate_dataset`) in the full mode,
  Haar-random links (the beta = 0 ensemble) in FAST mode, where the heatbath's compile would dominate.
* :func:`regression_study` -- train L-CNNs (and the baseline CNN) on 8 x 8 and measure the test MSE of
  the lattice-averaged prediction on larger lattices (Favoni, Ipp, Mueller, Schuh, PRL 128 (2022) 032003,
  Fig. 2's metric). Adam with a cosine-annealed rate (:func:`latticeml.autodiff.optim.cosine_rate`,
  down to 1/1000 of the first): at a constant rate the final model is a lottery (a W2x2 model's test
  MSE jumped between 1e-13 and 1e-5 from one 25-epoch block to the next). The W4x4 L-CNNs are grown
  block by block (:data:`CURRICULUM`, :func:`latticeml.nets.lcnn_train.train_curriculum`).
* :data:`GOALS` and :func:`goal_rows` -- the float64 goals the lecture checks the medians against.
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

__all__ = ["LEARNING_RATES", "CURRICULUM", "STAGE_LR", "GOALS", "make_data", "regression_study", "goal_rows", "generalisation_figure", "study", "make"]

#: First-epoch Adam rates per target (L-CNN); the baseline CNN starts at 3e-3. Annealed to 1/1000.
LEARNING_RATES = {"1x1": 0.05, "1x2": 1e-2, "2x2": 1e-2, "4x4": 3e-3, "baseline": 3e-3}

#: Targets whose L-CNNs are trained with the curriculum (:func:`latticeml.nets.lcnn_train.train_curriculum`),
#: the stages before the last at ``STAGE_LR``: trained on its labels alone, no architecture learned W4x4
#: (the lecture's first full run: 7.5e-3 ... 1.4e-4, the baseline's level).
CURRICULUM = ("4x4",)
STAGE_LR = 1e-2

#: Goals for the median test MSE (float64): L-CNN at most this on every test lattice (the best
#: architecture), the baseline CNN at least ``GOALS["baseline"]`` for the loops larger than the
#: plaquette (it cannot find them). W1x1 is no test for the baseline: its input holds the plaquette's
#: entries, and Re tr of the plaquette is linear in them (measured: 2e-5 at 64 x 64).
GOALS = {"1x1": 1e-12, "2x2": 1e-7, "4x4": 1e-6, "baseline": 1e-4}


def make_data(rng: np.random.Generator, shape, n_per_beta: int, *, fast: bool) -> dict:
    """``{"U": (B, D, *shape, 2, 2), "beta": (B,), "y_<target>": labels}`` for SU(2) on ``shape``."""
    if not fast:
        return lt.generate_dataset(rng, shape, n_per_beta=n_per_beta, n_therm=100, every=10)
    U = haar_su(rng, 2, (10 * n_per_beta, len(shape)) + tuple(shape))
    return {"U": U, "beta": np.zeros(len(U)), **{f"y_{t}": lt.labels(U, t) for t in lt.TARGETS}}


def regression_study(train: dict, tests: dict, jobs, seeds, *, epochs: int, log=print) -> dict:
    """``{(target, arch): median over seeds of the test MSE on each lattice of tests}``.

    ``train`` is a dataset of :func:`make_data`; ``tests`` maps a lattice shape to a dataset on it;
    ``jobs`` lists (target, architecture) pairs of :func:`latticeml.nets.lcnn.build_lcnn`, with
    ``"baseline"`` as the architecture for the baseline CNN (8 + 8 channels, as in section 1).
    """
    shapes = list(tests)
    D = len(shapes[0])
    results = {}
    for target, arch in jobs:
        mses = []
        for seed in seeds:
            if arch == "baseline":
                model = lcnn.BaselineCNN(D=D, N=2, channels=(8, 8), rng=np.random.default_rng(seed))
            else:
                model = lcnn.build_lcnn(target, arch, D=D, rng=np.random.default_rng(seed))
            lr = LEARNING_RATES["baseline" if arch == "baseline" else target]
            if arch != "baseline" and target in CURRICULUM:
                lt.train_curriculum(model, train["U"], target, rng=np.random.default_rng(seed), epochs=epochs, batch=4,
                                    lr=lr, lr_final=lr / 1000, stage_lr=STAGE_LR, progress=False)
            else:
                lt.train(model, (train["U"], train[f"y_{target}"]), rng=np.random.default_rng(seed), epochs=epochs, batch=4,
                         lr=lr, lr_final=lr / 1000, progress=False)
            mses.append([lt.test_mse(model, tests[s]["U"], tests[s][f"y_{target}"]) for s in shapes])
        results[(target, arch)] = np.median(mses, axis=0)
        log(f"W{target} {arch:8s}: " + "  ".join(f"{'x'.join(map(str, s))}: {v:.2e}" for s, v in zip(shapes, results[(target, arch)])))
    return results


def goal_rows(results: dict) -> list[tuple]:
    """``(target, who, worst median MSE over the test lattices, goal, met)`` for each target with a goal.

    ``who`` is the best L-CNN architecture (the smallest worst-case MSE) or ``"baseline"``; the
    L-CNN's goal is an upper bound, the baseline's a lower one.
    """
    rows = []
    for target in sorted({t for t, _ in results}):
        lcnns = {a: float(np.max(v)) for (t, a), v in results.items() if t == target and a != "baseline"}
        if lcnns and target in GOALS:
            arch = min(lcnns, key=lcnns.get)
            rows.append((target, arch, lcnns[arch], GOALS[target], lcnns[arch] <= GOALS[target]))
        if (target, "baseline") in results and target != "1x1":
            worst = float(np.min(results[(target, "baseline")]))
            rows.append((target, "baseline", worst, GOALS["baseline"], worst >= GOALS["baseline"]))
    return rows


def generalisation_figure(results: dict, shapes) -> Figure:
    """Test MSE against the linear lattice size L (trained on 8 x 8): flat lines are what equivariance buys.

    One colour per target, one marker per architecture; the baseline CNN dashed.
    """
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.subplots()
    sizes = [s[0] for s in shapes]
    targets = sorted({t for t, _ in results})
    markers = {"small": "o", "medium": "s", "large": "^", "baseline": "x"}
    for (target, arch), mse in results.items():
        ax.semilogy(sizes, np.maximum(mse, 1e-300), "--" if arch == "baseline" else "-", marker=markers.get(arch, "o"),
                    color=f"C{targets.index(target)}", label=f"W{target} {arch}", ms=4)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(L) for L in sizes])
    ax.set_xlabel("L of the L x L test lattice (trained on 8 x 8)")
    ax.set_ylabel("median test MSE of the lattice average")
    ax.set_title("L-CNN (solid) and baseline CNN (dashed) on Wilson loops, SU(2)", fontsize=9)
    ax.legend(fontsize=6, ncol=1, loc="center left", bbox_to_anchor=(1.01, 0.5))
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
    archs = ("small", "medium", "large", "baseline")
    jobs = [("1x1", "small"), ("2x2", "small"), ("2x2", "baseline")] if fast else [(t, a) for t in lt.TARGETS for a in archs]
    seeds = [0] if fast else [0, 1, 2]
    return regression_study(train, tests, jobs, seeds, epochs=30 if fast else 200, log=log), shapes


@register("lcnn_generalisation", "L-CNN: test MSE of Wilson-loop regression vs lattice size (lecture 05)")
def make(outdir, *, fast=False):
    results, shapes = study(fast=fast, log=lambda *_: None)
    return save_figures({"lcnn_generalisation": generalisation_figure(results, shapes)}, outdir)
