"""Self-learning HMC with staggered fermions: the smeared fermion force and the weight gradient
against finite differences, and exactness for any weights (Schwinger model on the 2 x 2 torus
against direct integration, with a wrong mass and random weights in the molecular dynamics)."""

import numpy as np
import pytest

from latticeml import groups
from latticeml.fermions import StaggeredFermions
from latticeml.fermions.exact_torus import schwinger_2x2
from latticeml.fermions.selflearning import NET_TERMS, make_net, md_theory, slhmc_sampler, train_online
from latticeml.samplers.chain import run_chain
from latticeml.stats import gamma_method
from latticeml.theories import make_theory

SEED = 161


def test_smeared_fermion_force_and_weight_gradient_match_finite_differences(rng):
    gauge = make_theory("su2", (4, 2, 2, 2), beta=2.0)
    rho = rng.normal(0, 0.05, (2, 3))
    theory = StaggeredFermions(gauge, mass=0.4, rho=rho, terms=NET_TERMS)
    U = gauge.hot_start(rng)
    aux = theory.draw_auxiliary(rng, U)
    X, h = groups.random_algebra(rng, 2, U.shape[:-2]), 1e-5
    fd = (theory.action(groups.expm_su(h * X) @ U, aux) - theory.action(groups.expm_su(-h * X) @ U, aux)) / (2 * h)
    an = -2 * np.einsum("...ij,...ji->...", theory.force(U, aux), X).sum().real
    assert fd == pytest.approx(an, rel=1e-7)
    S, g_rho = theory.rho_gradient(U, aux)
    d = rng.standard_normal(rho.shape)
    theory.set_rho(rho + h * d)
    Sp = theory.fermion_action(U, aux)
    theory.set_rho(rho - h * d)
    Sm = theory.fermion_action(U, aux)
    assert (Sp - Sm) / (2 * h) == pytest.approx(np.sum(g_rho * d), rel=1e-7)
    # zero weights: the thin-link force
    theory.set_rho(np.zeros_like(rho))
    np.testing.assert_allclose(theory.force(U, aux), StaggeredFermions(gauge, mass=0.4).force(U, aux), atol=1e-12)


def test_slhmc_is_exact_for_any_weights_on_the_schwinger_torus(rng):
    beta, m = 1.0, 0.5
    exact = schwinger_2x2(beta, m, 1, n=10)
    target = StaggeredFermions(make_theory("u1", (2, 2), beta=beta), mass=m, n_staggered=1)
    net = make_net(2, terms=("plaquette",), rho=0.0)
    for layer in net.layers:
        layer.rho.value[:] = rng.normal(0, 0.1, 1)
    sampler = slhmc_sampler(target, net, md_mass=0.8, step_size=0.25, n_steps=4)
    assert sampler.name == "slhmc"
    res = run_chain(sampler, target.hot_start(rng), rng, n_measure=300, n_therm=20, progress=False)
    assert 0.2 < res.acceptance.mean() < 0.99  # the wrong action costs acceptance, not exactness
    for key in ("plaquette", "chiral_condensate"):
        g = gamma_method(res.records[key])
        assert abs(g.value - exact[key]) < 4 * g.error, (key, g.value, g.error, exact[key])


def test_online_training_lowers_the_fluctuation_of_the_action_difference(rng):
    from latticeml.samplers import hmc

    target = StaggeredFermions(make_theory("u1", (4, 4), beta=2.0), mass=0.3, n_staggered=1)
    res = run_chain(hmc.sampler(target, step_size=0.25, n_steps=4), target.cold_start(), rng, n_measure=40, n_therm=20,
                    keep_fields=True, progress=False)
    samples = [(U, target.draw_auxiliary(rng, U)) for U in res.fields]  # fixed (U, phi) pairs at the target
    net = make_net(1, terms=("plaquette",))
    log = train_online(target, net, rng, res.fields[-1], md_mass=0.6, n_trajectories=60, step_size=0.25, n_steps=4, lr=0.02)
    assert log.loss.shape == (60,) and log.rho.shape == (60, 1, 1)

    def spread(rho):  # var(S_theta - S): what the acceptance depends on (the mean is a free constant)
        md = md_theory(target, net, md_mass=0.6)
        md.set_rho(rho)
        return np.var([md.fermion_action(U, a) - target.fermion_action(U, a) for U, a in samples])

    # measured: rho -0.2 .. 0.2 gives var 0.59 .. 1.25 (0.74 at 0); training moves rho below 0
    assert net.rho[0, 0] < 0 and spread(net.rho) < 0.9 * spread(np.zeros((1, 1)))
