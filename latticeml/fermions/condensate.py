"""The chiral condensate ``(1/V) Re tr M^-1`` of staggered fermions from stochastic noise.

Convention: ``<psibar psi> = (1/V) Re tr M^-1``, the trace over sites *and colour* (not divided
by N, nor by the number of tastes), with ``M = m + D`` of :mod:`latticeml.fermions.staggered`;
this is the normalisation of Nagai and Tomiya (arXiv:2103.11965). Free field:
``(N/V) sum_p m / (m^2 + sum_mu sin^2 p_mu)`` (:func:`latticeml.fermions.staggered.free_field_sums`).

Estimator
---------
Because ``D`` only connects the two parities, ``tr M^-1 = tr (m - D)(m^2 - D^2)^-1 = m tr (m^2 - D^2)^-1``
(the ``D`` term is off-diagonal in parity, so traceless), and the even and odd blocks of
``(m^2 - D^2)^-1`` have the same trace (``tr f(AB) = tr f(BA)`` for ``A = D_eo``, ``B = D_oe``).
Hence ``(1/V) tr M^-1 = (2 m / V) tr_e (m^2 - D_eo D_oe)^-1``, real, estimated with noise vectors
``xi`` on the even sites whose entries are independent with ``<xi_i^* xi_j> = delta_ij``
(Z2: ``+-1``; Z4: ``+-1, +-i``; S. J. Dong, K. F. Liu, PLB 328 (1994) 130): each noise gives
``(2m/V) xi^dagger (m^2 - D_eo D_oe)^-1 xi``, an unbiased estimate whose variance comes only from
the off-diagonal elements. :func:`chiral_condensate` returns the mean over ``n_noise`` vectors and
its standard error (the noise error of one configuration; the ensemble error is the Gamma-method
error of the per-configuration values, which already contains it).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..checks import check_count, check_rng, positive_float
from .cg import DEFAULT_TOL, solve_normal
from .staggered import StaggeredLinks

__all__ = ["Condensate", "chiral_condensate", "noise_vector"]

NOISES = ("z2", "z4")


class Condensate(NamedTuple):
    """value: ``(1/V) Re tr M^-1`` (mean over the noise vectors); error: its noise standard error
    (0 for one vector); samples: the per-vector estimates; iterations: CG iterations per solve."""

    value: float
    error: float
    samples: np.ndarray
    iterations: float


def noise_vector(rng, shape, noise: str = "z2") -> np.ndarray:
    """A complex128 array of ``shape`` with Z2 (``+-1``) or Z4 (``+-1, +-i``) entries, uniform and independent."""
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {', '.join(NOISES)}, got {noise!r}")
    if noise == "z2":
        return (1.0 - 2.0 * rng.integers(0, 2, size=shape)).astype(np.complex128)
    return (1j ** rng.integers(0, 4, size=shape)).astype(np.complex128)


def chiral_condensate(links: StaggeredLinks, mass: float, rng, *, n_noise: int = 4, noise: str = "z2", tol: float = DEFAULT_TOL) -> Condensate:
    """``(1/V) Re tr M^-1`` from ``n_noise`` Z2/Z4 noise vectors on the even sites (module docstring)."""
    check_rng(rng)
    mass = positive_float(mass, "mass")
    n_noise = check_count(n_noise, "n_noise", minimum=1)
    V = len(links.all_sites)
    samples = np.empty(n_noise)
    iters = 0
    for i in range(n_noise):
        xi = np.zeros((V, links.N), dtype=np.complex128)
        xi[links.even] = noise_vector(rng, (len(links.even), links.N), noise)
        xi = xi.reshape(links.shape + (links.N,))
        res = solve_normal(links, xi, mass, sites="even", tol=tol)
        iters += res.iterations
        samples[i] = 2.0 * mass * np.vdot(xi, res.x).real / V
    err = float(samples.std(ddof=1) / np.sqrt(n_noise)) if n_noise > 1 else 0.0
    return Condensate(float(samples.mean()), err, samples, iters / n_noise)
