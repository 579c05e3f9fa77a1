"""Flow-based MCMC is exact: statistical checks against closed forms and against HMC.

* free field (lambda = 0, m^2 > 0): <phi^2>, G(x) and the zero-momentum correlator C(t) of the
  flow-MCMC chain against ``latticeml.exact.free_scalar_*`` (Albergo form);
* interacting phi^4 in the symmetric phase, at the lecture's point (8x8, m^2 = -4, lambda = 8,
  with the pretrained lecture model) and at the L = 6 point of Albergo, Kanwar & Shanahan,
  PRD 100 (2019) 034515 (6x6, m^2 = -4, lambda = 6.975, a flow trained here): |M|, chi = V <M^2>,
  the action density and C(t) against HMC.

Errors: Wolff's Gamma method on each chain; agreement within 3 combined sigma. Fixed seeds.
"""

import numpy as np
import pytest

from latticeml import exact, flows
from latticeml.figure_makers import flows as lecture
from latticeml.flows.target import one_numba_thread
from latticeml.observables.correlators import zero_momentum_correlator
from latticeml.samplers import hmc, run_chain
from latticeml.stats import gamma_method
from latticeml.theories.phi4 import Phi4

pytestmark = pytest.mark.slow  # each test trains a flow and/or runs 10^4-step chains: minutes in all


def per_config_two_point(fields, separations):
    """G_i(x) = (1/V) sum_y phi_i(y) phi_i(y + x) for each configuration i: (n, len(separations))."""
    axes = tuple(range(1, fields.ndim))
    return np.stack([np.mean(fields * np.roll(fields, [-d for d in x], axis=axes), axis=axes) for x in separations], axis=1)


def hmc_records(theory, *, n, seed):
    with one_numba_thread():
        return run_chain(hmc.sampler(theory, step_size=0.1, n_steps=10), theory.cold_start(), np.random.default_rng(seed),
                         n_measure=n, n_therm=200, keep_fields=True, progress=False)


def assert_agree(name, a, b, n_sigma=3.0):
    """a, b: GammaResults of the same observable from two independent chains."""
    sigma = np.hypot(a.error, b.error)
    assert abs(a.value - b.value) < n_sigma * sigma, f"{name}: {a.value} +- {a.error} vs {b.value} +- {b.error}"


def compare_with_hmc(flow, theory, *, n_flow, n_hmc, seed):
    chain = flows.flow_mcmc(flow, theory, np.random.default_rng([seed, 0]), n_steps=n_flow, batch_size=1024)
    ref = hmc_records(theory, n=n_hmc, seed=seed + 1)
    for key in ("abs_magnetization", "susceptibility", "action_density"):
        assert_agree(key, gamma_method(chain.records[key]), gamma_method(ref.records[key]))
    C_flow = zero_momentum_correlator(chain.fields, per_config=True)
    C_hmc = zero_momentum_correlator(ref.fields, per_config=True)
    for t in range(3):
        assert_agree(f"C({t})", gamma_method(C_flow[:, t]), gamma_method(C_hmc[:, t]))
    return chain


def test_free_field_flow_mcmc_reproduces_exact_two_point_functions():
    shape, m2 = (8, 8), 1.0
    theory = Phi4(shape, m2=m2, lam=0.0)
    flow = flows.phi4_flow(shape, n_layers=8, rng=np.random.default_rng(100))
    flows.train(flow, theory, steps=300, batch_size=64, lr=2e-3, rng=np.random.default_rng(101), progress=False)
    chain = flows.flow_mcmc(flow, theory, np.random.default_rng(102), n_steps=20000, batch_size=1024)
    assert chain.acceptance > 0.3  # a trained flow for a Gaussian target: the test is not a random walk

    phi2 = gamma_method(np.mean(chain.fields**2, axis=(1, 2)))
    exact_phi2 = exact.free_scalar_phi2(shape, m2, form="albergo")
    assert abs(phi2.value - exact_phi2) < 3 * phi2.error

    G_exact = exact.free_scalar_propagator(shape, m2, form="albergo")
    separations = [(1, 0), (0, 1), (1, 1), (2, 0), (4, 4)]
    G = per_config_two_point(chain.fields, separations)
    for j, x in enumerate(separations):
        r = gamma_method(G[:, j])
        assert abs(r.value - G_exact[x]) < 3 * r.error, f"G{x}: {r.value} +- {r.error} vs {G_exact[x]}"

    C_exact = exact.free_scalar_zero_momentum_correlator(shape, m2, form="albergo")
    C = zero_momentum_correlator(chain.fields, per_config=True)
    for t in range(5):
        r = gamma_method(C[:, t])
        assert abs(r.value - C_exact[t]) < 3 * r.error, f"C({t}): {r.value} +- {r.error} vs {C_exact[t]}"


def test_lecture_point_flow_mcmc_agrees_with_hmc():
    """8x8, m^2 = -4, lambda = 8, with the pretrained lecture model as the proposal."""
    flow = lecture.load_pretrained()
    chain = compare_with_hmc(flow, lecture.lecture_theory(), n_flow=16384, n_hmc=8000, seed=200)
    assert chain.acceptance > 0.2


def test_second_symmetric_point_flow_mcmc_agrees_with_hmc():
    """6x6, m^2 = -4, lambda = 6.975 (the L = 6 ensemble of Albergo et al. 2019), a flow trained here."""
    theory = Phi4((6, 6), m2=-4.0, lam=6.975)
    flow = flows.phi4_flow(theory.shape, n_layers=8, rng=np.random.default_rng(300))
    res = flows.train(flow, theory, steps=400, batch_size=64, lr=2e-3, rng=np.random.default_rng(301), progress=False)
    assert res.history["acceptance"][-50:].mean() > 0.05
    compare_with_hmc(flow, theory, n_flow=16384, n_hmc=8000, seed=400)


@pytest.mark.parametrize("n_layers", [2])
def test_flow_mcmc_is_exact_even_for_an_untrained_flow(n_layers):
    """Detailed balance does not need a good proposal: a barely trained flow on 4x4 still gives HMC's <|M|>."""
    theory = Phi4((4, 4), m2=-4.0, lam=8.0)
    flow = flows.phi4_flow(theory.shape, n_layers=n_layers, hidden=(4,), rng=np.random.default_rng(500))
    flows.train(flow, theory, steps=30, batch_size=64, rng=np.random.default_rng(501), progress=False)
    chain = flows.flow_mcmc(flow, theory, np.random.default_rng(502), n_steps=60000, batch_size=4096, keep_fields=False)
    ref = hmc_records(theory, n=8000, seed=503)
    for key in ("abs_magnetization", "action_density"):
        assert_agree(key, gamma_method(chain.records[key]), gamma_method(ref.records[key]))
