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

The ``cuda`` backend (:mod:`latticeml.backends.cuda`, ``pip install 'latticeml[cuda]'``) provides
``u1`` and ``sun`` (SU(2), SU(3)); its functions take NumPy arrays or fields already on the device
and return field-valued results as :class:`latticeml.backends.cuda.arrays.DeviceField` (``np.asarray``
copies one to the host), so that HMC keeps links, momenta and forces on the device. A backend may
also bring its own theory classes (:data:`THEORY_CLASSES`, :func:`theory_class`): the CUDA ones
draw momenta on the host and copy them over, and have no local updates. Whether a backend can run
here (a GPU, or Numba's CUDA simulator) is asked the first time it is chosen (``_PROBES``),
never at import.

Every function takes and returns NumPy arrays in the layouts of :mod:`latticeml.lattice` (the
field conventions of the design document), with the signature of the cpu module's function (the
cuda modules return field-valued results as device fields, see above).

Adding a backend
----------------
1. Write the kernel modules, e.g. ``latticeml/backends/cuda/sun.py`` with ``@cuda.jit`` kernels
   behind functions of the same names and signatures as the cpu module's.
2. Add one row per family to :data:`KERNELS`, ``("sun", "cuda"): "latticeml.backends.cuda.sun"``;
   if the backend needs hardware or a package that may be missing, a probe to ``_PROBES`` (a
   function returning None or the one-line reason), and if its theories differ from the cpu ones
   (the CUDA theories draw momenta on the host and copy them over), rows to :data:`THEORY_CLASSES`.
3. Run the kernel tests with the backend: the kernels must agree with the cpu ones to rounding
   (and under the CUDA simulator in CI). Families a backend does not provide are refused by
   :func:`kernels` with a message; a theory whose local-update family is missing on a backend
   simply has no local updates there.

No function elsewhere branches on the backend: ``make_theory("su3", shape, beta=6.0, backend="cuda")``
is all a user writes.
"""

from __future__ import annotations

import importlib

__all__ = ["KERNELS", "THEORY_CLASSES", "available_backends", "check_backend", "kernels", "theory_class"]

#: (kernel family, backend) -> module holding that family's functions for that backend.
KERNELS: dict[tuple[str, str], str] = {
    ("phi4", "cpu"): "latticeml.theories.phi4",
    ("u1", "cpu"): "latticeml.theories.u1",
    ("sun", "cpu"): "latticeml.theories.sun",
    ("sun_local", "cpu"): "latticeml.theories.sun_local",
    ("improved", "cpu"): "latticeml.theories.improved",
    ("smeared", "cpu"): "latticeml.smearing",
    ("u1", "cuda"): "latticeml.backends.cuda.u1",
    ("sun", "cuda"): "latticeml.backends.cuda.sun",
}

#: (cpu theory class, backend) -> "module:Class" of the class that runs it on that backend
#: (:func:`theory_class`); a theory without a row here is refused on that backend.
THEORY_CLASSES: dict[tuple[str, str], str] = {
    ("latticeml.theories.u1.U1", "cuda"): "latticeml.backends.cuda.theories:CudaU1",
    ("latticeml.theories.sun.SUN", "cuda"): "latticeml.backends.cuda.theories:CudaSUN",
    ("latticeml.theories.sun.SU2", "cuda"): "latticeml.backends.cuda.theories:CudaSU2",
    ("latticeml.theories.sun.SU3", "cuda"): "latticeml.backends.cuda.theories:CudaSU3",
}

#: backend -> "module:function" returning None if the backend can run here, else why not (one line).
_PROBES = {"cuda": "latticeml.backends.cuda:unavailable_reason"}


def available_backends() -> tuple[str, ...]:
    """The backends with kernels in :data:`KERNELS`, e.g. ``("cpu",)``."""
    return tuple(dict.fromkeys(backend for _, backend in KERNELS))


def _resolve(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def check_backend(backend) -> str:
    """``backend`` itself if it can run here, else ValueError in one line saying why and what to choose."""
    if backend not in available_backends():
        raise ValueError(f"backend {backend!r} is not available; choose one of: {', '.join(available_backends())}")
    if backend in _PROBES:
        reason = _resolve(_PROBES[backend])()
        if reason is not None:
            others = ", ".join(b for b in available_backends() if b != backend)
            raise ValueError(f"backend {backend!r} is not available ({reason}); choose one of: {others}")
    return backend


def theory_class(cls: type, backend: str) -> type:
    """The class that runs theory class ``cls`` on ``backend``: ``cls`` itself on the cpu, else its row of :data:`THEORY_CLASSES`.

    ``Theory.__new__`` (:mod:`latticeml.theories.base`) calls this, so ``make_theory(..., backend="cuda")``
    and ``SU3(shape, beta=6.0, backend="cuda")`` build the same object. A theory without a row is
    refused with one line naming the theories the backend runs.
    """
    if backend == "cpu" or getattr(cls, "device_backend", None) == backend:
        return cls
    check_backend(backend)
    path = THEORY_CLASSES.get((f"{cls.__module__}.{cls.__qualname__}", backend))
    if path is None:
        have = sorted({k.rsplit(".", 1)[1].lower() for k, b in THEORY_CLASSES if b == backend})
        raise ValueError(
            f"backend {backend!r} runs the theories {', '.join(have)} with the Wilson action, not {cls.__name__}; use backend='cpu'"
        )
    return _resolve(path)


def kernels(family: str, backend: str = "cpu"):
    """The module of ``family``'s kernels on ``backend`` (imported on first use)."""
    check_backend(backend)
    try:
        path = KERNELS[(family, backend)]
    except KeyError:
        have = sorted(f for f, b in KERNELS if b == backend)
        raise ValueError(f"backend {backend!r} has no kernels for {family!r}; it has: {', '.join(have)}") from None
    return importlib.import_module(path)
