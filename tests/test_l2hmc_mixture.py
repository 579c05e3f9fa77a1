"""Lecture 07's two-mode bookkeeping (:mod:`latticeml.figure_makers.l2hmc`): basin transitions counted
by hand on constructed paths, and the comparison's moments on exact i.i.d. draws of the mixture."""

import numpy as np
from scipy.stats import norm

from latticeml.figure_makers import l2hmc as lec
from latticeml.samplers import l2hmc as L


def test_basin_transitions_count_committed_crossings_only():
    # chain 0: left -> barrier (sign change, no core reached) -> back left -> right core -> left core: 2
    # chain 1: starts right, wanders in (-2, 2) only: 0;  chain 2: flips every step between the cores: 4
    x0 = np.array([[-4.0, 3.0, -3.0],
                   [0.5, 1.0, 3.0],
                   [-0.5, -1.5, -3.0],
                   [2.5, 1.9, 3.0],
                   [-2.1, 0.0, -3.0]])
    np.testing.assert_array_equal(lec.basin_transitions(x0), [2, 0, 4])


def test_mixture_comparison_on_exact_draws():
    """A 'sampler' that draws the mixture exactly: a step changes basin when the draw lands in the other
    core, probability q = P(x_0 < -2) = (Phi(2) + Phi(-6)) / 2, so the rate is 1000 q (n - 1) / n per
    1000 force evaluations; <x0>, <x0^2> agree with 0 and 17. All within 3 sigma."""
    target = L.MixtureTarget(lec.MIXTURE_MEANS, 1.0)

    def exact_step(rng, state):
        x = target.sample(rng, state.x.shape[0])
        return L.init_state(target, x), type("Info", (), {"acceptance": 1.0})()

    n = 400
    r = lec.mixture_comparison({"exact": (exact_step, 1)}, target, n_chains=16, n=n, seed=5)["exact"]
    q = 0.5 * (norm.cdf(2.0) + norm.cdf(-6.0))
    assert abs(r["rate"] - 1000.0 * q * (n - 1) / n) < 3 * r["rate_err"]
    assert abs(r["x0"].value) < 3 * r["x0"].error
    assert abs(r["x0_sq"].value - 17.0) < 3 * r["x0_sq"].error
