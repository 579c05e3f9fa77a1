"""phi^4 theory: kernels vs a plain NumPy reference, force vs finite differences, the three forms
of the action and their mappings, the local Metropolis action change, bad input."""

import numpy as np
import pytest
from numba import njit

from latticeml.lattice import neighbour_table
from latticeml.theories import phi4
from latticeml.theories.phi4 import local_delta_action

SHAPES = [(7,), (4, 6), (3, 5), (2, 3), (4, 3, 2), (3, 2, 2, 4), (1, 4)]


SEED = 5  # the seed of the shared ``rng`` fixture (tests/conftest.py)


# ----------------------------------------------------------------------------- NumPy reference


def ref_neighbour_sum(phi):
    return sum(np.roll(phi, -1, mu) + np.roll(phi, 1, mu) for mu in range(phi.ndim))


def ref_density(phi, m2, lam):
    D = phi.ndim
    hop = sum(phi * np.roll(phi, -1, mu) for mu in range(D))
    return -2 * hop + (2 * D + m2) * phi**2 + lam * phi**4


def ref_gradient_form(phi, m2, lam):
    """sum_x [sum_mu (phi(x+mu) - phi(x))^2 + m2 phi^2 + lam phi^4]: the primary action, written differently."""
    kin = sum((np.roll(phi, -1, mu) - phi) ** 2 for mu in range(phi.ndim))
    return np.sum(kin + m2 * phi**2 + lam * phi**4)


# ----------------------------------------------------------------------------- kernels vs reference


@pytest.mark.parametrize("shape", SHAPES)
def test_kernels_match_numpy_reference(shape, rng):
    m2, lam = -1.3, 0.7
    phi = phi4.hot_start(rng, shape)
    dens = ref_density(phi, m2, lam)
    np.testing.assert_allclose(phi4.neighbour_sum(phi), ref_neighbour_sum(phi), atol=1e-13)
    np.testing.assert_allclose(phi4.action_density(phi, m2=m2, lam=lam), dens, atol=1e-13)
    np.testing.assert_allclose(phi4.action(phi, m2=m2, lam=lam), dens.sum(), rtol=1e-12)
    np.testing.assert_allclose(phi4.action(phi, m2=m2, lam=lam), ref_gradient_form(phi, m2, lam), rtol=1e-12)
    D = len(shape)
    F = -2 * ref_neighbour_sum(phi) + 2 * (2 * D + m2) * phi + 4 * lam * phi**3
    np.testing.assert_allclose(phi4.force(phi, m2=m2, lam=lam), F, atol=1e-12)


def test_batched_equals_one_by_one(rng):
    phi = phi4.hot_start(rng, (4, 6), batch=3)
    kw = dict(m2=-4.0, lam=8.0)
    np.testing.assert_allclose(phi4.action(phi, **kw, batched=True), [phi4.action(p, **kw) for p in phi], rtol=1e-14)
    np.testing.assert_allclose(phi4.force(phi, **kw, batched=True), [phi4.force(p, **kw) for p in phi])
    np.testing.assert_allclose(phi4.action_density(phi, **kw, batched=True), [phi4.action_density(p, **kw) for p in phi])
    np.testing.assert_allclose(phi4.neighbour_sum(phi, batched=True), [phi4.neighbour_sum(p) for p in phi])
    np.testing.assert_allclose(
        phi4.standard_action(phi, **kw, batched=True), [phi4.standard_action(p, **kw) for p in phi], rtol=1e-14
    )
    # without batched=True the leading axis is a lattice axis: a 3D lattice
    np.testing.assert_allclose(phi4.action(phi, **kw), ref_gradient_form(phi, -4.0, 8.0), rtol=1e-12)


@pytest.mark.parametrize("shape", [(6,), (4, 6), (3, 2, 4)])
def test_force_matches_finite_differences(shape, rng):
    m2, lam, h = -4.0, 8.0, 1e-5
    phi = phi4.hot_start(rng, shape)
    F = phi4.force(phi, m2=m2, lam=lam)
    for _ in range(6):
        x = tuple(int(rng.integers(L)) for L in shape)
        p, m = phi.copy(), phi.copy()
        p[x] += h
        m[x] -= h
        dS = (phi4.action(p, m2=m2, lam=lam) - phi4.action(m, m2=m2, lam=lam)) / (2 * h)
        assert abs(dS - F[x]) < 1e-6 * (1 + abs(F[x]))


@njit(cache=True)
def _delta_actions(phi, fwd, bwd, sites, values, m2, lam):
    out = np.empty(len(sites))
    for k in range(len(sites)):
        out[k] = local_delta_action(phi, fwd, bwd, sites[k], values[k], m2, lam)
    return out


@pytest.mark.parametrize("shape", [(5,), (4, 6), (2, 3, 4)])
def test_local_delta_action_is_the_change_of_the_action(shape, rng):
    m2, lam = -2.5, 1.5
    phi = phi4.hot_start(rng, shape)
    fwd, bwd = neighbour_table(shape)
    sites = rng.integers(phi.size, size=6)
    values = rng.normal(size=6)
    got = _delta_actions(phi.ravel(), fwd, bwd, sites, values, m2, lam)
    S0 = phi4.action(phi, m2=m2, lam=lam)
    for k in range(6):
        p = phi.copy().ravel()
        p[sites[k]] = values[k]
        np.testing.assert_allclose(got[k], phi4.action(p.reshape(shape), m2=m2, lam=lam) - S0, atol=1e-12)


# ----------------------------------------------------------------------------- closed forms and mappings


@pytest.mark.parametrize("shape", [(5,), (4, 6), (3, 2, 4), (2, 2, 2, 3)])
def test_constant_field_closed_form(shape):
    # phi = c: the hopping term -2 D c^2 cancels the 2D c^2 of the mass term, S = V (m2 c^2 + lam c^4)
    c, m2, lam = 0.7, -3.0, 2.0
    V = int(np.prod(shape))
    phi = phi4.cold_start(shape, c)
    np.testing.assert_allclose(phi4.action(phi, m2=m2, lam=lam), V * (m2 * c**2 + lam * c**4), rtol=1e-13)
    np.testing.assert_allclose(phi4.standard_action(phi, m2=m2, lam=lam), V * (0.5 * m2 * c**2 + lam * c**4), rtol=1e-13)
    np.testing.assert_allclose(phi4.force(phi, m2=m2, lam=lam), 2 * m2 * c + 4 * lam * c**3, rtol=1e-13)
    np.testing.assert_allclose(phi4.neighbour_sum(phi), 2 * len(shape) * c, rtol=1e-14)
    assert phi4.action(phi4.cold_start(shape), m2=m2, lam=lam) == 0.0


@pytest.mark.parametrize("shape", [(6,), (4, 6), (3, 2, 4)])
def test_standard_form(shape, rng):
    m2, lam = 0.8, 0.3
    phi = phi4.hot_start(rng, shape)
    kin = sum((np.roll(phi, -1, mu) - phi) ** 2 for mu in range(len(shape)))
    ref = np.sum(0.5 * kin + 0.5 * m2 * phi**2 + lam * phi**4)
    np.testing.assert_allclose(phi4.standard_action(phi, m2=m2, lam=lam), ref, rtol=1e-12)
    # S(phi; m2, lam) = S_std(sqrt(2) phi; m2, lam / 4), and S = 2 S_std at lam = 0
    np.testing.assert_allclose(
        phi4.action(phi, m2=m2, lam=lam), phi4.standard_action(np.sqrt(2) * phi, m2=m2, lam=lam / 4), rtol=1e-12
    )
    np.testing.assert_allclose(phi4.action(phi, m2=m2, lam=0.0), 2 * phi4.standard_action(phi, m2=m2), rtol=1e-12)


@pytest.mark.parametrize("D, m2, lam", [(2, -4.0, 8.0), (2, 0.5, 0.0), (3, -5.0, 1.3), (4, 1.0, 1e-9), (1, -1.0, 0.2)])
def test_hopping_mapping(D, m2, lam, rng):
    kappa, lambda_h = phi4.to_hopping(m2, lam, D)
    # kappa solves 2 lam kappa^2 + (2D + m2) kappa - 1 = 0, and is the quadratic formula's positive root
    b = 2 * D + m2
    assert 2 * lam * kappa**2 + b * kappa - 1 == pytest.approx(0, abs=1e-13)
    if lam > 1e-6:
        assert kappa == pytest.approx((-b + np.sqrt(b * b + 8 * lam)) / (4 * lam), rel=1e-12)
    assert lambda_h == pytest.approx(lam * kappa**2, rel=1e-14)
    back = phi4.from_hopping(kappa, lambda_h, D)
    np.testing.assert_allclose(back, (m2, lam), rtol=1e-11, atol=1e-12)
    # with phi = sqrt(kappa) phih the two actions differ by the constant V lambda_h, for any field
    shape = (4,) * D if D < 4 else (2, 3, 2, 2)
    V = int(np.prod(shape))
    for _ in range(3):
        phih = 2 * rng.standard_normal(shape)
        S_h = phi4.hopping_action(phih, kappa=kappa, lambda_h=lambda_h)
        S_A = phi4.action(np.sqrt(kappa) * phih, m2=m2, lam=lam)
        assert S_h - S_A == pytest.approx(V * lambda_h, abs=1e-10 * (1 + abs(S_h)))
    # the hopping action written out in NumPy
    phih = rng.standard_normal(shape)
    hop = sum(phih * np.roll(phih, -1, mu) for mu in range(D))
    ref = np.sum(-2 * kappa * hop + phih**2 + lambda_h * (phih**2 - 1) ** 2)
    np.testing.assert_allclose(phi4.hopping_action(phih, kappa=kappa, lambda_h=lambda_h), ref, rtol=1e-12)


def test_hopping_values_at_the_albergo_point():
    # m2 = -4, lam = 8 in 2D (Albergo, Kanwar, Shanahan 2019): 2D + m2 = 0, so kappa = 2 / sqrt(64)
    kappa, lambda_h = phi4.to_hopping(-4.0, 8.0, 2)
    assert kappa == pytest.approx(0.25, abs=1e-15)
    assert lambda_h == pytest.approx(0.5, abs=1e-15)
    assert phi4.to_hopping(m2=1.0, lam=0.0, D=2) == pytest.approx((0.2, 0.0))


def test_starts():
    a = phi4.hot_start(np.random.default_rng(1), (4, 6), batch=2)
    np.testing.assert_array_equal(a, phi4.hot_start(np.random.default_rng(1), (4, 6), batch=2))
    assert a.shape == (2, 4, 6) and a.dtype == np.float64
    np.testing.assert_array_equal(phi4.cold_start((3, 2), 1.5), np.full((3, 2), 1.5))


# ----------------------------------------------------------------------------- bad input


def test_bad_input_raises_clear_errors(rng):
    phi = phi4.hot_start(rng, (4, 4))
    with pytest.raises(TypeError, match="real"):
        phi4.action(phi + 0j, m2=1.0, lam=0.0)
    with pytest.raises(TypeError, match="real"):
        phi4.force(phi.astype(str), m2=1.0, lam=0.0)
    with pytest.raises(ValueError, match="lam must be >= 0"):
        phi4.action(phi, m2=1.0, lam=-1.0)
    with pytest.raises(ValueError, match="finite"):
        phi4.force(phi, m2=np.nan, lam=1.0)
    with pytest.raises(ValueError, match=r"\(B, L0, ...\)"):
        phi4.action(phi[0, 0], m2=1.0, lam=0.0, batched=True)
    with pytest.raises(ValueError, match=">= 1"):
        phi4.action(np.zeros((0, 4)), m2=1.0, lam=0.0)
    with pytest.raises(ValueError, match="2D \\+ m2 > 0"):
        phi4.to_hopping(-5.0, 0.0, 2)
    with pytest.raises(ValueError, match="kappa must be a positive"):
        phi4.from_hopping(-0.1, 0.5, 2)
    with pytest.raises(ValueError, match="positive integer"):
        phi4.to_hopping(1.0, 1.0, 0)
    with pytest.raises(TypeError, match="Generator"):
        phi4.hot_start(42, (4, 4))
