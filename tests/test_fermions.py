"""Staggered fermions: the operator against a dense NumPy reference, free-field sums, symmetries,
CG, the pseudofermion force against finite differences, HMC, the condensate, and the 2D Schwinger
model on the 2 x 2 torus against direct numerical integration over its links."""

import itertools

import numpy as np
import pytest

from latticeml import groups
from latticeml.fermions import (
    StaggeredFermions, apply_D, apply_D_dagger, apply_normal, apply_schur_even, chiral_condensate, epsilon, free_field_sums,
    free_momenta, prepare, solve_normal, two_time_scale,
)
from latticeml.fermions.exact_torus import schwinger_2x2
from latticeml.samplers import hmc
from latticeml.samplers.chain import run_chain
from latticeml.stats import gamma_method
from latticeml.theories import make_theory

SEED = 16

# (theory, shape, couplings, group): U(1) in 2D, SU(2) and SU(3) in 4D (any even D)
CASES = [
    ("u1", (4, 4), {"beta": 1.0}, "u1"),
    ("su2", (4, 2, 2, 2), {"beta": 2.0}, "su"),
    ("su3", (2, 2, 2, 2), {"beta": 5.0}, "su"),
]


def dense_D(field, group):
    """D written from its definition with explicit site loops (no kernel, no neighbour table)."""
    field = np.asarray(field)
    Dim = field.shape[0]
    shape = field.shape[1 : 1 + Dim]
    U = np.exp(1j * field)[..., None, None] if group == "u1" else field
    N = U.shape[-1]
    V = int(np.prod(shape))
    out = np.zeros((V * N, V * N), dtype=complex)
    index = {x: i for i, x in enumerate(itertools.product(*map(range, shape)))}
    for x, s in index.items():
        for mu in range(Dim):
            eta = (-1.0) ** sum(x[:mu])
            bc = -1.0 if (mu == 0 and x[0] == shape[0] - 1) else 1.0
            y = list(x)
            y[mu] = (y[mu] + 1) % shape[mu]
            f = index[tuple(y)]
            link = U[(mu,) + x]
            out[s * N : (s + 1) * N, f * N : (f + 1) * N] += 0.5 * eta * bc * link
            out[f * N : (f + 1) * N, s * N : (s + 1) * N] -= 0.5 * eta * bc * link.conj().T
    return out


def kernel_matrix(links, fn=apply_D):
    n = links.U.shape[1] * links.N
    cols = []
    for i in range(n):
        e = np.zeros(n, complex)
        e[i] = 1
        cols.append(fn(links, e.reshape(links.shape + (links.N,))).ravel())
    return np.array(cols).T


def random_field(theory, rng):
    return theory.hot_start(rng)


@pytest.mark.parametrize("name, shape, couplings, group", CASES)
def test_kernel_matches_dense_reference_and_symmetries(rng, name, shape, couplings, group):
    theory = make_theory(name, shape, **couplings)
    U = random_field(theory, rng)
    links = prepare(U, group)
    Dk = kernel_matrix(links)
    Dref = dense_D(U, group)
    np.testing.assert_allclose(Dk, Dref, atol=1e-14)
    np.testing.assert_allclose(kernel_matrix(links, apply_D_dagger), Dref.conj().T, atol=1e-14)
    np.testing.assert_allclose(Dk.conj().T, -Dk, atol=1e-14)  # anti-Hermitian
    eps = np.repeat(epsilon(shape).ravel(), links.N)
    np.testing.assert_allclose(eps[:, None] * Dk + Dk * eps[None, :], 0, atol=1e-14)  # {epsilon, D} = 0


@pytest.mark.parametrize("shape, N", [((4, 4), 1), ((4, 2), 1), ((4, 2, 2, 2), 2)])
def test_free_field_spectrum_trace_and_determinant(shape, N):
    m = 0.3
    U = np.zeros((len(shape),) + shape) if N == 1 else make_theory("su2", shape, beta=1.0).cold_start()
    links = prepare(U, "u1" if N == 1 else "su")
    Dk = kernel_matrix(links)
    M = m * np.eye(len(Dk)) + Dk
    ev = np.linalg.eigvals(M)
    np.testing.assert_allclose(ev.real, m, atol=1e-12)
    s2 = np.repeat(free_momenta(shape), N)
    np.testing.assert_allclose(np.sort(ev.imag**2), np.sort(s2), atol=1e-12)  # m +- i sqrt(sum sin^2 p)
    assert np.allclose(np.sort(ev.imag), np.sort(-ev.imag), atol=1e-12)  # +- pairs
    trace, logdet = free_field_sums(shape, m, N)
    V = int(np.prod(shape))
    assert np.trace(np.linalg.inv(M)).real / V == pytest.approx(trace, rel=1e-12)
    sign, ld = np.linalg.slogdet(M)
    assert ld == pytest.approx(logdet, rel=1e-12) and abs(sign - 1) < 1e-12


@pytest.mark.parametrize("name, shape, couplings, group", CASES[:2])
def test_det_and_trace_gauge_invariant_and_even_odd_schur(rng, name, shape, couplings, group):
    theory = make_theory(name, shape, **couplings)
    U = random_field(theory, rng)
    m = 0.4
    if group == "u1":
        U2 = groups.gauge_transform_u1(U, groups.random_gauge_transform_u1(rng, shape))
    else:
        U2 = groups.gauge_transform(U, groups.random_gauge_transform(rng, shape, theory.N))
    mats = [m * np.eye(len(d)) + d for d in (dense_D(U, group), dense_D(U2, group))]
    (s1, ld1), (s2, ld2) = (np.linalg.slogdet(M) for M in mats)
    assert abs(s1 - 1) < 1e-10 and abs(s2 - 1) < 1e-10 and ld1 == pytest.approx(ld2, rel=1e-12)
    tr1, tr2 = (np.trace(np.linalg.inv(M)) for M in mats)
    assert tr1 == pytest.approx(tr2, rel=1e-12)
    # even block: det(m^2 - D_eo D_oe) = det M, and apply_schur_even is that block
    links = prepare(U, group)
    N = links.N
    even = (links.even[:, None] * N + np.arange(N)).ravel()
    odd = (links.odd[:, None] * N + np.arange(N)).ravel()
    Dd = dense_D(U, group)
    S = m * m * np.eye(len(even)) - Dd[np.ix_(even, odd)] @ Dd[np.ix_(odd, even)]
    assert np.linalg.slogdet(S)[1] == pytest.approx(ld1, rel=1e-12)
    psi = rng.standard_normal(links.shape + (N, 2)) @ np.array([1, 1j])
    out = apply_schur_even(links, psi, m).reshape(-1)
    np.testing.assert_allclose(out[even], S @ psi.reshape(-1)[even], atol=1e-13)
    np.testing.assert_allclose(out[odd], 0)


def _bench_fermions():
    """benchmarks/bench_fermions.py as a module: its ``numpy_D`` (np.roll from the definition) is the reference."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_fermions.py"
    spec = importlib.util.spec_from_file_location("bench_fermions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape, N", [((8, 16), 1), ((4, 4, 2, 4), 2), ((4, 2, 4, 4), 3), ((2, 4, 4, 4), 4)])
def test_hop_layout_and_threads_match_numpy_roll_on_all_even_and_odd_sites(rng, monkeypatch, shape, N, threads):
    """The hops layout (N = 3 written out, N = 1 a constant, N = 2 and 4 the generic loops), the
    serial kernel and its chunks on the thread pool against np.roll, for D and D^dagger on the
    full, even and odd output sites, and the normal and Schur operators built on them."""
    import numba

    from latticeml._threads import PARALLEL_MIN, chunk_threads
    from latticeml.fermions import staggered

    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip(f"needs NUMBA_NUM_THREADS >= {threads}")
    numpy_D = _bench_fermions().numpy_D
    Dim = len(shape)
    U = rng.standard_normal((Dim,) + shape + (N, N, 2)) @ np.array([1, 1j])  # any complex links: D is linear in them
    links = staggered.prepare_matrices(U.reshape(Dim, -1, N, N), shape)
    psi = rng.standard_normal(shape + (N, 2)) @ np.array([1, 1j])
    ref = numpy_D(U, psi).reshape(-1, N)
    monkeypatch.setitem(PARALLEL_MIN, "staggered", 0)  # every call through run_chunks
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        assert chunk_threads("staggered", len(links.even)) == threads  # the even-odd blocks really run on `threads`
        for sites in (None, links.even, links.odd):
            want = np.zeros_like(ref)
            chosen = links.all_sites if sites is None else sites
            want[chosen] = ref[chosen]
            got = apply_D(links, psi, sites=sites).reshape(-1, N)
            np.testing.assert_allclose(got, want, atol=1e-13)
            np.testing.assert_allclose(apply_D_dagger(links, psi, sites=sites).reshape(-1, N), -want, atol=1e-13)
            # the chunk kernel on uneven pieces, last first: the same numbers, bit for bit
            out = np.zeros_like(ref)
            cuts = [0, 1, len(chosen) // 3, len(chosen)]
            for a, b in reversed(list(itertools.pairwise(cuts))):
                staggered._hop_chunk(links.hops, links.neighbours, psi.reshape(-1, N), chosen, 1.0, out, a, b)
            np.testing.assert_array_equal(out, got)
        m = 0.3
        e = psi.reshape(-1, N).copy()
        e[links.odd] = 0.0
        schur = apply_schur_even(links, e.reshape(psi.shape), m).reshape(-1, N)
        Deo = numpy_D(U, numpy_D(U, e.reshape(psi.shape))).reshape(-1, N)
        np.testing.assert_allclose(schur[links.even], m * m * e[links.even] - Deo[links.even], atol=1e-12)
        np.testing.assert_allclose(schur[links.odd], 0)
        full = apply_normal(links, psi, m).reshape(-1, N)
        np.testing.assert_allclose(full, m * m * psi.reshape(-1, N) - numpy_D(U, numpy_D(U, psi)).reshape(-1, N), atol=1e-12)
    finally:
        numba.set_num_threads(before)


def test_cg_solves_full_and_even_systems_to_the_relative_residual(rng):
    theory = make_theory("su2", (4, 2, 2, 2), beta=2.0)
    U = theory.hot_start(rng)
    links = prepare(U, "su")
    m = 0.2
    Dd = dense_D(U, "su")
    A = m * m * np.eye(len(Dd)) - Dd @ Dd
    b = rng.standard_normal(links.shape + (2, 2)) @ np.array([1, 1j])
    res = solve_normal(links, b, m, tol=1e-10)
    assert 0 < res.iterations < len(Dd) and res.residual <= 1e-10
    np.testing.assert_allclose(A @ res.x.ravel(), b.ravel(), atol=1e-8 * np.linalg.norm(b))
    res_e = solve_normal(links, b, m, sites="even", tol=1e-12)
    even = (links.even[:, None] * 2 + np.arange(2)).ravel()
    np.testing.assert_allclose(res_e.x.ravel()[even], np.linalg.solve(A[np.ix_(even, even)], b.ravel()[even]), atol=1e-10)
    assert res_e.iterations < res.iterations + 5  # the Schur block is better conditioned
    with pytest.raises(RuntimeError, match="did not converge"):
        solve_normal(links, b, m, tol=1e-12, max_iter=3)


def _directional_derivative(theory, U, aux, rng, h=1e-5):
    """(S(U(+h)) - S(U(-h))) / 2h along a random direction, and <F, direction> in the force's inner product."""
    if theory.group == "u1":
        X = rng.standard_normal(U.shape)
        fd = (theory.action(U + h * X, aux) - theory.action(U - h * X, aux)) / (2 * h)
        return fd, float(np.sum(theory.force(U, aux) * X))
    X = groups.random_algebra(rng, theory.N, U.shape[:-2])
    Up, Um = groups.expm_su(h * X) @ U, groups.expm_su(-h * X) @ U
    fd = (theory.action(Up, aux) - theory.action(Um, aux)) / (2 * h)
    F = theory.force(U, aux)
    return fd, float(-2 * np.einsum("...ij,...ji->...", F, X).sum().real)  # <F, X> = -2 tr F X


@pytest.mark.parametrize("name, shape, couplings, group", CASES[:2])
@pytest.mark.parametrize("k", [1, 2])
def test_pseudofermion_force_is_the_derivative_of_the_action(rng, name, shape, couplings, group, k):
    theory = StaggeredFermions(make_theory(name, shape, **couplings), mass=0.3, n_staggered=k)
    U = theory.hot_start(rng)
    aux = theory.draw_auxiliary(rng, U)
    assert len(aux) == {1: 1, 2: 1}[k]
    fd, an = _directional_derivative(theory, U, aux, rng)
    assert fd == pytest.approx(an, rel=1e-7)
    # the fermion part alone (the gauge force has its own tests): nonzero and equally exact
    Sf = theory.fermion_action(U, aux)
    assert Sf > 0


def test_heatbath_pseudofermion_has_the_right_action_distribution(rng):
    # phi^dagger A^-1 phi with phi = M^dagger chi is chi^dagger chi: a sum of |chi_i|^2, mean = number of components
    theory = StaggeredFermions(make_theory("u1", (4, 4), beta=1.0), mass=0.5, n_staggered=1)
    U = theory.hot_start(rng)
    S = [theory.fermion_action(U, theory.draw_auxiliary(rng, U)) for _ in range(200)]
    # even field: phi_e = (M^dagger chi)_e, S = chi^dagger P chi with P a rank-V/2 projector: <S> = V/2, var = V/2
    assert np.mean(S) == pytest.approx(8, abs=4 * np.sqrt(8 / 200))


def test_hmc_is_reversible_and_dH_scales_as_step_squared(rng):
    theory = StaggeredFermions(make_theory("su2", (4, 2, 2, 2), beta=2.0), mass=0.4, n_staggered=1)
    U = theory.hot_start(rng)
    p = theory.random_momentum(rng)
    aux = theory.draw_auxiliary(rng, U)
    U1, p1 = hmc.integrate(theory, U, p, step_size=0.1, n_steps=5, integrator="omelyan", aux=aux)
    U2, p2 = hmc.integrate(theory, U1, -p1, step_size=0.1, n_steps=5, integrator="omelyan", aux=aux)
    np.testing.assert_allclose(U2, U, atol=1e-11)
    H0 = hmc.hamiltonian(theory, U, p, aux)
    dH = []
    for n in (4, 8):
        for integ in ("omelyan", two_time_scale(theory, 3)):
            Ue, pe = hmc.integrate(theory, U, p, step_size=0.5 / n, n_steps=n, integrator=integ, aux=aux)
            dH.append(abs(hmc.hamiltonian(theory, Ue, pe, aux) - H0))
    assert 3 < dH[0] / dH[2] < 5.5 and 3 < dH[1] / dH[3] < 5.5  # halving eps: dH / 4


def test_schwinger_model_hmc_matches_direct_integration_on_the_2x2_torus(rng):
    beta, m = 1.0, 0.5
    for k, integrator in ((1, "omelyan"), (2, "leapfrog")):
        exact = schwinger_2x2(beta, m, k, n=10)
        theory = StaggeredFermions(make_theory("u1", (2, 2), beta=beta), mass=m, n_staggered=k)
        sampler = hmc.sampler(theory, step_size=0.34, n_steps=3, integrator=integrator)
        res = run_chain(sampler, theory.hot_start(rng), rng, n_measure=800, n_therm=30, progress=False)
        assert 0.6 < res.acceptance.mean() < 1
        for key in ("plaquette", "chiral_condensate"):
            g = gamma_method(res.records[key])
            assert abs(g.value - exact[key]) < 4 * g.error, (k, key, g.value, g.error, exact[key])


def test_exp_minus_dH_averages_to_one(rng):
    """Creutz's identity <exp(-dH)> = 1 (M. Creutz, PRD 38 (1988) 1228) with pseudofermions, in equilibrium.

    Thermalised first (the identity holds for the equilibrium distribution only), Gamma-method
    errors, 3 sigma; <dH> must be resolved, so exp(-dH) really fluctuates at this step size. The step
    is small enough that exp(-dH) has no heavy tail: at step 0.35 (<dH> ~ 0.5) its variance,
    exp(2 <dH>) - 1, is dominated by rare trajectories that 400 samples do not see, and the
    Gamma-method error underestimates it (three seeds gave 0.88(3), 0.91(4), 0.91(5)).
    """
    theory = StaggeredFermions(make_theory("u1", (4, 4), beta=1.0), mass=0.3, n_staggered=2)
    sampler = hmc.sampler(theory, step_size=0.2, n_steps=4, integrator="leapfrog")
    state = sampler.init(theory.hot_start(rng))
    dH = []
    for i in range(1050):
        state, info = sampler.step(rng, state)
        if i >= 50:
            dH.append(info.delta_H)
    g, mean_dH = gamma_method(np.exp(-np.array(dH))), gamma_method(np.array(dH))
    assert mean_dH.value > 3 * mean_dH.error, (mean_dH.value, mean_dH.error)
    assert 0 < g.error < 0.05 and abs(g.value - 1) < 3 * g.error, (g.value, g.error)


@pytest.mark.parametrize("noise", ["z2", "z4"])
def test_condensate_estimator_is_unbiased(rng, noise):
    shape, m = (4, 4), 0.3
    free = prepare(np.zeros((2,) + shape), "u1")
    cc = chiral_condensate(free, m, rng, n_noise=50, noise=noise)
    exact, _ = free_field_sums(shape, m, 1)
    assert abs(cc.value - exact) < 4 * cc.error + 1e-12
    # on a random configuration against the dense trace
    U = make_theory("u1", shape, beta=1.0).hot_start(rng)
    links = prepare(U, "u1")
    dense = np.trace(np.linalg.inv(m * np.eye(16) + dense_D(U, "u1"))).real / 16
    cc = chiral_condensate(links, m, rng, n_noise=100, noise=noise)
    assert cc.error > 0 and abs(cc.value - dense) < 4 * cc.error


def test_observables_are_a_function_of_the_configuration(rng):
    theory = StaggeredFermions(make_theory("su2", (4, 2, 2, 2), beta=2.0), mass=0.3)
    U = theory.hot_start(rng)
    a, b = theory.observables(U), theory.observables(U.copy())
    assert a == b and {"plaquette", "polyakov_loop", "polyakov_loop_trace", "chiral_condensate"} <= set(a)
    with pytest.raises(ValueError, match="even extents"):
        StaggeredFermions(make_theory("u1", (3, 4), beta=1.0), mass=0.3)
    with pytest.raises(ValueError):
        StaggeredFermions(make_theory("u1", (4, 4), beta=1.0), mass=0.0)
