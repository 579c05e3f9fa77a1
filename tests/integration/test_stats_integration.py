"""Statistical calibration of the Gamma method over many independent AR(1) chains.

A single chain can only check an error bar against itself; an ensemble of chains checks that the
reported errors (of the mean and of tau_int) are the actual spreads, and that 1-sigma intervals
cover the exact mean 68 % of the time.
"""

import numpy as np
import pytest
from scipy.signal import lfilter

from latticeml.stats import gamma_method, jackknife

pytestmark = pytest.mark.slow

RHO = 0.8
TAU_EXACT = (1 + RHO) / (2 * (1 - RHO))  # 4.5
N_CHAINS, N = 400, 5000


@pytest.fixture(scope="module")
def chains():
    rng = np.random.default_rng(2024)
    eta = rng.standard_normal((N_CHAINS, N))
    x0 = rng.standard_normal((N_CHAINS, 1))
    x, _ = lfilter([np.sqrt(1 - RHO**2)], [1.0, -RHO], eta, axis=-1, zi=RHO * x0)
    return x


@pytest.fixture(scope="module")
def results(chains):
    return [gamma_method(chain) for chain in chains]


def exact_error_of_mean(rho, n):
    t = np.arange(1, n)
    return np.sqrt((1 + 2 * np.sum((1 - t / n) * rho**t)) / n)


def test_errors_of_the_mean_are_calibrated(chains, results):
    exact = exact_error_of_mean(RHO, N)
    errors = np.array([r.error for r in results])
    means = chains.mean(axis=1)
    # the average reported error equals the exact one (error of the error ~ sqrt(W/N) ~ 4 % per
    # chain, so the average over 400 chains is known to ~0.3 %; measured +0.7 %)
    assert errors.mean() == pytest.approx(exact, rel=0.02)
    # the actual spread of the chain means (relative sampling error 1/sqrt(2 * 400) = 3.5 %)
    assert means.std(ddof=1) == pytest.approx(exact, rel=3 * 0.035)
    coverage = np.mean(np.abs(means) < errors)
    assert abs(coverage - 0.6827) < 3 * np.sqrt(0.6827 * 0.3173 / N_CHAINS)


def test_tau_int_and_its_error_are_calibrated(results):
    taus = np.array([r.tau_int for r in results])
    tau_errors = np.array([r.tau_int_error for r in results])
    # the truncated sum is biased low by ~ tau exp(-W/tau) (a few %), far below one sigma
    assert abs(taus.mean() - TAU_EXACT) < 0.05 * TAU_EXACT
    # Wolff's error formula describes the chain-to-chain spread of tau_int
    assert taus.std(ddof=1) == pytest.approx(tau_errors.mean(), rel=0.25)
    assert np.mean(np.abs(taus - TAU_EXACT) < 2 * tau_errors) > 0.9


def test_binned_jackknife_is_calibrated_too(chains):
    exact = exact_error_of_mean(RHO, N)
    errors = np.array([jackknife(chain, bin_size=100).error for chain in chains[:100]])
    # 50 bins of 100 >> tau: small binning bias ~ tau / bin_size; relative spread 1/sqrt(2*50)
    assert errors.mean() == pytest.approx(exact, rel=0.06)
