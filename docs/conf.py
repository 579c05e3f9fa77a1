"""Sphinx configuration of the latticeml documentation site.

Build it (from the repository root, after ``pip install -e '.[docs]'``)::

    LATTICEML_FAST=1 .venv/bin/python -m sphinx -W --keep-going -n -b html docs docs/_build/html

Why Sphinx + MyST-NB (and not MkDocs): the docstrings are reStructuredText (``:func:``,
``:class:``, double-backtick literals), which Sphinx's autodoc renders and cross-links as they are;
MyST-NB executes the lecture notebooks during the build, stops on a cell that raises, and renders
Markdown with ``$...$`` math; ``-W -n`` turns every warning and every unresolved cross-reference into
an error. This is the stack of JAX, blackjax and NumPyro. See docs/contributing.md.
"""

from __future__ import annotations

import os
import pathlib
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))

# The lectures run in FAST mode during the build (seconds each, not minutes) and never write into
# figures/: their figures go to a throw-away folder and reach the page as the cells' outputs.
os.environ.setdefault("LATTICEML_FAST", "1")
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
if os.environ.get("LATTICEML_FIGURES_DIR") is None:
    import tempfile

    os.environ["LATTICEML_FIGURES_DIR"] = tempfile.mkdtemp(prefix="latticeml_docs_figures_")
# The notebook kernel inherits this environment: a non-interactive MPLBACKEND (the tests set Agg)
# would stop IPython from showing figures inline, so the kernel uses the inline backend.
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
# The CUDA backend's modules (latticeml.backends.cuda.*) import numba.cuda, which needs a GPU or
# Numba's CUDA simulator: the API pages are built with the simulator (the docs extra has numba-cuda).
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import types  # noqa: E402

import latticeml  # noqa: E402

# ``latticeml/__main__.py`` is the ``python -m latticeml`` entry point, not part of the API;
# autosummary imports every module it finds, so it gets an empty stand-in.
sys.modules.setdefault("latticeml.__main__", types.ModuleType("latticeml.__main__"))

project = "latticeml"
author = "the latticeml authors"
copyright = "2026, the latticeml authors"
release = version = latticeml.__version__

extensions = [
    "myst_nb",  # Markdown pages and executed notebooks (loads myst_parser)
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinxarg.ext",  # the command line reference, from latticeml.cli.build_parser()
    "sphinx-mathjax-offline",  # MathJax 3 served from _static/mathjax, not from a CDN
    "latticeml_docs",  # docs/_ext: one page per object, docstring markup report
]

# Docstring markup problems (docutils warnings inside a latticeml docstring) fail the build only
# when strict; until the modules' docstrings are clean they are listed, not fatal (docs/_ext).
strict_docstrings = os.environ.get("LATTICEML_DOCS_STRICT", "0") == "1"

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "jupyter_execute", "api/modules.rst"]
templates_path = ["_templates"]

# --- Lectures --------------------------------------------------------------------------------------
# The notebooks of lectures/ are executed here, two at a time, into docs/lectures/ (generated, not
# committed); Sphinx then renders those executed copies. A cell that raises stops the build.
import latticeml_docs  # noqa: E402  (docs/_ext)

latticeml_docs.execute_lectures(
    sorted((ROOT / "lectures").glob("[0-9][0-9]_*.ipynb")),
    DOCS / "lectures",
    jobs=int(os.environ.get("LATTICEML_DOCS_JOBS", min(os.cpu_count() or 1, 4))),
)

# --- MyST / MyST-NB --------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "force"  # the MyST notebooks of docs/ (getting_started.md) run at every build
nb_execution_excludepatterns = ["lectures/*"]  # executed above, in parallel
nb_execution_timeout = 600  # per cell
nb_execution_raise_on_error = True  # a lecture that raises fails the build
nb_execution_show_tb = True  # ... and the log shows the traceback
nb_merge_streams = True
nb_render_markdown_format = "myst"  # Markdown outputs (lecture 02's table) with tables and math
nb_kernel_rgx_aliases = {".*": "python3"}

# --- API reference ---------------------------------------------------------------------------------
# Every public module (no part of its dotted name starts with "_"), found by walking the package
# now, so the reference follows the layout of the code without a list to keep up to date. The table
# goes to docs/api/modules.rst (generated, not committed), which api/index.md includes; autosummary
# writes one page per module under docs/api/generated/ (not committed either).
def _public_modules() -> list[str]:
    import pkgutil

    def unimportable(name):  # a package that does not import would silently lose its pages
        raise ImportError(f"docs: cannot import {name} to list its modules")

    names = ["latticeml"]
    for info in pkgutil.walk_packages(latticeml.__path__, prefix="latticeml.", onerror=unimportable):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


(DOCS / "api" / "modules.rst").write_text(
    ".. This file is written by docs/conf.py at every build: do not edit.\n\n"
    ".. autosummary::\n   :toctree: generated\n   :recursive:\n   :nosignatures:\n\n"
    + "".join(f"   {name}\n" for name in _public_modules())
)
autosummary_generate = ["api/modules.rst"]
autosummary_ignore_module_all = True  # discover every public submodule (automodule still documents __all__)
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autoclass_content = "both"
# nitpicky (-n): internal references must resolve; types from other projects (no intersphinx: the
# build runs offline) are plain text.
nitpick_ignore_regex = [
    (r"py:.*", r"(np|numpy|scipy|matplotlib|numba|collections|typing|types|pathlib|os|argparse|"
               r"contextlib|dataclasses|abc|enum|io|tqdm|ArrayLike|NDArray)(\..*)?"),
    (r"py:class", r"(callable|Callable|Iterable|Iterator|Sequence|Mapping|Path|Generator|ndarray|"
                  r"optional|array_like|array|string|bool|int|float|complex|str|dict|list|tuple|None|object|"
                  r"type|Any|Self|T|Literal|NamedTuple|function|file-like|BaseException|Exception|"
                  r"ValueError|TypeError|RuntimeError)"),
]

# --- HTML ------------------------------------------------------------------------------------------
html_theme = "furo"  # no web fonts or scripts from outside: the site works offline
html_title = f"latticeml {release}"
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"
html_css_files = ["custom.css"]
html_theme_options = {"navigation_with_keys": True}
html_last_updated_fmt = None
html_copy_source = False
