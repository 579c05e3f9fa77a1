"""Auxiliary fields in HMC and SLHMC (the pseudofermion hook of latticeml.samplers.hmc).

A toy with a real auxiliary field and a known marginal: variables ``x`` (shape ``(n,)``) with
``S_0(x) = sum x^2 / 2`` and a "pseudofermion" ``phi`` drawn each trajectory as
``phi = sqrt(m(x)) eta``, ``eta ~ N(0, 1)``, ``m(x) = 1 + x^2``, with joint action
``S(x, phi) = S_0(x) + sum phi^2 / (2 m(x))``. Integrating ``phi`` out,
``int dphi exp(-phi^2 / (2 m)) = sqrt(2 pi m)``: the marginal of each ``x`` is
``exp(-x^2/2) sqrt(1 + x^2)`` (the analogue of ``det(D^dagger D)^(1/2)``), whose ``<x^2>``
(1.417..., by quadrature) differs from the ``<x^2> = 1`` of ``S_0`` alone. A chain that reproduces
it must draw aux from the right conditional, integrate with the aux force and accept with the
aux action.
"""

import math

import numpy as np
import pytest
import scipy.integrate

from latticeml.samplers import hmc, integrators, slhmc
from latticeml.samplers.chain import resume_chain, run_chain
from latticeml.stats import gamma_method
from latticeml.theories import make_theory

SEED = 31


class Pseudofermion:
    """``S(x, phi) = sum_i [x_i^2/2 + phi_i^2 / (2 (1 + x_i^2))]`` with ``phi`` an auxiliary field (see the module docstring)."""

    name = "pseudofermion_toy"

    def __init__(self, n=4):
        self.shape = (n,)

    @property
    def params(self):
        return {"shape": list(self.shape)}

    def check_field(self, x):
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.shape != self.shape:
            raise ValueError(f"field must have shape {self.shape}, got {x.shape}")
        return x

    def draw_auxiliary(self, rng, x):
        return np.sqrt(1.0 + x**2) * rng.standard_normal(self.shape)

    def action(self, x, phi=None):  # without aux: S_0, the "gauge part" (HMC uses it only in init)
        s0 = 0.5 * float(np.sum(x**2))
        return s0 if phi is None else s0 + 0.5 * float(np.sum(phi**2 / (1.0 + x**2)))

    def force(self, x, phi=None):
        return x if phi is None else x - phi**2 * x / (1.0 + x**2) ** 2

    def random_momentum(self, rng):
        return rng.standard_normal(self.shape)

    def kinetic_energy(self, p):
        return 0.5 * float(np.sum(p**2))

    def evolve(self, x, p, eps):
        return x + eps * p

    def observables(self, x):
        return {"x2": float(np.mean(x**2))}


class BosonicPart(Pseudofermion):
    """The toy without its auxiliary field (``S_0`` only): an MD action that ignores aux, for SLHMC."""

    name = "pseudofermion_toy_bosonic"

    def action(self, x):
        return 0.5 * float(np.sum(x**2))

    def force(self, x):
        return x


def exact_x2() -> float:
    """``<x^2>`` of the marginal ``exp(-x^2/2) sqrt(1 + x^2)``, by quadrature."""
    weight = lambda x: math.exp(-0.5 * x * x) * math.sqrt(1.0 + x * x)
    z = scipy.integrate.quad(weight, -np.inf, np.inf)[0]
    return scipy.integrate.quad(lambda x: x * x * weight(x), -np.inf, np.inf)[0] / z


def test_force_is_the_derivative_of_the_action_at_fixed_aux(rng):
    theory = Pseudofermion(n=5)
    x = rng.standard_normal(5)
    phi = theory.draw_auxiliary(rng, x)
    h = 1e-6
    fd = np.array([(theory.action(x + h * e, phi) - theory.action(x - h * e, phi)) / (2 * h) for e in np.eye(5)])
    np.testing.assert_allclose(theory.force(x, phi), fd, rtol=1e-8, atol=1e-9)


def test_step_draws_momenta_then_aux_then_the_uniform(rng):
    """Replay a trajectory by hand with a copy of the generator: same aux, same dH, same decision."""
    theory = Pseudofermion()
    state = hmc.init(rng.standard_normal(4), theory)
    assert state.aux is None and state.action == theory.action(state.field)
    for seed in range(6):
        gen, replay = np.random.default_rng(seed), np.random.default_rng(seed)
        new, info = hmc.step(gen, state, theory, step_size=0.3, n_steps=4, integrator="omelyan")
        p = theory.random_momentum(replay)
        aux = theory.draw_auxiliary(replay, state.field)
        x1, p1 = hmc.integrate(theory, state.field, p, step_size=0.3, n_steps=4, integrator="omelyan", aux=aux)
        dH = hmc.hamiltonian(theory, x1, p1, aux) - hmc.hamiltonian(theory, state.field, p, aux)
        assert info.delta_H == pytest.approx(dH, abs=1e-12)
        assert info.accepted == (replay.random() < min(1.0, math.exp(-dH)))
        assert gen.bit_generator.state == replay.bit_generator.state  # nothing else was drawn
        assert info.n_force_evaluations == 2 * 4 + 1  # the start force is recomputed with the fresh aux
        np.testing.assert_array_equal(new.aux, aux)
        np.testing.assert_array_equal(new.field, x1 if info.accepted else state.field)
        # the state's action and force are those of (field, aux)
        assert new.action == pytest.approx(theory.action(new.field, aux), rel=1e-14)
        np.testing.assert_allclose(new.force, theory.force(new.field, aux), rtol=1e-14)
        state = new


def test_theory_without_aux_draws_nothing_more():
    """Every current theory: draw_auxiliary is None and takes no numbers; State.aux stays None."""
    theory = make_theory("phi4", (4, 4), m2=-1.0, lam=1.0)
    gen = np.random.default_rng(2)
    before = gen.bit_generator.state
    assert hmc.draw_auxiliary(theory, gen, theory.cold_start()) is None
    assert gen.bit_generator.state == before
    s = hmc.sampler(theory, step_size=0.1, n_steps=5)
    state = s.init(theory.hot_start(gen))
    for seed in range(3):
        gen2, replay = np.random.default_rng(seed), np.random.default_rng(seed)
        new, info = s.step(gen2, state)
        theory.random_momentum(replay)
        replay.random()  # momenta and the accept uniform: nothing else
        assert gen2.bit_generator.state == replay.bit_generator.state
        assert new.aux is None and info.n_force_evaluations == 5
        state = new


@pytest.mark.slow
@pytest.mark.parametrize("integrator", ["leapfrog", "sexton_weingarten"])
def test_hmc_with_aux_samples_the_marginal(integrator):
    """<x^2> of the HMC chain with aux = the quadrature of the marginal, within 3 sigma (Gamma method).

    Also with the multi-time-scale integrator, the pseudofermion use case: the aux-free force
    ``S_0'(x) = x`` on the inner (fine) steps, the aux force on the outer ones.
    """
    theory = Pseudofermion(n=4)
    if integrator == "sexton_weingarten":
        integrator = integrators.sexton_weingarten(lambda x: x, 3)
    result = run_chain(hmc.sampler(theory, step_size=0.25, n_steps=6, integrator=integrator), np.zeros(4),
                       np.random.default_rng(SEED), n_measure=6000, n_therm=100, progress=False)
    est = gamma_method(result.records["x2"])
    exact = exact_x2()
    assert abs(est.value - exact) < 3 * est.error, (est.value, est.error, exact)
    assert est.error < 0.03  # enough to tell the marginal from exp(-S_0) alone, whose <x^2> = 1
    assert 0.8 < result.acceptance.mean() < 1.0


@pytest.mark.slow
@pytest.mark.parametrize("md", [Pseudofermion, BosonicPart])
def test_slhmc_with_aux_samples_the_marginal(md):
    """SLHMC with the target's aux: exact whether the MD theory takes the aux or ignores it."""
    target = Pseudofermion(n=4)
    s = slhmc.sampler(target, md(n=4), step_size=0.25, n_steps=6, integrator="omelyan")
    result = run_chain(s, np.zeros(4), np.random.default_rng(SEED + 1), n_measure=6000, n_therm=100, progress=False)
    est = gamma_method(result.records["x2"])
    assert abs(est.value - exact_x2()) < 3 * est.error, (est.value, est.error)
    assert est.error < 0.03


def test_slhmc_passes_the_aux_to_an_md_theory_that_takes_it():
    """MD theory = target: the MD energy violation is the target's, so the aux reached the MD force."""
    target = Pseudofermion()
    s = slhmc.sampler(target, Pseudofermion(), step_size=0.3, n_steps=3)
    state = s.init(np.array([0.5, -1.0, 0.2, 1.5]))
    for seed in range(4):
        state, info = s.step(np.random.default_rng(seed), state)
        assert info.delta_H_md == info.delta_H and state.aux is not None
    s = slhmc.sampler(target, BosonicPart(), step_size=0.3, n_steps=3)
    _, info = s.step(np.random.default_rng(0), s.init(np.array([0.5, -1.0, 0.2, 1.5])))
    assert info.delta_H_md != info.delta_H  # integrated without the aux part


def test_checkpoint_without_aux_resumes_bit_identically(tmp_path):
    """Aux lives for one trajectory: a checkpoint stores only the field, and the resumed chain is the same."""
    theory = Pseudofermion()
    s = hmc.sampler(theory, step_size=0.3, n_steps=4)
    plan = {"n_measure": 40, "n_therm": 5, "progress": False}
    ref = run_chain(s, np.zeros(4), np.random.default_rng(4), **plan)
    calls = []

    def interrupting(x):
        calls.append(1)
        if len(calls) == 23:
            raise KeyboardInterrupt  # mid-step, after the step drew its momenta and aux
        return theory.observables(x)

    ck = tmp_path / "chain.npz"
    with pytest.raises(KeyboardInterrupt):
        run_chain(s, np.zeros(4), np.random.default_rng(4), measure=interrupting, checkpoint=ck, checkpoint_every=7, **plan)
    res = resume_chain(ck, s, progress=False)
    np.testing.assert_array_equal(res.records["x2"], ref.records["x2"])
    np.testing.assert_array_equal(res.acceptance, ref.acceptance)
    np.testing.assert_array_equal(res.state.field, ref.state.field)
