"""Shared fixtures.

``rng``: a fresh ``numpy.random.Generator`` per test, seeded by the test module's ``SEED``
(2026 where a module sets none), so every test draws the same numbers on every run and in any order.
``site``: the documentation site, built once per session (tests/docs_site.py) and shared by
tests/test_docs.py and tests/test_lectures.py (the build executes the lectures).
"""

import numpy as np
import pytest

DEFAULT_SEED = 2026


@pytest.fixture
def rng(request):
    return np.random.default_rng(getattr(request.module, "SEED", DEFAULT_SEED))


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    from docs_site import build_site

    return build_site(tmp_path_factory)


@pytest.fixture
def ctrl_c_raises():
    """SIGINT -> KeyboardInterrupt even where the test process inherited SIGINT ignored: a process
    started in the background by a non-interactive shell (``cmd &``) gets SIGINT as SIG_IGN, and
    Python then installs no KeyboardInterrupt handler, so a test's own Ctrl-C would be lost."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
