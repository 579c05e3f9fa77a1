"""Local Sphinx extension of the latticeml site.

* API pages document each object once, in the module that defines it: a package that re-exports a
  name from one of its public submodules (``latticeml.nets.OddMLP`` from ``latticeml.nets.symmetric``)
  does not document it a second time (Sphinx would warn about a duplicate object description).
  A name defined in a private module (``latticeml._runs``) is documented where it is exported.
* Docstring markup problems: docutils warnings raised while parsing a *docstring* (an undefined
  ``|M|`` substitution, an unexpected indentation) are collected and listed at the end of the build
  and in ``<outdir>/docstring-warnings.txt`` instead of failing it, while ``STRICT_DOCSTRINGS`` is
  False. Every other warning (the pages, the notebooks, unresolved cross-references, docstrings
  included) stays an error under ``-W``. The docstrings belong to the modules' authors; set
  ``STRICT_DOCSTRINGS = True`` in conf.py (or ``LATTICEML_DOCS_STRICT=1``) once they are clean.
"""

from __future__ import annotations

import importlib
import logging
import pathlib

from docutils import nodes
from sphinx.util import logging as sphinx_logging
from sphinx.util.logging import get_node_location

logger = sphinx_logging.getLogger(__name__)


def _is_public_module(name: str) -> bool:
    return name.startswith("latticeml") and not any(part.startswith("_") for part in name.split("."))


def skip_reexported(app, what, name, obj, skip, options):
    """autodoc-skip-member: skip a module member re-exported from another public latticeml module."""
    if what != "module":
        return None
    home = getattr(obj, "__module__", None)
    if not isinstance(home, str) or not _is_public_module(home):
        return None
    if getattr(obj, "__name__", None) is None:  # data (a constant): documented where it is assigned
        return None
    current = app.env.temp_data.get("autodoc:module") or app.env.ref_context.get("py:module")
    if current and home != current:
        try:
            importlib.import_module(home)
        except Exception:  # noqa: BLE001 - an unimportable home: keep the object here
            return None
        return True
    return None


class _DocstringWarnings(logging.Filter):
    """Take docutils warnings located in a latticeml docstring out of the fatal warning stream."""

    def __init__(self):
        super().__init__()
        self.collected: list[str] = []

    def filter(self, record):
        if getattr(record, "type", None) not in (None, "docutils"):
            return True  # a typed Sphinx warning (ref, autodoc, myst, ...) stays fatal
        location = getattr(record, "location", None)
        if isinstance(location, nodes.Node):
            location = get_node_location(location)
        if isinstance(location, str) and "docstring of latticeml" in location:
            self.collected.append(f"{location}: {record.getMessage()}")
            return False
        return True


def setup(app):
    app.add_config_value("strict_docstrings", False, "env")
    app.connect("autodoc-skip-member", skip_reexported)
    collector = _DocstringWarnings()

    def install(app_, config):
        if config.strict_docstrings:
            return
        for handler in logging.getLogger("sphinx").handlers:
            if type(handler).__name__ == "WarningStreamHandler":
                handler.filters.insert(0, collector)

    def report(app_, exc):
        if exc is not None or config_strict(app_):
            return
        text = "\n".join(dict.fromkeys(collector.collected))
        pathlib.Path(app_.outdir, "docstring-warnings.txt").write_text(text + ("\n" if text else ""))
        if collector.collected:
            logger.info(
                "\n%d docstring markup problem(s) (not fatal while strict_docstrings is False; listed in "
                "docstring-warnings.txt):\n%s",
                len(set(collector.collected)),
                text,
            )

    def config_strict(app_):
        return bool(app_.config.strict_docstrings)

    app.connect("config-inited", install)
    app.connect("build-finished", report)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
