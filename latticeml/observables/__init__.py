"""Observables: gauge-invariant loops, topological charge, scalar correlators.

* :mod:`.loops` — R x T Wilson loops for every plane, the plaquette, Polyakov loops and their correlator
  (U(1) angles or SU(N) matrices, one configuration, any D).
* :mod:`.topology` — 2D U(1) geometric/sin charge (batched), 4D SU(N) clover field strength and charge.
* :mod:`.correlators` — scalar-field ensembles ``(B, L0, ...)``: magnetisation, susceptibility,
  two-point and zero-momentum correlators, effective masses.
"""

from .correlators import (
    abs_magnetization,
    effective_mass,
    magnetization,
    susceptibility,
    two_point_function,
    zero_momentum_correlator,
)
from .loops import (
    planes,
    plaquette,
    polyakov_correlator,
    polyakov_loop,
    polyakov_loop_mean,
    wilson_line,
    wilson_loop,
    wilson_loop_field,
    wilson_loops,
)
from .topology import (
    clover_field_strength,
    topological_charge,
    topological_charge_density,
    topological_charge_density_u1,
    topological_charge_u1,
)

__all__ = [
    "planes",
    "wilson_line",
    "wilson_loop_field",
    "wilson_loops",
    "wilson_loop",
    "plaquette",
    "polyakov_loop",
    "polyakov_loop_mean",
    "polyakov_correlator",
    "topological_charge_density_u1",
    "topological_charge_u1",
    "clover_field_strength",
    "topological_charge_density",
    "topological_charge",
    "magnetization",
    "abs_magnetization",
    "susceptibility",
    "two_point_function",
    "zero_momentum_correlator",
    "effective_mass",
]
