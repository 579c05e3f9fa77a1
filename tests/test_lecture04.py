"""Lecture 04 library code (latticeml.figure_makers.smearing): the flow that stops past t0, and t0 of an ensemble.

t0 (Luscher, JHEP 08 (2010) 071) is the root of <t^2 E(t)> = 0.3; the lecture solves for it from the
ensemble means of E(t_k) and takes its error from the Gamma method for derived quantities (Wolff 2004).
"""

import numpy as np
import pytest

from latticeml import groups, smearing
from latticeml.figure_makers import smearing as lec

SEED = 1006


def _ensemble(t, y):
    """A FlowEnsemble whose E(t) per configuration is y / t^2 (t = 0 excluded from t)."""
    n = len(y)
    return lec.FlowEnsemble(t=t, energy={"clover": y / t**2, "plaquette": y / t**2}, t0_per_config={},
                            plaquette=np.full(n, 0.6), links=None, settings={"N": 3}, seconds=0.0)


def test_t0_is_the_root_of_the_mean_curve_with_the_naive_error_for_independent_configurations(rng):
    # straight lines t^2 E = 0.3 + s (t - tau_i): the root of the mean is mean(tau); linear interpolation is exact
    n, slope = 400, 0.09
    tau = 2.8 + 0.15 * rng.normal(size=n)
    t = np.linspace(2.0, 3.6, 17)
    y = 0.3 + slope * (t[None, :] - tau[:, None])
    g = lec.t0_estimate(_ensemble(t, y))
    assert g.value == pytest.approx(tau.mean(), abs=1e-12)
    naive = tau.std(ddof=1) / np.sqrt(n)
    assert 0.8 * naive < g.error < 1.3 * naive  # independent draws: tau_int close to 1/2
    assert abs(g.tau_int - 0.5) < 0.2


def test_t0_is_none_when_the_mean_curve_stays_below_the_reference():
    t = np.linspace(0.5, 1.0, 6)
    y = np.tile(0.1 * t, (8, 1))
    assert lec.t0_estimate(_ensemble(t, y)) is None


def test_compare_luscher_counts_combined_sigmas():
    his, his_error = lec.LUSCHER_T0_BETA596
    ours = lec.t0_estimate(_ensemble(np.array([1.0, 2.0]), np.tile([0.2, 0.4], (8, 1))))  # root 1.5, error 0
    c = lec.compare_luscher(ours._replace(value=his + 0.01, error=his_error))
    assert c["n_sigma"] == pytest.approx(0.01 / (np.sqrt(2) * his_error))
    assert c["relative"] == pytest.approx(0.01 / his)


def test_flow_in_stretches_equals_one_flow(rng):
    U = groups.random_near_identity(rng, 2, (4, 2, 2, 2, 2), spread=0.3)
    parts = lec.flow_to_t0(U, step_size=0.05, t_max=0.6, measure_every=2, chunk_steps=4)
    whole = smearing.wilson_flow(U, t_max=0.6, step_size=0.05, measure_every=2)
    np.testing.assert_allclose(parts.t, whole.t, atol=1e-14)
    np.testing.assert_allclose(parts.energy_clover, whole.energy_clover, rtol=1e-13)
    np.testing.assert_allclose(parts.energy_plaquette, whole.energy_plaquette, rtol=1e-13)
    np.testing.assert_allclose(parts.links, whole.links, atol=1e-13)


def test_flow_stops_past_the_crossing(rng):
    # a rough SU(3) field: t^2 E_clover crosses a low reference early; the flow stops at (1 + margin) t_c
    U = groups.random_near_identity(rng, 3, (4, 2, 2, 2, 2), spread=1.0)
    res = lec.flow_to_t0(U, step_size=0.05, t_max=2.0, measure_every=1, chunk_steps=2, margin=0.2, reference=0.05)
    y = res.t**2 * res.energy_clover
    t_c = res.t[np.flatnonzero(y >= 0.05)[0]]
    assert res.t[-1] >= 1.2 * t_c - 1e-12 and res.t[-1] < 1.2 * t_c + 2 * 0.05 + 1e-12 and res.t[-1] < 2.0
