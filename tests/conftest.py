"""Shared fixtures.

``rng``: a fresh ``numpy.random.Generator`` per test, seeded by the test module's ``SEED``
(2026 where a module sets none), so every test draws the same numbers on every run and in any order.
``site``: the documentation site, built once per session (tests/docs_site.py) and shared by
tests/test_docs.py and tests/test_lectures.py (the build executes the lectures).

Parallel runs: pyproject.toml runs the suite on pytest-xdist, one worker per CPU, with
``--dist loadfile``: each test file runs whole on one worker, so a module-scoped fixture (the SLHMC
study, a trained flow) is built once, not once per worker. The scheduler below makes the two files
that share the documentation site one unit, so the site is built once too; with
``--no-loadscope-reorder`` the units go out in collection order, which puts that unit (the longest:
the build executes every lecture) first.
"""

import numpy as np
import pytest

DEFAULT_SEED = 2026
#: the test files that share the ``site`` fixture: one unit of work for xdist, so the site is built once
DOCS_SITE_FILES = ("test_docs.py", "test_lectures.py")


def pytest_collection_modifyitems(items):
    """The documentation site's tests first (a stable sort: the order is kept otherwise)."""
    items.sort(key=lambda item: item.path.name not in DOCS_SITE_FILES)


@pytest.hookimpl(optionalhook=True)  # an xdist hook: ignored where xdist is not installed
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile``, with the files of :data:`DOCS_SITE_FILES` as one file.

    (xdist's own ``--dist loadgroup`` would do this with marks, but pytest 9.2 no longer reads the
    node id that xdist 3.8 rewrites to carry the group, so the marks are silently ignored:
    pytest-xdist issue #1386.)
    """
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class DocsSiteAsOneFile(LoadFileScheduling):
        def _split_scope(self, nodeid):
            path = super()._split_scope(nodeid)
            return "docs-site" if path.rsplit("/", 1)[-1] in DOCS_SITE_FILES else path

    return DocsSiteAsOneFile(config, log)


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
