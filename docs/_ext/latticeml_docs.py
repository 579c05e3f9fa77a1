"""Local Sphinx extension of the latticeml site.

* :func:`execute_lectures` runs the lecture notebooks (FAST mode) in parallel processes before
  Sphinx reads them; conf.py calls it.
* MathJax is loaded on every page (the sidebar's lecture titles have math).
* API pages document each object once, in the module that defines it: a package that re-exports a
  name from one of its public submodules (``latticeml.nets.OddMLP`` from ``latticeml.nets.symmetric``)
  does not document it a second time (Sphinx would warn about a duplicate object description).
  A name defined in a private module (``latticeml._runs``) is documented where it is exported.
* References in docstrings: a cross-reference to a latticeml object that exists but has no page
  (a private helper, a constant outside ``__all__``) is rendered as code, without a link; one to
  a name that does not exist (a typo, a module that moved) stays an error under ``-n``.
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
import shutil

from docutils import nodes
from sphinx.util import logging as sphinx_logging
from sphinx.util.logging import get_node_location
from sphinx.util.nodes import make_refnode

logger = sphinx_logging.getLogger(__name__)


def _execute_notebook(src: str, dst: str) -> float:
    """Run the notebook ``src`` top to bottom in a fresh python3 kernel (cwd: its folder) and write
    it, with its outputs, to ``dst``; return the seconds it took. A cell that raises raises here."""
    import time

    import nbclient
    import nbformat

    start = time.perf_counter()
    nb = nbformat.read(src, as_version=4)
    resources = {"metadata": {"path": str(pathlib.Path(src).parent)}}
    # --matplotlib=inline, as `%matplotlib inline` would: the figure makers build figures with the
    # object-oriented API (matplotlib.figure.Figure, no pyplot), which IPython shows as an image only
    # once its inline figure formatters are on (otherwise as the text "<Figure size ...>").
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources=resources, extra_arguments=["--matplotlib=inline"]
    )
    client.execute()
    nbformat.write(nb, dst)
    return time.perf_counter() - start


def execute_lectures(sources, outdir, *, jobs: int) -> None:
    """Execute every notebook of ``sources`` into ``outdir`` (same names), ``jobs`` at a time
    (``jobs=0`` copies them unexecuted, with a warning: a quick build while writing the docs).

    The lectures are independent and mostly single-threaded in FAST mode, so two at a time halve
    the build on two cores. Any failure stops the build with the lecture's name and traceback.
    """
    import concurrent.futures
    import multiprocessing

    outdir = pathlib.Path(outdir)
    if outdir.is_symlink() or any(pathlib.Path(src).resolve().parent == outdir.resolve() for src in sources):
        raise RuntimeError(f"{outdir} must be a folder of its own: the executed copies would replace the lectures")
    outdir.mkdir(parents=True, exist_ok=True)
    for stale in outdir.glob("*.ipynb"):
        stale.unlink()
    if jobs == 0:  # a quick build while writing the docs: the lectures without their outputs
        for src in sources:
            shutil.copyfile(src, outdir / pathlib.Path(src).name)
        logger.warning("lectures copied without running them (LATTICEML_DOCS_JOBS=0): no outputs, no figures")
        return
    # the longest lectures first, so the last one to finish is short
    sources = sorted(sources, key=lambda path: -pathlib.Path(path).stat().st_size)
    # fork: "spawn" would re-import the main module, which is sphinx itself under `python -m sphinx`
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=context) as pool:
        futures = {pool.submit(_execute_notebook, str(src), str(outdir / pathlib.Path(src).name)): src for src in sources}
        failures = []
        for future in concurrent.futures.as_completed(futures):
            name = pathlib.Path(futures[future]).name
            try:
                logger.info("executed %s in %.1f s (FAST mode)", name, future.result())
            except Exception as exc:  # noqa: BLE001 - reported below, all of them
                failures.append(f"{name}:\n{exc}")
    if failures:
        raise RuntimeError("lecture(s) failed while the docs were built:\n\n" + "\n\n".join(failures))


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


def _resolve(dotted: str):
    """The object named ``dotted`` (a module path, then attributes), or None."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except Exception:  # noqa: BLE001 - not a module: try a shorter prefix
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def existing_but_undocumented(app, env, node, contnode):
    """missing-reference: a py reference to an existing latticeml object becomes plain code."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "").lstrip("~.")
    module, cls = node.get("py:module"), node.get("py:class")
    candidates = [target]
    if module:
        candidates.append(f"{module}.{target}")
        if cls:
            candidates.append(f"{module}.{cls}.{target}")
        parent = module.rpartition(".")[0]
        if parent:
            candidates.append(f"{parent}.{target}")
    # an unqualified name out of its module's context (a module's first docstring line in the
    # autosummary table of the API index): link it when exactly one documented object has that name
    if "." not in target:
        py = env.get_domain("py")
        matches = [name for name in py.objects if name.rpartition(".")[2] == target and name.startswith("latticeml")]
        if len(matches) == 1:
            entry = py.objects[matches[0]]
            return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, matches[0])
    for dotted in candidates:
        if dotted.startswith("latticeml") and _resolve(dotted) is not None:
            return contnode
    # ``theory.force`` names a method of the theory protocol (latticeml.theories.base), which every
    # registered theory class implements: code, no link, when one of them has it.
    head, _, attr = target.partition(".")
    if head == "theory" and attr and "." not in attr and _protocol_has(attr):
        return contnode
    return None


def _protocol_has(attr: str) -> bool:
    try:
        from latticeml.theories import base
    except ImportError:
        return False
    classes = [base.Theory, *getattr(base, "theory_registry", dict)().values()] if hasattr(base, "Theory") else []
    return any(hasattr(cls, attr) for cls in classes)


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
    # MathJax on every page, not only on pages with math in their body: the navigation sidebar
    # shows lecture titles with math ("A normalizing flow for $\\phi^4$ theory") on every page.
    app.set_html_assets_policy("always")
    app.connect("autodoc-skip-member", skip_reexported)
    app.connect("missing-reference", existing_but_undocumented)
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
