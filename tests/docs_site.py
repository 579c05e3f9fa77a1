"""The documentation site, built once per test session and shared by two test files.

``tests/test_docs.py`` checks the built pages in a browser; ``tests/test_lectures.py`` checks that
every lecture ran in FAST mode. The build executes every lecture (docs/conf.py), so the lectures
run once per session, not twice: where the docs toolchain is installed (it is in CI) the lecture
test reads the build's executed copies; where it is not, it runs the notebooks itself.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_S = 1500
DOCS_MODULES = [("sphinx", "sphinx"), ("myst_nb", "myst-nb"), ("furo", "furo"), ("sphinxarg", "sphinx-argparse")]
#: where the build writes the executed lectures (docs/conf.py)
EXECUTED_LECTURES = ROOT / "docs" / "lectures"


def missing(reason: str):
    """Skip locally; fail in CI, where .ci/run installs everything the documentation test needs."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the documentation test; see .ci/run)")
    pytest.skip(reason)


def docs_toolchain_missing() -> str | None:
    """The pip package of the docs extra that is not importable, or None when all are."""
    for module, package in DOCS_MODULES:
        try:
            __import__(module)
        except ImportError:
            return package
    return None


def build_site(tmp_path_factory) -> pathlib.Path:
    """Build the site into a temporary folder; fail with the end of Sphinx's log if the build fails.

    ``LATTICEML_DOCS_SITE=DIR`` returns a site already built into DIR instead (while writing docs).
    """
    prebuilt = os.environ.get("LATTICEML_DOCS_SITE")
    if prebuilt:
        return pathlib.Path(prebuilt)
    package = docs_toolchain_missing()
    if package:
        missing(f"{package} is not installed: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("docs_html")
    env = dict(os.environ, LATTICEML_FAST="1", LATTICEML_FIGURES_DIR=str(tmp_path_factory.mktemp("docs_figures")))
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html", "docs", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    if proc.returncode != 0:
        log = (proc.stdout + "\n" + proc.stderr).strip()
        pytest.fail(f"the docs build failed ({' '.join(cmd)}), exit {proc.returncode}:\n{log[-8000:]}")
    return out
