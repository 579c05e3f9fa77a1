"""Integrators as values (latticeml.samplers.integrators): reversibility, dH ~ eps^2, the registry.

Checks against independent references written here: a plain-NumPy phi^4 force and integrators
(no merged kicks), and the exact shadow Hamiltonian of leapfrog on a harmonic oscillator. The
registry tests plug a user-written integrator into HMC and SLHMC and check they run it, record
its name, and add a learned integrator's log-Jacobian to the acceptance.
"""

import math

import numba
import numpy as np
import pytest

from latticeml import groups
from latticeml.samplers import hmc, integrators, slhmc
from latticeml.samplers.chain import run_chain
from latticeml.samplers.integrators import (
    INTEGRATORS,
    IntegratorResult,
    get_integrator,
    integrator_name,
    register_integrator,
)
from latticeml.theories import make_theory

BUILTIN = ("leapfrog", "omelyan")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny lattices: one Numba thread avoids the parallel-launch overhead (results do not depend on it)."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


#: the theories the integrator and HMC tests run on (tests/test_hmc.py imports these helpers)
THEORIES = {
    "phi4": ("phi4", (6, 4), {"m2": -1.0, "lam": 1.0}),
    "u1": ("u1", (6, 4), {"beta": 2.0}),
    "su2": ("su2", (4, 4), {"beta": 2.0}),
    "su3": ("su3", (4, 4, 2, 2), {"beta": 5.0}),
}


def theory_for(key):
    name, shape, couplings = THEORIES[key]
    return make_theory(name, shape, **couplings)


def rough_start(theory, seed=0):
    """A moderately rough start: small fluctuations around a cold field (forces of typical size)."""
    rng = np.random.default_rng(seed)
    if theory.name == "phi4":
        return 0.5 * rng.standard_normal(theory.shape)
    if theory.name == "u1":
        return groups.wrap_angle(0.5 * rng.standard_normal((theory.dim,) + theory.shape))
    return groups.random_near_identity(rng, theory.N, (theory.dim,) + theory.shape, spread=0.5)


def field_distance(theory, a, b):
    if theory.name == "u1":  # angles are equal modulo 2 pi
        return float(np.abs(groups.wrap_angle(a - b)).max())
    return float(np.abs(a - b).max())


# ----------------------------------------------------------------------------- the built-in integrators


@pytest.mark.parametrize("integrator", BUILTIN)
@pytest.mark.parametrize("key", list(THEORIES))
def test_reversible(key, integrator):
    theory = theory_for(key)
    field = rough_start(theory)
    p = theory.random_momentum(np.random.default_rng(1))
    field_in, p_in = field.copy(), p.copy()
    f1, p1 = hmc.integrate(theory, field, p, step_size=0.1, n_steps=10, integrator=integrator)
    np.testing.assert_array_equal(field, field_in)  # integrate is pure
    np.testing.assert_array_equal(p, p_in)
    assert field_distance(theory, f1, field) > 0.1  # it moved
    f2, p2 = hmc.integrate(theory, f1, -p1, step_size=0.1, n_steps=10, integrator=integrator)
    assert field_distance(theory, f2, field) < 1e-12
    assert np.abs(p2 + p).max() < 1e-12


@pytest.mark.parametrize("integrator, forces_per_step", [("leapfrog", 1), ("omelyan", 2)])
def test_integrator_values_and_the_cached_start_force(integrator, forces_per_step):
    """The function itself: the same numbers as hmc.integrate, forces counted, a given start force used."""
    theory = theory_for("su2")
    field = rough_start(theory)
    p = theory.random_momentum(np.random.default_rng(4))
    fn = INTEGRATORS[integrator]
    kw = {"force_fn": theory.force, "evolve_fn": theory.evolve, "step_size": 0.1, "n_steps": 7}
    cold = fn(field, p, None, **kw)
    warm = fn(field, p, theory.force(field), **kw)
    assert isinstance(cold, IntegratorResult) and cold.log_jacobian == 0.0
    assert cold.n_force_evaluations == forces_per_step * 7 + 1 and warm.n_force_evaluations == forces_per_step * 7
    f1, p1 = hmc.integrate(theory, field, p, step_size=0.1, n_steps=7, integrator=fn)
    for result in (cold, warm):
        np.testing.assert_array_equal(result.field, f1)
        np.testing.assert_array_equal(result.momentum, p1)
        np.testing.assert_array_equal(result.force, theory.force(f1))  # the end force, for the next trajectory


def _numpy_phi4_force(phi, m2, lam):
    """dS/dphi of S = sum_x [-2 sum_mu phi(x) phi(x+mu) + (2D + m2) phi^2 + lam phi^4], by np.roll."""
    D = phi.ndim
    hop = sum(np.roll(phi, -1, mu) + np.roll(phi, 1, mu) for mu in range(D))
    return -2 * hop + 2 * (2 * D + m2) * phi + 4 * lam * phi**3


def _numpy_md(phi, p, eps, n, integrator, m2, lam):
    """The integrators written out kick by kick (no merging): the reference for the integrators."""
    F = lambda x: _numpy_phi4_force(x, m2, lam)
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


@pytest.mark.parametrize("integrator", BUILTIN)
def test_phi4_trajectory_matches_numpy_reference(integrator):
    theory = theory_for("phi4")
    field = rough_start(theory)
    p = theory.random_momentum(np.random.default_rng(2))
    f1, p1 = hmc.integrate(theory, field, p, step_size=0.07, n_steps=9, integrator=integrator)
    f_ref, p_ref = _numpy_md(field, p, 0.07, 9, integrator, theory.m2, theory.lam)
    np.testing.assert_allclose(f1, f_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(p1, p_ref, rtol=0, atol=1e-12)
    assert hmc.hamiltonian(theory, field, p) == pytest.approx(
        0.5 * np.sum(p**2) + theory.action(field), rel=1e-14
    )


def test_omelyan_lambda_is_the_minimum_norm_value():
    c = (2 * math.sqrt(326) + 36) ** (1 / 3)
    assert integrators.OMELYAN_LAMBDA == pytest.approx(0.5 - c / 12 + 1 / (6 * c), rel=1e-15)


class Oscillator:
    """Independent harmonic oscillators, S = omega^2 x^2 / 2: a minimal theory with the HMC interface."""

    name = "oscillator"

    def __init__(self, omega, n=3):
        self.omega, self.shape = omega, (n,)

    @property
    def params(self):
        return {"omega": self.omega, "shape": list(self.shape)}

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

    def observables(self, x):
        return {"x2": float(np.mean(x**2))}


def test_leapfrog_conserves_the_exact_shadow_hamiltonian():
    # Velocity-Verlet leapfrog on H = p^2/2 + w^2 x^2/2 conserves p^2/2 + (1 - (w eps)^2/4) w^2 x^2/2 exactly.
    osc = Oscillator(omega=1.3)
    x = np.array([1.0, -0.4, 0.2])
    p = np.array([0.3, 0.8, -1.1])
    eps = 0.3
    shadow = lambda x, p: 0.5 * p**2 + (1 - (osc.omega * eps) ** 2 / 4) * 0.5 * osc.omega**2 * x**2
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
    theory = theory_for(key)
    field = rough_start(theory, seed=3)
    steps = np.array([0.08, 0.04, 0.02, 0.01])
    dH = {k: np.array([_dH(theory, field, eps, k) for eps in steps]) for k in BUILTIN}
    for integrator, values in dH.items():
        slope = np.polyfit(np.log(steps), np.log(values), 1)[0]
        assert 1.9 < slope < 2.1, (integrator, slope, values)  # measured 1.98 - 2.05
    ratio = dH["omelyan"] / dH["leapfrog"]
    # measured at equal step size: phi4 0.11, U(1) 0.05, SU(2) 0.087, SU(3) 0.012
    assert np.all(ratio < 0.2), ratio
    # also better at equal cost: 2MN with twice the step (2 forces per step) beats leapfrog
    assert dH["omelyan"][0] < dH["leapfrog"][1]


# ----------------------------------------------------------------------------- the registry


def half_step_leapfrog(field, momentum, force, *, force_fn, evolve_fn, step_size, n_steps):
    """A trivially composed integrator: leapfrog with half the step and twice the steps."""
    return integrators.leapfrog(field, momentum, force, force_fn=force_fn, evolve_fn=evolve_fn, step_size=step_size / 2, n_steps=2 * n_steps)


@pytest.fixture
def registered():
    """Register ``half_step_leapfrog`` for one test, and leave the registry as it was."""
    before = dict(INTEGRATORS)
    register_integrator("half_step_leapfrog", half_step_leapfrog)
    yield "half_step_leapfrog"
    INTEGRATORS.clear()
    INTEGRATORS.update(before)


def test_registry_lookup_and_errors():
    assert get_integrator("leapfrog") is integrators.leapfrog and get_integrator("omelyan") is integrators.omelyan
    assert get_integrator(half_step_leapfrog) is half_step_leapfrog
    assert integrator_name("omelyan") == "omelyan" and integrator_name(integrators.omelyan) == "omelyan"
    assert integrator_name(half_step_leapfrog) == "half_step_leapfrog"  # unregistered: its __name__
    with pytest.raises(ValueError, match=r"unknown integrator 'rk4'; registered: 'leapfrog', 'omelyan'"):
        get_integrator("rk4")
    with pytest.raises(ValueError, match="unknown integrator 'rk4'"):
        hmc.sampler(theory_for("phi4"), step_size=0.1, n_steps=3, integrator="rk4")
    with pytest.raises(ValueError, match="already registered"):
        register_integrator("leapfrog", half_step_leapfrog)
    with pytest.raises(TypeError, match="must be a function"):
        register_integrator("nothing", 3.0)
    assert "nothing" not in INTEGRATORS


def test_user_integrator_runs_in_hmc_and_is_recorded(registered):
    theory = theory_for("phi4")
    start = rough_start(theory)
    mine = hmc.sampler(theory, step_size=0.1, n_steps=4, integrator=registered)
    assert mine.settings["integrator"] == "half_step_leapfrog"
    by_value = hmc.sampler(theory, step_size=0.1, n_steps=4, integrator=half_step_leapfrog)
    assert by_value.settings == mine.settings
    plain = hmc.sampler(theory, step_size=0.05, n_steps=8, integrator="leapfrog")
    runs = [run_chain(s, start, np.random.default_rng(9), n_measure=10, progress=False, keep_fields=True) for s in (mine, by_value, plain)]
    for run in runs[1:]:  # the same numbers, bit for bit: the composed integrator is what ran
        np.testing.assert_array_equal(run.fields, runs[0].fields)
        np.testing.assert_array_equal(run.acceptance, runs[0].acceptance)
    _, info = mine.step(np.random.default_rng(0), mine.init(start))
    assert info.n_force_evaluations == 8  # 2 n half steps, the start force cached


def test_slhmc_takes_integrators_the_same_way(registered):
    """SLHMC with md_theory = target is HMC: the same chain bit for bit, for a name and for a function."""
    theory = theory_for("su2")
    start = rough_start(theory)
    for integrator in ("omelyan", registered, half_step_leapfrog):
        sl = slhmc.sampler(theory, theory, step_size=0.1, n_steps=3, integrator=integrator)
        plain = hmc.sampler(theory, step_size=0.1, n_steps=3, integrator=integrator)
        assert sl.settings["integrator"] == plain.settings["integrator"] == integrator_name(integrator)
        a, b = (run_chain(s, start, np.random.default_rng(5), n_measure=6, progress=False, keep_fields=True) for s in (sl, plain))
        np.testing.assert_array_equal(a.fields, b.fields)
        np.testing.assert_array_equal(a.acceptance, b.acceptance)


def test_log_jacobian_enters_the_acceptance():
    """A 'learned' integrator that reports a log-Jacobian: HMC and SLHMC accept with exp(log_jacobian - dH)."""
    theory = Oscillator(omega=1.0)

    def tilted(field, momentum, force, **kw):
        return integrators.leapfrog(field, momentum, force, **kw)._replace(log_jacobian=-0.7)

    x = np.array([0.3, -0.2, 0.1])
    for s in (hmc.sampler(theory, step_size=0.01, n_steps=3, integrator=tilted),
              slhmc.sampler(theory, theory, step_size=0.01, n_steps=3, integrator=tilted)):
        assert s.settings["integrator"] == "tilted"
        _, info = s.step(np.random.default_rng(1), s.init(x))
        assert info.log_jacobian == -0.7 and abs(info.delta_H) < 1e-3
        assert info.acceptance_probability == pytest.approx(math.exp(-0.7 - info.delta_H), rel=1e-12)


# ----------------------------------------------------------------------------- multi-time-scale (Sexton-Weingarten)


class StiffSoft(Oscillator):
    """S = (Omega^2 + omega^2) x^2 / 2: a stiff part Omega (the 'fast' force) and a soft part omega."""

    def __init__(self, stiff=8.0, soft=1.0, n=3):
        super().__init__(omega=math.hypot(stiff, soft), n=n)
        self.stiff = stiff

    def fast_force(self, x):
        return self.stiff**2 * x


def test_sexton_weingarten_reversible_and_counted():
    theory = theory_for("su2")
    fast = make_theory("su2", theory.shape, beta=0.7 * theory.beta)  # any split of the action will do
    sw = integrators.sexton_weingarten(fast.force, 3)
    assert integrator_name(sw) == "sexton_weingarten_3"
    field = rough_start(theory)
    p = theory.random_momentum(np.random.default_rng(3))
    end = sw(field, p, None, force_fn=theory.force, evolve_fn=theory.evolve, step_size=0.1, n_steps=6)
    assert end.n_force_evaluations == 7 and end.log_jacobian == 0.0
    np.testing.assert_array_equal(end.force, theory.force(end.field))  # the full force, for HMC's cache
    assert field_distance(theory, end.field, field) > 0.1
    f2, p2 = hmc.integrate(theory, end.field, -end.momentum, step_size=0.1, n_steps=6, integrator=sw)
    assert field_distance(theory, f2, field) < 1e-12 and np.abs(p2 + p).max() < 1e-12
    # fast = everything, one inner step: the plain leapfrog (the slow kicks are exactly zero)
    same = hmc.integrate(theory, field, p, step_size=0.1, n_steps=6, integrator=integrators.sexton_weingarten(theory.force, 1))
    ref = hmc.integrate(theory, field, p, step_size=0.1, n_steps=6, integrator="leapfrog")
    for a, b in zip(same, ref):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match="n_inner must be an integer >= 1"):
        integrators.sexton_weingarten(fast.force, 0)


def test_sexton_weingarten_puts_the_small_step_on_the_stiff_force():
    """dH ~ (Omega eps / n_inner)^2 for the stiff part: nesting wins at one full force per outer step."""
    osc = StiffSoft()
    x = np.array([0.3, -0.2, 0.25])
    p = np.array([0.5, 1.0, -0.7])
    tau = 1.2

    def dH(integrator, eps):
        x1, p1 = hmc.integrate(osc, x, p, step_size=eps, n_steps=round(tau / eps), integrator=integrator)
        return abs(hmc.hamiltonian(osc, x1, p1) - hmc.hamiltonian(osc, x, p))

    steps = np.array([0.04, 0.02, 0.01])
    nested = np.array([dH(integrators.sexton_weingarten(osc.fast_force, 8), eps) for eps in steps])
    plain = np.array([dH("leapfrog", eps) for eps in steps])
    slope = np.polyfit(np.log(steps), np.log(nested), 1)[0]
    assert 1.8 < slope < 2.2, (slope, nested)  # measured 2.005
    assert np.all(nested < plain / 20), (nested, plain)  # measured 28 - 35 times smaller
