"""The CUDA backend: Numba ``@cuda.jit`` kernels behind the API of the cpu kernels.

``make_theory("su3", (16, 16, 16, 16), beta=6.0, backend="cuda")`` is all a user writes; this
package is imported only then (``import latticeml`` and every cpu theory import no CUDA code).

Modules
-------
``_shim``      the one import of ``numba.cuda`` (the maintained ``numba-cuda`` package), the launch
               geometry and the check that a GPU or the simulator is there (:func:`unavailable_reason`).
``device``     ``@cuda.jit(device=True)`` functions every kernel shares: link and neighbour index
               arithmetic, small colour-matrix routines, the exponential of su(N), re-unitarisation,
               the staple sum and the plaquette of one site.
``arrays``     :class:`~latticeml.backends.cuda.arrays.DeviceField`, a field that lives on the device
               (``np.asarray`` copies it to the host) with the arithmetic HMC's integrators use,
               the elementwise and reduction kernels, neighbour tables kept on the device.
``u1``         kernel family ``u1`` (angles ``(D, *shape)``, any D >= 2).
``sun``        kernel family ``sun`` (SU(2), SU(3) matrices ``(D, *shape, N, N)``, any D >= 2), the
               gradient flow and stout smearing (also for U(1), as 1 x 1 phases), Polyakov loops and
               the clover topological charge density.
``theories``   the theory classes of the backend (:class:`CudaU1`, :class:`CudaSUN`, ...): the cpu
               theories with momenta copied to the device, the kinetic energy on the device and
               no local updates.

Conventions: float64 / complex128 only, one thread per site or per link, links flattened to
``(D, V)`` (U(1)) or ``(D, V, N, N)`` (SU(N)) with the neighbour tables of :mod:`latticeml.lattice`,
exactly as the cpu kernels see them. Tests run every kernel under Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``, set before ``numba.cuda`` is first imported) against its cpu twin.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache

__all__ = ["device_description", "unavailable_reason"]


@lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """None if the CUDA kernels can run here (a GPU, or the simulator), else why not, in one line.

    Imports ``numba.cuda`` (only the CUDA backend calls this). The answer is cached: whether a GPU
    is there does not change while Python runs, and ``NUMBA_ENABLE_CUDASIM`` is read by Numba
    once, when ``numba.cuda`` is first imported.
    """
    if importlib.util.find_spec("numba_cuda") is None:
        return "the numba-cuda package is not installed: pip install 'latticeml[cuda]'"
    try:
        from numba import cuda
        from numba.cuda.core import config
    except Exception as exc:  # noqa: BLE001  (missing CUDA bindings and the like: say what Numba says)
        return f"numba.cuda cannot be imported ({_first_line(exc)})"
    wanted = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"
    if wanted and not config.ENABLE_CUDASIM:
        return "NUMBA_ENABLE_CUDASIM=1 was set after numba.cuda was imported; set it before starting Python"
    try:
        if cuda.is_available():
            return None
    except Exception as exc:  # noqa: BLE001  (a broken driver raises all sorts of errors)
        return f"the CUDA driver failed ({_first_line(exc)})"
    return "no CUDA GPU or driver found; for the CPU simulator of the kernels (slow, for tests) set NUMBA_ENABLE_CUDASIM=1 before starting Python"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def device_description() -> str:
    """The device the kernels run on, e.g. ``"NVIDIA H100 (compute capability 9.0)"`` or ``"CUDA simulator"``."""
    reason = unavailable_reason()
    if reason is not None:
        return f"not available ({reason})"
    from numba.cuda.core import config

    if config.ENABLE_CUDASIM:
        return "CUDA simulator (NUMBA_ENABLE_CUDASIM=1: the kernels run as Python on the CPU)"
    from numba import cuda

    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else dev.name
    return f"{name} (compute capability {dev.compute_capability[0]}.{dev.compute_capability[1]})"


# ----------------------------------------------------------------------------- compiling without running

_COMPILE_ONLY = [False]


def _compile_only() -> bool:
    """True while :func:`compile_kernels` imports the kernel modules on a machine without a GPU."""
    return _COMPILE_ONLY[0]


def _signatures():
    """(module, kernel name, argument types) of every kernel, in the dtypes and layouts the wrappers launch them with."""
    from numba import types

    f8, c16, i8, b1 = types.float64, types.complex128, types.int64, types.boolean

    def arr(dtype, ndim):
        return types.Array(dtype, ndim, "C")

    f1, f2, c1, c3, c4, i1, i2 = arr(f8, 1), arr(f8, 2), arr(c16, 1), arr(c16, 3), arr(c16, 4), arr(i8, 1), arr(i8, 2)
    return [
        ("arrays", "_axpby_kernel", (f8, f1, f8, f1, f1)),
        ("arrays", "_axpby_kernel", (f8, c1, f8, c1, c1)),
        ("arrays", "_abs2_kernel", (f1, f1)),
        ("arrays", "_abs2_kernel", (c1, f1)),
        ("arrays", "_block_sums_kernel", (f1, f1)),
        ("u1", "_plaquette_kernel", (f2, i2, i2, b1, f2, f1)),
        ("u1", "_staples_kernel", (f2, i2, i2, f8, b1, f2, arr(c16, 2))),
        ("u1", "_drift_kernel", (f1, f1, f8, f1)),
        ("u1", "_polyakov_kernel", (f2, i2, i1, i8, i8, c1)),
        ("u1", "_phases_kernel", (f1, c3)),
        ("u1", "_angles_kernel", (c3, f1)),
        ("sun", "_plaquette_kernel", (c4, i2, i2, b1, f2, f1)),
        ("sun", "_staples_kernel", (c4, i2, i2, f8, b1, c4)),
        ("sun", "_exp_mul_kernel", (c3, f8, c3, b1, c3)),
        ("sun", "_polyakov_kernel", (c4, i2, i1, i8, i8, c1)),
        ("sun", "_clover_kernel", (c4, i2, i2, i2, c4)),
        ("sun", "_charge_density_kernel", (c4, f1)),
    ]


def compile_kernels(cc: tuple[int, int] | None = None) -> list[tuple[str, str | None]]:
    """Compile every CUDA kernel to PTX for compute capability ``cc`` (default: the GPU's, else 8.0).

    Returns ``[(kernel, None or the error's first line), ...]``. Needs Numba's CUDA compiler
    (NVVM, from the ``cuda`` extra's toolkit wheels) but no GPU, so a machine without one can
    check that the kernels the simulator tests also compile for a real device. Not under the
    simulator (which compiles nothing).
    """
    import importlib
    from types import SimpleNamespace

    _COMPILE_ONLY[0] = True
    from numba import cuda
    from numba.cuda import dispatcher

    have_device = unavailable_reason() is None
    if cc is None:
        cc = cuda.get_current_device().compute_capability if have_device else (8, 0)
    real_device = dispatcher.get_current_device
    if not have_device:
        # Numba asks the current device for its compute capability when it compiles a device
        # function; without a GPU, answer with the target's (nothing else of the device is used)
        dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=tuple(cc))
    try:
        results = []
        for module, name, sig in _signatures():
            fn = getattr(importlib.import_module(f"{__name__}.{module}"), name)
            label = f"{module}.{name}({', '.join(map(str, sig))})"
            try:
                cuda.compile_ptx(fn.py_func, sig, cc=tuple(cc))
                results.append((label, None))
            except Exception as exc:  # noqa: BLE001  (report every kernel, not only the first failure)
                results.append((label, _first_line(exc)))
        return results
    finally:
        _COMPILE_ONLY[0] = False
        dispatcher.get_current_device = real_device
