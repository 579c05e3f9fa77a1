"""Smearing: staples vs NumPy path walkers, group structure, gauge covariance, the stout backward and the
smeared force vs finite differences, the improved action, the Wilson flow (Euler = stout, RK3 order 3),
the energy density on exact abelian fields, t0 interpolation."""

import numpy as np
import pytest
import scipy.linalg

from latticeml import autodiff as ad
from latticeml import _threads, groups, smearing as sm
from latticeml.smearing import stout_smearing
from latticeml.observables import loops
from latticeml.theories import sun, u1


SEED = 7077  # the seed of the shared ``rng`` fixture (tests/conftest.py)


def _assert_su(U, tol=1e-12):
    unit, det = groups.unitarity_violation(U)
    assert unit < tol and det < tol, (unit, det)


def _dag(M):
    return np.conj(np.swapaxes(M, -1, -2))


def _ta(M):
    return groups.traceless_antihermitian(M)


# ----------------------------------------------------------------------------- NumPy references


def _roll(U, mu, n):
    """U at x + n mu (U has the direction axis first, then the lattice axes)."""
    return np.roll(U, -n, axis=1 + mu)


def _np_plaquette_staples(U):
    """C_mu(x) = sum_nu U_nu(x) U_mu(x+nu) U_nu(x+mu)^+ + U_nu(x-nu)^+ U_mu(x-nu) U_nu(x-nu+mu)."""
    D = U.shape[0]
    C = np.zeros_like(U)
    for mu in range(D):
        for nu in range(D):
            if nu == mu:
                continue
            C[mu] += U[nu] @ _roll(U, nu, 1)[mu] @ _dag(_roll(U, mu, 1)[nu])
            Um = _roll(U, nu, -1)  # links at x - nu
            C[mu] += _dag(Um[nu]) @ Um[mu] @ _roll(Um, mu, 1)[nu]
    return C


def _np_walk(U, start_shift, path):
    """Product of links along ``path`` (signed steps +-(d+1)) from x, for every x at once."""
    D = U.shape[0]
    pos = [0] * D  # offset of the current position from x
    out = None
    for st in path:
        d = abs(st) - 1
        if st > 0:
            link = U[d]
            for e in range(D):
                link = np.roll(link, -pos[e], axis=e)
            pos[d] += 1
        else:
            pos[d] -= 1
            link = U[d]
            for e in range(D):
                link = np.roll(link, -pos[e], axis=e)
            link = _dag(link)
        out = link if out is None else out @ link
    return out


def _np_rect_staples(U):
    D = U.shape[0]
    C = np.zeros_like(U)
    for mu in range(D):
        m = mu + 1
        for nu in range(D):
            if nu == mu:
                continue
            for s in (nu + 1, -(nu + 1)):
                for path in ([s, m, m, -s, -m], [-m, s, m, m, -s], [s, s, m, -s, -s]):
                    C[mu] += _np_walk(U, None, path)
    return C


def _np_polyakov_staples(U, mu):
    """[U_mu(x+mu) ... U_mu(x+(L-1)mu)]^+: the rest of the Polyakov line."""
    L = U.shape[1 + mu]
    W = None
    for k in range(1, L):
        link = _roll(U, mu, k)[mu]
        W = link if W is None else W @ link
    return _dag(W)


def _np_stout(U, rho):
    """Plain NumPy stout step with the plaquette term, scipy's expm per link."""
    C = rho * _np_plaquette_staples(U)
    X = _ta(C @ _dag(U))
    return scipy.linalg.expm(X) @ U


# ----------------------------------------------------------------------------- paths and parallel transport


def _np_transport(W, U, mu, k):
    """W'(x) = P W(x + k mu) P^+ with np.roll: P the straight line of |k| links from x (k < 0: backwards)."""
    D = U.shape[0]
    P = np.broadcast_to(np.eye(U.shape[-1], dtype=complex), U.shape[1:]).copy()
    for j in range(abs(k)):
        if k > 0:
            P = P @ _roll(U, mu, j)[mu]
        else:
            P = P @ _dag(_roll(U, mu, -j - 1)[mu])
    Wk = np.roll(W, -k, axis=1 + mu)
    assert D == W.ndim - 3
    return P[None] @ Wk @ _dag(P)[None]


@pytest.mark.parametrize("N", [1, 2, 3])
def test_path_product_vs_numpy_and_covariance(N, rng):
    shape = (3, 4, 2)
    U = groups.haar_su(rng, N, (3,) + shape) if N > 1 else np.exp(1j * rng.uniform(-np.pi, np.pi, (3,) + shape))[..., None, None]
    path = [2, 1, 1, -3, -2, 3, -1]  # x -> x + 1 + 2*0 - 2 - 1 + 2 - 0 = x + 0
    links = U if N > 1 else np.angle(U[..., 0, 0])
    P = sm.path_product(links, path)
    ref = _np_walk(U, None, path)
    np.testing.assert_allclose(P if N > 1 else P[..., None, None], ref, atol=1e-13)
    identity = np.ones(shape) if N == 1 else np.broadcast_to(np.eye(N), ref.shape)
    np.testing.assert_allclose(sm.path_product(links, []), identity, atol=0)
    if N > 1:
        # P(x) -> Omega(x) P(x) Omega(x + 0)^+ (the path ends at x + e_0)
        Omega = groups.random_gauge_transform(rng, shape, N)
        P_g = sm.path_product(groups.gauge_transform(U, Omega), path)
        np.testing.assert_allclose(P_g, Omega @ P @ _dag(np.roll(Omega, -1, axis=0)), atol=1e-12)
        batch = np.stack([U, groups.haar_su(rng, N, U.shape[:-2])])
        np.testing.assert_allclose(sm.path_product(batch, path, batched=True)[0], P, atol=0)
    with pytest.raises(ValueError, match="signed steps"):
        sm.path_product(links, [0, 1])
    with pytest.raises(ValueError, match="signed steps"):
        sm.path_product(links, [4])


@pytest.mark.parametrize("N", [2, 3])
@pytest.mark.parametrize("mu, k", [(0, 1), (1, 2), (2, -1), (1, -3), (0, 0)])
def test_parallel_transport_vs_numpy_and_covariance(N, mu, k, rng):
    shape = (3, 4, 5)
    U = groups.haar_su(rng, N, (3,) + shape)
    W = rng.normal(size=(2,) + shape + (N, N)) + 1j * rng.normal(size=(2,) + shape + (N, N))
    T = sm.parallel_transport(W, U, mu, k)
    np.testing.assert_allclose(T, _np_transport(W, U, mu, k), atol=1e-12)
    # W(x) -> Omega(x) W(x) Omega(x)^+ and the transported field transforms the same way
    Omega = groups.random_gauge_transform(rng, shape, N)
    T_g = sm.parallel_transport(Omega[None] @ W @ _dag(Omega)[None], groups.gauge_transform(U, Omega), mu, k)
    np.testing.assert_allclose(T_g, Omega[None] @ T @ _dag(Omega)[None], atol=1e-12)
    # transporting there and back is the identity; the transport back is the adjoint map
    np.testing.assert_allclose(sm.parallel_transport(T, U, mu, -k), W, atol=1e-12)
    G = rng.normal(size=W.shape) + 1j * rng.normal(size=W.shape)
    assert abs(np.vdot(G, T).real - np.vdot(sm.parallel_transport(G, U, mu, -k), W).real) < 1e-10
    Ub = np.stack([U, groups.haar_su(rng, N, U.shape[:-2])])
    Wb = np.stack([W, 2 * W])
    np.testing.assert_allclose(sm.parallel_transport(Wb, Ub, mu, k, batched=True)[0], T, atol=0)


def test_parallel_transport_bad_input(rng):
    U = groups.haar_su(rng, 2, (2, 3, 3))
    with pytest.raises(ValueError, match="W must have shape"):
        sm.parallel_transport(np.zeros((3, 3, 2, 2), complex), U, 0)
    with pytest.raises(ValueError, match="direction"):
        sm.parallel_transport(np.zeros((1, 3, 3, 2, 2), complex), U, 2)


def test_term_paths_close_loops_and_weights():
    shape = (4, 3, 2)
    for mu in range(3):
        for term, count in (("plaquette", 4), ("rectangle", 12)):
            paths = sm.term_paths(term, mu, shape)
            assert len(paths) == count
            for p in paths:  # every staple runs from x to x + mu
                disp = np.zeros(3, int)
                for st in p:
                    disp[abs(st) - 1] += np.sign(st)
                assert list(disp) == [int(d == mu) for d in range(3)]
    assert sm.layer_weights(0.1, ("plaquette",)).shape == (1, 1)
    assert sm.layer_weights([[0.1, 0.2]] * 3, ("plaquette", "rectangle")).shape == (3, 2)
    assert sm.check_terms("rectangle") == ("rectangle",)
    with pytest.raises(ValueError, match="distinct"):
        sm.check_terms(("plaquette", "plaquette"))


# ----------------------------------------------------------------------------- staples


@pytest.mark.parametrize("N", [2, 3])
def test_plaquette_staples_are_theories_staples_adjoint(N, rng):
    U = sun.hot_start(rng, (3, 2, 3, 2), N)
    C = sm.staple_sums(U)
    np.testing.assert_allclose(C, _dag(sun.staples(U)), atol=1e-12)
    np.testing.assert_allclose(C, _np_plaquette_staples(U), atol=1e-12)


def test_u1_staples_match_theory(rng):
    theta = u1.hot_start(rng, (4, 3, 3))
    np.testing.assert_allclose(sm.staple_sums(theta), np.conj(u1.staples(theta)), atol=1e-12)


@pytest.mark.parametrize("N", [2, 3])
def test_rectangle_and_polyakov_staples_vs_numpy(N, rng):
    shape = (3, 4, 2, 3)
    U = sun.hot_start(rng, shape, N)
    np.testing.assert_allclose(sm.staple_sums(U, terms="rectangle"), _np_rect_staples(U), atol=1e-11)
    Ct = sm.staple_sums(U, terms="polyakov_time")
    Cs = sm.staple_sums(U, terms="polyakov_space")
    np.testing.assert_allclose(Ct[0], _np_polyakov_staples(U, 0), atol=1e-12)
    np.testing.assert_allclose(Ct[1:], 0)
    for mu in range(1, 4):
        np.testing.assert_allclose(Cs[mu], _np_polyakov_staples(U, mu), atol=1e-12)
    np.testing.assert_allclose(Cs[0], 0)
    # U C^+ of the Polyakov term is the untraced Polyakov loop: its trace is loops.polyakov_loop
    P = np.trace(U[0] @ _dag(Ct[0]), axis1=-2, axis2=-1) / N
    np.testing.assert_allclose(P, np.broadcast_to(loops.polyakov_loop(U), P.shape), atol=1e-12)  # any x0
    # weights are linear
    C = sm.staple_sums(U, terms=("plaquette", "rectangle"), weights=[0.3, -0.2])
    np.testing.assert_allclose(C, 0.3 * _np_plaquette_staples(U) - 0.2 * _np_rect_staples(U), atol=1e-11)


# ----------------------------------------------------------------------------- group structure and covariance


SMEARINGS = {
    "stout": lambda U: sm.stout(U, rho=0.12, n_steps=2),
    "stout_all_terms": lambda U: sm.stout(
        U, rho=[0.1, -0.03, 0.05, 0.02], terms=("plaquette", "rectangle", "polyakov_time", "polyakov_space")
    ),
    "ape": lambda U: sm.ape(U, alpha=0.5, n_steps=2),
    "flow_rk3": lambda U: sm.flow_step(U, step_size=0.05),
    "flow_symanzik": lambda U: sm.flow_step(U, step_size=0.05, c1=sm.LUSCHER_WEISZ_C1),
}


@pytest.mark.parametrize("N", [2, 3])
@pytest.mark.parametrize("kind", list(SMEARINGS))
def test_smeared_links_special_unitary_and_covariant(N, kind, rng):
    shape = (3, 3, 2, 2) if N == 3 else (3, 3, 3, 3)
    U = sun.hot_start(rng, shape, N)
    smear = SMEARINGS[kind]
    V = smear(U)
    _assert_su(V)
    assert np.abs(V - U).max() > 1e-3  # it did something
    Omega = groups.random_gauge_transform(rng, shape, N)
    np.testing.assert_allclose(smear(groups.gauge_transform(U, Omega)), groups.gauge_transform(V, Omega), atol=1e-12)


@pytest.mark.parametrize("kind", ["stout_all_terms", "ape", "flow_rk3", "flow_symanzik"])
def test_u1_smearing_covariant(kind, rng):
    theta = u1.hot_start(rng, (4, 3, 3))
    smear = SMEARINGS[kind]
    out = smear(theta)
    assert out.dtype == np.float64 and out.shape == theta.shape
    assert np.all(out > -np.pi) and np.all(out <= np.pi)
    alpha = groups.random_gauge_transform_u1(rng, (4, 3, 3))
    lhs = smear(groups.gauge_transform_u1(theta, alpha))
    rhs = groups.gauge_transform_u1(out, alpha)
    np.testing.assert_allclose(np.exp(1j * lhs), np.exp(1j * rhs), atol=1e-12)


def test_smearing_increases_plaquette_and_fixes_identity(rng):
    U = sun.hot_start(rng, (4, 4, 4, 4), 3)
    p0 = sun.mean_plaquette(U)
    for smear in (SMEARINGS["stout"], SMEARINGS["ape"]):
        assert sun.mean_plaquette(smear(U)) > p0 + 0.05
    cold = sun.cold_start((2, 2, 2, 2), 3)
    for smear in SMEARINGS.values():
        np.testing.assert_allclose(smear(cold), cold, atol=1e-14)


# ----------------------------------------------------------------------------- forward: Numba vs NumPy


@pytest.mark.parametrize("N", [2, 3, 4])
def test_stout_matches_numpy_reference(N, rng):
    shape = (2, 3, 2, 2) if N < 4 else (3, 2, 2)
    U = sun.hot_start(rng, shape, N)
    np.testing.assert_allclose(sm.stout(U, rho=0.17), _np_stout(U, 0.17), atol=1e-13)


@pytest.mark.parametrize("N", [2, 3])
def test_stout_generator_is_the_projected_staple_sum(N, rng):
    """stout_generator: X = TA(sum_k rho_k C^(k) U^+) from the NumPy staples, in su(N), linear in rho,
    covariant (X -> Omega X Omega^+), exp(X) U = stout(U), batched like one field at a time; U(1):
    the angle shift of one stout step."""
    U = sun.hot_start(rng, (2, 3, 2, 2), N)
    X = sm.stout_generator(U, rho=0.17)
    np.testing.assert_allclose(X, _ta(0.17 * _np_plaquette_staples(U) @ _dag(U)), atol=1e-13)
    np.testing.assert_allclose(X, -_dag(X), atol=1e-14)
    np.testing.assert_allclose(np.trace(X, axis1=-2, axis2=-1), 0.0, atol=1e-14)
    np.testing.assert_allclose(scipy.linalg.expm(X[1, 0, 2, 1, 0]) @ U[1, 0, 2, 1, 0], sm.stout(U, rho=0.17)[1, 0, 2, 1, 0], atol=1e-13)
    two = sm.stout_generator(U, rho=[0.1, -0.03], terms=("plaquette", "rectangle"))
    np.testing.assert_allclose(two, _ta((0.1 * _np_plaquette_staples(U) - 0.03 * _np_rect_staples(U)) @ _dag(U)), atol=1e-12)
    Omega = groups.random_gauge_transform(rng, U.shape[1:-2], N)
    moved = sm.stout_generator(groups.gauge_transform(U, Omega), rho=0.17)
    np.testing.assert_allclose(moved, Omega[None] @ X @ _dag(Omega)[None], atol=1e-12)
    batch = np.stack([U, sun.hot_start(rng, (2, 3, 2, 2), N)])
    Xb = sm.stout_generator(batch, rho=0.17, batched=True)
    np.testing.assert_allclose(Xb[0], X, atol=1e-15)
    np.testing.assert_allclose(Xb[1], sm.stout_generator(batch[1], rho=0.17), atol=1e-15)
    theta = u1.hot_start(rng, (3, 4))
    shift = sm.stout_generator(theta, rho=0.2)
    np.testing.assert_allclose(np.exp(1j * (theta + shift)), np.exp(1j * sm.stout(theta, rho=0.2)), atol=1e-13)


def test_ape_matches_numpy_reference(rng):
    U = sun.hot_start(rng, (2, 3, 2, 2), 2)
    M = 0.4 * U + (0.6 / 6) * _np_plaquette_staples(U)
    np.testing.assert_allclose(sm.ape(U, alpha=0.6), groups.project_su(M), atol=1e-13)
    # SU(2): the projection of a sum of SU(2) matrices is the matrix divided by sqrt(det)
    np.testing.assert_allclose(sm.ape(U, alpha=0.6), M / np.sqrt(np.linalg.det(M))[..., None, None], atol=1e-13)
    theta = u1.hot_start(rng, (3, 4))
    Z = 0.4 * np.exp(1j * theta) + (0.6 / 2) * np.conj(u1.staples(theta))
    np.testing.assert_allclose(np.exp(1j * sm.ape(theta, alpha=0.6)), Z / np.abs(Z), atol=1e-13)


@pytest.mark.parametrize("c1", [1e-12, 1e-8, 1e-4, 0.3, 0.999, 1.001, 4.0, 30.0])
def test_su3_exponential_coefficients(c1, rng):
    """exp(iQ) = f0 + f1 Q + f2 Q^2 to rounding on both sides of the series / closed-form switch,
    and b1j = df_j/dc1, b2j = df_j/dc0 against finite differences."""
    for sign in (1, -1):
        c0 = sign * 0.61 * 2 * (c1 / 3) ** 1.5
        # a Hermitian traceless Q with these invariants: eigenvalues solve l^3 - c1 l - c0 = 0
        lam = np.sort(np.roots([1.0, 0.0, -c1, -c0]).real)
        Wq = groups.haar_su(rng, 3)
        Q = Wq @ np.diag(lam) @ _dag(Wq)
        f, b1, b2 = stout_smearing._su3_coefficients(c0, c1)
        E = f[0] * np.eye(3) + f[1] * Q + f[2] * Q @ Q
        np.testing.assert_allclose(E, scipy.linalg.expm(1j * Q), atol=3e-15)
        if c1 > 1e-5:
            h = 1e-6 * c1
            fp, _, _ = stout_smearing._su3_coefficients(c0, c1 + h)
            fm, _, _ = stout_smearing._su3_coefficients(c0, c1 - h)
            np.testing.assert_allclose(np.subtract(fp, fm) / (2 * h), b1, rtol=1e-6, atol=1e-9)
            h0 = 1e-6 * max(abs(c0), 1e-3)
            fp, _, _ = stout_smearing._su3_coefficients(c0 + h0, c1)
            fm, _, _ = stout_smearing._su3_coefficients(c0 - h0, c1)
            np.testing.assert_allclose(np.subtract(fp, fm) / (2 * h0), b2, rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------- backward vs finite differences


def _directional_fd(f, U, P, h=1e-4):
    """d/dt f(exp(t P) U) at 0 by the 4th-order central difference (P algebra valued, same shape as U)."""

    def at(t):
        return f(groups.expm_su(t * P) @ U)

    return (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h)


def _generator_fd(f, U, mu_site, T, h=1e-4):
    """d/dt f(U with one link -> exp(t T) U_link)."""

    def at(t):
        V = U.copy()
        V[mu_site] = scipy.linalg.expm(t * T) @ V[mu_site]
        return f(V)

    return (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h)


CASES = [
    (2, (3, 2, 2, 2), ("plaquette", "rectangle", "polyakov_time", "polyakov_space"), [0.1, -0.05, 0.07, 0.03]),
    (3, (2, 2, 2, 2), ("plaquette",), [0.13]),
    (3, (3, 2, 2, 2), ("plaquette", "rectangle", "polyakov_space"), [0.1, 0.04, -0.06]),
    (4, (2, 3, 2), ("plaquette", "rectangle"), [0.1, 0.05]),
]


@pytest.mark.parametrize("N, shape, terms, rho", CASES)
def test_stout_backward_vs_finite_differences(N, shape, terms, rho, rng):
    """Re sum conj(V) U'(U, rho): gradient along su(N) directions of the links and along rho."""
    U = sun.hot_start(rng, shape, N)
    V = rng.standard_normal(U.shape) + 1j * rng.standard_normal(U.shape)

    def loss(links, r=rho):
        return float(np.vdot(V, sm.stout(links, rho=r, terms=terms)).real)

    Ut = ad.Tensor(U, requires_grad=True)
    rt = ad.Tensor(np.array(rho), requires_grad=True)
    out = sm.stout_op(Ut, rt, terms=terms)
    out.backward(V)
    G, grho = Ut.grad, rt.grad
    # a random direction in every link at once: d/dt = sum Re tr(G^+ P U)
    P = groups.random_algebra(rng, N, U.shape[:-2])
    analytic = np.vdot(G, P @ U).real
    numeric = _directional_fd(loss, U, P)
    assert abs(analytic - numeric) < 1e-7 * abs(numeric), (analytic, numeric)
    # single links along single generators (a few of them), relative to the force's scale
    T = groups.su_generators(N)
    scale = np.abs(G).max()
    for _ in range(6):
        idx = (rng.integers(len(shape)),) + tuple(rng.integers(L) for L in shape)
        a = rng.integers(len(T))
        analytic = np.vdot(G[idx], T[a] @ U[idx]).real
        numeric = _generator_fd(loss, U, idx, T[a])
        assert abs(analytic - numeric) < 1e-7 * scale, (analytic, numeric, scale)
    # the weights
    for k in range(len(terms)):
        h = 1e-5
        e = np.zeros(len(terms))
        e[k] = h
        r = np.array(rho)
        numeric = (8 * (loss(U, r + e) - loss(U, r - e)) - (loss(U, r + 2 * e) - loss(U, r - 2 * e))) / (12 * h)
        assert abs(grho[k] - numeric) < 1e-7 * abs(numeric), (k, grho[k], numeric)


def test_stout_op_gradcheck_elementwise(rng):
    """Every complex entry of U (the op is smooth off the group too) and rho, via autodiff.check_grads."""
    U = sun.hot_start(rng, (2, 2, 2), 2)
    rho = np.array([0.2, -0.1])
    ad.check_grads(lambda u, r: sm.stout_op(u, r, terms=("plaquette", "rectangle")), U, rho, rng=rng, rtol=1e-6, atol=1e-8)
    theta = u1.hot_start(rng, (3, 3))
    ad.check_grads(lambda t, r: sm.stout_op(t, r, terms=("plaquette", "rectangle")), theta, rho, rng=rng, rtol=1e-6, atol=1e-8)


def test_u1_stout_backward_vs_finite_differences(rng):
    theta = u1.hot_start(rng, (3, 4, 2))
    V = rng.standard_normal(theta.shape)
    rho = np.array([0.3, 0.1])
    terms = ("plaquette", "polyakov_time")

    def loss(t, r=rho):
        return float(np.sum(V * np.sin(sm.stout(t, rho=r, terms=terms))))

    tt = ad.Tensor(theta, requires_grad=True)
    rt = ad.Tensor(rho, requires_grad=True)
    ad.sum(ad.sin(sm.stout_op(tt, rt, terms=terms)) * V).backward()
    P = rng.standard_normal(theta.shape)
    h = 1e-4
    num = (8 * (loss(theta + h * P) - loss(theta - h * P)) - (loss(theta + 2 * h * P) - loss(theta - 2 * h * P))) / (12 * h)
    assert abs(np.sum(tt.grad * P) - num) < 1e-8 * abs(num)


@pytest.mark.parametrize("N", [2, 3])
def test_smeared_force_vs_finite_differences(N, rng):
    """The smeared-link HMC force: components -2 tr(T_a F) = d/dt S[(exp(t T_a) U)^(n)]."""
    shape = (2, 2, 2, 3)
    U = sun.hot_start(rng, shape, N)
    rho = np.array([[0.12, 0.02], [0.08, -0.03]])
    kw = dict(rho=rho, terms=("plaquette", "rectangle"), beta=2.3, c1=-0.1)
    F = sm.smeared_force(U, **kw)
    _assert_algebra(F)

    def S(links):
        return sm.smeared_action(links, **kw)

    P = groups.random_algebra(rng, N, U.shape[:-2])
    analytic = np.sum(-2 * np.trace(F @ P, axis1=-2, axis2=-1).real)  # <F, P>
    numeric = _directional_fd(S, U, P)
    assert abs(analytic - numeric) < 1e-7 * abs(numeric), (analytic, numeric)
    T = groups.su_generators(N)
    scale = np.abs(F).max()
    for _ in range(6):
        idx = (rng.integers(4),) + tuple(rng.integers(L) for L in shape)
        a = rng.integers(len(T))
        analytic = -2 * np.trace(T[a] @ F[idx]).real
        numeric = _generator_fd(S, U, idx, T[a])
        assert abs(analytic - numeric) < 1e-7 * scale, (analytic, numeric)
    # no smearing: the plain action's force
    np.testing.assert_allclose(
        sm.smeared_force(U, rho=np.zeros((1, 1)), beta=2.3), sun.force(U, beta=2.3), atol=1e-13
    )


def test_smeared_force_matches_autodiff_chain(rng):
    """smeared_force (hand-chained layers) == autodiff through stout_op and gauge_action_op."""
    U = sun.hot_start(rng, (2, 2, 2, 2), 3)
    rho = np.array([[0.1], [0.05], [0.07]])
    Ut = ad.Tensor(U, requires_grad=True)
    V = Ut
    for r in rho:
        V = sm.stout_op(V, r)
    sm.gauge_action_op(V, beta=5.5).backward()
    np.testing.assert_allclose(sm.force_from_gradient(Ut.grad, U), sm.smeared_force(U, rho=rho, beta=5.5), atol=1e-12)


def _assert_algebra(F, tol=1e-13):
    np.testing.assert_allclose(F + _dag(F), 0, atol=tol)
    np.testing.assert_allclose(np.trace(F, axis1=-2, axis2=-1), 0, atol=tol)


# ----------------------------------------------------------------------------- improved action


@pytest.mark.parametrize("N", [2, 3])
def test_gauge_action_is_wilson_plus_rectangles(N, rng):
    shape = (3, 4, 3, 3)
    U = sun.hot_start(rng, shape, N)
    beta = 2.1
    np.testing.assert_allclose(sm.gauge_action(U, beta=beta), sun.action(U, beta=beta), rtol=1e-13)
    np.testing.assert_allclose(sm.gauge_force(U, beta=beta), sun.force(U, beta=beta), atol=1e-13)
    c1 = sm.IWASAKI_C1
    V, D = np.prod(shape), 4
    n_p, n_r = V * D * (D - 1) // 2, V * D * (D - 1)
    P = sun.mean_plaquette(U)
    R = loops.wilson_loop(U, 1, 2)  # mean over both orientations of every plane and corner
    expected = beta * ((1 - 8 * c1) * n_p * (1 - P) + c1 * n_r * (1 - R))
    np.testing.assert_allclose(sm.gauge_action(U, beta=beta, c1=c1), expected, rtol=1e-12)
    Omega = groups.random_gauge_transform(rng, shape, N)
    np.testing.assert_allclose(sm.gauge_action(groups.gauge_transform(U, Omega), beta=beta, c1=c1), expected, rtol=1e-12)


@pytest.mark.parametrize("N", [2, 3])
def test_improved_force_vs_finite_differences(N, rng):
    shape = (2, 3, 2, 3)
    U = sun.hot_start(rng, shape, N)
    kw = dict(beta=1.7, c1=sm.LUSCHER_WEISZ_C1)
    F = sm.gauge_force(U, **kw)
    _assert_algebra(F)
    P = groups.random_algebra(rng, N, U.shape[:-2])
    analytic = np.sum(-2 * np.trace(F @ P, axis1=-2, axis2=-1).real)
    numeric = _directional_fd(lambda x: sm.gauge_action(x, **kw), U, P)
    assert abs(analytic - numeric) < 1e-8 * abs(numeric)
    T = groups.su_generators(N)
    for _ in range(5):
        idx = (rng.integers(4),) + tuple(rng.integers(L) for L in shape)
        a = rng.integers(len(T))
        numeric = _generator_fd(lambda x: sm.gauge_action(x, **kw), U, idx, T[a])
        assert abs(-2 * np.trace(T[a] @ F[idx]).real - numeric) < 1e-8 * np.abs(F).max()


def test_u1_improved_action_and_force(rng):
    theta = u1.hot_start(rng, (4, 3))
    np.testing.assert_allclose(sm.gauge_action(theta, beta=1.3), u1.action(theta, beta=1.3), rtol=1e-13)
    np.testing.assert_allclose(sm.gauge_force(theta, beta=1.3), u1.force(theta, beta=1.3), atol=1e-13)
    kw = dict(beta=1.3, c1=-0.2)
    R = loops.wilson_loop(theta, 1, 2)
    P = loops.plaquette(theta)
    np.testing.assert_allclose(sm.gauge_action(theta, **kw), 1.3 * (2.6 * 12 * (1 - P) - 0.2 * 24 * (1 - R)), rtol=1e-12)
    dirn = rng.standard_normal(theta.shape)
    h = 1e-4
    S = lambda t: sm.gauge_action(t, **kw)  # noqa: E731
    num = (8 * (S(theta + h * dirn) - S(theta - h * dirn)) - (S(theta + 2 * h * dirn) - S(theta - 2 * h * dirn))) / (12 * h)
    assert abs(np.sum(sm.gauge_force(theta, **kw) * dirn) - num) < 1e-9 * abs(num)


def test_gauge_action_op_batched_gradient(rng):
    U = sun.hot_start(rng, (2, 2, 2, 2), 2, batch=3)
    Ut = ad.Tensor(U, requires_grad=True)
    S = sm.gauge_action_op(Ut, beta=2.0, c1=-0.1, batched=True)
    np.testing.assert_allclose(S.value, [sm.gauge_action(u, beta=2.0, c1=-0.1) for u in U], rtol=1e-13)
    w = np.array([1.0, -2.0, 0.5])
    ad.sum(S * w).backward()
    for b in range(3):
        F = sm.force_from_gradient(Ut.grad[b], U[b])
        np.testing.assert_allclose(F, w[b] * sm.gauge_force(U[b], beta=2.0, c1=-0.1), atol=1e-12)


# ----------------------------------------------------------------------------- Wilson flow


@pytest.mark.parametrize("N", [2, 3])
def test_euler_flow_step_is_a_stout_step(N, rng):
    """One Euler step of size eps = one stout step with rho = eps; and Z = -(2N/beta) x the Wilson force."""
    U = sun.hot_start(rng, (2, 3, 2, 2), N)
    eps = 0.037
    euler = sm.flow_step(U, step_size=eps, integrator="euler")
    np.testing.assert_allclose(euler, sm.stout(U, rho=eps), atol=1e-15)
    Z_ref = -(2 * N / 4.2) * sun.force(U, beta=4.2)  # independent: the theory's force kernel
    np.testing.assert_allclose(sm.flow_generator(U), Z_ref, atol=1e-13)
    np.testing.assert_allclose(euler, scipy.linalg.expm(eps * Z_ref) @ U, atol=1e-13)
    Z_sym = -(2 * N / 4.2) * sm.gauge_force(U, beta=4.2, c1=sm.LUSCHER_WEISZ_C1)
    np.testing.assert_allclose(sm.flow_generator(U, c1=sm.LUSCHER_WEISZ_C1), Z_sym, atol=1e-13)


def _flow_to(U, t, eps, integrator):
    V = U
    for _ in range(int(round(t / eps))):
        V = sm.flow_step(V, step_size=eps, integrator=integrator)
    return V


@pytest.mark.parametrize("N", [2, 3])
def test_rk3_third_order_global_convergence(N, rng):
    """|V_eps(t) - V_{eps/2}(t)| ~ eps^p at fixed t: p = 3 for RK3, p = 1 for Euler.

    The next order is sizeable (p measured 3.3, 3.25, 3.13, 3.08 going from 4 to 64 steps on a
    rough field), so the steps are small: 32, 64 and 128 steps to t = 0.4.
    """
    U = groups.random_near_identity(rng, N, (4, 3, 3, 2, 2), spread=0.5)
    t = 0.4
    order, Vs = {}, {}
    for integrator in ("rk3", "euler"):
        Vs[integrator] = [_flow_to(U, t, t / n, integrator) for n in (32, 64, 128)]
        errs = [np.abs(Vs[integrator][i] - Vs[integrator][i + 1]).max() for i in range(2)]
        order[integrator] = np.log2(errs[0] / errs[1])
        if integrator == "rk3":
            assert errs[1] < 1e-6
    assert 2.85 < order["rk3"] < 3.15, order
    assert 0.9 < order["euler"] < 1.1, order
    # The order alone would pass a wrong flow (a uniformly rescaled step converges at the same rate
    # to V(1.01 t)): RK3 must converge to the same V(t) as Euler, the stout step of the definition.
    # Euler's error a h + b h^2 + O(h^3) is removed to O(h^3) by Richardson's combination of
    # h = t/32, t/64, t/128; measured |RK3 - extrapolated Euler| = 6e-7 (a 1 % longer flow: 1.3e-3).
    e32, e64, e128 = Vs["euler"]
    euler_limit = (8 * e128 - 6 * e64 + e32) / 3
    assert np.abs(Vs["rk3"][-1] - euler_limit).max() < 3e-6
    assert np.abs(Vs["rk3"][-1] - e128).max() > 1e-4  # the extrapolation mattered: plain Euler is 1e-3 away


def test_abelian_constant_field_energies():
    """Uniform abelian flux phi in the (0, 1) plane: E_plaq = 4(1 - cos phi), E_clover = 2 sin^2 phi (SU(2)),
    U(1): E_plaq = 1 - cos phi."""
    shape = (5, 4, 2, 2)
    phi = 2 * np.pi / shape[0]
    x0 = np.arange(shape[0])[:, None, None, None] * np.ones(shape)
    theta = np.zeros((4,) + shape)
    theta[1] = phi * x0
    U = np.zeros((4,) + shape + (2, 2), complex)
    U[..., 0, 0] = np.exp(1j * theta)
    U[..., 1, 1] = np.exp(-1j * theta)
    assert np.isclose(sm.energy_density(U), 4 * (1 - np.cos(phi)), rtol=1e-13)
    assert np.isclose(sm.energy_density(U, definition="clover"), 2 * np.sin(phi) ** 2, rtol=1e-13)
    assert np.isclose(sm.energy_density(theta), 1 - np.cos(phi), rtol=1e-13)
    # the plaquette energy is 2 n_planes N (1 - <P>) in general
    rng = np.random.default_rng(3)
    V = sun.hot_start(rng, (2, 2, 2, 2), 3)
    assert np.isclose(sm.energy_density(V), 2 * 6 * 3 * (1 - sun.mean_plaquette(V)), rtol=1e-13)


def test_wilson_flow_smooths_and_measures(rng):
    U = sun.hot_start(rng, (3, 3, 3, 3), 2)
    res = sm.wilson_flow(U, t_max=0.5, step_size=0.05, measure_every=2)
    assert res.t[0] == 0 and np.isclose(res.t[-1], 0.5)
    assert np.all(np.diff(res.energy_plaquette) < 0) and np.all(np.diff(res.energy_clover) < 0)
    np.testing.assert_allclose(res.energy_plaquette[0], sm.energy_density(U))
    np.testing.assert_allclose(res.links, _flow_to(U, 0.5, 0.05, "rk3"), atol=1e-14)
    _assert_su(res.links)
    batch = np.stack([U, sun.hot_start(rng, (3, 3, 3, 3), 2)])
    rb = sm.wilson_flow(batch, t_max=0.2, step_size=0.05, batched=True)
    np.testing.assert_allclose(rb.energy_clover[:, 0], sm.wilson_flow(U, t_max=0.2, step_size=0.05).energy_clover)


def test_scale_t0_interpolation():
    t = np.linspace(0.0, 2.0, 21)
    E = np.zeros_like(t)
    E[1:] = (0.1 + 0.2 * t[1:]) / t[1:] ** 2  # t^2 E = 0.1 + 0.2 t crosses 0.3 at t = 1
    assert abs(sm.scale_t0(t, E) - 1.0) < 1e-12
    assert abs(sm.scale_t0(t, E, reference=0.4) - 1.5) < 1e-12
    with pytest.raises(ValueError, match="does not cross"):
        sm.scale_t0(t, E, reference=1.0)


# ----------------------------------------------------------------------------- input checks


def test_bad_input_is_explained(rng):
    U = sun.hot_start(rng, (2, 2, 2, 2), 2)
    with pytest.raises(ValueError, match="unknown loop term"):
        sm.stout(U, rho=0.1, terms="chair")
    with pytest.raises(ValueError, match="one value per loop term"):
        sm.stout(U, rho=0.1, terms=("plaquette", "rectangle"))
    with pytest.raises(ValueError, match="n_layers, n_terms"):
        sm.smeared_force(U, rho=np.zeros((2, 3)), beta=1.0)
    with pytest.raises(ValueError, match="0 <= alpha <= 1"):
        sm.ape(U, alpha=1.5)
    with pytest.raises(ValueError, match="step_size"):
        sm.flow_step(U, step_size=-0.1)
    with pytest.raises(ValueError, match="integrator"):
        sm.flow_step(U, step_size=0.1, integrator="rk4")
    with pytest.raises(ValueError, match="batched=True"):
        sm.stout(U[None], rho=0.1)
    with pytest.raises(TypeError, match="complex128"):
        sm.stout(np.ones(U.shape, dtype=bool), rho=0.1)
    with pytest.raises(ValueError, match="clover"):
        sm.energy_density(u1.hot_start(rng, (3, 3)), definition="clover")


def test_parallel_and_serial_kernels_agree(rng, monkeypatch):
    """Large fields run the kernels on all threads, small ones on one thread: same numbers."""
    U = sun.hot_start(rng, (2, 3, 2, 2), 3, batch=2)
    terms, rho = ("plaquette", "rectangle", "polyakov_time"), np.array([[0.1, -0.02, 0.05], [0.07, 0.01, 0.0]])

    def everything():
        Ut = ad.Tensor(U, requires_grad=True)
        rt = ad.Tensor(rho[0], requires_grad=True)
        S = sm.gauge_action_op(sm.stout_op(Ut, rt, terms=terms, batched=True), beta=2.0, c1=-0.1, batched=True)
        ad.sum(S).backward()
        flow = sm.wilson_flow(U, t_max=0.1, step_size=0.05, batched=True)
        return [S.value, Ut.grad, rt.grad, sm.smeared_force(U, rho=rho, terms=terms, beta=1.0, batched=True), flow.energy_plaquette, flow.links]

    serial = everything()
    monkeypatch.setitem(_threads.PARALLEL_MIN, "smearing", 0)
    parallel = everything()
    for a, b in zip(serial, parallel):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
