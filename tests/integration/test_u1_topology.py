"""Statistical checks behind lecture 02: the exact 2D U(1) topology formulas against direct sampling
of the link integral, and detailed balance of the instanton move.

* The geometric-charge distribution P(Q), chi_t, the plaquette and a 1 x 2 loop on a 3 x 3 torus
  from exact.u1_2d_* against the link integral itself, estimated by importance sampling with
  independent uniform (Haar) links and weights exp(-S) (no Markov chain, so the errors are the
  plain self-normalised-importance-sampling ones). tests/test_exact.py checks these formulas by
  quadrature over plaquette angles at V = 3 and over links on 2 x 2 (where |Q| < 2 forces Q = 0
  for the charge); this covers the geometric charge computed from actual link configurations.
* Instanton moves alone from a fixed field visit theta + n I; their stationary distribution must be
  exactly P(n) ~ exp(-S(theta + n I)), computed here from the np.roll action.
* Heatbath sweeps alternating with instanton moves, and HMC + instanton moves, at couplings where
  HMC alone tunnels rarely, reproduce the exact P(Q), chi_t and plaquette.

Errors are Gamma-method (Wolff 2004) errors; every check is at 4 sigma with fixed seeds.
"""

import numpy as np
import pytest

from latticeml import exact
from latticeml.observables import topology
from latticeml.samplers import build_sampler, heatbath, instanton, run_chain
from latticeml.stats import gamma_method
from latticeml.theories import make_theory

pytestmark = pytest.mark.slow

SIGMAS = 4.0


def ref_plaquettes(theta):
    """(B, 2, L0, L1) -> (B, L0, L1) unwrapped plaquette angles by np.roll."""
    t0, t1 = theta[:, 0], theta[:, 1]
    return t0 + np.roll(t1, -1, axis=1) - np.roll(t0, -1, axis=2) - t1


def ref_action(theta, beta):
    return beta * np.sum(1 - np.cos(ref_plaquettes(theta[None])))


def direct_sampling(beta, L, n_samples, seed, chunk=100_000):
    """Self-normalised importance sampling of the L x L link integral with uniform links.

    Returns dict name -> (estimate, error) for P(Q=0), P(Q=1), <Q^2>/V, <cos theta_P>, <W(1x2)>.
    """
    rng = np.random.default_rng(seed)
    V = L * L
    rows = []
    for _ in range(n_samples // chunk):
        theta = rng.uniform(-np.pi, np.pi, size=(chunk, 2, L, L))
        p = ref_plaquettes(theta)
        w = np.exp(beta * (np.cos(p).sum(axis=(1, 2)) - V))  # exp(-S), S = beta sum (1 - cos)
        wrapped = np.remainder(p + np.pi, 2 * np.pi) - np.pi
        Q = np.rint(wrapped.sum(axis=(1, 2)) / (2 * np.pi))
        # 1 x 2 loop (extent 1 along axis 0, 2 along axis 1) and its transpose, averaged over sites
        w12 = np.cos(p + np.roll(p, -1, axis=2)).mean(axis=(1, 2))
        w21 = np.cos(p + np.roll(p, -1, axis=1)).mean(axis=(1, 2))
        obs = np.stack([Q == 0, Q == 1, Q**2 / V, np.cos(p).mean(axis=(1, 2)), 0.5 * (w12 + w21)], axis=1).astype(float)
        rows.append((w, obs))
    w = np.concatenate([r[0] for r in rows])
    obs = np.concatenate([r[1] for r in rows])
    mean = (w[:, None] * obs).sum(axis=0) / w.sum()
    # delta method for a ratio of means: var = sum w^2 (o - mean)^2 / (sum w)^2
    err = np.sqrt((w[:, None] ** 2 * (obs - mean) ** 2).sum(axis=0)) / w.sum()
    names = ["P0", "P1", "chi", "plaquette", "W1x2"]
    return {k: (m, e) for k, m, e in zip(names, mean, err)}


@pytest.mark.parametrize("beta, seed", [(0.6, 1), (1.2, 2)])
def test_exact_topology_formulas_against_direct_sampling_of_the_link_integral(beta, seed):
    L, V = 3, 9
    est = direct_sampling(beta, L, 3_000_000, seed)
    P = exact.u1_2d_charge_distribution(beta, V, np.array([0, 1]))
    expected = {
        "P0": P[0],
        "P1": P[1],
        "chi": exact.u1_2d_topological_susceptibility(beta, V),
        "plaquette": exact.u1_2d_plaquette(beta, V),
        "W1x2": exact.u1_2d_wilson_loop(beta, 1, 2, V),
    }
    assert expected["P1"] > 0.02  # a real test of the charged sectors
    for name, value in expected.items():
        m, e = est[name]
        assert abs(m - value) < SIGMAS * e, f"{name}: direct sampling {m} +- {e}, exact {value}"
        assert e < 0.02 * max(abs(value), 0.05), f"{name}: the direct-sampling error {e} is too large to test anything"


def test_instanton_moves_alone_sample_exp_minus_s_along_the_instanton_line():
    """Detailed balance, sharply: from theta_0 the chain lives on theta_0 + n I and must visit n with
    probability exp(-S(theta_0 + n I)) / sum_m exp(-S(theta_0 + m I))."""
    shape, beta = (6, 6), 2.0
    theory = make_theory("u1", shape, beta=beta)
    rng = np.random.default_rng(2021)
    theta0 = theory.hot_start(rng) * 0.3  # a moderately rough field
    ns = np.arange(-8, 9)
    I = instanton.instanton_field(shape)
    S = np.array([ref_action(theta0 + n * I, beta) for n in ns])
    exact_p = np.exp(-(S - S.min()))
    exact_p /= exact_p.sum()
    assert np.sum(exact_p > 0.02) >= 3  # several values of n matter

    chain = instanton.sampler(theory)
    state = chain.init(theta0)
    n, visits = 0, []
    for i in range(40_000):
        state, info = chain.step(rng, state)
        n += info.charge_shift if info.accepted else 0
        visits.append(n)
    visits = np.array(visits[200:])
    # the field is theta_0 + n I (up to rounding): the bookkeeping is right
    np.testing.assert_allclose(np.cos(state.field), np.cos(theta0 + n * I), atol=1e-9)
    for k, p in zip(ns, exact_p):
        g = gamma_method((visits == k).astype(float))
        err = max(g.error, 1e-4)
        assert abs(g.value - p) < SIGMAS * err, f"n = {k}: visited {g.value} +- {g.error}, exact {p}"


def test_heatbath_alternating_with_instanton_moves_reproduces_exact_p_of_q():
    """8 x 8 at beta = 6: the heatbath alone tunnels rarely; the instanton moves must carry Q."""
    L, beta = 8, 6.0
    theory = make_theory("u1", (L, L), beta=beta)
    rng = np.random.default_rng(7)
    hb = heatbath.sampler(theory)
    hb_state = hb.init(theory.cold_start())
    inst_accepted, Q, plaquette = 0, [], []
    for i in range(20_200):
        hb_state, _ = hb.step(rng, hb_state)
        state, info = instanton.step(rng, instanton.State(hb_state.field), theory)
        inst_accepted += info.accepted
        hb_state = heatbath.State(state.field)
        if i >= 200:
            Q.append(topology.topological_charge_u1(state.field))
            plaquette.append(np.mean(np.cos(ref_plaquettes(state.field[None]))))
    Q = np.array(Q)
    assert inst_accepted > 2000
    charges = np.arange(-3, 4)
    exact_p = exact.u1_2d_charge_distribution(beta, L * L, charges)
    for q, p in zip(charges, exact_p):
        g = gamma_method((Q == q).astype(float))
        assert abs(g.value - p) < SIGMAS * max(g.error, 1e-4), f"Q = {q}: {g.value} +- {g.error}, exact {p}"
    g = gamma_method(Q**2 / (L * L))
    assert abs(g.value - exact.u1_2d_topological_susceptibility(beta, L * L)) < SIGMAS * g.error
    assert g.tau_int < 10  # the moves decorrelate Q
    g = gamma_method(np.array(plaquette))
    assert abs(g.value - exact.u1_2d_plaquette(beta, L * L)) < SIGMAS * g.error


def test_hmc_with_instanton_moves_reproduces_exact_results_where_hmc_freezes():
    L, beta = 10, 8.0
    theory = make_theory("u1", (L, L), beta=beta)
    sampler = build_sampler(theory, "hmc", instanton_every=1, trajectory_length=1.0, n_steps=10)
    res = run_chain(sampler, theory.cold_start(), np.random.default_rng(3), n_measure=8000, n_therm=200, progress=False)
    V = L * L
    Q = res.records["topological_charge"]
    g = gamma_method(Q**2 / V)
    assert abs(g.value - exact.u1_2d_topological_susceptibility(beta, V)) < SIGMAS * g.error
    assert g.tau_int < 10
    g = gamma_method(res.records["plaquette"])
    assert abs(g.value - exact.u1_2d_plaquette(beta, V)) < SIGMAS * g.error
    g = gamma_method(res.records["wilson_loop_2x2"])
    assert abs(g.value - exact.u1_2d_wilson_loop(beta, 2, 2, V)) < SIGMAS * g.error
    charges = np.arange(-2, 3)
    for q, p in zip(charges, exact.u1_2d_charge_distribution(beta, V, charges)):
        gq = gamma_method((Q == q).astype(float))
        assert abs(gq.value - p) < SIGMAS * max(gq.error, 1e-4), f"Q = {q}: {gq.value} +- {gq.error}, exact {p}"
    assert 0.6 < res.acceptance.mean() < 1.0
