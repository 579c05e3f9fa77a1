"""The one place that picks the kernels of a theory for a backend.

A theory object (:mod:`latticeml.theories.base`) never calls a kernel module by name: it asks this
package for the module of its *kernel family* on its *backend*, ``kernels("sun", "cpu")``, and
calls ``action``, ``force``, ``mean_plaquette``, ``evolve`` (and, for the local-update families,
``metropolis_sweep``, ``heatbath_sweep``, ``overrelax_sweep``) on it. The modules are imported
lazily, the first time a theory on that backend is built.

========================  ==============================================  ===========================
family                    functions the module provides                   cpu module
========================  ==============================================  ===========================
``phi4``                  action, force, evolve, metropolis_sweep         latticeml.theories.phi4
``u1``                    action, force, mean_plaquette, evolve,          latticeml.theories.u1
                          metropolis/heatbath/overrelax_sweep
``sun``                   action, force, mean_plaquette, evolve           latticeml.theories.sun
``sun_local``             metropolis/heatbath/overrelax_sweep (SU(N))     latticeml.theories.sun_local
``improved``              gauge_action, gauge_force (plaquette +          latticeml.theories.improved
                          rectangle, U(1) and SU(N))
``smeared``               smeared_action, smeared_force (SLHMC)           latticeml.smearing
========================  ==============================================  ===========================

Every function takes and returns NumPy arrays in the layouts of :mod:`latticeml.lattice` (the
field conventions of the design document), with the signature of the cpu module's function.

Adding a backend
----------------
1. Write the kernel modules, e.g. ``latticeml/backends/cuda/sun.py`` with ``@cuda.jit`` kernels
   behind functions of the same names and signatures as the cpu module's (arrays in, arrays out;
   copies to and from the device happen inside).
2. Add one row per family to :data:`KERNELS`, ``("sun", "cuda"): "latticeml.backends.cuda.sun"``,
   and, if the backend needs a package that may be missing, a line to :data:`_REQUIREMENTS`.
3. Run the kernel tests with the backend: the kernels must agree with the cpu ones to rounding
   (and under the CUDA simulator in CI). Families a backend does not provide are refused by
   :func:`kernels` with a message; a theory whose local-update family is missing on a backend
   simply has no local updates there.

No function elsewhere branches on the backend: ``make_theory("su3", shape, beta=6.0, backend="cuda")``
is all a user writes.
"""

from __future__ import annotations

import importlib

__all__ = ["KERNELS", "available_backends", "check_backend", "kernels"]

#: (kernel family, backend) -> module holding that family's functions for that backend.
KERNELS: dict[tuple[str, str], str] = {
    ("phi4", "cpu"): "latticeml.theories.phi4",
    ("u1", "cpu"): "latticeml.theories.u1",
    ("sun", "cpu"): "latticeml.theories.sun",
    ("sun_local", "cpu"): "latticeml.theories.sun_local",
    ("improved", "cpu"): "latticeml.theories.improved",
    ("smeared", "cpu"): "latticeml.smearing",
}

#: Backends that are planned but not installed here, with what the user must do to get them.
_REQUIREMENTS = {
    "cuda": "no CUDA kernels exist yet: `pip install latticeml[cuda]` plus the kernels of issue 12 will provide them",
}


def available_backends() -> tuple[str, ...]:
    """The backends with kernels in :data:`KERNELS`, e.g. ``("cpu",)``."""
    return tuple(dict.fromkeys(backend for _, backend in KERNELS))


def check_backend(backend) -> str:
    """``backend`` itself if it is available, else ValueError in one line saying what to choose."""
    if backend in available_backends():
        return backend
    choose = ", ".join(available_backends())
    if backend in _REQUIREMENTS:
        raise ValueError(f"backend {backend!r} is not available ({_REQUIREMENTS[backend]}); choose one of: {choose}")
    raise ValueError(f"backend {backend!r} is not available; choose one of: {choose}")


def kernels(family: str, backend: str = "cpu"):
    """The module of ``family``'s kernels on ``backend`` (imported on first use)."""
    check_backend(backend)
    try:
        path = KERNELS[(family, backend)]
    except KeyError:
        have = sorted(f for f, b in KERNELS if b == backend)
        raise ValueError(f"backend {backend!r} has no kernels for {family!r}; it has: {', '.join(have)}") from None
    return importlib.import_module(path)
