"""The staggered (Kogut-Susskind) Dirac operator for U(1) and SU(N) links in any even dimension.

Operator
--------
J. Kogut, L. Susskind, PRD 11 (1975) 395; in this form e.g. Gattringer and Lang, "Quantum
Chromodynamics on the Lattice" (Springer 2010), section 5.2::

    M = m + D,
    (D psi)(x) = 1/2 sum_mu eta_mu(x) [ U_mu(x) psi(x + mu) - U_mu(x - mu)^dagger psi(x - mu) ],
    eta_mu(x)  = (-1)^(x_0 + ... + x_{mu-1})          (eta_0 = 1),

periodic in space and *antiperiodic in time*, the library's time axis being lattice axis 0. The
boundary sign is folded into the phases: :func:`staggered_phases` returns ``eta_mu(x)`` times
``-1`` on the time links that cross the boundary (``mu = 0``, ``x_0 = L_0 - 1``); both the forward
hop across such a link and the backward hop back over it carry it.

Properties the tests check: ``D`` is anti-Hermitian for any links (``D^dagger = -D``, so the
kernel for ``D^dagger`` is the same kernel with the sign flipped); ``epsilon(x) = (-1)^(sum x)``
anticommutes with ``D`` (D only connects even and odd sites), so the spectrum of ``D`` is
``+- i lambda`` and ``det M = prod (m^2 + lambda^2)`` over the pairs is real and positive for
``m > 0``; ``M^dagger M = m^2 - D^2`` is block diagonal in parity, with the even block
``m^2 - D_eo D_oe`` (the Schur form of the even-odd preconditioning) and
``det(m^2 - D_eo D_oe) = det M``. Gauge covariance: with ``U_mu(x) -> Omega(x) U_mu(x)
Omega(x + mu)^dagger`` and ``psi -> Omega psi``, ``D psi -> Omega D psi``; ``det M`` and
``tr M^-1`` are gauge invariant.

Free field (all links 1): ``D^2 = sum_mu nabla_mu^2`` (the eta's cross terms cancel), so ``-D^2``
is diagonal in momentum space with eigenvalues ``sum_mu sin^2 p_mu`` over the V momenta
``p_mu = 2 pi n_mu / L_mu`` (``+ pi / L_0`` in time: antiperiodic) and the eigenvalues of ``M``
are ``m +- i sqrt(sum_mu sin^2 p_mu)``: ``2^D`` corners of the Brillouin zone give the doublers,
which staggering turns into ``2^(D/2)`` tastes (4 in 4D, 2 in 2D). Hence (:func:`free_field_sums`)::

    (1/V) tr M^-1 = (N_c / V) sum_p m / (m^2 + sum_mu sin^2 p_mu),
    ln det M      = (N_c / 2) sum_p ln(m^2 + sum_mu sin^2 p_mu).

Layouts
-------
* Fermion fields: complex128 ``(L0, ..., L{D-1}, N)`` (U(1): ``N = 1``); inside the kernels
  ``(V, N)`` with the sites in C order (:mod:`latticeml.lattice`).
* Links: the gauge field of the theory (U(1) angles ``(D, *L)``, SU(N) ``(D, *L, N, N)``);
  :func:`link_matrices` turns either into complex128 ``(D, V, N, N)`` (U(1): ``exp(i theta)``
  as 1 x 1 matrices), the one layout every kernel here takes.
* Even-odd blocks: ``sites`` arrays of flat site indices (:func:`latticeml.lattice.checkerboard_sites`);
  the hopping kernel writes only the listed output sites, so ``D_eo`` is ``D`` evaluated on the
  even sites of a field that lives on the odd ones, and costs half of ``D``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from numba import njit

from ..lattice import check_shape, checkerboard_sites, coordinates, neighbour_table

__all__ = [
    "staggered_phases",
    "epsilon",
    "link_matrices",
    "StaggeredLinks",
    "prepare",
    "prepare_matrices",
    "apply_D",
    "apply_D_dagger",
    "apply_M",
    "apply_M_dagger",
    "apply_normal",
    "apply_schur_even",
    "hop_into",
    "normal_into",
    "free_momenta",
    "free_field_sums",
]


# ----------------------------------------------------------------------------- geometry


def _check_even_lattice(shape) -> tuple[int, ...]:
    shape = check_shape(shape)
    if any(L % 2 for L in shape):
        raise ValueError(f"staggered fermions need even extents in every direction (the phases and the even-odd split), got {shape}")
    return shape


@lru_cache(maxsize=32)
def _phases(shape: tuple[int, ...]) -> np.ndarray:
    x = coordinates(shape)  # (V, D)
    D = len(shape)
    eta = np.empty((D, len(x)))
    for mu in range(D):
        eta[mu] = 1.0 - 2.0 * (x[:, :mu].sum(axis=1) % 2)
    eta[0, x[:, 0] == shape[0] - 1] *= -1.0  # antiperiodic in time: the links across the boundary
    eta.setflags(write=False)
    return eta


def staggered_phases(shape) -> np.ndarray:
    """``eta_mu(x)`` with the antiperiodic time boundary folded in: float64 ``(D, V)``, read-only, cached.

    ``eta_mu(x) = (-1)^(x_0 + ... + x_{mu-1})``, times -1 for ``mu = 0`` on the last time slice.
    """
    return _phases(_check_even_lattice(shape))


def epsilon(shape) -> np.ndarray:
    """``epsilon(x) = (-1)^(x_0 + ... + x_{D-1})``, float64 of the lattice shape: anticommutes with D."""
    shape = _check_even_lattice(shape)
    return (1.0 - 2.0 * (coordinates(shape).sum(axis=1) % 2)).reshape(shape)


def link_matrices(field, group: str) -> np.ndarray:
    """Links as complex128 ``(D, V, N, N)`` C-contiguous: ``exp(i theta)`` (1 x 1) for ``"u1"``, a view for ``"su"``."""
    field = np.asarray(field)
    D = field.shape[0]
    if group == "u1":
        if field.dtype != np.float64:
            raise ValueError(f"U(1) links must be float64 angles (D, L0, ...), got {field.dtype}")
        return np.exp(1j * field).reshape(D, -1, 1, 1)
    if group == "su":
        if field.dtype != np.complex128:
            raise ValueError(f"SU(N) links must be complex128 (D, L0, ..., N, N), got {field.dtype}")
        N = field.shape[-1]
        return np.ascontiguousarray(field).reshape(D, -1, N, N)
    raise ValueError(f"group must be 'u1' or 'su', got {group!r}")


class StaggeredLinks(NamedTuple):
    """Everything the kernels need for one gauge field: built once per field by :func:`prepare`.

    U:      complex128 ``(D, V, N, N)`` links (:func:`link_matrices`).
    phases: float64 ``(D, V)``, :func:`staggered_phases`.
    fwd, bwd: int64 ``(V, D)`` neighbour tables.
    all_sites, even, odd: int64 flat site indices.
    shape:  the lattice shape; N the colour count.
    """

    U: np.ndarray
    phases: np.ndarray
    fwd: np.ndarray
    bwd: np.ndarray
    all_sites: np.ndarray
    even: np.ndarray
    odd: np.ndarray
    shape: tuple
    N: int


@lru_cache(maxsize=32)
def _all_sites(V: int) -> np.ndarray:
    s = np.arange(V, dtype=np.int64)
    s.setflags(write=False)
    return s


def prepare(field, group: str) -> StaggeredLinks:
    """:class:`StaggeredLinks` of a U(1) (``group="u1"``) or SU(N) (``group="su"``) gauge field."""
    field = np.asarray(field)
    shape = tuple(field.shape[1 : 1 + field.shape[0]])
    return prepare_matrices(link_matrices(field, group), shape)


def prepare_matrices(U, shape) -> StaggeredLinks:
    """:class:`StaggeredLinks` of link matrices already in kernel form, complex128 ``(D, V, N, N)``."""
    shape = _check_even_lattice(shape)
    U = np.ascontiguousarray(U, dtype=np.complex128)
    fwd, bwd = neighbour_table(shape)
    even, odd = checkerboard_sites(shape)
    return StaggeredLinks(U, staggered_phases(shape), fwd, bwd, _all_sites(U.shape[1]), even, odd, shape, U.shape[-1])


# ----------------------------------------------------------------------------- kernels


@njit(cache=True)
def hop_into(U, phases, fwd, bwd, psi, sites, scale, out):
    """``out[x] = scale * (D psi)(x)`` for the flat sites ``x`` in ``sites``; other sites of ``out`` untouched.

    U (D, V, N, N) complex128, phases (D, V) float64, psi and out (V, N) complex128 (not aliased).
    ``scale = -1`` gives ``D^dagger psi``; ``sites`` = even (odd) sites of an odd (even) ``psi`` is
    the block ``D_eo`` (``D_oe``). Cost: ``2 D`` colour matrix-vector products per site.
    """
    D = U.shape[0]
    N = U.shape[2]
    for k in range(sites.shape[0]):
        s = sites[k]
        for a in range(N):
            out[s, a] = 0.0
        for mu in range(D):
            f = fwd[s, mu]
            b = bwd[s, mu]
            cf = 0.5 * scale * phases[mu, s]
            cb = 0.5 * scale * phases[mu, b]
            for a in range(N):
                acc = 0.0j
                for c in range(N):
                    # U_mu(x) psi(x+mu) - U_mu(x-mu)^dagger psi(x-mu)
                    acc += cf * U[mu, s, a, c] * psi[f, c] - cb * np.conj(U[mu, b, c, a]) * psi[b, c]
                out[s, a] += acc


@njit(cache=True)
def normal_into(U, phases, fwd, bwd, mass2, psi, mid_sites, out_sites, tmp, out):
    """``out = (m^2 - D D) psi`` on ``out_sites``, with ``tmp = D psi`` computed on ``mid_sites``.

    Full lattice: ``mid_sites = out_sites = all`` gives ``M^dagger M psi``; ``mid_sites = odd``,
    ``out_sites = even`` with an even ``psi`` gives the Schur block ``(m^2 - D_eo D_oe) psi_e``
    at half the cost. Sites outside ``out_sites`` are left untouched.
    """
    hop_into(U, phases, fwd, bwd, psi, mid_sites, 1.0, tmp)
    hop_into(U, phases, fwd, bwd, tmp, out_sites, -1.0, out)
    N = psi.shape[1]
    for k in range(out_sites.shape[0]):
        s = out_sites[k]
        for a in range(N):
            out[s, a] += mass2 * psi[s, a]


# ----------------------------------------------------------------------------- public operators


def _vector(links: StaggeredLinks, psi) -> np.ndarray:
    psi = np.asarray(psi)
    want = links.shape + (links.N,)
    if psi.shape != want:
        raise ValueError(f"a staggered fermion field on this lattice has shape {want} (sites, colour), got {psi.shape}")
    return np.ascontiguousarray(psi, dtype=np.complex128).reshape(-1, links.N)


def _hop(links, psi, sites, scale):
    v = _vector(links, psi)
    out = np.zeros_like(v)
    hop_into(links.U, links.phases, links.fwd, links.bwd, v, links.all_sites if sites is None else sites, scale, out)
    return out.reshape(links.shape + (links.N,))


def apply_D(links: StaggeredLinks, psi, *, sites=None) -> np.ndarray:
    """``D psi`` (a new field); with ``sites`` (e.g. ``links.even``) only those output sites, zero elsewhere."""
    return _hop(links, psi, sites, 1.0)


def apply_D_dagger(links: StaggeredLinks, psi, *, sites=None) -> np.ndarray:
    """``D^dagger psi = -D psi`` (D is anti-Hermitian)."""
    return _hop(links, psi, sites, -1.0)


def apply_M(links: StaggeredLinks, psi, mass: float) -> np.ndarray:
    """``M psi = m psi + D psi``."""
    return mass * np.asarray(psi) + apply_D(links, psi)


def apply_M_dagger(links: StaggeredLinks, psi, mass: float) -> np.ndarray:
    """``M^dagger psi = m psi - D psi``."""
    return mass * np.asarray(psi) - apply_D(links, psi)


def _normal(links, psi, mass, mid, out_sites):
    v = _vector(links, psi)
    tmp = np.zeros_like(v)
    out = np.zeros_like(v)
    normal_into(links.U, links.phases, links.fwd, links.bwd, float(mass) ** 2, v, mid, out_sites, tmp, out)
    return out.reshape(links.shape + (links.N,))


def apply_normal(links: StaggeredLinks, psi, mass: float) -> np.ndarray:
    """``M^dagger M psi = (m^2 - D^2) psi`` on the whole lattice."""
    return _normal(links, psi, mass, links.all_sites, links.all_sites)


def apply_schur_even(links: StaggeredLinks, psi, mass: float) -> np.ndarray:
    """``(m^2 - D_eo D_oe) psi_e`` for a field ``psi`` on the even sites (its odd sites are ignored; zero there)."""
    v = _vector(links, psi).copy()
    v[links.odd] = 0.0
    return _normal(links, v.reshape(links.shape + (links.N,)), mass, links.odd, links.even)


# ----------------------------------------------------------------------------- free field


def free_momenta(shape) -> np.ndarray:
    """``sum_mu sin^2 p_mu`` for the V momenta of the lattice (antiperiodic in time), float64 ``(V,)``."""
    shape = _check_even_lattice(shape)
    grids = [2 * np.pi * (np.arange(L) + (0.5 if mu == 0 else 0.0)) / L for mu, L in enumerate(shape)]
    mesh = np.meshgrid(*grids, indexing="ij")
    return sum(np.sin(p) ** 2 for p in mesh).ravel()


def free_field_sums(shape, mass: float, N: int = 1) -> tuple[float, float]:
    """Unit links: ``((1/V) tr M^-1, ln det M)`` from the momentum sums of the module docstring."""
    s2 = free_momenta(shape)
    m = float(mass)
    return float(N * np.sum(m / (m * m + s2)) / len(s2)), float(0.5 * N * np.sum(np.log(m * m + s2)))
