"""Compact U(1) Wilson action: kernels vs a plain NumPy reference, gauge invariance, force vs finite
differences, staples vs the action, constant-flux closed form, bad input."""

import numpy as np
import pytest
from numba import njit

from latticeml import groups
from latticeml.lattice import neighbour_table
from latticeml.theories import u1
from latticeml.theories.u1 import staple_at

SHAPES = [(4, 6), (3, 5), (2, 3), (4, 3, 2), (3, 2, 2, 4), (1, 4)]


SEED = 11  # the seed of the shared ``rng`` fixture (tests/conftest.py)


# ----------------------------------------------------------------------------- NumPy reference


def _fwd(a, mu, n=1):
    return np.roll(a, -n, axis=mu)


def ref_angles(theta):
    D = theta.shape[0]
    return np.array(
        [theta[mu] + _fwd(theta[nu], mu) - _fwd(theta[mu], nu) - theta[nu] for mu in range(D) for nu in range(mu + 1, D)]
    )


def ref_staples(theta):
    D = theta.shape[0]
    A = np.zeros(theta.shape, dtype=complex)
    for mu in range(D):
        for nu in range(D):
            if nu != mu:
                A[mu] += np.exp(1j * (_fwd(theta[nu], mu) - _fwd(theta[mu], nu) - theta[nu]))
                A[mu] += np.exp(
                    1j * (-_fwd(_fwd(theta[nu], mu), nu, -1) - _fwd(theta[mu], nu, -1) + _fwd(theta[nu], nu, -1))
                )
    return A


def ref_force(theta, beta):
    # sum over the plaquettes through each link of sign * sin(theta_P)
    D = theta.shape[0]
    F = np.zeros_like(theta)
    for p, (mu, nu) in enumerate(u1.planes(D)):
        s = np.sin(ref_angles(theta)[p])
        F[mu] += s - _fwd(s, nu, -1)
        F[nu] += _fwd(s, mu, -1) - s
    return beta * F


# ----------------------------------------------------------------------------- kernels vs reference


def test_planes_order():
    assert u1.planes(2) == ((0, 1),)
    assert u1.planes(4) == ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
    with pytest.raises(ValueError, match="D >= 2"):
        u1.planes(1)


@pytest.mark.parametrize("shape", SHAPES)
def test_kernels_match_numpy_reference(shape, rng):
    theta = u1.hot_start(rng, shape)
    P = ref_angles(theta)
    np.testing.assert_allclose(u1.plaquette_angles(theta), P, atol=1e-14)
    np.testing.assert_allclose(u1.mean_plaquette(theta), np.cos(P).mean(), atol=1e-14)
    np.testing.assert_allclose(u1.action(theta, beta=1.7), 1.7 * np.sum(1 - np.cos(P)), rtol=1e-13)
    np.testing.assert_allclose(u1.staples(theta), ref_staples(theta), atol=1e-13)
    np.testing.assert_allclose(u1.force(theta, beta=1.7), ref_force(theta, 1.7), atol=1e-13)


@pytest.mark.parametrize("shape", [(4, 6), (3, 2, 4)])
def test_force_is_beta_im_link_times_staple(shape, rng):
    theta = u1.hot_start(rng, shape)
    np.testing.assert_allclose(
        u1.force(theta, beta=0.8), 0.8 * np.imag(np.exp(1j * theta) * u1.staples(theta)), atol=1e-13
    )


def test_batched_equals_one_by_one(rng):
    theta = u1.hot_start(rng, (4, 6), batch=3)
    assert theta.shape == (3, 2, 4, 6)
    np.testing.assert_allclose(u1.action(theta, beta=2.0, batched=True), [u1.action(t, beta=2.0) for t in theta])
    np.testing.assert_allclose(u1.mean_plaquette(theta, batched=True), [u1.mean_plaquette(t) for t in theta])
    np.testing.assert_allclose(u1.plaquette_angles(theta, batched=True), [u1.plaquette_angles(t) for t in theta])
    np.testing.assert_allclose(u1.force(theta, beta=2.0, batched=True), [u1.force(t, beta=2.0) for t in theta])
    np.testing.assert_allclose(u1.staples(theta, batched=True), [u1.staples(t) for t in theta])


@njit(cache=True)
def _all_staples_one_by_one(theta, fwd, bwd):
    D, V = theta.shape
    out = np.empty((D, V), dtype=np.complex128)
    for mu in range(D):
        for s in range(V):
            out[mu, s] = staple_at(theta, fwd, bwd, mu, s)
    return out


@pytest.mark.parametrize("shape", [(4, 6), (3, 2, 4), (2, 3, 2, 2)])
def test_staple_at_matches_staples(shape, rng):
    theta = u1.hot_start(rng, shape)
    fwd, bwd = neighbour_table(shape)
    got = _all_staples_one_by_one(theta.reshape(len(shape), -1), fwd, bwd).reshape(theta.shape)
    np.testing.assert_allclose(got, u1.staples(theta), atol=1e-14)


# ----------------------------------------------------------------------------- physics invariants


@pytest.mark.parametrize("shape", [(4, 6), (3, 4, 2), (2, 3, 2, 2)])
def test_gauge_invariance(shape, rng):
    theta = u1.hot_start(rng, shape)
    alpha = groups.random_gauge_transform_u1(rng, shape)
    tg = groups.gauge_transform_u1(theta, alpha)
    # unwrapped plaquette angles change by multiples of 2 pi (gauge_transform_u1 wraps the links)
    dP = u1.plaquette_angles(tg) - u1.plaquette_angles(theta)
    np.testing.assert_allclose(groups.wrap_angle(dP), 0, atol=1e-12)
    assert abs(u1.action(tg, beta=2.0) - u1.action(theta, beta=2.0)) < 1e-12 * u1.action(theta, beta=2.0)
    np.testing.assert_allclose(u1.force(tg, beta=2.0), u1.force(theta, beta=2.0), atol=1e-12)


@pytest.mark.parametrize("shape", [(4, 6), (3, 2, 4), (2, 2, 3, 2)])
def test_force_matches_finite_differences(shape, rng):
    beta, h = 1.3, 1e-5
    theta = u1.hot_start(rng, shape)
    F = u1.force(theta, beta=beta)
    for _ in range(6):
        link = (int(rng.integers(len(shape))),) + tuple(int(rng.integers(L)) for L in shape)
        tp, tm = theta.copy(), theta.copy()
        tp[link] += h
        tm[link] -= h
        dS = (u1.action(tp, beta=beta) - u1.action(tm, beta=beta)) / (2 * h)
        assert abs(dS - F[link]) < 1e-7 * (1 + abs(F[link]))


@pytest.mark.parametrize("shape", [(4, 6), (3, 2, 4)])
def test_staples_give_the_local_action_change(shape, rng):
    beta = 0.9
    theta = u1.hot_start(rng, shape)
    A = u1.staples(theta)
    S0 = u1.action(theta, beta=beta)
    for _ in range(5):
        link = (int(rng.integers(len(shape))),) + tuple(int(rng.integers(L)) for L in shape)
        new = rng.uniform(-np.pi, np.pi)
        t2 = theta.copy()
        t2[link] = new
        dS = -beta * np.real((np.exp(1j * new) - np.exp(1j * theta[link])) * A[link])
        np.testing.assert_allclose(u1.action(t2, beta=beta) - S0, dS, atol=1e-12)


# ----------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("shape, n", [((6, 4), 1), ((8, 8), 3), ((5, 2, 3), 2), ((4, 3, 2, 2), -1)])
def test_constant_flux_closed_form(shape, n):
    # theta_1(x) = 2 pi n x0 / L0: the plaquette angle of plane (0, 1) is phi = 2 pi n / L0 everywhere
    # (at the boundary it is phi - 2 pi n), every other plane has angle 0
    D, V = len(shape), int(np.prod(shape))
    phi = 2 * np.pi * n / shape[0]
    theta = u1.cold_start(shape)
    theta[1] = phi * np.arange(shape[0]).reshape((-1,) + (1,) * (D - 1))
    P = u1.plaquette_angles(theta)
    np.testing.assert_allclose(groups.wrap_angle(P[0] - phi), 0, atol=1e-13)
    np.testing.assert_allclose(P[1:], 0, atol=1e-13)
    beta = 2.1
    np.testing.assert_allclose(u1.action(theta, beta=beta), beta * V * (1 - np.cos(phi)), rtol=1e-12)
    n_planes = D * (D - 1) // 2
    np.testing.assert_allclose(u1.mean_plaquette(theta), (n_planes - 1 + np.cos(phi)) / n_planes, atol=1e-14)
    # every link of direction 0 or 1 sits in one plaquette with +sin(phi) and one with -sin(phi)
    np.testing.assert_allclose(u1.force(theta, beta=beta), 0, atol=1e-12)


def test_cold_start_and_hot_start(rng):
    theta = u1.cold_start((4, 6))
    assert theta.shape == (2, 4, 6)
    assert u1.action(theta, beta=3.0) == 0.0 and u1.mean_plaquette(theta) == 1.0
    np.testing.assert_array_equal(u1.force(theta, beta=3.0), 0.0)
    h = u1.hot_start(np.random.default_rng(5), (4, 6), batch=2)
    np.testing.assert_array_equal(h, u1.hot_start(np.random.default_rng(5), (4, 6), batch=2))
    assert h.shape == (2, 2, 4, 6) and np.all(h > -np.pi) and np.all(h <= np.pi)


# ----------------------------------------------------------------------------- bad input


def test_bad_input_raises_clear_errors(rng):
    theta = u1.hot_start(rng, (4, 4))
    with pytest.raises(TypeError, match="np.angle"):
        u1.action(np.exp(1j * theta), beta=1.0)
    with pytest.raises(ValueError, match="direction axis has 3 entries"):
        u1.force(np.concatenate([theta, theta[:1]]), beta=1.0)
    with pytest.raises(ValueError, match="batched=True"):
        u1.action(np.stack([theta, theta]), beta=1.0)
    with pytest.raises(ValueError, match="D >= 2"):
        u1.action(theta[0, 0][None], beta=1.0)
    with pytest.raises(ValueError, match="finite"):
        u1.action(theta, beta=np.inf)
    with pytest.raises(ValueError, match="D >= 2"):
        u1.hot_start(rng, (8,))
    with pytest.raises(TypeError, match="Generator"):
        u1.hot_start(np.random.RandomState(0), (4, 4))
