"""SU(N) Wilson action: kernels vs a plain NumPy reference, gauge invariance, force vs finite
differences, staples vs the action, closed-form fields, bad input."""

import numpy as np
import pytest
from numba import njit

from latticeml import groups
from latticeml.theories import su3_fast, sun
from latticeml.theories.sun import staple_into

# (N, lattice shape): D = 2, 3, 4; odd extents and extents 1 and 2 exercise the SU(3) ring of slabs
CASES = [
    (2, (4, 6)),
    (3, (4, 6)),
    (3, (3, 5)),
    (2, (4, 3, 4)),
    (3, (4, 2, 6)),
    (3, (2, 1, 3)),
    (2, (3, 4, 2, 4)),
    (3, (4, 3, 4, 2)),
    (3, (1, 2, 3, 2)),
    (4, (4, 4)),
]


SEED = 7  # the seed of the shared ``rng`` fixture (tests/conftest.py)


# ----------------------------------------------------------------------------- NumPy reference


def _dag(M):
    return np.conj(np.swapaxes(M, -1, -2))


def _fwd(A, mu, n=1):
    """A at x + n * mu_hat, for a field (*shape, N, N)."""
    return np.roll(A, -n, axis=mu)


def ref_plaquettes(U):
    D, N = U.shape[0], U.shape[-1]
    out = []
    for mu in range(D):
        for nu in range(mu + 1, D):
            P = U[mu] @ _fwd(U[nu], mu) @ _dag(_fwd(U[mu], nu)) @ _dag(U[nu])
            out.append(np.trace(P, axis1=-2, axis2=-1).real / N)
    return np.array(out)


def ref_staples(U):
    D = U.shape[0]
    A = np.zeros_like(U)
    for mu in range(D):
        for nu in range(D):
            if nu != mu:
                A[mu] += _fwd(U[nu], mu) @ _dag(_fwd(U[mu], nu)) @ _dag(U[nu])
                A[mu] += _dag(_fwd(_fwd(U[nu], mu), nu, -1)) @ _dag(_fwd(U[mu], nu, -1)) @ _fwd(U[nu], nu, -1)
    return A


def ref_force(U, beta):
    N = U.shape[-1]
    M = U @ ref_staples(U)
    A = 0.5 * (M - _dag(M))
    tr = np.trace(A, axis1=-2, axis2=-1)[..., None, None]
    return beta / (2 * N) * (A - tr * np.eye(N) / N)


def ref_action(U, beta):
    return beta * np.sum(1.0 - ref_plaquettes(U))


# ----------------------------------------------------------------------------- kernels vs reference


@pytest.fixture(params=["su3_fast", "per-site"])
def su3_path(request, monkeypatch):
    """Run a test with SU(3) on the structure-of-arrays path (su3_fast) at every size, then on the per-site one."""
    monkeypatch.setattr(su3_fast, "MIN_SITES", 0 if request.param == "su3_fast" else 1 << 62)
    return request.param


def test_su3_fast_path_is_taken_from_min_sites():
    assert su3_fast.applies(3, su3_fast.MIN_SITES) and not su3_fast.applies(3, su3_fast.MIN_SITES - 1)
    assert not su3_fast.applies(2, 1 << 20) and not su3_fast.applies(4, 1 << 20)


@pytest.mark.parametrize("N, shape", CASES)
def test_kernels_match_numpy_reference(N, shape, rng, su3_path):
    U = sun.hot_start(rng, shape, N)
    P = ref_plaquettes(U)
    np.testing.assert_allclose(sun.plaquette_field(U), P, atol=1e-13)
    np.testing.assert_allclose(sun.mean_plaquette(U), P.mean(), atol=1e-14)
    np.testing.assert_allclose(sun.action(U, beta=2.5), ref_action(U, 2.5), rtol=1e-13)
    np.testing.assert_allclose(sun.staples(U), ref_staples(U), atol=1e-13)
    np.testing.assert_allclose(sun.force(U, beta=2.5), ref_force(U, 2.5), atol=1e-13)


@pytest.mark.parametrize("N, shape", [(3, (4, 3, 4)), (2, (4, 4))])
def test_batched_equals_one_by_one(N, shape, rng, su3_path):
    U = sun.hot_start(rng, shape, N, batch=3)
    assert U.shape == (3, len(shape)) + shape + (N, N)
    np.testing.assert_allclose(sun.action(U, beta=1.5, batched=True), [sun.action(u, beta=1.5) for u in U], rtol=1e-13)
    np.testing.assert_allclose(sun.mean_plaquette(U, batched=True), [sun.mean_plaquette(u) for u in U], atol=1e-14)
    np.testing.assert_allclose(sun.plaquette_field(U, batched=True), [sun.plaquette_field(u) for u in U], atol=1e-14)
    np.testing.assert_allclose(sun.force(U, beta=1.5, batched=True), [sun.force(u, beta=1.5) for u in U], atol=1e-14)
    np.testing.assert_allclose(sun.staples(U, batched=True), [sun.staples(u) for u in U], atol=1e-14)


@pytest.mark.parametrize("shape", [(5, 2, 3), (4, 4, 2, 3)])
def test_su3_every_chunking_of_slabs(shape, rng):
    # the SU(3) kernels cut each configuration into chunks of time-slices, each with its own
    # ring of transposed slabs; every cut must give the same numbers as the reference
    U = sun.hot_start(rng, shape, 3, batch=2)
    Uc = np.ascontiguousarray(U.reshape((2, len(shape), -1, 3, 3)))
    P_ref = np.array([ref_plaquettes(u) for u in U]).reshape(2, -1, Uc.shape[2])
    F_ref = np.array([ref_force(u, 3.0) for u in U]).reshape(Uc.shape)
    for per_b in range(1, shape[0] + 1):
        field, sums = np.empty(P_ref.shape), np.empty(2)
        su3_fast.plaquette_sums(Uc, shape, field, True, sums, tasks_per_plane=per_b)
        np.testing.assert_allclose(field, P_ref, atol=1e-13)
        np.testing.assert_allclose(sums, P_ref.sum(axis=(1, 2)), rtol=1e-13)
        out = np.empty_like(Uc)
        su3_fast.staples_or_force(Uc, shape, 3.0 / 6.0, True, out, chunks_per_config=per_b)
        np.testing.assert_allclose(out, F_ref, atol=1e-13)


@pytest.mark.parametrize("shape", [(2, su3_fast.BLOCK + 5), (2, 3, su3_fast.BLOCK // 2 + 3)])
def test_su3_planes_longer_than_a_block(shape, rng, su3_path):
    # the SU(3) kernels cut a plane's positions into blocks of BLOCK; blocks end mid-row here
    U = sun.hot_start(rng, shape, 3)
    np.testing.assert_allclose(sun.plaquette_field(U), ref_plaquettes(U), atol=1e-13)
    np.testing.assert_allclose(sun.staples(U), ref_staples(U), atol=1e-13)


@njit(cache=True)
def _all_staples_one_by_one(U, fwd, bwd):
    D, V, N, _ = U.shape
    out = np.empty_like(U)
    work = np.empty((2, N, N), dtype=np.complex128)
    for mu in range(D):
        for s in range(V):
            staple_into(U, fwd, bwd, mu, s, out[mu, s], work)
    return out


@pytest.mark.parametrize("N, shape", [(2, (4, 4)), (3, (3, 4, 2)), (3, (2, 3, 2, 4))])
def test_staple_into_matches_staples(N, shape, rng):
    from latticeml.lattice import neighbour_table

    U = sun.hot_start(rng, shape, N)
    fwd, bwd = neighbour_table(shape)
    flat = U.reshape((len(shape), -1, N, N))
    np.testing.assert_allclose(
        _all_staples_one_by_one(flat, fwd, bwd).reshape(U.shape), sun.staples(U), atol=1e-13
    )


# ----------------------------------------------------------------------------- physics invariants


@pytest.mark.parametrize("N, shape", [(2, (4, 4)), (3, (4, 3)), (3, (3, 2, 4)), (2, (2, 3, 2, 2)), (3, (2, 2, 2, 4))])
def test_gauge_invariance(N, shape, rng):
    U = sun.hot_start(rng, shape, N)
    Omega = groups.random_gauge_transform(rng, shape, N)
    Ug = groups.gauge_transform(U, Omega)
    np.testing.assert_allclose(sun.plaquette_field(Ug), sun.plaquette_field(U), atol=1e-12)
    assert abs(sun.action(Ug, beta=3.0) - sun.action(U, beta=3.0)) < 1e-12 * abs(sun.action(U, beta=3.0))
    # staples and the force are covariant: X_mu(x) -> Omega(x) X_mu(x) Omega(x)^+ for U A and F
    M, Mg = U @ sun.staples(U), Ug @ sun.staples(Ug)
    Om = np.broadcast_to(Omega, U.shape)
    np.testing.assert_allclose(Mg, Om @ M @ _dag(Om), atol=1e-12)
    np.testing.assert_allclose(sun.force(Ug, beta=3.0), Om @ sun.force(U, beta=3.0) @ _dag(Om), atol=1e-12)


@pytest.mark.parametrize("N, shape", [(2, (3, 4)), (3, (4, 3)), (3, (2, 3, 2)), (2, (2, 2, 3, 2)), (3, (2, 2, 2, 3)), (4, (3, 3))])
def test_force_is_the_gradient_along_generators(N, shape, rng):
    # f_a = -2 tr(T_a F) must equal d/dt S(exp(t T_a) U_mu(x)) at t = 0 (central difference)
    beta, h = 1.7, 1e-5
    U = sun.hot_start(rng, shape, N)
    F = sun.force(U, beta=beta)
    T = groups.su_generators(N)
    D = len(shape)
    for _ in range(4):
        mu = int(rng.integers(D))
        x = tuple(int(rng.integers(L)) for L in shape)
        f = groups.algebra_components(F[(mu,) + x])
        for a in rng.choice(len(T), size=min(3, len(T)), replace=False):
            Up, Um = U.copy(), U.copy()
            Up[(mu,) + x] = groups.expm_su(h * T[a]) @ U[(mu,) + x]
            Um[(mu,) + x] = groups.expm_su(-h * T[a]) @ U[(mu,) + x]
            dS = (sun.action(Up, beta=beta) - sun.action(Um, beta=beta)) / (2 * h)
            assert abs(dS - f[a]) < 1e-7 * (1 + abs(f[a])), (mu, x, a, dS, f[a])
    # F is in su(N): anti-Hermitian and traceless
    np.testing.assert_allclose(F + _dag(F), 0, atol=1e-14)
    np.testing.assert_allclose(np.trace(F, axis1=-2, axis2=-1), 0, atol=1e-14)


@pytest.mark.parametrize("N, shape", [(2, (4, 3)), (3, (3, 4, 2)), (3, (2, 2, 3, 2))])
def test_staples_give_the_local_action_change(N, shape, rng):
    # S depends on U_mu(x) only through -(beta/N) Re tr(U_mu(x) A_mu(x)), and A_mu(x) does not depend on U_mu(x)
    beta = 2.3
    U = sun.hot_start(rng, shape, N)
    A = sun.staples(U)
    S0 = sun.action(U, beta=beta)
    for _ in range(5):
        link = (int(rng.integers(len(shape))),) + tuple(int(rng.integers(L)) for L in shape)
        new = groups.haar_su(rng, N)
        U2 = U.copy()
        U2[link] = new
        dS = -(beta / N) * np.trace((new - U[link]) @ A[link]).real
        np.testing.assert_allclose(sun.action(U2, beta=beta) - S0, dS, atol=1e-11)
        np.testing.assert_allclose(sun.staples(U2)[link], A[link], atol=1e-13)


# ----------------------------------------------------------------------------- closed forms


def _embedded_flux(shape, N, n):
    """Abelian field diag(e^{i t}, e^{-i t}, 1, ...) with t_1(x) = 2 pi n x0 / L0, all other t = 0.

    Plane (0, 1) carries the plaquette diag(e^{i phi}, e^{-i phi}, 1, ...), phi = 2 pi n / L0, at
    every site (including across the boundary, since L0 phi = 2 pi n); all other planes carry 1.
    """
    D = len(shape)
    t = np.zeros((D,) + shape)
    t[1] = (2 * np.pi * n / shape[0]) * np.arange(shape[0]).reshape((-1,) + (1,) * (D - 1))
    U = np.zeros((D,) + shape + (N, N), dtype=complex)
    U[..., 0, 0] = np.exp(1j * t)
    U[..., 1, 1] = np.exp(-1j * t)
    for k in range(2, N):
        U[..., k, k] = 1.0
    return U


@pytest.mark.parametrize("N, shape", [(2, (6, 4)), (3, (5, 3)), (3, (6, 2, 4)), (3, (4, 2, 2, 3)), (4, (4, 4))])
def test_constant_fields_closed_form(N, shape, rng):
    D, V = len(shape), int(np.prod(shape))
    n_planes = D * (D - 1) // 2
    beta = 1.3
    # cold start: every plaquette is 1, the action vanishes, and so does the force
    U = sun.cold_start(shape, N)
    assert sun.mean_plaquette(U) == pytest.approx(1.0, abs=1e-15)
    assert sun.action(U, beta=beta) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(sun.staples(U), 2 * (D - 1) * np.broadcast_to(np.eye(N), U.shape), atol=1e-14)
    np.testing.assert_allclose(sun.force(U, beta=beta), 0, atol=1e-15)
    # constant flux n through plane (0, 1)
    n = 1
    phi = 2 * np.pi * n / shape[0]
    U = _embedded_flux(shape, N, n)
    p01 = (2 * np.cos(phi) + N - 2) / N
    field = sun.plaquette_field(U)
    np.testing.assert_allclose(field[0], p01, atol=1e-14)
    np.testing.assert_allclose(field[1:], 1.0, atol=1e-14)
    np.testing.assert_allclose(sun.action(U, beta=beta), beta * V * (1 - p01), rtol=1e-12)
    # a constant gauge rotation of every link (a global transformation) changes nothing
    g = groups.haar_su(rng, N)
    np.testing.assert_allclose(sun.plaquette_field(g @ U @ _dag(g)), field, atol=1e-13)
    assert sun.mean_plaquette(U) == pytest.approx((n_planes - 1 + p01) / n_planes, abs=1e-14)


def test_starts(rng):
    U = sun.hot_start(np.random.default_rng(3), (4, 2, 3), 3)
    assert U.shape == (3, 4, 2, 3, 3, 3) and U.dtype == np.complex128
    np.testing.assert_array_equal(U, sun.hot_start(np.random.default_rng(3), (4, 2, 3), 3))
    unit, det = groups.unitarity_violation(U)
    assert unit < 1e-13 and det < 1e-13
    C = sun.cold_start((2, 3), 2, batch=4)
    assert C.shape == (4, 2, 2, 3, 2, 2)
    np.testing.assert_array_equal(C, np.broadcast_to(np.eye(2), C.shape))


# ----------------------------------------------------------------------------- bad input


def test_bad_input_raises_clear_errors(rng):
    U = sun.hot_start(rng, (4, 4), 3)
    with pytest.raises(TypeError, match="complex128"):
        sun.action(U.astype(str), beta=1.0)
    with pytest.raises(ValueError, match="direction axis has 3 entries"):
        sun.action(np.concatenate([U, U[:1]]), beta=1.0)
    with pytest.raises(ValueError, match="batched=True"):
        sun.action(U[None], beta=1.0)
    with pytest.raises(ValueError, match="N x N"):
        sun.staples(U[..., :2])
    with pytest.raises(ValueError, match="D >= 2"):
        sun.mean_plaquette(U[:1, :, 0])
    with pytest.raises(ValueError, match="not SU\\(N\\).*reunitarize"):
        sun.force(1.001 * U, beta=1.0)
    with pytest.raises(ValueError, match="finite"):
        sun.action(U, beta=np.nan)
    with pytest.raises(ValueError, match="D >= 2"):
        sun.cold_start((8,), 3)
    with pytest.raises(TypeError, match="Generator"):
        sun.hot_start(0, (4, 4), 3)
    # check=False skips the unitarity test (samplers that keep links in SU(N) use it)
    assert np.isfinite(sun.action(1.001 * U, beta=1.0, check=False))
