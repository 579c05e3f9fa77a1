"""The theory protocol, the registry and the backend seam.

Every registered theory (and every improved-action theory the registry builds) is checked against
the protocol of :mod:`latticeml.theories.base`: a finite action, a force equal to the central
finite-difference derivative of the action, an MD drift that keeps the group, momenta whose kinetic
energy is 1/2 sum of their components squared, a ``check_field`` that rejects wrong shapes, and
``params`` that rebuild the same theory. Every (theory, algorithm) pair either runs or is refused
in one line naming the algorithms that do support the theory; an improved action is never sampled
by the Wilson local updates.
"""

import numpy as np
import pytest

from latticeml import backends, groups
from latticeml.samplers import ALGORITHMS, build_sampler, run_chain, supported_algorithms
from latticeml.stats import gamma_method
from latticeml.theories import GAUGE_ACTIONS, Parameter, Theory, make_theory, theory_registry
from latticeml.theories.improved import IWASAKI_C1, LUSCHER_WEISZ_C1, ImprovedSUN, ImprovedU1

SEED = 11

#: key -> (registry name, shape, couplings): every registered theory and the improved actions
CASES = {
    "phi4": ("phi4", (4, 6), dict(m2=-1.0, lam=0.7)),
    "u1": ("u1", (4, 6), dict(beta=1.3)),
    "u1-3d": ("u1", (4, 2, 4), dict(beta=0.9)),
    "su2": ("su2", (4, 4), dict(beta=2.1)),
    "su3-4d": ("su3", (2, 4, 2, 2), dict(beta=5.5)),
    "sun": ("sun", (4, 4), dict(beta=4.0, N=4)),
    "u1-iwasaki": ("u1", (4, 6), dict(beta=1.3, action="iwasaki")),
    "su2-lw": ("su2", (4, 4), dict(beta=2.1, action="luscher-weisz")),
    "su3-c1": ("su3", (4, 4), dict(beta=5.5, c1=-0.2)),
}


def build(key):
    name, shape, couplings = CASES[key]
    return make_theory(name, shape, **couplings)


def rough_start(theory, rng):
    """A field near the cold start (forces of order one, not the flat landscape of a hot start)."""
    cold = theory.cold_start()
    p = theory.random_momentum(rng)
    return theory.evolve(cold, p, 0.5)


# ----------------------------------------------------------------------------- the registry


def test_registry_lists_the_theories_with_their_parameters():
    registry = theory_registry()
    assert list(registry) == ["phi4", "u1", "su2", "su3", "sun"]
    for name, cls in registry.items():
        assert issubclass(cls, Theory) and cls.name == name
        assert all(isinstance(p, Parameter) and p.kind in ("float", "int", "choice") for p in cls.parameters)
        assert cls.local_updates <= {"metropolis", "heatbath", "overrelax"}
    assert [p.name for p in registry["phi4"].parameters] == ["m2", "lam"]
    assert [p.name for p in registry["sun"].parameters] == ["beta", "N", "action", "c1"]
    for name in ("u1", "su2", "su3"):
        action = {p.name: p for p in registry[name].parameters}["action"]
        assert action.choices == GAUGE_ACTIONS and action.default == "wilson" and not action.required


@pytest.mark.parametrize("key", list(CASES))
def test_params_rebuild_the_same_theory(key, rng):
    th = build(key)
    params = dict(th.params)
    assert params.pop("shape") == list(th.shape)
    again = make_theory(th.name, th.shape, **params)
    assert type(again) is type(th) and again.params == th.params
    field = th.hot_start(rng)
    assert again.action(field) == th.action(field)


def test_action_names_and_c1_choose_the_theory():
    shape = (4, 4, 4, 4)
    assert type(make_theory("su3", shape, beta=5.7)).__name__ == "SU3"
    assert type(make_theory("su3", shape, beta=5.7, action="wilson", c1=0.0)).__name__ == "SU3"
    iw = make_theory("su3", shape, beta=5.7, action="iwasaki")
    assert isinstance(iw, ImprovedSUN) and iw.c1 == IWASAKI_C1 and iw.N == 3 and iw.name == "su3"
    assert make_theory("su3", shape, beta=5.7, c1=-0.331).params == iw.params
    assert make_theory("su2", shape, beta=2.0, action="luscher-weisz").c1 == LUSCHER_WEISZ_C1
    assert make_theory("sun", (4, 4), beta=8.0, N=4, c1=-0.1).N == 4
    assert isinstance(make_theory("u1", (4, 4), beta=1.0, action="iwasaki"), ImprovedU1)
    assert make_theory("u1", (4, 4), beta=1.0, action="iwasaki", c1=IWASAKI_C1).c1 == IWASAKI_C1


@pytest.mark.parametrize(
    "name, couplings, message",
    [
        ("phi5", dict(), "unknown theory 'phi5'; choose one of phi4, u1, su2, su3, sun"),
        ("phi4", dict(m2=1.0), "needs the coupling 'lam'"),
        ("sun", dict(beta=1.0), "needs the coupling 'N'"),
        ("su3", dict(beta=1.0, N=3), "takes no coupling 'N'; it takes beta, action"),
        ("u1", dict(beta=1.0, kappa=0.1), "takes no coupling 'kappa'"),
        ("u1", dict(beta=float("nan")), "beta must be a finite number"),
        ("su2", dict(beta=float("inf")), "beta must be a finite number"),
        ("phi4", dict(m2=float("nan"), lam=1.0), "m2 must be a finite number"),
        ("phi4", dict(m2=1.0, lam=-8.0), "lam must be >= 0"),
        ("sun", dict(beta=1.0, N=1), "N >= 2"),
        ("sun", dict(beta=1.0, N=2.5), "N must be an integer"),
        ("su3", dict(beta=1.0, action="symanzik"), "action must be one of wilson, luscher-weisz, iwasaki"),
        ("su3", dict(beta=1.0, action="iwasaki", c1=-0.2), "give one of them"),
        ("su3", dict(beta=1.0, c1=float("nan")), "c1 must be a finite number"),
    ],
)
def test_make_theory_errors_name_the_problem(name, couplings, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_theory(name, (4, 4), **couplings)


# ----------------------------------------------------------------------------- the protocol


@pytest.mark.parametrize("key", list(CASES))
def test_fields_and_observables(key, rng):
    th = build(key)
    hot, cold = th.hot_start(rng), th.cold_start()
    for field in (hot, cold):
        assert field.shape == th.field_shape and field.dtype == th.field_dtype
        assert th.check_field(field).shape == th.field_shape
    obs = th.observables(hot)
    assert obs and all(isinstance(v, float) and np.isfinite(v) for v in obs.values())
    assert np.isfinite(th.action(hot)) and th.draw_auxiliary(rng, hot) is None
    bad = np.zeros((th.field_shape[0] + 1,) + th.field_shape[1:], dtype=th.field_dtype)
    with pytest.raises(ValueError, match="shape"):
        th.check_field(bad)
    with pytest.raises(ValueError, match="shape"):
        th.check_field(hot[..., :1] if th.name == "phi4" else hot[:, :1])


@pytest.mark.parametrize("key", list(CASES))
def test_force_is_the_derivative_of_the_action(key, rng):
    th = build(key)
    field = rough_start(th, rng)
    F = th.force(field)
    assert F.shape == field.shape
    eps = 1e-5
    if th.field_dtype == np.float64:  # phi^4 and U(1): dS/d(field) at a few sites / links
        for idx in [tuple(rng.integers(0, n) for n in field.shape) for _ in range(4)]:
            up, down = field.copy(), field.copy()
            up[idx] += eps
            down[idx] -= eps
            numeric = (th.action(up) - th.action(down)) / (2 * eps)
            assert abs(numeric - F[idx]) < 1e-6 * max(1.0, abs(F[idx])), idx
        return
    # SU(N): the component f_a = -2 tr(T_a F) is d/dt S(exp(t T_a) U_mu(x)) at t = 0
    T = groups.su_generators(th.N)
    for _ in range(4):
        link = tuple(rng.integers(0, n) for n in field.shape[:-2])
        a = rng.integers(0, len(T))
        S = []
        for t in (eps, -eps):
            moved = field.copy()
            moved[link] = groups.expm_su(t * T[a]) @ field[link]
            S.append(th.action(moved))
        numeric = (S[0] - S[1]) / (2 * eps)
        analytic = -2 * np.trace(T[a] @ F[link]).real
        assert abs(numeric - analytic) < 1e-6 * max(1.0, abs(analytic)), (link, a)


@pytest.mark.parametrize("key", list(CASES))
def test_evolve_keeps_the_group_and_kinetic_energy_is_half_p_squared(key, rng):
    th = build(key)
    field = th.hot_start(rng)
    p = th.random_momentum(rng)
    moved = field
    for _ in range(20):
        moved = th.evolve(moved, p, 0.37)
    assert moved.shape == field.shape and moved.dtype == field.dtype
    if th.field_dtype == np.complex128:
        unit, det = groups.unitarity_violation(moved)
        assert unit < 1e-12 and det < 1e-12
        components = groups.algebra_components(p)
        assert np.isclose(th.kinetic_energy(p), 0.5 * np.sum(components**2), rtol=1e-12)
    else:
        assert np.isclose(th.kinetic_energy(p), 0.5 * np.sum(p**2), rtol=1e-12)
        if th.name == "u1":
            assert np.all((moved > -np.pi) & (moved <= np.pi))
            np.testing.assert_allclose(np.exp(1j * moved), np.exp(1j * (field + 20 * 0.37 * p)), atol=1e-10)


@pytest.mark.parametrize("key", list(CASES))
def test_momenta_are_drawn_from_exp_minus_kinetic_energy(key, rng):
    """HMC is exact only if the momenta are distributed as exp(-K): a wrong variance keeps every
    trajectory reversible with dH ~ eps^2 and still samples the wrong field distribution.

    Exact second moments, written without latticeml.groups: real momenta are N(0, 1) per
    component; an SU(N) momentum with density exp(tr P^2) (Gaussian on su(N)) has
    <P_ij conj(P_kl)> = (delta_ik delta_jl - delta_ij delta_kl / N) / 2, so the mean kinetic energy
    per link is (N^2 - 1)/2 (equipartition over the N^2 - 1 generators). 4-sigma bounds, the sigma
    from the exact variance of each estimator."""
    th = build(key)
    draws = np.stack([th.random_momentum(rng) for _ in range(60)])
    K = np.array([th.kinetic_energy(p) for p in draws])
    if th.field_dtype == np.float64:
        n = draws.size
        dof_per_draw = draws[0].size
        assert abs(np.mean(draws**2) - 1.0) < 4 * np.sqrt(2.0 / n)
        assert abs(K.mean() / dof_per_draw - 0.5) < 4 * np.sqrt(0.5 / n)
        return
    N = th.N
    P = draws.reshape(-1, N, N)
    n = len(P)
    np.testing.assert_allclose(P, -np.conj(np.swapaxes(P, -1, -2)), atol=1e-14)  # anti-Hermitian
    np.testing.assert_allclose(np.trace(P, axis1=-2, axis2=-1), 0.0, atol=1e-13)  # traceless
    # per link K = -tr P^2 is (1/2) chi^2 with N^2 - 1 degrees of freedom: mean and variance (N^2 - 1)/2
    k_link = np.einsum("nij,nji->n", P, P).real * -1.0
    assert np.isclose(K.sum(), k_link.sum(), rtol=1e-12)  # kinetic_energy is -tr P^2 summed over links
    dof = N * N - 1
    assert abs(k_link.mean() - dof / 2) < 4 * np.sqrt(dof / 2 / n), (k_link.mean(), dof / 2)
    # second moments <|P_ij|^2> = (1 - delta_ij / N) / 2, each to 4 sigma (variance of |P_ij|^2 <= 2 * mean^2)
    expected = 0.5 * (1 - np.eye(N) / N)
    measured = np.mean(np.abs(P) ** 2, axis=0)
    assert np.all(np.abs(measured - expected) < 4 * np.sqrt(2 / n) * expected), (measured, expected)
    # and no correlation between different off-diagonal elements, e.g. <P_01 conj(P_10)> = 0 (off-diagonal of
    # an anti-Hermitian matrix: P_10 = -conj(P_01), so this is -<P_01^2>, zero for a phase-symmetric law)
    assert abs(np.mean(P[:, 0, 1] ** 2)) < 4 * np.sqrt(1 / n) * expected[0, 1]


# ----------------------------------------------------------------------------- samplers: run or refuse


SETTINGS = {"metropolis": dict(step_size=0.5), "heatbath": dict(overrelax=1), "hmc": dict(step_size=0.05, n_steps=2)}


def settings(algorithm, th):
    if algorithm != "l2hmc":
        return SETTINGS[algorithm]
    from latticeml.samplers.l2hmc import L2HMCDynamics  # an untrained model is still an exact sampler

    dyn = L2HMCDynamics(th.field_shape, n_layers=1, angles=True, rng=np.random.default_rng(0), hidden=(4,))
    return dict(model=(dyn, None))


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
@pytest.mark.parametrize("key", list(CASES))
def test_every_theory_and_algorithm_runs_or_is_refused(key, algorithm, rng):
    th = build(key)
    improved = isinstance(th, (ImprovedSUN, ImprovedU1))
    supported = supported_algorithms(th)
    assert "hmc" in supported
    if improved:
        assert supported == ("hmc",) and not th.local_updates
    if algorithm in supported:
        smp = build_sampler(th, algorithm, **settings(algorithm, th))
        state, info = smp.step(rng, smp.init(th.hot_start(rng)))
        assert 0.0 <= info.acceptance <= 1.0 and state.field.shape == th.field_shape
        return
    with pytest.raises(ValueError) as err:
        build_sampler(th, algorithm, **settings(algorithm, th))
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{algorithm} cannot sample {th.name}")
    assert message.endswith("use " + " or ".join(supported))
    if improved:
        assert "hmc" in message and f"c1 = {th.c1:g}" in message


def test_improved_theories_have_no_local_sweeps_to_fall_back_on():
    th = make_theory("su3", (4, 4, 4, 4), beta=5.7, action="iwasaki")
    assert not hasattr(th, "metropolis_sweep") and not hasattr(th, "heatbath_sweep")
    from latticeml.samplers import heatbath, metropolis

    with pytest.raises(ValueError, match="use hmc"):
        heatbath.sampler(th)
    with pytest.raises(ValueError, match="use hmc"):
        heatbath.overrelaxation_sampler(th)
    with pytest.raises(ValueError, match="use hmc"):
        metropolis.step(np.random.default_rng(0), metropolis.State(th.cold_start()), th)


def test_iwasaki_and_wilson_plaquettes_differ_by_many_sigma():
    """At the same beta the Iwasaki action (c0 = 1 + 8 * 0.331 on the plaquettes) orders the links
    far more than the Wilson action: 2D U(1) at beta = 1 on 8x8, Iwasaki by HMC, Wilson by heatbath
    (whose exact value I_1(1)/I_0(1) = 0.446 the Wilson chain must reproduce). A sampler that
    silently ran the Wilson action for the Iwasaki theory would fail this by many sigma."""
    from scipy.special import iv

    rng = np.random.default_rng(5)
    wilson = make_theory("u1", (8, 8), beta=1.0)
    iwasaki = make_theory("u1", (8, 8), beta=1.0, action="iwasaki")
    w = run_chain(build_sampler(wilson, "heatbath", overrelax=1), wilson.hot_start(rng), rng, n_measure=300, n_therm=20, progress=False)
    i = run_chain(
        build_sampler(iwasaki, "hmc", step_size=0.1, n_steps=8), iwasaki.hot_start(rng), rng, n_measure=300, n_therm=50, progress=False
    )
    gw, gi = gamma_method(w.records["plaquette"]), gamma_method(i.records["plaquette"])
    assert abs(gw.value - iv(1, 1.0) / iv(0, 1.0)) < 4 * gw.error  # the Wilson chain is right (finite-volume corrections ~ 1e-30)
    assert i.acceptance.mean() > 0.5
    assert (gi.value - gw.value) / np.hypot(gi.error, gw.error) > 10


# ----------------------------------------------------------------------------- the backend seam


def test_backend_seam():
    assert backends.available_backends() == ("cpu", "cuda")
    th = make_theory("su2", (4, 4), beta=2.0)
    assert th.backend == "cpu" and th.kernels is backends.kernels("sun", "cpu")
    assert th.local_kernels is backends.kernels("sun_local", "cpu")
    for (family, backend), path in backends.KERNELS.items():
        if backend == "cpu":  # cuda rows import numba.cuda: tests/test_cuda.py covers them in a fresh process
            assert backends.kernels(family, backend).__name__ == path
    with pytest.raises(ValueError, match="backend 'tpu' is not available; choose one of: cpu, cuda"):
        make_theory("phi4", (4, 4), m2=1.0, lam=0.0, backend="tpu")
    with pytest.raises(ValueError, match="has no kernels for 'fermions'; it has: "):
        backends.kernels("fermions", "cpu")


def test_sweeps_refuse_arrays_they_cannot_update_in_place(rng):
    """A strided view or another dtype would be copied by the kernel's reshape and the update lost."""
    from latticeml.theories import phi4, sun_local, u1

    phi = np.zeros((4, 8))[:, ::2]  # a strided view
    with pytest.raises(ValueError, match="C-contiguous float64"):
        phi4.metropolis_sweep(rng, phi, m2=1.0, lam=0.0, step_size=0.5, hits=1)
    with pytest.raises(ValueError, match="C-contiguous float64"):
        u1.heatbath_sweep(rng, np.zeros((2, 4, 4), dtype=np.float32), beta=1.0)
    with pytest.raises(ValueError, match="C-contiguous complex128"):
        sun_local.overrelax_sweep(np.asfortranarray(make_theory("su2", (4, 4), beta=1.0).cold_start()))
