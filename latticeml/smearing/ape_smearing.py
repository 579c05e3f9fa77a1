"""APE smearing: a weighted average of the link and its plaquette staples, projected back onto the group.

M. Albanese et al. (APE collaboration), "Glueball masses and string tension in lattice QCD",
PLB 192 (1987) 163.

Shapes: links as in :mod:`latticeml.smearing.paths` (SU(N) complex128 ``(D, *L, N, N)``, U(1)
angles ``(D, *L)``, ``batched=True`` adds ``(B, ...)``).

One step::

    U' = P_SU(N)[ (1 - alpha) U + alpha / (2 (D - 1)) C^(plaquette) ],

``C^(plaquette)`` the plaquette staple sum (:func:`latticeml.smearing.paths.staple_sums`, ``2 (D-1)``
staples per link) and ``P_SU(N)`` the projection of :func:`latticeml.groups.project_su` (maximise
``Re tr(W^+ M)`` over ``W`` in SU(N), by Cabibbo-Marinari subgroup sweeps). For U(1) the projection
is the phase of the sum. Unlike stout smearing (:mod:`latticeml.smearing.stout_smearing`) the projection is
not analytic, so APE has no backward pass here.
"""

from __future__ import annotations

import numpy as np

from .. import groups
from ..checks import check_count, finite_float
from .paths import link_matrices, staple_sums_flat

__all__ = ["ape"]

#: Cabibbo-Marinari sweeps of the SU(N) projection. A fixed number: stopping when the gain in
#: Re tr(W^+ M) drops below rounding leaves W converged only to ~1e-8 (the maximum is flat), which
#: would break gauge covariance at that level; 25 sweeps converge W to rounding.
APE_SWEEPS = 25


def ape(U, *, alpha: float, n_steps: int = 1, batched: bool = False) -> np.ndarray:
    """APE smearing, ``n_steps`` times: ``U' = P_SU(N)[(1 - alpha) U + alpha/(2(D-1)) C^(plaquette)]``.

    Albanese et al., PLB 192 (1987) 163. ``0 <= alpha <= 1`` (0.5 - 0.7 is typical). The SU(N)
    projection is :func:`latticeml.groups.project_su`; for U(1) the phase of the sum.
    """
    alpha = finite_float(alpha, "alpha")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"APE needs 0 <= alpha <= 1, got {alpha}")
    n_steps = check_count(n_steps, "n_steps")
    links = link_matrices(U, batched=batched)
    D = len(links.shape)
    flat = links.flat
    for _ in range(n_steps):
        C = staple_sums_flat(flat, links.shape, ("plaquette",), np.ones(1))
        M = (1.0 - alpha) * flat + (alpha / (2.0 * (D - 1))) * C
        if links.u1:
            flat = np.exp(1j * np.angle(M))
        else:
            flat = np.ascontiguousarray(groups.project_su(M, max_sweeps=APE_SWEEPS, tol=-np.inf))
    return links.restore_links(flat)
