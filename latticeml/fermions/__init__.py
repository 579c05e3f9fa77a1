"""Dynamical staggered fermions: the operator, conjugate gradient, pseudofermions, the condensate.

* :mod:`latticeml.fermions.staggered` -- ``M = m + D`` for U(1) and SU(N) links in any even D
  (antiperiodic in time = lattice axis 0), Numba kernels for ``D``, ``D^dagger`` and the even-odd
  blocks, the free-field momentum sums;
* :mod:`latticeml.fermions.cg` -- conjugate gradient for ``M^dagger M`` (full or even-odd Schur
  block) with a relative-residual stop and the iteration count;
* :mod:`latticeml.fermions.pseudofermion` -- :class:`StaggeredFermions`, a gauge theory times
  ``det(M)^k`` sampled by HMC through the auxiliary-field hook (pseudofermion heatbath, action,
  force), and :func:`two_time_scale` (gauge force on the fine scale);
* :mod:`latticeml.fermions.condensate` -- ``(1/V) Re tr M^-1`` from Z2/Z4 noise.
"""

from .cg import CGResult, solve_normal
from .condensate import Condensate, chiral_condensate, noise_vector
from .pseudofermion import StaggeredFermions, pseudofermion_kinds, two_time_scale
from .staggered import (
    StaggeredLinks, apply_D, apply_D_dagger, apply_M, apply_M_dagger, apply_normal, apply_schur_even, epsilon,
    free_field_sums, free_momenta, link_matrices, prepare, staggered_phases,
)

__all__ = [
    "CGResult", "solve_normal", "Condensate", "chiral_condensate", "noise_vector", "StaggeredFermions",
    "pseudofermion_kinds", "two_time_scale", "StaggeredLinks", "apply_D", "apply_D_dagger", "apply_M",
    "apply_M_dagger", "apply_normal", "apply_schur_even", "epsilon", "free_field_sums", "free_momenta",
    "link_matrices", "prepare", "staggered_phases",
]
