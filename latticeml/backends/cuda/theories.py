"""The theories of the CUDA backend: the cpu theories with their fields on the device.

``make_theory("su3", shape, beta=6.0, backend="cuda")`` (or ``SU3(shape, beta=6.0,
backend="cuda")``) builds :class:`CudaSU3`: :mod:`latticeml.backends` maps each cpu theory class
to its class here (:data:`latticeml.backends.THEORY_CLASSES`). A CUDA theory *is* its cpu theory
(a subclass: same name, couplings, parameters, starts, checks), with three differences:

* its kernels are the CUDA family modules (:mod:`latticeml.backends.cuda.u1`,
  :mod:`latticeml.backends.cuda.sun`): ``action``, ``force``, ``evolve`` and the plaquette run on the
  device, and field-valued results are :class:`~latticeml.backends.cuda.arrays.DeviceField`;
* ``random_momentum`` draws the momenta on the host from the same ``numpy.random.Generator``
  calls as the cpu theory and copies them to the device, and ``kinetic_energy`` sums on the
  device, so during an HMC trajectory links, momenta and forces never leave the device; the host
  sees two floats per trajectory (the actions and kinetic energies for accept/reject) and the
  field when it measures or writes a checkpoint. The same seed therefore gives the same chain as
  on the cpu, up to rounding;
* no local updates (Metropolis, heatbath, overrelaxation sweep in sublattice order: they stay on
  the cpu backend); samplers refuse them in one line.

Observables copy the links to the host once and measure there, except the plaquette and the
Polyakov loop, which run on the device.
"""

from __future__ import annotations

import numpy as np

from ...observables import loops, topology
from ...theories.sun import SU2, SU3, SUN
from ...theories.u1 import U1
from . import sun as _sun_kernels
from .arrays import DeviceField, to_device
from .device import MAXN

__all__ = ["CudaSU2", "CudaSU3", "CudaSUN", "CudaU1"]


class _OnDevice:
    """What every CUDA theory adds to its cpu class (module docstring)."""

    #: the backend this class implements (:func:`latticeml.backends.theory_class` returns it as it is)
    device_backend = "cuda"
    local_family = None
    local_updates = frozenset()

    def describe(self) -> str:
        return super().describe() + " on CUDA"

    def random_momentum(self, rng):
        return DeviceField(to_device(super().random_momentum(rng), self.field_dtype))

    def kinetic_energy(self, p) -> float:
        return float(self.kernels.kinetic_energy(p))


class CudaU1(_OnDevice, U1):
    """U(1), Wilson action, on CUDA (:class:`latticeml.theories.u1.U1`)."""

    def observables(self, field):
        host = np.asarray(field)
        obs = {"plaquette": float(self.kernels.mean_plaquette(field))}
        if all(L > 2 for L in self.shape):
            obs["wilson_loop_1x2"] = float(loops.wilson_loop(host, 1, 2))
            obs["wilson_loop_2x2"] = float(loops.wilson_loop(host, 2, 2))
        if self.dim == 2:
            Q = float(topology.topological_charge_u1(host))
            obs["topological_charge"] = Q
            obs["topological_susceptibility"] = Q * Q / self.volume
        return obs


class CudaSUN(_OnDevice, SUN):
    """SU(N), Wilson action, on CUDA, for N = 2, 3 (:class:`latticeml.theories.sun.SUN`)."""

    def __init__(self, shape, *, beta: float, N: int, backend: str = "cuda"):
        SUN.__init__(self, shape, beta=beta, N=N, backend=backend)  # not super(): SU2/SU3 fix N themselves
        if self.N > MAXN:
            raise ValueError(f"the CUDA kernels cover SU(2) and SU(3); SU({self.N}) runs on backend='cpu'")

    def observables(self, field):
        obs = {"plaquette": float(self.kernels.mean_plaquette(field, check=False))}
        obs["polyakov_loop"] = float(abs(_sun_kernels.polyakov_loop_mean(field)))
        if all(L > 2 for L in self.shape):
            obs["wilson_loop_2x2"] = float(loops.wilson_loop(np.asarray(field), 2, 2))
        return obs


class CudaSU2(CudaSUN, SU2):
    """SU(2), Wilson action, on CUDA (:class:`latticeml.theories.sun.SU2`)."""

    def __init__(self, shape, *, beta: float, backend: str = "cuda"):
        CudaSUN.__init__(self, shape, beta=beta, N=2, backend=backend)


class CudaSU3(CudaSUN, SU3):
    """SU(3), Wilson action, on CUDA (:class:`latticeml.theories.sun.SU3`)."""

    def __init__(self, shape, *, beta: float, backend: str = "cuda"):
        CudaSUN.__init__(self, shape, beta=beta, N=3, backend=backend)
