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
* Hopping terms (what the ``D`` kernels read; built once per gauge field by :func:`prepare`): the
  ``2 D`` terms of ``(D psi)(x)`` stored by output site, complex128 ``hops`` ``(V, 2 D, N, N)``
  and int64 ``neighbours`` ``(V, 2 D)``::

      hops[x, mu]     =  1/2 eta_mu(x)      U_mu(x),             neighbours[x, mu]     = x + mu,
      hops[x, D + mu] = -1/2 eta_mu(x - mu) U_mu(x - mu)^dagger, neighbours[x, D + mu] = x - mu,
      (D psi)(x)      = sum_{j < 2 D} hops[x, j] psi(neighbours[x, j]).

  Every link is stored twice (the forward term at ``x``, the adjoint at ``x + mu``), the phases and
  the 1/2 folded in: the kernel streams ``hops`` in site order (one read of contiguous memory per
  output site, no phase gather, no conjugation) instead of gathering ``U_mu(x - mu)`` from D
  separate arrays. Production codes do the same (MILC keeps the adjoint backward links of its
  staggered operator next to the forward ones: ``load_fn_backlinks`` in
  ``generic_ks/fermion_links_fn_load_milc.c``). It costs twice the link memory (SU(3) 16^4: 75 MB
  against 38 MB); ``benchmarks/bench_fermions.py`` measures it against the gather form.
* Even-odd blocks: ``sites`` arrays of flat site indices (:func:`latticeml.lattice.checkerboard_sites`);
  the hopping kernel writes only the listed output sites, so ``D_eo`` is ``D`` evaluated on the
  even sites of a field that lives on the odd ones, and costs half of ``D``.
* Threads: the Python-level operators (:func:`apply_D`, :func:`apply_normal`, ...) cut the output
  sites into chunks on :func:`latticeml._threads.run_chunks` from ``PARALLEL_MIN["staggered"]`` colour
  multiply-adds up (:data:`latticeml._threads.PARALLEL_MIN`) (every output site is written by one chunk only, in the same order: results do
  not depend on the threads); the jitted :func:`hop_into` / :func:`normal_into` (what the CG runs)
  are serial.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from numba import njit

from .._threads import run_chunks
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

    U:      complex128 ``(D, V, N, N)`` links (:func:`link_matrices`): what the force kernels read.
    phases: float64 ``(D, V)``, :func:`staggered_phases`.
    fwd, bwd: int64 ``(V, D)`` neighbour tables.
    all_sites, even, odd: int64 flat site indices.
    shape:  the lattice shape; N the colour count.
    hops:   complex128 ``(V, 2 D, N, N)``, the hopping terms by output site (module docstring).
    neighbours: int64 ``(V, 2 D)``, the site each hopping term reads (``fwd`` then ``bwd``).
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
    hops: np.ndarray
    neighbours: np.ndarray


@lru_cache(maxsize=32)
def _all_sites(V: int) -> np.ndarray:
    s = np.arange(V, dtype=np.int64)
    s.setflags(write=False)
    return s


@lru_cache(maxsize=32)
def _neighbours(shape: tuple[int, ...]) -> np.ndarray:
    fwd, bwd = neighbour_table(shape)
    nb = np.ascontiguousarray(np.concatenate([fwd, bwd], axis=1))
    nb.setflags(write=False)
    return nb


@njit(cache=True)
def _hops_into(U, phases, bwd, hops):
    """``hops`` (V, 2 D, N, N) of the links U (D, V, N, N): the layout of the module docstring."""
    D, V, N, _ = U.shape
    for s in range(V):
        for mu in range(D):
            b = bwd[s, mu]
            cf = 0.5 * phases[mu, s]
            cb = -0.5 * phases[mu, b]
            for a in range(N):
                for c in range(N):
                    hops[s, mu, a, c] = cf * U[mu, s, a, c]
                    hops[s, D + mu, a, c] = cb * np.conj(U[mu, b, c, a])


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
    phases = staggered_phases(shape)
    D, V, N, _ = U.shape
    hops = np.empty((V, 2 * D, N, N), dtype=np.complex128)
    _hops_into(U, phases, bwd, hops)
    return StaggeredLinks(U, phases, fwd, bwd, _all_sites(V), even, odd, shape, N, hops, _neighbours(shape))


# ----------------------------------------------------------------------------- kernels




@njit(inline="always", cache=True)
def _hop_rows(hops, nb, psi, sites, scale, out, start, stop, N):
    """``out[x] = scale sum_j hops[x, j] psi[nb[x, j]]`` for ``x = sites[start:stop]``; any N.

    Inlined into :func:`_hop_chunk`, with ``N`` the literal 1 for U(1) (LLVM then drops the colour
    loops: 1.5x faster than with N read from the shape) and ``hops.shape[2]`` otherwise.
    Written on ``.real``/``.imag`` with the phases and adjoints already in ``hops``: the kernel
    before issue 16 computed ``cf * U * psi - cb * conj(U') * psi'`` with real ``cf``, ``cb``
    promoted to complex (four complex products per colour term where one is needed).
    """
    K = hops.shape[1]
    for k in range(start, stop):
        s = sites[k]
        for a in range(N):
            re = 0.0
            im = 0.0
            for j in range(K):
                y = nb[s, j]
                for c in range(N):
                    u = hops[s, j, a, c]
                    p = psi[y, c]
                    re += u.real * p.real - u.imag * p.imag
                    im += u.real * p.imag + u.imag * p.real
            out[s, a] = complex(scale * re, scale * im)


@njit(inline="always", cache=True)
def _mul3(w, a, p0, p1, p2):
    """Row ``a`` of the 3 x 3 matrix ``w`` times ``(p0, p1, p2)``: (real, imaginary)."""
    u0 = w[a, 0]
    u1 = w[a, 1]
    u2 = w[a, 2]
    re = (u0.real * p0.real - u0.imag * p0.imag) + (u1.real * p1.real - u1.imag * p1.imag) + (u2.real * p2.real - u2.imag * p2.imag)
    im = (u0.real * p0.imag + u0.imag * p0.real) + (u1.real * p1.imag + u1.imag * p1.real) + (u2.real * p2.imag + u2.imag * p2.real)
    return re, im


@njit(inline="always", cache=True)
def _hop_rows3(hops, nb, psi, sites, scale, out, start, stop):
    """:func:`_hop_rows` written out for N = 3 (SU(3)): each neighbour's colour vector is loaded
    once into registers and the three rows accumulate in six independent sums (the generic loop
    with N = 3 reloads psi per row and chains every product through one sum: 13-28% slower)."""
    K = hops.shape[1]
    for k in range(start, stop):
        s = sites[k]
        r0 = 0.0
        i0 = 0.0
        r1 = 0.0
        i1 = 0.0
        r2 = 0.0
        i2 = 0.0
        for j in range(K):
            y = nb[s, j]
            p0 = psi[y, 0]
            p1 = psi[y, 1]
            p2 = psi[y, 2]
            w = hops[s, j]
            re, im = _mul3(w, 0, p0, p1, p2)
            r0 += re
            i0 += im
            re, im = _mul3(w, 1, p0, p1, p2)
            r1 += re
            i1 += im
            re, im = _mul3(w, 2, p0, p1, p2)
            r2 += re
            i2 += im
        out[s, 0] = complex(scale * r0, scale * i0)
        out[s, 1] = complex(scale * r1, scale * i1)
        out[s, 2] = complex(scale * r2, scale * i2)


@njit(nogil=True, cache=True)
def _hop_chunk(hops, nb, psi, sites, scale, out, start, stop):
    """:func:`hop_into` for the output sites ``sites[start:stop]``: the chunk kernel of :func:`run_chunks`."""
    N = hops.shape[2]
    # SU(3) written out, U(1) with N a compile-time constant, any other N (SU(2): 10% slower than
    # with its own branch) through the loops. Each branch is a body to compile, and each caller
    # (hop_into, normal_into, the CG) re-optimises them: the first fermion run of a fresh cache
    # compiles in ~4.7 s with these three (3.0 s before issue 16; ~6.7 s with an N = 2 branch too).
    if N == 3:
        _hop_rows3(hops, nb, psi, sites, scale, out, start, stop)
    elif N == 1:
        _hop_rows(hops, nb, psi, sites, scale, out, start, stop, 1)
    else:
        _hop_rows(hops, nb, psi, sites, scale, out, start, stop, N)


@njit(cache=True)
def hop_into(hops, nb, psi, sites, scale, out):
    """``out[x] = scale * (D psi)(x)`` for the flat sites ``x`` in ``sites``; other sites of ``out`` untouched.

    hops (V, 2 D, N, N) complex128 and nb (V, 2 D) int64: ``links.hops``, ``links.neighbours``
    (module docstring); psi and out (V, N) complex128 (not aliased). ``scale = -1`` gives
    ``D^dagger psi``; ``sites`` = even (odd) sites of an odd (even) ``psi`` is the block ``D_eo``
    (``D_oe``). Serial. Cost: ``2 D`` colour matrix-vector products per site, ``(2 D) (8 N^2 - 2 N)
    + (2 D - 1) 2 N`` flop (570 for SU(3) in 4D).
    """
    _hop_chunk(hops, nb, psi, sites, scale, out, 0, sites.shape[0])


@njit(cache=True)
def normal_into(hops, nb, mass2, psi, mid_sites, out_sites, tmp, out):
    """``out = (m^2 - D D) psi`` on ``out_sites``, with ``tmp = D psi`` computed on ``mid_sites``.

    Full lattice: ``mid_sites = out_sites = all`` gives ``M^dagger M psi``; ``mid_sites = odd``,
    ``out_sites = even`` with an even ``psi`` gives the Schur block ``(m^2 - D_eo D_oe) psi_e``
    at half the cost. Sites outside ``out_sites`` are left untouched. Serial.
    """
    hop_into(hops, nb, psi, mid_sites, 1.0, tmp)
    hop_into(hops, nb, tmp, out_sites, -1.0, out)
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


def _hop_threaded(links: StaggeredLinks, psi, sites, scale, out) -> None:
    """:func:`hop_into` on ``sites``, cut into chunks on a thread pool from ``PARALLEL_MIN["staggered"]`` up.

    The work is counted in colour multiply-adds (``sites * 2 D * N^2``), not sites: a U(1) site in
    2D costs 4 of them, an SU(3) site in 4D 72.
    """
    n = len(sites)
    run_chunks("staggered", n, _hop_chunk, links.hops, links.neighbours, psi, sites, scale, out,
               size=n * links.hops.shape[1] * links.N**2)


def _hop(links, psi, sites, scale):
    v = _vector(links, psi)
    out = np.zeros_like(v)
    _hop_threaded(links, v, links.all_sites if sites is None else sites, scale, out)
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
    # normal_into, with each hop on the thread pool
    _hop_threaded(links, v, mid, 1.0, tmp)
    _hop_threaded(links, tmp, out_sites, -1.0, out)
    out[out_sites] += float(mass) ** 2 * v[out_sites]
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
