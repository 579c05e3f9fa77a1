"""Scalar correlators: FFT estimators vs np.roll sums, identities, and an exactly sampled free field."""

import numpy as np
import pytest

from latticeml.observables import correlators as co


SEED = 1618  # the seed of the shared ``rng`` fixture (tests/conftest.py)


# ----------------------------------------------------------------------------- references


def ref_two_point(phi):
    """G(x) = (1/V) mean_b sum_y phi(y) phi(y + x), by np.roll over every separation x."""
    shape = phi.shape[1:]
    lat = tuple(range(1, phi.ndim))
    G = np.empty(shape)
    for x in np.ndindex(*shape):
        G[x] = np.mean(np.sum(phi * np.roll(phi, tuple(-d for d in x), axis=lat), axis=lat)) / np.prod(shape)
    return G


def phat2(shape):
    """Lattice momenta squared sum_mu 4 sin^2(p_mu / 2) on the FFT grid."""
    ps = np.meshgrid(*[2 * np.pi * np.fft.fftfreq(L) for L in shape], indexing="ij")
    return sum(4 * np.sin(p / 2) ** 2 for p in ps)


def exact_free_G(shape, m2):
    """G(x) = (1/V) sum_p cos(p.x) / (phat^2 + m^2), summed explicitly (no FFT)."""
    V = int(np.prod(shape))
    grids = lambda ks: np.stack([g.ravel() for g in np.meshgrid(*ks, indexing="ij")], axis=1)  # noqa: E731
    x = grids([np.arange(L) for L in shape])
    p = grids([2 * np.pi * np.arange(L) / L for L in shape])
    prop = 1.0 / ((4 * np.sin(p / 2) ** 2).sum(axis=1) + m2)
    return (np.cos(x @ p.T) @ prop / V).reshape(shape)


def exact_free_C(Lt, m2):
    """Zero-momentum propagator of the free field (standard form, transfer matrix): C(t) =
    cosh(E (Lt/2 - t)) / (2 sinh E sinh(E Lt/2)), cosh E = 1 + m^2/2 (Montvay and Munster, Quantum
    Fields on a Lattice, CUP 1994)."""
    E = np.arccosh(1 + m2 / 2)
    t = np.arange(Lt)
    return np.cosh(E * (Lt / 2 - t)) / (2 * np.sinh(E) * np.sinh(E * Lt / 2)), E


def sample_free_field(rng, B, shape, m2):
    """Exact Gaussian draws with covariance G: phi = F^-1 [F(eta) / sqrt(phat^2 + m^2)], eta white noise."""
    eta = rng.standard_normal((B,) + tuple(shape))
    axes = tuple(range(1, len(shape) + 1))
    return np.fft.ifftn(np.fft.fftn(eta, axes=axes) / np.sqrt(phat2(shape) + m2), axes=axes).real


# ----------------------------------------------------------------------------- estimators vs references


@pytest.mark.parametrize("shape", [(4, 6), (3, 4, 5), (7,)])
def test_estimators_match_roll_sums(shape, rng):
    phi = rng.standard_normal((5,) + shape) + 0.3
    V = np.prod(shape)
    M = phi.reshape(5, -1).mean(axis=1)
    np.testing.assert_allclose(co.magnetization(phi), M, atol=1e-15)
    np.testing.assert_allclose(co.abs_magnetization(-phi), np.abs(M), atol=1e-15)
    G = ref_two_point(phi)
    np.testing.assert_allclose(co.two_point_function(phi), G, atol=1e-13)
    np.testing.assert_allclose(co.two_point_function(phi, connected=True), G - M.mean() ** 2, atol=1e-13)
    for axis in range(len(shape)):
        spatial = tuple(a for a in range(len(shape)) if a != axis)
        C_ref = G.sum(axis=spatial)  # C(t) = sum over spatial separations of G
        np.testing.assert_allclose(co.zero_momentum_correlator(phi, axis=axis), C_ref, atol=1e-13)
        per = co.zero_momentum_correlator(phi, axis=axis, per_config=True)
        assert per.shape == (5, shape[axis])
        np.testing.assert_allclose(per.mean(axis=0), C_ref, atol=1e-13)
        Vs = V // shape[axis]
        np.testing.assert_allclose(co.zero_momentum_correlator(phi, axis=axis, connected=True), C_ref - Vs * M.mean() ** 2, atol=1e-13)
    # the susceptibilities are sums of G
    assert co.susceptibility(phi) == pytest.approx(G.sum(), rel=1e-12)
    assert co.susceptibility(phi) == pytest.approx(V * np.mean(M**2), rel=1e-12)
    assert co.susceptibility(phi, subtract="mean") == pytest.approx(co.two_point_function(phi, connected=True).sum(), rel=1e-12)
    assert co.susceptibility(phi, subtract="abs") == pytest.approx(V * (np.mean(M**2) - np.mean(np.abs(M)) ** 2), rel=1e-12)


def test_translation_invariance(rng):
    phi = rng.standard_normal((4, 6, 5))
    shifted = np.stack([np.roll(f, tuple(rng.integers(0, 6, size=2)), axis=(0, 1)) for f in phi])
    np.testing.assert_allclose(co.two_point_function(shifted), co.two_point_function(phi), atol=1e-13)
    np.testing.assert_allclose(co.zero_momentum_correlator(shifted, axis=1), co.zero_momentum_correlator(phi, axis=1), atol=1e-13)


# ----------------------------------------------------------------------------- free field, exactly sampled


def test_free_field_formulas_agree_with_references():
    """The reference formulas in this file reproduce the sample values (2D, L = 16, m^2 = 1, standard form),
    the same 15-digit values tests/test_exact.py pins for latticeml.exact."""
    G = exact_free_G((16, 16), 1.0)
    C, E = exact_free_C(16, 1.0)
    assert G[0, 0] == pytest.approx(0.254049878757442, abs=1e-13)
    assert C[0] == pytest.approx(0.447213779128673, abs=1e-13)
    assert E == pytest.approx(0.962423650119, abs=1e-12)
    np.testing.assert_allclose(G.sum(axis=1), C, atol=1e-13)  # C(t) = sum_x G(t, x)
    assert G.sum() == pytest.approx(1.0, abs=1e-12)  # chi = sum_x G = 1/m^2


@pytest.mark.parametrize("shape,m2", [((16, 16), 1.0), ((20, 6), 0.3)])
def test_exactly_sampled_free_field_reproduces_propagator(shape, m2, rng):
    B, nblocks = 16000, 40  # 0.3% errors on C(t): a 2% normalisation error would fail
    phi = sample_free_field(rng, B, shape, m2)
    # zero-momentum correlator: per-configuration estimators are independent draws
    per = co.zero_momentum_correlator(phi, per_config=True)
    C_exact, E = exact_free_C(shape[0], m2)
    z = (per.mean(axis=0) - C_exact) / (per.std(axis=0, ddof=1) / np.sqrt(B))
    assert np.all(np.abs(z) < 3), z
    # full two-point function, errors from blocks
    blocks = np.stack([co.two_point_function(b) for b in np.split(phi, nblocks)])
    z = (blocks.mean(axis=0) - exact_free_G(shape, m2)) / (blocks.std(axis=0, ddof=1) / np.sqrt(nblocks))
    assert np.all(np.abs(z) < 4), np.abs(z).max()  # V separations: the largest of ~V correlated z
    assert np.mean(z**2) < 2.0
    # susceptibility V <M^2> = 1/m^2
    V = np.prod(shape)
    chi_per = V * co.magnetization(phi) ** 2
    assert abs(co.susceptibility(phi) - 1 / m2) < 3 * chi_per.std(ddof=1) / np.sqrt(B)
    # and the effective mass of the measured correlator is E near the source
    m_eff = co.effective_mass(per.mean(axis=0))
    assert m_eff[1] == pytest.approx(E, rel=0.05)


def test_estimator_normalisation_matches_exact_module():
    """latticeml.exact's free-field G and C (the quantities samplers compare to) are what these estimators estimate."""
    from latticeml import exact

    for shape, m2 in [((16, 16), 1.0), ((12, 4, 6), 0.5)]:
        np.testing.assert_allclose(exact.free_scalar_propagator(shape, m2), exact_free_G(shape, m2), atol=1e-13)
        np.testing.assert_allclose(exact.free_scalar_zero_momentum_correlator(shape, m2), exact_free_C(shape[0], m2)[0], atol=1e-13)


# ----------------------------------------------------------------------------- effective mass


@pytest.mark.parametrize("Lt,E", [(16, 0.9624), (9, 0.3), (32, 1.7)])
def test_effective_mass_of_exact_cosh_is_E_everywhere(Lt, E):
    t = np.arange(Lt)
    C = 2.5 * np.cosh(E * (Lt / 2 - t))
    m = co.effective_mass(C)
    assert m.shape == (Lt,) and np.isnan(m[0])  # the source's contact term
    np.testing.assert_allclose(m[1:], E, rtol=1e-10)
    # log form: exact for a pure exponential, and biased by the backward-running wave for the cosh
    np.testing.assert_allclose(co.effective_mass(3.0 * np.exp(-E * t), kind="log"), E, rtol=1e-12)
    m_log = co.effective_mass(C, kind="log")
    half = (Lt - 1) // 2
    assert m_log.shape == (Lt - 1,) and np.all(m_log[:half] <= E * (1 + 1e-12)) and m_log[half - 1] < E
    if E * Lt > 20:  # the backward wave exp(-E (Lt - 2t)) is negligible near the source
        assert m_log[0] == pytest.approx(E, rel=1e-9)
    # batched along leading axes
    np.testing.assert_allclose(co.effective_mass(np.stack([C, 2 * C]))[:, 1:], E, rtol=1e-10)


def test_effective_mass_undefined_is_nan():
    m = co.effective_mass(np.array([1.0, 0.2, 1.0, -0.5, 0.7]))  # noise
    assert np.isfinite(m[1]) and np.isnan(m[2])  # t = 2: (0.2 - 0.5) / 2 < 1, undefined
    assert np.isnan(co.effective_mass(np.array([1.0, -1.0, 0.5]), kind="log")[0])


def test_bad_input():
    with pytest.raises(ValueError, match="phi\\[None\\]"):
        co.magnetization(np.zeros(8))
    with pytest.raises(TypeError, match="real scalar"):
        co.two_point_function(np.zeros((2, 4), dtype=complex))
    with pytest.raises(ValueError, match="out of range"):
        co.zero_momentum_correlator(np.zeros((2, 4, 4)), axis=2)
    with pytest.raises(ValueError, match="subtract"):
        co.susceptibility(np.zeros((2, 4, 4)), subtract="connected")
    with pytest.raises(ValueError, match="per_config"):
        co.zero_momentum_correlator(np.zeros((2, 4, 4)), connected=True, per_config=True)
    with pytest.raises(ValueError, match="kind"):
        co.effective_mass(np.ones(5), kind="exp")
