"""The figure registry behind ``latticeml figures``.

Each figure maker is a function ``make(outdir: pathlib.Path, *, fast: bool) -> list[pathlib.Path]``
that writes one or more compact PNGs into ``outdir`` and returns their paths. Makers register
themselves with the :func:`register` decorator; the modules that hold them are listed in
``FIGURE_MODULES`` and imported lazily, so ``import latticeml`` stays cheap.

    from latticeml.figures import register

    @register("u1_exact", "2D U(1): measured plaquette and Wilson loops vs the Bessel formulas")
    def make(outdir, *, fast=False):
        ...
        return [outdir / "u1_exact.png"]

``fast=True`` is for CI: the same figure with fewer samples, written to a temporary folder.
"""

from __future__ import annotations

import importlib
import os
import pathlib
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

# Modules that define figure makers. A later issue adds its module here.
FIGURE_MODULES: list[str] = [
    "latticeml.figure_makers.foundation",
    "latticeml.figure_makers.symmetries",
    "latticeml.figure_makers.u1_topology",
    "latticeml.figure_makers.flows",
    "latticeml.figure_makers.u1_flows",
    "latticeml.figure_makers.smearing",
    "latticeml.figure_makers.l2hmc",
    "latticeml.figure_makers.fermions",
    "latticeml.figure_makers.lcnn",
]


@dataclass(frozen=True)
class Figure:
    name: str
    description: str
    make: Callable[..., list]


_REGISTRY: dict[str, Figure] = {}


def register(name: str, description: str):
    """Decorator: register ``make(outdir, *, fast)`` under ``name``."""

    def deco(fn):
        if name in _REGISTRY and _REGISTRY[name].make is not fn:
            raise ValueError(f"figure {name!r} is registered twice")
        _REGISTRY[name] = Figure(name, description, fn)
        return fn

    return deco


def registry() -> dict[str, Figure]:
    """All registered figures, importing every module in ``FIGURE_MODULES`` first."""
    for mod in FIGURE_MODULES:
        importlib.import_module(mod)
    return dict(sorted(_REGISTRY.items()))


def lecture_figures_dir(fast: bool) -> pathlib.Path:
    """Where a lecture notebook writes its figures.

    ``$LATTICEML_FIGURES_DIR`` if set (the test suite sets it); otherwise a fresh temporary folder in
    FAST mode (FAST runs never touch ``figures/``), and in the full mode the ``figures/`` folder of
    the project checkout the notebook runs in (the nearest parent of the working directory that has a
    ``pyproject.toml``), or ``./figures`` outside a checkout.
    """
    env = os.environ.get("LATTICEML_FIGURES_DIR")
    if env:
        return pathlib.Path(env)
    if fast:
        return pathlib.Path(tempfile.mkdtemp(prefix="latticeml_fast_figures_"))
    cwd = pathlib.Path.cwd()
    root = next((p for p in (cwd, *cwd.parents) if (p / "pyproject.toml").exists()), cwd)
    return root / "figures"


def save_figures(figures: dict, outdir, *, dpi: int = 90) -> list[pathlib.Path]:
    """Write each matplotlib figure of ``{file stem: Figure}`` to ``outdir/<stem>.png`` (compact:
    90 dpi by default) and return the paths, in order. Every lecture's figure maker saves this way."""
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, fig in figures.items():
        path = outdir / f"{stem}.png"
        fig.savefig(path, dpi=dpi)
        paths.append(path)
    return paths


def make_figures(outdir="figures", names=None, *, fast=False, log=print) -> list[pathlib.Path]:
    """Run the named figure makers (all of them by default) and return the files written."""
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    figs = registry()
    names = list(figs) if not names else list(names)
    unknown = [n for n in names if n not in figs]
    if unknown:
        raise KeyError(f"unknown figure(s) {unknown}; known: {sorted(figs)}")
    written = []
    for n in names:
        t0 = time.perf_counter()
        files = figs[n].make(outdir, fast=fast)
        written.extend(pathlib.Path(f) for f in files)
        log(f"{n:28s} {time.perf_counter() - t0:7.1f} s  -> {', '.join(str(f) for f in files)}")
    return written
