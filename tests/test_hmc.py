"""HMC (latticeml.samplers.hmc): accept/reject, cached state, purity, reproducibility, settings, SU(N) drift.

The integrators themselves (reversibility, dH ~ eps^2, the registry) are tested in
tests/test_integrators.py, auxiliary fields in tests/test_auxiliary.py. Checks against independent
references written here: scipy.linalg.expm for the fused SU(N) link update, and the Hamiltonian
difference of a trajectory replayed by hand.
"""

import math
from typing import NamedTuple

import numba
import numpy as np
import pytest
import scipy.linalg
from test_integrators import THEORIES, rough_start, theory_for

from latticeml import groups
from latticeml.samplers import hmc
from latticeml.samplers.chain import run_chain
from latticeml.theories import make_theory

# Tiny lattices: a single Numba thread avoids the parallel-launch overhead that dominates there
# (results do not depend on the thread count).


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


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
    theory = theory_for(key)
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
    theory = theory_for("u1")
    s = hmc.sampler(theory, trajectory_length=1.0, n_steps=8, integrator="omelyan")
    state = s.init(rough_start(theory))
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
        assert info.log_jacobian == 0.0 and new.aux is None  # no auxiliary fields: nothing changes
        if info.accepted:
            assert new.action == theory.action(new.field)  # the cached action is the field's action
            np.testing.assert_array_equal(new.force, theory.force(new.field))
        else:
            assert new is state
        n_accepted += info.accepted
        state = new
    assert n_accepted >= 20


def test_delta_H_is_the_hamiltonian_difference_of_the_trajectory():
    """Replay steps by hand with a copy of the generator: same momenta, same end point, same dH, and
    the Metropolis test on exp(-dH) of the theory's own H = K + S. The seeds and the step size are
    chosen so that both branches run with dH > 0: an accepted step returns the integrator's end point (with its
    action and force cached), a rejected one returns the input state itself."""
    theory = theory_for("su2")
    state = hmc.init(rough_start(theory), theory)
    seen = set()
    for seed in (4, 5, 6):  # dH = 0.60 (accepted), 0.66 and 0.43 (rejected)
        rng = np.random.default_rng(seed)
        replay = np.random.default_rng(seed)
        new, info = hmc.step(rng, state, theory, step_size=0.35, n_steps=4, integrator="leapfrog")
        p = theory.random_momentum(replay)
        f1, p1 = hmc.integrate(theory, state.field, p, step_size=0.35, n_steps=4, integrator="leapfrog")
        # H written out here (kinetic -tr P^2 summed over links, Wilson action), not hmc.hamiltonian
        H = [-float(np.sum(q * np.swapaxes(q, -1, -2)).real) + theory.action(f) for f, q in ((state.field, p), (f1, p1))]
        expected = H[1] - H[0]
        assert info.delta_H == pytest.approx(expected, abs=1e-10)
        assert info.accepted == (replay.random() < min(1.0, math.exp(-expected)))
        assert info.n_force_evaluations == 4
        if info.accepted:
            np.testing.assert_allclose(new.field, f1, rtol=0, atol=1e-14)
            assert new.action == pytest.approx(theory.action(f1), rel=1e-13)
            np.testing.assert_allclose(new.force, theory.force(f1), rtol=0, atol=1e-12)
        else:
            assert new is state
        seen.add(info.accepted)
    assert seen == {True, False}, "both branches must run"


def test_huge_steps_are_rejected():
    theory = theory_for("phi4")
    state = hmc.init(rough_start(theory), theory)
    with np.errstate(over="ignore", invalid="ignore"):  # the unstable trajectory overflows
        new, info = hmc.step(np.random.default_rng(0), state, theory, step_size=3.0, n_steps=10)
    assert not info.accepted and info.acceptance == 0.0 and new is state
    assert info.delta_H > 100 or not math.isfinite(info.delta_H)
    assert info.acceptance_probability < 1e-40


@pytest.mark.parametrize("key", list(THEORIES))
def test_step_is_pure(key):
    theory = theory_for(key)
    state = hmc.init(rough_start(theory), theory)
    field, force = state.field.copy(), state.force.copy()
    for seed in range(3):
        hmc.step(np.random.default_rng(seed), state, theory, step_size=0.1, n_steps=5, integrator="omelyan")
    np.testing.assert_array_equal(state.field, field)
    np.testing.assert_array_equal(state.force, force)
    # init copies: changing the caller's array afterwards does not change the state
    start = rough_start(theory)
    st = hmc.init(start, theory)
    start[...] = 0
    assert np.any(st.field != 0)


@pytest.mark.parametrize("key", ["phi4", "su3"])
def test_same_seed_same_chain_bit_for_bit(key):
    theory = theory_for(key)
    s = hmc.sampler(theory, step_size=0.1, n_steps=5)

    def chain(seed):
        return run_chain(s, rough_start(theory), np.random.default_rng(seed), n_measure=12, n_therm=3, progress=False, keep_fields=True)

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
    s = hmc.sampler(theory_for("phi4"), trajectory_length=2.0, step_size=0.25, integrator="omelyan")
    assert s.name == "hmc"
    assert s.settings == {"step_size": 0.25, "n_steps": 8, "trajectory_length": 2.0, "integrator": "omelyan"}
    assert s.init(rough_start(theory_for("phi4"))).aux is None


@pytest.mark.parametrize(
    "settings, error, match",
    [
        # the messages of latticeml.checks (positive_float, check_count)
        ({"step_size": 0.0, "n_steps": 10}, ValueError, "step_size must be a positive number"),
        ({"step_size": -0.1, "n_steps": 10}, ValueError, "step_size must be a positive number"),
        ({"step_size": float("nan"), "n_steps": 10}, ValueError, "step_size must be a finite number"),
        ({"step_size": 0.1, "n_steps": 0}, ValueError, "n_steps must be an integer >= 1"),
        ({"step_size": 0.1, "n_steps": -3}, ValueError, "n_steps must be an integer >= 1"),
        ({"step_size": 0.1, "n_steps": 2.5}, ValueError, "n_steps must be an integer >= 1"),
        ({"step_size": 0.1, "n_steps": True}, ValueError, "n_steps must be an integer >= 1"),
        ({"step_size": "0.1", "n_steps": 3}, TypeError, "step_size must be a real number"),
        ({"step_size": 0.1, "n_steps": 10, "integrator": "rk4"}, ValueError, "unknown integrator 'rk4'"),
        ({"step_size": 0.1}, ValueError, "exactly two of"),
        ({}, ValueError, "exactly two of"),
        ({"step_size": 0.1, "n_steps": 10, "trajectory_length": 1.0}, ValueError, "exactly two of"),
        ({"step_size": 0.3, "trajectory_length": 1.0}, ValueError, "not a whole number of steps"),
        ({"n_steps": 4, "trajectory_length": -1.0}, ValueError, "trajectory_length must be a positive number"),
    ],
)
def test_bad_settings_raise(settings, error, match):
    with pytest.raises(error, match=match):
        hmc.sampler(theory_for("phi4"), **settings)


def test_bad_arguments_raise():
    theory = theory_for("phi4")
    state = hmc.init(rough_start(theory), theory)
    with pytest.raises(ValueError, match="step_size must be a positive number"):
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
