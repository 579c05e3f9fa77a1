"""Topological charge: integer 2D U(1) charge of hand-built configurations, clover kernel vs NumPy, parity, normalisation."""

import itertools

import numpy as np
import pytest
from test_loops import constant_flux_u1, embed_u1, hot_links, path_product

from latticeml import groups
from latticeml.observables import loops, topology


SEED = 271828  # the seed of the shared ``rng`` fixture (tests/conftest.py)


# ----------------------------------------------------------------------------- 2D U(1)


def ref_plaquette_angles_u1(theta):
    """theta_0(x) + theta_1(x+0) - theta_0(x+1) - theta_1(x) with np.roll."""
    return theta[0] + np.roll(theta[1], -1, axis=0) - np.roll(theta[0], -1, axis=1) - theta[1]


@pytest.mark.parametrize("n", [-3, -1, 0, 1, 2, 5])
@pytest.mark.parametrize("shape", [(8, 8), (6, 10)])
def test_hand_built_charge_n(n, shape):
    theta = constant_flux_u1(shape, {(0, 1): n})
    V = shape[0] * shape[1]
    Q = topology.topological_charge_u1(theta)
    assert isinstance(Q, int) and Q == n
    np.testing.assert_allclose(topology.topological_charge_density_u1(theta), n / V, atol=1e-14)
    assert topology.topological_charge_u1(theta, definition="sin") == pytest.approx(V * np.sin(2 * np.pi * n / V) / (2 * np.pi), abs=1e-12)


def test_u1_charge_matches_reference_and_is_gauge_invariant(rng):
    theta = rng.uniform(-np.pi, np.pi, size=(7, 2, 6, 8))
    w = groups.wrap_angle(np.stack([ref_plaquette_angles_u1(t) for t in theta]))
    Qg = topology.topological_charge_u1(theta, batched=True)
    assert Qg.dtype == np.int64 and Qg.shape == (7,)
    np.testing.assert_allclose(Qg, w.sum(axis=(1, 2)) / (2 * np.pi), atol=1e-12)
    assert np.any(Qg != 0)  # hot configurations do carry charge
    np.testing.assert_allclose(topology.topological_charge_u1(theta, definition="sin", batched=True), np.sin(w).sum(axis=(1, 2)) / (2 * np.pi), atol=1e-12)
    np.testing.assert_allclose(topology.topological_charge_density_u1(theta, batched=True), w / (2 * np.pi), atol=1e-14)
    # batch == one at a time
    assert [topology.topological_charge_u1(t) for t in theta] == list(Qg)
    assert [topology.topological_charge_u1(t, definition="sin") for t in theta] == list(topology.topological_charge_u1(theta, definition="sin", batched=True))
    # gauge invariance (the density too: the wrapped angles change by rounding only)
    for b in range(3):
        g = groups.gauge_transform_u1(theta[b], groups.random_gauge_transform_u1(rng, (6, 8)))
        assert topology.topological_charge_u1(g) == Qg[b]
        np.testing.assert_allclose(topology.topological_charge_density_u1(g), topology.topological_charge_density_u1(theta[b]), atol=1e-12)


def test_u1_charge_bad_input():
    with pytest.raises(ValueError, match="2D"):
        topology.topological_charge_u1(np.zeros((3, 4, 4, 4)))
    with pytest.raises(ValueError, match="batched=True"):
        topology.topological_charge_u1(np.zeros((5, 2, 4, 4)))
    with pytest.raises(TypeError, match="real angles"):
        topology.topological_charge_u1(np.zeros((2, 4, 4), dtype=complex))
    with pytest.raises(ValueError, match="definition"):
        topology.topological_charge_u1(np.zeros((2, 4, 4)), definition="clover")
    with pytest.raises(ValueError, match="non-finite"):
        topology.topological_charge_u1(np.full((2, 4, 4), np.nan))


# ----------------------------------------------------------------------------- SU(N) clover

LEAVES = [  # the four plaquettes touching x in plane (mu, nu), all counter-clockwise, starting at x
    [(1, "mu"), (1, "nu"), (-1, "mu"), (-1, "nu")],
    [(1, "nu"), (-1, "mu"), (-1, "nu"), (1, "mu")],
    [(-1, "mu"), (-1, "nu"), (1, "mu"), (1, "nu")],
    [(-1, "nu"), (1, "mu"), (1, "nu"), (-1, "mu")],
]


def ref_clover(U, mu, nu):
    """(C - C^+)/8 minus its trace, C the sum of the four leaves walked with np.roll."""
    N = U.shape[-1]
    C = sum(path_product(U, [(s, {"mu": mu, "nu": nu}[d]) for s, d in leaf]) for leaf in LEAVES)
    A = (C - np.conj(np.swapaxes(C, -1, -2))) / 8
    return A - np.trace(A, axis1=-2, axis2=-1)[..., None, None] * np.eye(N) / N


def ref_charge_density(U):
    """q = 1/(32 pi^2) eps_{mu nu rho sigma} tr(F_mu nu F_rho sigma), Hermitian F = -i A, all 24 permutations."""
    F = {}
    for mu, nu in itertools.permutations(range(4), 2):
        F[mu, nu] = -1j * ref_clover(U, mu, nu) if mu < nu else 1j * ref_clover(U, nu, mu)
    q = 0
    for perm in itertools.permutations(range(4)):
        sign = np.linalg.det(np.eye(4)[list(perm)])
        a, b, c, d = perm
        q = q + sign * np.trace(F[a, b] @ F[c, d], axis1=-2, axis2=-1)
    assert np.abs(q.imag).max() < 1e-12
    return q.real / (32 * np.pi**2)


@pytest.mark.parametrize("N,shape", [(2, (3, 4, 5)), (3, (3, 4, 3, 4)), (2, (4, 3))])
def test_clover_matches_reference_and_is_covariant(N, shape, rng):
    U = hot_links(rng, N, shape)
    F = topology.clover_field_strength(U)
    assert F.shape == (len(loops.planes(len(shape))),) + shape + (N, N)
    for p, (mu, nu) in enumerate(loops.planes(len(shape))):
        np.testing.assert_allclose(F[p], ref_clover(U, mu, nu), atol=1e-13)
    np.testing.assert_allclose(F + np.conj(np.swapaxes(F, -1, -2)), 0, atol=1e-15)
    Omega = groups.random_gauge_transform(rng, shape, N)
    Fg = topology.clover_field_strength(groups.gauge_transform(U, Omega))
    np.testing.assert_allclose(Fg, Omega @ F @ np.conj(np.swapaxes(Omega, -1, -2)), atol=1e-12)


@pytest.mark.parametrize("N", [2, 3])
def test_charge_density_matches_epsilon_sum_and_is_gauge_invariant(N, rng):
    shape = (3, 4, 3, 4)
    U = hot_links(rng, N, shape)
    q = topology.topological_charge_density(U)
    np.testing.assert_allclose(q, ref_charge_density(U), atol=1e-14)
    assert topology.topological_charge(U) == pytest.approx(q.sum(), abs=1e-13)
    # batched: one configuration at a time
    U2 = np.stack([U, hot_links(rng, N, shape)])
    qb = topology.topological_charge_density(U2, batched=True)
    np.testing.assert_allclose(qb, [topology.topological_charge_density(u) for u in U2], atol=1e-15)
    np.testing.assert_allclose(topology.topological_charge(U2, batched=True), qb.sum(axis=(1, 2, 3, 4)), atol=1e-13)
    np.testing.assert_allclose(topology.clover_field_strength(U2, batched=True)[1], topology.clover_field_strength(U2[1]), atol=1e-15)
    g = groups.gauge_transform(U, groups.random_gauge_transform(rng, shape, N))
    np.testing.assert_allclose(topology.topological_charge_density(g), q, atol=1e-12)


def test_cold_start_has_no_charge():
    U = np.broadcast_to(np.eye(3, dtype=complex), (4, 3, 3, 3, 3, 3, 3))
    np.testing.assert_array_equal(topology.topological_charge_density(U), 0.0)


@pytest.mark.parametrize("axis", [0, 2])
def test_reflection_flips_the_charge(axis, rng):
    """x_k -> -x_k: U'_k(x) = U_k(Rx - k)^+, U'_mu(x) = U_mu(Rx) otherwise; then q'(x) = -q(Rx)."""
    shape = (4, 3, 4, 3)
    U = hot_links(rng, 3, shape)
    reflect = lambda f: np.roll(np.flip(f, axis=axis), 1, axis=axis)  # f(Rx), Rx_k = -x_k mod L  # noqa: E731
    Ur = np.stack([reflect(U[mu]) for mu in range(4)])
    Ur[axis] = np.conj(np.swapaxes(np.roll(Ur[axis], -1, axis=axis), -1, -2))  # U_k(R(x + k)) = U_k(Rx - k)
    q, qr = topology.topological_charge_density(U), topology.topological_charge_density(Ur)
    np.testing.assert_allclose(qr, -reflect(q), atol=1e-14)
    assert abs(topology.topological_charge(U)) > 1e-3  # a non-trivial check
    assert topology.topological_charge(Ur) == pytest.approx(-topology.topological_charge(U), abs=1e-13)


@pytest.mark.parametrize("charges", [(1, -1), (1, -1, 0), (1, 1, -2)])
@pytest.mark.parametrize("n01,n23", [(1, 1), (2, -1)])
def test_abelian_flux_configuration_normalisation(charges, n01, n23):
    """Constant abelian field with n01 and n23 flux quanta, embedded as diag(exp(i q_a theta)).

    Continuum: F = diag(q_a f), f_01 = 2 pi n01/(L0 L1), f_23 = 2 pi n23/(L2 L3), so
    Q = (1/4 pi^2) V sum_a q_a^2 f_01 f_23 = (sum_a q_a^2 / 2) * 2 n01 n23, e.g. 2 n01 n23 for
    diag(e^{ia}, e^{-ia}). On the lattice every clover leaf is exactly diag(exp(i q_a phi)), so
    F = i diag(s_a) with s_a(phi) = sin(q_a phi) - mean_b sin(q_b phi) (the traceless part), and
    Q_lat = (V / 4 pi^2) sum_a s_a(phi_01) s_a(phi_23) exactly; it approaches the continuum as L grows.
    """
    s2 = sum(q * q for q in charges)
    continuum = s2 / 2 * 2 * n01 * n23
    errors = []
    for L in (4, 8, 12):
        shape = (L,) * 4
        U = embed_u1(constant_flux_u1(shape, {(0, 1): n01, (2, 3): n23}), charges)
        Q = topology.topological_charge(U)
        phi01, phi23 = 2 * np.pi * n01 / L**2, 2 * np.pi * n23 / L**2
        s01, s23 = (np.sin(np.array(charges) * phi) - np.mean(np.sin(np.array(charges) * phi)) for phi in (phi01, phi23))
        lattice = L**4 / (4 * np.pi**2) * np.sum(s01 * s23)
        assert Q == pytest.approx(lattice, rel=1e-12)
        errors.append(abs(Q / continuum - 1))
    assert errors[0] > errors[1] > errors[2]
    # O(a^2) approach, relative error about sum over planes of (q_max phi)^2 / 6: 0.3% (unit fluxes and
    # charges) to 2.4% (n01 = 2, q = -2) on 8^4, 0.06% to 0.5% on 12^4
    qphi = max(map(abs, charges)) * 2 * np.pi * np.array([n01, n23]) / 8**2
    assert errors[1] < 1.1 * np.sum(qphi**2) / 6
    if max(map(abs, charges)) == 1 and abs(n01 * n23) == 1:
        assert errors[1] < 0.01
    assert errors[2] < 0.005


def test_clover_bad_input(rng):
    with pytest.raises(ValueError, match="D = 4"):
        topology.topological_charge_density(hot_links(rng, 2, (4, 4, 4)))
    with pytest.raises(TypeError, match="topological_charge_u1"):
        topology.topological_charge(np.zeros((4, 2, 2, 2, 2)))
