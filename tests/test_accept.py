"""The shared Metropolis test: probabilities, corner cases, one random number per call, frequencies."""

import math

import numpy as np
import pytest

from latticeml.samplers.accept import metropolis_test


@pytest.mark.parametrize("delta", [-50.0, -1.0, 0.0, 1e-12, 0.7, 3.0, 800.0])
def test_probability_is_min_one_exp(delta):
    _, p = metropolis_test(np.random.default_rng(0), delta)
    assert p == min(1.0, math.exp(-delta))  # exp(-800) underflows to 0, no overflow for delta < 0


@pytest.mark.parametrize("delta", [math.inf, math.nan])
def test_diverged_proposals_are_rejected(delta):
    accepted, p = metropolis_test(np.random.default_rng(0), delta)
    assert not accepted and p == 0.0


def test_one_uniform_number_per_call_and_the_decision_it_makes():
    # the decision is "u < p" with the one uniform u the call draws, whatever delta is
    for delta in (-3.0, 0.0, 0.5, 2.0, math.inf):
        rng, twin = np.random.default_rng(7), np.random.default_rng(7)
        accepted, p = metropolis_test(rng, delta)
        u = twin.random()
        assert accepted == (u < p)
        assert rng.bit_generator.state == twin.bit_generator.state


def test_acceptance_frequency_within_three_sigma():
    rng = np.random.default_rng(11)
    delta, n = 0.9, 20000
    hits = sum(metropolis_test(rng, delta)[0] for _ in range(n))
    p = math.exp(-delta)
    assert abs(hits / n - p) < 3 * math.sqrt(p * (1 - p) / n)
