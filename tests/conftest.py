"""Shared fixtures.

``rng``: a fresh ``numpy.random.Generator`` per test, seeded by the test module's ``SEED``
(2026 where a module sets none), so every test draws the same numbers on every run and in any order.
"""

import numpy as np
import pytest

DEFAULT_SEED = 2026


@pytest.fixture
def rng(request):
    return np.random.default_rng(getattr(request.module, "SEED", DEFAULT_SEED))
