"""Tests of latticeml.stats: Gamma method, autocorrelation, binning, jackknife, bootstrap.

References used here: AR(1) chains with exactly known tau_int = (1 + rho) / (2 (1 - rho)) and
variance of the mean; pyerrors (an independent implementation of Wolff's method); a plain
O(n W) NumPy autocovariance.
"""

import numpy as np
import pytest
from scipy.signal import lfilter

from latticeml import stats
from latticeml.stats import autocorrelation, bin_series, bootstrap, gamma_method, jackknife


def ar1(rho, n, rng, *, n_chains=None):
    """Stationary AR(1): x_{t+1} = rho x_t + sqrt(1 - rho^2) eta_t, x_0 ~ N(0, 1)."""
    shape = (n,) if n_chains is None else (n_chains, n)
    eta = rng.standard_normal(shape)
    x0 = rng.standard_normal(shape[:-1] + (1,))
    x, _ = lfilter([np.sqrt(1 - rho**2)], [1.0, -rho], eta, axis=-1, zi=rho * x0)
    return x


def ar1_tau(rho):
    return (1 + rho) / (2 * (1 - rho))


def ar1_variance_of_mean(rho, n):
    """Var(xbar) = (1/n) [1 + 2 sum_{t=1}^{n-1} (1 - t/n) rho^t] for unit-variance AR(1)."""
    t = np.arange(1, n)
    return (1 + 2 * np.sum((1 - t / n) * rho**t)) / n


def plain_autocovariance(x, max_lag):
    d = x - x.mean()
    n = len(d)
    return np.array([d[: n - t] @ d[t:] / (n - t) for t in range(max_lag + 1)])


# ----------------------------------------------------------------------------- AR(1) exact


@pytest.mark.parametrize("rho, seed", [(0.5, 11), (0.9, 12)])
def test_tau_int_and_error_of_ar1_chain(rho, seed):
    n = 100_000
    x = ar1(rho, n, np.random.default_rng(seed))
    r = gamma_method(x)
    assert abs(r.tau_int - ar1_tau(rho)) < 3 * r.tau_int_error
    exact_error = np.sqrt(ar1_variance_of_mean(rho, n))
    error_of_error = r.error * np.sqrt((r.window + 0.5) / n)  # Wolff eq. (44)
    assert abs(r.error - exact_error) < 3 * error_of_error
    assert abs(r.value) < 4 * exact_error  # the exact mean is 0
    assert r.n == n and 1 <= r.window < n // 2


def test_autocorrelation_fft_matches_plain_sum_and_ar1():
    x = ar1(0.7, 4000, np.random.default_rng(3))
    rho = autocorrelation(x, max_lag=50)
    reference = plain_autocovariance(x, 50)
    np.testing.assert_allclose(rho, reference / reference[0], rtol=0, atol=1e-13)
    assert rho.shape == (51,) and rho[0] == 1.0
    assert len(autocorrelation(x)) == 4000 // 2 + 1
    # rho(t) = 0.7^t within its statistical noise (~ sqrt(2 tau / n))
    np.testing.assert_allclose(rho[:6], 0.7 ** np.arange(6), atol=0.08)


def test_integrated_autocorrelation_time_is_gamma_method_tau():
    x = ar1(0.5, 5000, np.random.default_rng(4))
    assert stats.integrated_autocorrelation_time(x) == gamma_method(x).tau_int
    assert stats.integrated_autocorrelation_time(x, S=2.0) == gamma_method(x, S=2.0).tau_int


def test_gamma_is_bias_corrected_rho_summing_to_tau_int():
    r = gamma_method(ar1(0.8, 20_000, np.random.default_rng(5)))
    assert r.gamma.shape == (r.window + 1,) and r.gamma[0] == 1.0
    assert np.isclose(r.tau_int, 0.5 + r.gamma[1:].sum(), rtol=1e-13)
    assert np.isclose(r.tau_int_error, 2 * r.tau_int * np.sqrt((r.window - r.tau_int + 0.5) / r.n))


# ----------------------------------------------------------------------------- pyerrors


def _pyerrors_compare(result, obs):
    """value/error to rounding; window exactly; tau_int and rho after the known O(1/n) mapping.

    pyerrors divides the bias-corrected C_F by 2 Gamma(0) (1 + 1/n); Wolff's (used here) by the
    corrected Gamma(0) (1 + 2 tau_raw / n), with tau_raw = pyerrors' uncorrected tau_int(W).
    """
    n = result.n
    w = obs.e_windowsize["ens"]
    tau_raw = obs.e_n_tauint["ens"][w]
    assert result.window == w
    assert np.isclose(result.value, obs.value, rtol=1e-13, atol=0)
    assert np.isclose(result.error, obs.dvalue, rtol=1e-10, atol=0)
    assert np.isclose(result.tau_int * (1 + 2 * tau_raw / n), obs.e_tauint["ens"] * (1 + 1 / n), rtol=1e-10)
    rho_pe = obs.e_rho["ens"][: w + 1]
    np.testing.assert_allclose(result.gamma, (rho_pe + 2 * tau_raw / n) / (1 + 2 * tau_raw / n), rtol=1e-10)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_primary_matches_pyerrors(rho):
    pe = pytest.importorskip("pyerrors")
    x = 2.5 + ar1(rho, 20_000, np.random.default_rng(21))
    obs = pe.Obs([x], ["ens"])
    obs.gamma_method(S=1.5, tau_exp=0)
    _pyerrors_compare(gamma_method(x, S=1.5), obs)
    obs.gamma_method(S=2.0, tau_exp=0)
    _pyerrors_compare(gamma_method(x, S=2.0), obs)


def test_derived_ratio_and_susceptibility_match_pyerrors():
    pe = pytest.importorskip("pyerrors")
    rng = np.random.default_rng(22)
    n = 20_000
    a = 3.0 + ar1(0.6, n, rng)
    b = 5.0 + 0.3 * ar1(0.8, n, rng) + 0.2 * a  # correlated with a
    obs_a, obs_b = pe.Obs([a], ["ens"]), pe.Obs([b], ["ens"])

    ratio = obs_a / obs_b
    ratio.gamma_method(S=1.5, tau_exp=0)
    _pyerrors_compare(gamma_method(np.stack([a, b], axis=1), func=lambda m: m[0] / m[1]), ratio)

    volume = 64
    m_obs, m2_obs = pe.Obs([a], ["ens"]), pe.Obs([a**2], ["ens"])
    chi = pe.derived_observable(lambda x, **kw: volume * (x[1] - x[0] ** 2), [m_obs, m2_obs])
    chi.gamma_method(S=1.5, tau_exp=0)
    data = np.stack([a, a**2], axis=1)
    _pyerrors_compare(gamma_method(data, func=lambda m: volume * (m[1] - m[0] ** 2)), chi)


# ----------------------------------------------------------------------------- derived quantities


def test_linear_derived_quantity_equals_primary_analysis_of_combination():
    rng = np.random.default_rng(6)
    data = np.stack([ar1(0.5, 10_000, rng), ar1(0.8, 10_000, rng)], axis=1)
    coefficients = np.array([2.0, -0.7])
    derived = gamma_method(data, func=lambda m: m @ coefficients)
    primary = gamma_method(data @ coefficients)
    assert derived.window == primary.window
    assert np.isclose(derived.value, primary.value, rtol=1e-12, atol=1e-15)
    assert np.isclose(derived.error, primary.error, rtol=1e-9)
    assert np.isclose(derived.tau_int, primary.tau_int, rtol=1e-9)


def test_finite_difference_gradient_matches_analytic_gradient():
    rng = np.random.default_rng(7)
    data = np.stack([4.0 + ar1(0.5, 5000, rng), 2.0 + ar1(0.3, 5000, rng)], axis=1)

    def func(m):
        return np.log(m[0]) * m[1] ** 2

    def grad(m):
        return np.array([m[1] ** 2 / m[0], 2 * m[1] * np.log(m[0])])

    numeric = gamma_method(data, func=func)
    analytic = gamma_method(data, func=func, grad=grad)
    assert np.isclose(numeric.error, analytic.error, rtol=1e-10)
    # a scalar primary series: func receives a float
    x = data[:, 0]
    r = gamma_method(x, func=lambda m: m**3)
    assert np.isclose(r.error, 3 * x.mean() ** 2 * gamma_method(x).error, rtol=1e-9)


# ----------------------------------------------------------------------------- edge cases


def test_constant_data():
    r = gamma_method(np.full(100, 0.1))
    assert (r.value, r.error, r.tau_int, r.tau_int_error, r.window) == (pytest.approx(0.1), 0.0, 0.5, 0.0, 0)
    derived = gamma_method(np.full((50, 2), 2.0), func=lambda m: m[0] * m[1])
    assert derived.value == 4.0 and derived.error == 0.0
    with pytest.raises(ValueError, match="constant"):
        autocorrelation(np.ones(20))


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="at least"):
        gamma_method(np.arange(5.0))
    with pytest.raises(ValueError, match="NaN"):
        gamma_method(np.array([1.0, np.nan] * 10))
    with pytest.raises(ValueError, match="func"):
        gamma_method(np.ones((20, 2)))
    with pytest.raises(ValueError, match="shape"):
        gamma_method(np.ones((4, 4, 4)))
    with pytest.raises(ValueError, match="S must"):
        gamma_method(np.arange(20.0), S=0)
    with pytest.raises(TypeError, match="real"):
        gamma_method(np.ones(20) * 1j)
    with pytest.raises(ValueError, match="scalar"):
        gamma_method(np.random.default_rng(0).random((20, 2)), func=lambda m: m)


# ----------------------------------------------------------------------------- binning, resampling


def test_bin_series_against_plain_loop():
    data = np.random.default_rng(9).random((103, 3))
    binned = bin_series(data, 10)
    reference = np.array([data[10 * j : 10 * j + 10].mean(axis=0) for j in range(10)])
    np.testing.assert_allclose(binned, reference, rtol=1e-15)
    assert bin_series(data[:, 0], 10).shape == (10,)
    with pytest.raises(ValueError, match="bin_size"):
        bin_series(data, 0)
    with pytest.raises(TypeError, match="int"):
        bin_series(data, 2.0)


def test_jackknife_of_mean_is_standard_error():
    x = np.random.default_rng(10).standard_normal(777)
    r = jackknife(x)
    assert r.value == pytest.approx(x.mean(), rel=1e-14)
    assert np.isclose(r.error, x.std(ddof=1) / np.sqrt(len(x)), rtol=1e-12)
    assert r.samples.shape == (777,)
    binned = jackknife(x, bin_size=7)
    b = bin_series(x, 7)
    assert np.isclose(binned.error, b.std(ddof=1) / np.sqrt(len(b)), rtol=1e-12)


def test_resampling_agrees_with_gamma_method_for_uncorrelated_data():
    rng = np.random.default_rng(13)
    data = np.stack([2.0 + rng.standard_normal(20_000), 3.0 + rng.standard_normal(20_000)], axis=1)
    data[:, 1] += 0.5 * data[:, 0]

    def ratio(m):
        return m[0] / m[1]

    reference = gamma_method(data, func=ratio)
    jack = jackknife(data, ratio)
    boot = bootstrap(data, ratio, rng=np.random.default_rng(14), n_boot=2000)
    assert jack.value == boot.value == reference.value
    # jackknife and linearisation agree to O(1/n) for uncorrelated data; the Gamma-method error
    # is the naive one times sqrt(2 tau_int (1 + (2W+1)/n)), tau_int ~ 1/2 +- O(sqrt(W/n))
    assert np.isclose(jack.error, reference.error, rtol=0.03)
    # bootstrap error has a relative spread 1/sqrt(2 n_boot) ~ 1.6 %
    assert np.isclose(boot.error, jack.error, rtol=0.06)


def test_binned_jackknife_agrees_with_gamma_method_for_correlated_data():
    x = ar1(0.9, 200_000, np.random.default_rng(15))
    reference = gamma_method(x)
    unbinned = jackknife(x)
    binned = jackknife(x, bin_size=400)  # >> tau_int = 9.5
    # without binning the error is underestimated by ~ sqrt(2 tau_int) ~ 4.4
    assert unbinned.error < 0.3 * reference.error
    # 500 bins: the binned error has a relative spread ~ 1/sqrt(2 * 500) ~ 3 %
    assert np.isclose(binned.error, reference.error, rtol=0.1)


def test_bootstrap_reproducible_and_needs_generator():
    x = np.random.default_rng(16).standard_normal(300)
    a = bootstrap(x, rng=np.random.default_rng(1), n_boot=50)
    b = bootstrap(x, rng=np.random.default_rng(1), n_boot=50)
    np.testing.assert_array_equal(a.samples, b.samples)
    # the chunked draw equals one plain draw of all indices
    idx = np.random.default_rng(1).integers(0, 300, size=(50, 300))
    np.testing.assert_allclose(a.samples, x[idx].mean(axis=1), rtol=1e-15)
    with pytest.raises(TypeError, match="Generator"):
        bootstrap(x, rng=1)
    with pytest.raises(ValueError, match="bins"):
        bootstrap(x, rng=np.random.default_rng(1), bin_size=300)
