"""HMC (latticeml.samplers.hmc): integrators, energy violation, accept/reject, purity, reproducibility, SU(N) drift.

Checks against independent references written here: a plain-NumPy phi^4 force and integrators
(no merged kicks), the exact shadow Hamiltonian of leapfrog on a harmonic oscillator, and
scipy.linalg.expm for the fused SU(N) link update.
"""

import math
from typing import NamedTuple

import numba
import numpy as np
import pytest
import scipy.linalg

from latticeml import groups
from latticeml.samplers import hmc
from latticeml.samplers.chain import run_chain
from latticeml.theories.models import make_theory

# Tiny lattices: a single Numba thread avoids the parallel-launch overhead that dominates there
# (results do not depend on the thread count).


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


THEORIES = {
    "phi4": ("phi4", (6, 4), {"m2": -1.0, "lam": 1.0}),
    "u1": ("u1", (6, 4), {"beta": 2.0}),
    "su2": ("su2", (4, 4), {"beta": 2.0}),
    "su3": ("su3", (4, 4, 2, 2), {"beta": 5.0}),
}


def _theory(key):
    name, shape, couplings = THEORIES[key]
    return make_theory(name, shape, **couplings)


def _start(theory, seed=0):
    """A moderately rough start: small fluctuations around a cold field (forces of typical size)."""
    rng = np.random.default_rng(seed)
    if theory.name == "phi4":
        return 0.5 * rng.standard_normal(theory.shape)
    if theory.name == "u1":
        return groups.wrap_angle(0.5 * rng.standard_normal((theory.dim,) + theory.shape))
    return groups.random_near_identity(rng, theory.N, (theory.dim,) + theory.shape, spread=0.5)


def _field_distance(theory, a, b):
    if theory.name == "u1":  # angles are equal modulo 2 pi
        return float(np.abs(groups.wrap_angle(a - b)).max())
    return float(np.abs(a - b).max())


# ----------------------------------------------------------------------------- integrators


@pytest.mark.parametrize("integrator", hmc.INTEGRATORS)
@pytest.mark.parametrize("key", list(THEORIES))
def test_reversible(key, integrator):
    theory = _theory(key)
    field = _start(theory)
    p = theory.random_momentum(np.random.default_rng(1))
    field_in, p_in = field.copy(), p.copy()
    f1, p1 = hmc.integrate(theory, field, p, step_size=0.1, n_steps=10, integrator=integrator)
    np.testing.assert_array_equal(field, field_in)  # integrate is pure
    np.testing.assert_array_equal(p, p_in)
    assert _field_distance(theory, f1, field) > 0.1  # it moved
    f2, p2 = hmc.integrate(theory, f1, -p1, step_size=0.1, n_steps=10, integrator=integrator)
    assert _field_distance(theory, f2, field) < 1e-12
    assert np.abs(p2 + p).max() < 1e-12


def _numpy_phi4_force(phi, m2, lam):
    """dS/dphi of S = sum_x [-2 sum_mu phi(x) phi(x+mu) + (2D + m2) phi^2 + lam phi^4], by np.roll."""
    D = phi.ndim
    hop = sum(np.roll(phi, -1, mu) + np.roll(phi, 1, mu) for mu in range(D))
    return -2 * hop + 2 * (2 * D + m2) * phi + 4 * lam * phi**3


def _numpy_md(phi, p, eps, n, integrator, m2, lam):
    """The integrators written out kick by kick (no merging): the reference for hmc.integrate."""
    F = lambda x: _numpy_phi4_force(x, m2, lam)  # noqa: E731
    for _ in range(n):
        if integrator == "leapfrog":
            p = p - eps / 2 * F(phi)
            phi = phi + eps * p
            p = p - eps / 2 * F(phi)
        else:
            lam_o = 0.1931833275037836
            p = p - lam_o * eps * F(phi)
            phi = phi + eps / 2 * p
            p = p - (1 - 2 * lam_o) * eps * F(phi)
            phi = phi + eps / 2 * p
            p = p - lam_o * eps * F(phi)
    return phi, p


@pytest.mark.parametrize("integrator", hmc.INTEGRATORS)
def test_phi4_trajectory_matches_numpy_reference(integrator):
    theory = _theory("phi4")
    field = _start(theory)
    p = theory.random_momentum(np.random.default_rng(2))
    f1, p1 = hmc.integrate(theory, field, p, step_size=0.07, n_steps=9, integrator=integrator)
    f_ref, p_ref = _numpy_md(field, p, 0.07, 9, integrator, theory.m2, theory.lam)
    np.testing.assert_allclose(f1, f_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(p1, p_ref, rtol=0, atol=1e-12)
    assert hmc.hamiltonian(theory, field, p) == pytest.approx(
        0.5 * np.sum(p**2) + theory.action(field), rel=1e-14
    )


class _Oscillator:
    """Independent harmonic oscillators, S = omega^2 x^2 / 2: a minimal theory with the HMC interface."""

    name = "oscillator"

    def __init__(self, omega, n=3):
        self.omega, self.shape = omega, (n,)

    def check_field(self, x):
        return np.ascontiguousarray(x, dtype=np.float64)

    def action(self, x):
        return 0.5 * self.omega**2 * float(np.sum(x**2))

    def force(self, x):
        return self.omega**2 * x

    def random_momentum(self, rng):
        return rng.standard_normal(self.shape)

    def kinetic_energy(self, p):
        return 0.5 * float(np.sum(p**2))

    def evolve(self, x, p, eps):
        return x + eps * p


def test_leapfrog_conserves_the_exact_shadow_hamiltonian():
    # Velocity-Verlet leapfrog on H = p^2/2 + w^2 x^2/2 conserves p^2/2 + (1 - (w eps)^2/4) w^2 x^2/2 exactly.
    osc = _Oscillator(omega=1.3)
    x = np.array([1.0, -0.4, 0.2])
    p = np.array([0.3, 0.8, -1.1])
    eps = 0.3
    shadow = lambda x, p: 0.5 * p**2 + (1 - (osc.omega * eps) ** 2 / 4) * 0.5 * osc.omega**2 * x**2  # noqa: E731
    x1, p1 = hmc.integrate(osc, x, p, step_size=eps, n_steps=37, integrator="leapfrog")
    np.testing.assert_allclose(shadow(x1, p1), shadow(x, p), rtol=1e-13)
    assert np.all(np.abs(hmc.hamiltonian(osc, x1, p1) - hmc.hamiltonian(osc, x, p)) > 1e-4)  # H itself is not


def _dH(theory, field, eps, integrator, n_draws=4, tau=0.8):
    """RMS of dH over a few fixed momentum draws, at trajectory length tau."""
    n = round(tau / eps)
    out = []
    for k in range(n_draws):
        p = theory.random_momentum(np.random.default_rng(100 + k))
        f1, p1 = hmc.integrate(theory, field, p, step_size=eps, n_steps=n, integrator=integrator)
        out.append(hmc.hamiltonian(theory, f1, p1) - hmc.hamiltonian(theory, field, p))
    return math.sqrt(np.mean(np.square(out)))


@pytest.mark.parametrize("key", list(THEORIES))
def test_energy_violation_scales_as_step_squared(key):
    """Fit log|dH| against log eps at fixed trajectory length: slope 2 for both; 2MN's constant is smaller."""
    theory = _theory(key)
    field = _start(theory, seed=3)
    steps = np.array([0.08, 0.04, 0.02, 0.01])
    dH = {k: np.array([_dH(theory, field, eps, k) for eps in steps]) for k in hmc.INTEGRATORS}
    for integrator, values in dH.items():
        slope = np.polyfit(np.log(steps), np.log(values), 1)[0]
        assert 1.9 < slope < 2.1, (integrator, slope, values)  # measured 1.98 - 2.05
    ratio = dH["omelyan"] / dH["leapfrog"]
    # measured at equal step size: phi4 0.11, U(1) 0.05, SU(2) 0.087, SU(3) 0.012
    assert np.all(ratio < 0.2), ratio
    # also better at equal cost: 2MN with twice the step (2 forces per step) beats leapfrog
    assert dH["omelyan"][0] < dH["leapfrog"][1]


# ----------------------------------------------------------------------------- the SU(N) link update


@pytest.mark.parametrize("N", [2, 3, 4])
def test_sun_evolve_matches_scipy_expm(N):
    theory = make_theory("sun", (2, 3), beta=1.0, N=N)
    rng = np.random.default_rng(N)
    U = theory.hot_start(rng)
    P = theory.random_momentum(rng)
    new = theory.evolve(U, P, 0.37)
    ref = np.empty_like(U)
    for idx in np.ndindex(U.shape[:-2]):
        ref[idx] = scipy.linalg.expm(0.37 * P[idx]) @ U[idx]
    np.testing.assert_allclose(new, ref, rtol=0, atol=1e-13)
    assert max(groups.unitarity_violation(new)) < 1e-14


@pytest.mark.parametrize("N", [2, 3])
def test_sun_evolve_removes_drift(N):
    # 3000 small drifts from slightly non-unitary links: they end up (and stay) in SU(N) to rounding
    theory = make_theory("sun", (2, 2), beta=1.0, N=N)
    rng = np.random.default_rng(7)
    U = theory.hot_start(rng) * (1 + 1e-9)
    P = theory.random_momentum(rng)
    for _ in range(3000):
        U = theory.evolve(U, P, 1e-3)
    assert max(groups.unitarity_violation(U)) < 1e-13


@pytest.mark.parametrize("key", ["su2", "su3"])
def test_links_stay_special_unitary_along_a_chain(key):
    theory = _theory(key)
    s = hmc.sampler(theory, step_size=0.1, n_steps=10, integrator="omelyan")
    state = s.init(theory.hot_start(np.random.default_rng(0)))
    rng = np.random.default_rng(1)
    accepted = 0
    for _ in range(20):
        state, info = s.step(rng, state)
        accepted += info.accepted
    assert accepted > 10
    assert max(groups.unitarity_violation(state.field)) < 1e-12


# ----------------------------------------------------------------------------- the Markov step


def test_step_info_and_cached_state():
    theory = _theory("u1")
    s = hmc.sampler(theory, trajectory_length=1.0, n_steps=8, integrator="omelyan")
    state = s.init(_start(theory))
    assert state.action == theory.action(state.field)
    np.testing.assert_array_equal(state.force, theory.force(state.field))
    rng = np.random.default_rng(5)
    n_accepted = 0
    for _ in range(30):
        new, info = s.step(rng, state)
        assert isinstance(info, hmc.Info)
        assert info.acceptance == float(info.accepted) and info.accepted in (True, False)
        assert info.acceptance_probability == pytest.approx(min(1.0, math.exp(-info.delta_H)), rel=1e-15)
        assert info.n_steps == 8 and info.n_force_evaluations == 16 and info.trajectory_length == 1.0
        if info.accepted:
            assert new.action == theory.action(new.field)  # the cached action is the field's action
            np.testing.assert_array_equal(new.force, theory.force(new.field))
        else:
            assert new is state
        n_accepted += info.accepted
        state = new
    assert n_accepted >= 20


def test_delta_H_is_the_hamiltonian_difference_of_the_trajectory():
    # replay the step by hand with a copy of the generator: same momenta, same end point, same dH
    theory = _theory("su2")
    state = hmc.init(_start(theory), theory)
    rng = np.random.default_rng(11)
    replay = np.random.default_rng(11)
    new, info = hmc.step(rng, state, theory, step_size=0.2, n_steps=5, integrator="leapfrog")
    p = theory.random_momentum(replay)
    f1, p1 = hmc.integrate(theory, state.field, p, step_size=0.2, n_steps=5, integrator="leapfrog")
    expected = hmc.hamiltonian(theory, f1, p1) - hmc.hamiltonian(theory, state.field, p)
    assert info.delta_H == pytest.approx(expected, abs=1e-10)
    assert info.accepted == (replay.random() < min(1.0, math.exp(-expected)))
    assert info.n_force_evaluations == 5
    if info.accepted:
        np.testing.assert_array_equal(new.field, f1)


def test_huge_steps_are_rejected():
    theory = _theory("phi4")
    state = hmc.init(_start(theory), theory)
    with np.errstate(over="ignore", invalid="ignore"):  # the unstable trajectory overflows
        new, info = hmc.step(np.random.default_rng(0), state, theory, step_size=3.0, n_steps=10)
    assert not info.accepted and info.acceptance == 0.0 and new is state
    assert info.delta_H > 100 or not math.isfinite(info.delta_H)
    assert info.acceptance_probability < 1e-40


@pytest.mark.parametrize("key", list(THEORIES))
def test_step_is_pure(key):
    theory = _theory(key)
    state = hmc.init(_start(theory), theory)
    field, force = state.field.copy(), state.force.copy()
    for seed in range(3):
        hmc.step(np.random.default_rng(seed), state, theory, step_size=0.1, n_steps=5, integrator="omelyan")
    np.testing.assert_array_equal(state.field, field)
    np.testing.assert_array_equal(state.force, force)
    # init copies: changing the caller's array afterwards does not change the state
    start = _start(theory)
    st = hmc.init(start, theory)
    start[...] = 0
    assert np.any(st.field != 0)


@pytest.mark.parametrize("key", ["phi4", "su3"])
def test_same_seed_same_chain_bit_for_bit(key):
    theory = _theory(key)
    s = hmc.sampler(theory, step_size=0.1, n_steps=5)

    def chain(seed):
        return run_chain(s, _start(theory), np.random.default_rng(seed), n_measure=12, n_therm=3, progress=False, keep_fields=True)

    a, b, c = chain(4), chain(4), chain(5)
    np.testing.assert_array_equal(a.fields, b.fields)
    np.testing.assert_array_equal(a.acceptance, b.acceptance)
    for k in a.records:
        np.testing.assert_array_equal(a.records[k], b.records[k])
    assert not np.array_equal(a.fields, c.fields)


# ----------------------------------------------------------------------------- settings


def test_trajectory_settings_rule():
    assert hmc.resolve_trajectory(step_size=0.1, n_steps=10) == (0.1, 10)
    assert hmc.resolve_trajectory(trajectory_length=1.0, n_steps=8) == (0.125, 8)
    assert hmc.resolve_trajectory(trajectory_length=1.0, step_size=0.1) == (0.1, 10)
    s = hmc.sampler(_theory("phi4"), trajectory_length=2.0, step_size=0.25, integrator="omelyan")
    assert s.name == "hmc"
    assert s.settings == {"step_size": 0.25, "n_steps": 8, "trajectory_length": 2.0, "integrator": "omelyan"}


@pytest.mark.parametrize(
    "settings, error, match",
    [
        ({"step_size": 0.0, "n_steps": 10}, ValueError, "step_size must be positive"),
        ({"step_size": -0.1, "n_steps": 10}, ValueError, "step_size must be positive"),
        ({"step_size": float("nan"), "n_steps": 10}, ValueError, "step_size must be positive"),
        ({"step_size": 0.1, "n_steps": 0}, ValueError, "n_steps must be an integer >= 1"),
        ({"step_size": 0.1, "n_steps": -3}, ValueError, "n_steps must be an integer >= 1"),
        ({"step_size": 0.1, "n_steps": 2.5}, TypeError, "n_steps must be an integer"),
        ({"step_size": 0.1, "n_steps": True}, TypeError, "n_steps must be an integer"),
        ({"step_size": "0.1", "n_steps": 3}, TypeError, "step_size must be a positive number"),
        ({"step_size": 0.1, "n_steps": 10, "integrator": "rk4"}, ValueError, "unknown integrator 'rk4'"),
        ({"step_size": 0.1}, ValueError, "exactly two of"),
        ({}, ValueError, "exactly two of"),
        ({"step_size": 0.1, "n_steps": 10, "trajectory_length": 1.0}, ValueError, "exactly two of"),
        ({"step_size": 0.3, "trajectory_length": 1.0}, ValueError, "not a whole number of steps"),
        ({"n_steps": 4, "trajectory_length": -1.0}, ValueError, "trajectory_length must be positive"),
    ],
)
def test_bad_settings_raise(settings, error, match):
    with pytest.raises(error, match=match):
        hmc.sampler(_theory("phi4"), **settings)


def test_bad_arguments_raise():
    theory = _theory("phi4")
    state = hmc.init(_start(theory), theory)
    with pytest.raises(ValueError, match="step_size must be positive"):
        hmc.step(np.random.default_rng(0), state, theory, step_size=0.0, n_steps=3)
    with pytest.raises(ValueError, match="unknown integrator"):
        hmc.integrate(theory, state.field, state.force, step_size=0.1, n_steps=3, integrator="verlet")
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        hmc.step(0, state, theory, step_size=0.1, n_steps=3)

    class NoForce(NamedTuple):
        name: str = "x"

    with pytest.raises(TypeError, match="lacks action, force"):
        hmc.sampler(NoForce(), step_size=0.1, n_steps=3)
    with pytest.raises(ValueError, match="lattice shape"):
        hmc.init(np.zeros((3, 3)), theory)
