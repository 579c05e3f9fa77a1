"""Group operations: unitarity and det = 1, exponentials vs scipy, projections, Haar measure."""

import numpy as np
import pytest
import scipy.linalg

from latticeml import groups

NS = [2, 3, 4]


SEED = 20261122  # the seed of the shared ``rng`` fixture (tests/conftest.py)


def _assert_su(U, tol=1e-12):
    unit, det = groups.unitarity_violation(U)
    assert unit < tol and det < tol, (unit, det)


@pytest.mark.parametrize("N", NS)
def test_generators_normalisation(N):
    T = groups.su_generators(N)
    assert T.shape == (N * N - 1, N, N)
    np.testing.assert_allclose(np.einsum("aij,bji->ab", T, T), -0.5 * np.eye(N * N - 1), atol=1e-14)
    np.testing.assert_allclose(T + np.conj(np.swapaxes(T, -1, -2)), 0, atol=1e-15)
    np.testing.assert_allclose(np.trace(T, axis1=1, axis2=2), 0, atol=1e-15)


@pytest.mark.parametrize("N", NS)
def test_algebra_roundtrip_and_projection(N, rng):
    x = rng.standard_normal((5, N * N - 1))
    X = groups.from_components(x, N)
    np.testing.assert_allclose(groups.algebra_components(X), x, atol=1e-13)
    # the projection is idempotent, lands in su(N), and is the orthogonal one: <X, M - TA(M)> = 0
    M = rng.standard_normal((5, N, N)) + 1j * rng.standard_normal((5, N, N))
    P = groups.traceless_antihermitian(M)
    np.testing.assert_allclose(groups.traceless_antihermitian(P), P, atol=1e-14)
    np.testing.assert_allclose(np.trace(P, axis1=1, axis2=2), 0, atol=1e-14)
    resid = M - P
    np.testing.assert_allclose(np.einsum("bij,bji->b", X, resid).real, 0, atol=1e-12)


@pytest.mark.parametrize("N", NS + [5])
@pytest.mark.parametrize("scale", [0.0, 1e-7, 0.3, 2.5, 10.0])
def test_expm_matches_scipy_and_stays_in_group(N, scale, rng):
    X = scale * groups.random_algebra(rng, N, (8,))
    E = groups.expm_su(X)
    ref = np.array([scipy.linalg.expm(x) for x in X])
    np.testing.assert_allclose(E, ref, atol=2e-13 * max(1.0, scale))
    _assert_su(E)


def test_expm_su3_negative_determinant_branch(rng):
    # X and -X exercise both signs of c0 = det(-iX); exp(-X) must be the inverse of exp(X)
    X = groups.random_algebra(rng, 3, (20,))
    E, Einv = groups.expm_su(X), groups.expm_su(-X)
    np.testing.assert_allclose(E @ Einv, np.broadcast_to(np.eye(3), E.shape), atol=1e-13)


@pytest.mark.parametrize("N", NS)
def test_haar_is_unitary_and_centred(N, rng):
    U = groups.haar_su(rng, N, (4000,))
    _assert_su(U)
    # Haar moments: <tr U> = 0, <|tr U|^2> = 1 (for N >= 2); standard errors ~ 1/sqrt(4000)
    tr = np.trace(U, axis1=1, axis2=2)
    assert abs(tr.mean()) < 5 / np.sqrt(4000)
    assert abs((abs(tr) ** 2).mean() - 1.0) < 5 * np.sqrt(2.0 / 4000)
    # reproducible bit for bit
    np.testing.assert_array_equal(groups.haar_su(np.random.default_rng(5), N, 3), groups.haar_su(np.random.default_rng(5), N, 3))


@pytest.mark.parametrize("N", NS)
def test_random_near_identity(N, rng):
    U = groups.random_near_identity(rng, N, (200,), spread=0.01)
    _assert_su(U)
    assert np.abs(U - np.eye(N)).max() < 0.2
    with pytest.raises(ValueError, match="spread"):
        groups.random_near_identity(rng, N, 2, spread=-1)


@pytest.mark.parametrize("N", NS)
def test_reunitarize_repairs_drift(N, rng):
    U = groups.haar_su(rng, N, (50,))
    noisy = U + 1e-6 * (rng.standard_normal(U.shape) + 1j * rng.standard_normal(U.shape))
    R = groups.reunitarize(noisy)
    _assert_su(R)
    assert np.abs(R - U).max() < 1e-5
    np.testing.assert_allclose(groups.reunitarize(U), U, atol=1e-14)  # fixed point on the group


@pytest.mark.parametrize("N", NS)
def test_project_su_maximises_re_tr(N, rng):
    M = rng.standard_normal((30, N, N)) + 1j * rng.standard_normal((30, N, N))
    W = groups.project_su(M)
    _assert_su(W)
    best = np.einsum("bij,bij->b", W.conj(), M).real
    # no SU(N) element near W (nor a Haar-random one) does better: W is a maximum
    for _ in range(20):
        for V in (groups.random_near_identity(rng, N, 30, spread=0.02) @ W, groups.haar_su(rng, N, 30)):
            assert (np.einsum("bij,bij->b", V.conj(), M).real <= best + 1e-12).all()
    # SU(N) elements are fixed points; a positive multiple of one projects back to it
    U = groups.haar_su(rng, N, 10)
    np.testing.assert_allclose(groups.project_su(3.7 * U), U, atol=1e-12)


@pytest.mark.parametrize("N", NS)
def test_project_su_is_precise_and_covariant(N, rng):
    # M = W0 P with P Hermitian positive definite: the maximiser is W0 itself (polar decomposition)
    W0 = groups.haar_su(rng, N, 20)
    A = rng.standard_normal((20, N, N)) + 1j * rng.standard_normal((20, N, N))
    P = A @ np.conj(np.swapaxes(A, -1, -2)) + 0.5 * np.eye(N)
    np.testing.assert_allclose(groups.project_su(W0 @ P), W0, atol=1e-12)
    # covariance, as APE smearing needs: project(O1 M O2^+) = O1 project(M) O2^+
    M = rng.standard_normal((20, N, N)) + 1j * rng.standard_normal((20, N, N))
    O1, O2 = groups.haar_su(rng, N, 20), groups.haar_su(rng, N, 20)
    lhs = groups.project_su(O1 @ M @ np.conj(np.swapaxes(O2, -1, -2)))
    np.testing.assert_allclose(lhs, O1 @ groups.project_su(M) @ np.conj(np.swapaxes(O2, -1, -2)), atol=1e-12)


def test_project_su2_closed_form(rng):
    # for SU(2) the maximiser of Re tr(W^+ M) is M's quaternion part normalised
    M = rng.standard_normal((10, 2, 2)) + 1j * rng.standard_normal((10, 2, 2))
    s2 = np.array([[0, -1j], [1j, 0]])
    Q = 0.5 * (M + s2 @ M.conj() @ s2)
    ref = Q / np.sqrt(np.linalg.det(Q).real)[:, None, None]
    np.testing.assert_allclose(groups.project_su(M), ref, atol=1e-13)


def test_check_special_unitary_message(rng):
    U = groups.haar_su(rng, 3, (2, 4, 4))
    groups.check_special_unitary(U)
    with pytest.raises(ValueError, match="reunitarize"):
        groups.check_special_unitary(1.01 * U)
    with pytest.raises(ValueError, match=r"\(\.\.\., N, N\)"):
        groups.expm_su(np.zeros(3))


@pytest.mark.parametrize("N", NS)
@pytest.mark.parametrize("n_matrices", [7, 3000])  # one thread / parallel chunks
def test_unitarity_violation_matches_numpy(N, n_matrices, rng):
    # SU(N) matrices spoiled by a known amount, so the two maxima are far from zero and unequal
    U = groups.haar_su(rng, N, (n_matrices,))
    U = U + 1e-3 * rng.standard_normal(U.shape) * np.exp(2j * np.pi * rng.random(U.shape))
    unit_ref = np.abs(U @ np.conj(np.swapaxes(U, -1, -2)) - np.eye(N)).max()
    det_ref = np.abs(np.linalg.det(U) - 1.0).max()
    unit, det = groups.unitarity_violation(U)
    assert unit == pytest.approx(unit_ref, rel=1e-12)
    assert det == pytest.approx(det_ref, rel=1e-12)


def test_gauge_transform_composition(rng):
    shape, N = (4, 6), 3
    U = groups.haar_su(rng, N, (2,) + shape)
    O1, O2 = (groups.random_gauge_transform(rng, shape, N) for _ in range(2))
    np.testing.assert_allclose(
        groups.gauge_transform(groups.gauge_transform(U, O1), O2), groups.gauge_transform(U, O2 @ O1), atol=1e-13
    )
    _assert_su(groups.gauge_transform(U, O1))
    theta = rng.uniform(-np.pi, np.pi, (2,) + shape)
    a1, a2 = (groups.random_gauge_transform_u1(rng, shape) for _ in range(2))
    lhs = groups.gauge_transform_u1(groups.gauge_transform_u1(theta, a1), a2)
    np.testing.assert_allclose(np.exp(1j * lhs), np.exp(1j * groups.gauge_transform_u1(theta, a1 + a2)), atol=1e-13)
    with pytest.raises(ValueError, match="shape"):
        groups.gauge_transform_u1(theta, a1[:2])


def test_wrap_angle():
    t = np.array([-np.pi, np.pi, 3 * np.pi, -3.5 * np.pi, 0.1])
    w = groups.wrap_angle(t)
    assert ((w > -np.pi) & (w <= np.pi)).all()
    np.testing.assert_allclose(np.exp(1j * w), np.exp(1j * t), atol=1e-14)
    assert w[0] == np.pi and w[1] == np.pi
