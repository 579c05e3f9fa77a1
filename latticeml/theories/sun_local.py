"""Local updates of SU(N) lattice gauge theory with the Wilson action: Metropolis, heatbath, overrelaxation.

The sweeps of :class:`latticeml.theories.sun.SUN` (its ``local_family``, see
:mod:`latticeml.backends`). Each updates one link ``U = U_mu(x)`` at a time with everything else
fixed; the link's part of the Wilson action is ``-(beta/N) Re tr(U A)``, with the staple sum ``A``
of :func:`latticeml.theories.sun.staple_into`.

Metropolis (N. Metropolis et al., J. Chem. Phys. 21 (1953) 1087)
    ``hits`` proposals ``U -> R U`` with ``R = exp(step_size * sum_a p_a T_a)``, ``p_a ~ N(0, 1)``
    (the law of :func:`latticeml.groups.random_near_identity`: ``R`` and ``R^dagger`` are equally
    likely, so the proposal is symmetric), each accepted with probability ``min(1, exp(-dS))``,
    ``dS = -(beta/N) [Re tr(U' A) - Re tr(U A)]``.

Heatbath: the new link is an exact draw from its conditional distribution
    * SU(2): ``U A = k V`` with ``k = sqrt(det A) >= 0`` and ``V`` in SU(2) (a sum of SU(2) matrices
      is a multiple of one), so ``X = U V`` is distributed as ``exp((beta k / 2) tr X) dX`` (Haar dX).
      Writing ``X = x0 + i x.sigma``, ``x0`` has density ``sqrt(1 - x0^2) exp(alpha x0)`` on [-1, 1]
      with ``alpha = beta k``, and ``x/|x|`` is uniform on the sphere (M. Creutz, PRD 21 (1980) 2308).
      ``x0`` is drawn by A. D. Kennedy and B. J. Pendleton, PLB 156 (1985) 393 for ``alpha >=``
      :data:`KP_MIN_ALPHA`; below it KP's acceptance falls towards 0 (0.28 at alpha = 0.5) while
      Creutz's own method (accept-reject of ``exp(alpha x0)`` against ``sqrt(1 - x0^2)``) stays
      above 0.69, so Creutz's method is used there. Both are exact; see :func:`sample_su2_a0`.
    * SU(N), N >= 3: N. Cabibbo and E. Marinari, PLB 119 (1982) 387. For each of the N(N-1)/2
      SU(2) subgroups (rows/columns ``i < j``) in turn the link is multiplied from the left by an
      SU(2) element ``R`` embedded in that subgroup, drawn by the SU(2) heatbath from
      ``exp((beta/N) Re tr(R U A))``. Only the SU(2)-proportional part of the 2x2 block of
      ``W = U A`` enters, ``w = k V`` (quaternion ``a = (Re(w_ii + w_jj), Im(w_ij + w_ji),
      Re(w_ij - w_ji), Im(w_ii - w_jj)) / 2``, ``k = |a|``), so the subgroup heatbath has
      ``alpha = 2 beta k / N`` (``= beta k`` for N = 2, where the one subgroup is the whole group).

Overrelaxation: reflect the link, keep the action
    In each SU(2) subgroup ``R = (V^dagger)^2``, so that ``R w = k V^dagger`` and
    ``Re tr(R w) = Re tr(w)`` (M. Creutz, PRD 36 (1987) 515; F. R. Brown and T. J. Woch, PRL 58
    (1987) 2394). Each reflection is an involution that preserves the action and the Haar measure,
    so it satisfies detailed balance; it moves the configuration far at no cost in action, which
    decorrelates the slow modes. It is microcanonical: alone it is not ergodic.

Ordering, randomness, parallelism
    A sweep runs over ``mu = 0, ..., D-1`` and for each the even, then the odd sites
    (:func:`latticeml.lattice.sweep_order`; every extent even). Metropolis draws the random numbers
    of the whole sweep beforehand and updates the links of one colour in parallel (each reads its
    own numbers); the heatbath needs an unknown number of random numbers per link, so the Generator
    is passed into its kernel and consumed in site order; overrelaxation draws none and runs in
    parallel. The same seed gives the same chain bit for bit, whatever the number of threads.
    Every updated link is re-unitarised (:func:`latticeml.groups.restore_special_unitary_into`):
    links stay in SU(N) to 1e-15.

Arrays: links complex128 ``(D, *shape, N, N)``, C-contiguous, updated in place; inside the
kernels ``(D, V, N, N)`` with the neighbour tables of :func:`latticeml.lattice.neighbour_table`.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit

from .. import groups
from .._linalg import copy_into, mat_mul, re_trace_mul
from .._threads import run_chunks
from ..checks import check_count, check_rng, finite_float
from ..lattice import checkerboard_array, neighbour_table, sweep_order
from .base import check_in_place
from .sun import staple_into

__all__ = [
    "KP_MIN_ALPHA",
    "metropolis_sweep",
    "heatbath_sweep",
    "overrelax_sweep",
    "near_identity_proposals",
    "sample_su2_a0",
]

#: Below this alpha the SU(2) heatbath draws x0 by Creutz's method, above by Kennedy-Pendleton.
#: Their acceptances cross near alpha = 1.7 (0.70 each): Creutz's is pi I_1(alpha) / (2 sinh alpha),
#: KP's int_0^2 sqrt(d (1 - d/2)) e^{-alpha d} dd / int_0^inf sqrt(d) e^{-alpha d} dd.
KP_MIN_ALPHA = 1.7

#: Couplings below this are treated as 0: the density then differs from the uniform (Haar) one by
#: a relative O(1e-12), far below any statistical resolution.
_TINY = 1e-12


# ----------------------------------------------------------------------------- Metropolis


@functools.cache
def _near_identity(N: int):
    """``kernel(p, generators, spread, out)``: out[k] = exp(spread * sum_a p[k, a] T_a) for the normals ``p`` (K, N^2 - 1).

    The matrices of :func:`latticeml.groups.random_near_identity`, built without NumPy temporaries
    (``from_components``' complex tensordot is slow for these thin products). One kernel per N, a
    compile-time constant (:func:`latticeml.groups.expm_algebra_into`).
    """

    @njit(cache=True)
    def near_identity(p, generators, spread, out):
        K, n_gen = p.shape
        x = np.empty((N, N), dtype=np.complex128)
        work1 = np.empty((N, N), dtype=np.complex128)
        work2 = np.empty((N, N), dtype=np.complex128)
        for k in range(K):
            for i in range(N):
                for j in range(N):
                    x[i, j] = 0.0
            for a in range(n_gen):
                c = spread * p[k, a]
                for i in range(N):
                    for j in range(N):
                        x[i, j] += c * generators[a, i, j]
            groups.expm_algebra_into(x, out[k], work1, work2, N)

    return near_identity


def near_identity_proposals(rng: np.random.Generator, N: int, size: tuple, spread: float) -> np.ndarray:
    """SU(N) proposals ``exp(spread * sum_a p_a T_a)``, ``p_a ~ N(0, 1)``, shape ``(*size, N, N)``.

    The same draws, and to rounding the same matrices, as ``groups.random_near_identity(rng, N, size, spread=spread)``.
    """
    p = rng.standard_normal(tuple(size) + (N * N - 1,))
    out = np.empty(tuple(size) + (N, N), dtype=np.complex128)
    _near_identity(int(N))(p.reshape(-1, N * N - 1), np.ascontiguousarray(groups.su_generators(N)), spread, out.reshape(-1, N, N))
    return out


@njit(inline="always", cache=True)
def _metropolis_link(U, fwd, bwd, mu, s, scale, proposals, uniforms, a, trial, work, n):
    """``hits`` Metropolis proposals ``U' = R U`` at the link ``U[mu, s]`` (in place); returns how many were accepted.

    Inlined into :func:`_metropolis_chunk`'s kernel, where ``n`` is a compile-time constant.
    """
    link = U[mu, s]
    staple_into(U, fwd, bwd, mu, s, a, work)
    old = re_trace_mul(link, a)
    n_acc = 0
    for h in range(uniforms.shape[0]):
        mat_mul(proposals[h], link, trial)
        new = re_trace_mul(trial, a)
        dS = -scale * (new - old)
        if dS <= 0.0 or uniforms[h] < np.exp(-dS):
            copy_into(trial, link)
            old = new
            n_acc += 1
    if n_acc > 0:
        groups.restore_special_unitary_into(link, n)
    return n_acc


@functools.cache
def _metropolis_chunk(N: int):
    """``kernel(U, fwd, bwd, sites, scale, proposals, uniforms, accepted, mu, p, start, stop)`` for SU(N).

    Metropolis updates of the links ``(mu, sites[p, i])``, ``start <= i < stop``, of the flat links
    U (D, V, N, N). Proposal ``U' = R U`` with ``R = proposals[mu, p, i, h]``; uniforms: (D, 2, V/2, hits);
    accepted: (D, 2, V/2) int64. Links of one colour share no staple, so chunks are independent.
    One kernel per N, a compile-time constant (:func:`latticeml.groups.expm_algebra_into`).
    """

    @njit(nogil=True, cache=True)
    def metropolis_chunk(U, fwd, bwd, sites, scale, proposals, uniforms, accepted, mu, p, start, stop):
        a = np.empty((N, N), dtype=np.complex128)
        trial = np.empty((N, N), dtype=np.complex128)
        work = np.empty((2, N, N), dtype=np.complex128)
        for i in range(start, stop):
            accepted[mu, p, i] = _metropolis_link(
                U, fwd, bwd, mu, sites[p, i], scale, proposals[mu, p, i], uniforms[mu, p, i], a, trial, work, N
            )

    return metropolis_chunk


# ----------------------------------------------------------------------------- SU(2) heatbath draws


@njit(inline="always", cache=True)
def _su2_a0(rng, alpha):
    """One draw of ``x0`` from ``sqrt(1 - x0^2) exp(alpha x0)`` on [-1, 1]; returns (x0, trials).

    alpha >= KP_MIN_ALPHA, Kennedy & Pendleton (1985): ``d = 1 - x0`` has density
    ``sqrt(d) e^{-alpha d} sqrt(1 - d/2)``; draw ``d`` from the Gamma(3/2, 1/alpha) density
    ``sqrt(d) e^{-alpha d}`` as ``-(ln r1 + cos^2(2 pi r2) ln r3) / alpha`` (an exponential plus
    half a squared Box-Muller normal) and accept with probability ``sqrt(1 - d/2)``
    (``r4^2 <= 1 - d/2``; d > 2 is always rejected).
    alpha < KP_MIN_ALPHA, Creutz (1980): draw ``exp(alpha x0)`` uniformly, i.e.
    ``x0 = 1 + log1p(u expm1(-2 alpha)) / alpha``, and accept with probability ``sqrt(1 - x0^2)``.
    """
    trials = 0
    if alpha >= KP_MIN_ALPHA:
        while True:
            trials += 1
            # 1 - random() lies in (0, 1]: the logarithms stay finite
            r1 = 1.0 - rng.random()
            r2 = rng.random()
            r3 = 1.0 - rng.random()
            c = np.cos(2.0 * np.pi * r2)
            d = -(np.log(r1) + c * c * np.log(r3)) / alpha
            r4 = rng.random()
            if r4 * r4 <= 1.0 - 0.5 * d:
                return 1.0 - d, trials
    while True:
        trials += 1
        u = rng.random()
        if alpha < _TINY:
            x0 = 1.0 - 2.0 * u
        else:
            x0 = 1.0 + np.log1p(u * np.expm1(-2.0 * alpha)) / alpha
        v = rng.random()
        if v * v <= 1.0 - x0 * x0:
            return x0, trials


@njit(inline="always", cache=True)
def _su2_heatbath_quaternion(rng, alpha):
    """Unit quaternion x with density ``exp(alpha x0)`` w.r.t. the Haar measure; returns (x0, x1, x2, x3, trials).

    x0 by :func:`_su2_a0`; the vector part has length sqrt(1 - x0^2) and a uniform direction
    (cos(polar angle) uniform in [-1, 1], azimuth uniform in [0, 2 pi)).
    """
    x0, trials = _su2_a0(rng, alpha)
    length = np.sqrt(max(0.0, 1.0 - x0 * x0))
    cos_t = 2.0 * rng.random() - 1.0
    sin_t = np.sqrt(max(0.0, 1.0 - cos_t * cos_t))
    phi = 2.0 * np.pi * rng.random()
    return x0, length * sin_t * np.cos(phi), length * sin_t * np.sin(phi), length * cos_t, trials


@njit(cache=True)
def _su2_a0_many(rng, alpha, out):
    trials = 0
    for i in range(out.shape[0]):
        out[i], t = _su2_a0(rng, alpha)
        trials += t
    return trials


def sample_su2_a0(rng: np.random.Generator, alpha: float, size: int) -> np.ndarray:
    """``size`` draws of ``x0`` from ``sqrt(1 - x0^2) exp(alpha x0)`` on [-1, 1] (Kennedy-Pendleton / Creutz).

    The kernel the SU(2) (subgroup) heatbath uses, float64 array ``(size,)``; see :data:`KP_MIN_ALPHA`.
    """
    check_rng(rng)
    alpha = finite_float(alpha, "alpha")
    if alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha}")
    out = np.empty(check_count(size, "size", minimum=0))
    _su2_a0_many(rng, alpha, out)
    return out


# ----------------------------------------------------------------------------- SU(2) subgroups


@njit(inline="always", cache=True)
def _subgroup_quaternion(w, i, j):
    """Quaternion (a0, a1, a2, a3) of the SU(2)-proportional part of the (i, j) block of ``w``.

    A 2x2 block ``b0 + i b.sigma`` (complex b) has ``Re tr(r block) = Re tr(r (a0 + i a.sigma))`` for
    every SU(2) ``r``, with ``a = Re b``: the other part does not enter the subgroup's action.
    """
    a0 = 0.5 * (w[i, i].real + w[j, j].real)
    a1 = 0.5 * (w[i, j].imag + w[j, i].imag)
    a2 = 0.5 * (w[i, j].real - w[j, i].real)
    a3 = 0.5 * (w[i, i].imag - w[j, j].imag)
    return a0, a1, a2, a3


@njit(inline="always", cache=True)
def _quaternion_mul(a0, a1, a2, a3, b0, b1, b2, b3):
    """(a0 + i a.sigma)(b0 + i b.sigma) = (a0 b0 - a.b) + i (a0 b + b0 a - a x b).sigma."""
    return (
        a0 * b0 - a1 * b1 - a2 * b2 - a3 * b3,
        a0 * b1 + b0 * a1 - (a2 * b3 - a3 * b2),
        a0 * b2 + b0 * a2 - (a3 * b1 - a1 * b3),
        a0 * b3 + b0 * a3 - (a1 * b2 - a2 * b1),
    )


@njit(inline="always", cache=True)
def _rotate_rows(m, i, j, r0, r1, r2, r3):
    """Rows i, j of ``m`` <- r (rows i, j), r = [[r0 + i r3, r2 + i r1], [-r2 + i r1, r0 - i r3]]."""
    r_ii = complex(r0, r3)
    r_ij = complex(r2, r1)
    r_ji = complex(-r2, r1)
    r_jj = complex(r0, -r3)
    for c in range(m.shape[1]):
        top = m[i, c]
        bottom = m[j, c]
        m[i, c] = r_ii * top + r_ij * bottom
        m[j, c] = r_ji * top + r_jj * bottom


@functools.cache
def _heatbath_kernel(N: int):
    """Cabibbo-Marinari heatbath sweep over the flat links ``U`` (D, V, N, N), in place; returns the trials.

    For each link: W = U A once; for every subgroup (i, j) the SU(2) heatbath element R = x V^dagger
    multiplies rows i, j of U and of W (so W = U A stays current without recomputing the staple).
    One kernel per N, a compile-time constant (:func:`latticeml.groups.expm_algebra_into`).
    """

    @njit(cache=True)
    def heatbath_sweep(U, fwd, bwd, sites, order, beta, rng):
        a = np.empty((N, N), dtype=np.complex128)
        w = np.empty((N, N), dtype=np.complex128)
        work = np.empty((2, N, N), dtype=np.complex128)
        trials = 0
        for k in range(order.shape[0]):
            mu = order[k, 0]
            colour = order[k, 1]
            for idx in range(sites.shape[1]):
                s = sites[colour, idx]
                link = U[mu, s]
                staple_into(U, fwd, bwd, mu, s, a, work)
                mat_mul(link, a, w)
                for i in range(N - 1):
                    for j in range(i + 1, N):
                        a0, a1, a2, a3 = _subgroup_quaternion(w, i, j)
                        norm = np.sqrt(a0 * a0 + a1 * a1 + a2 * a2 + a3 * a3)
                        x0, x1, x2, x3, n = _su2_heatbath_quaternion(rng, 2.0 * beta * norm / N)
                        trials += n
                        if norm > 0.0:  # R = x V^dagger, V = a / |a|
                            r0, r1, r2, r3 = _quaternion_mul(x0, x1, x2, x3, a0 / norm, -a1 / norm, -a2 / norm, -a3 / norm)
                        else:  # no coupling to this subgroup: R is a Haar-random element
                            r0, r1, r2, r3 = x0, x1, x2, x3
                        _rotate_rows(link, i, j, r0, r1, r2, r3)
                        _rotate_rows(w, i, j, r0, r1, r2, r3)
                groups.restore_special_unitary_into(link, N)
        return trials

    return heatbath_sweep


@functools.cache
def _overrelax_chunk(N: int):
    """Overrelaxation of the links ``(mu, sites[colour, i])``, ``start <= i < stop``, of U (D, V, N, N), in place.

    R = (V^dagger)^2 in every SU(2) subgroup. No random numbers, no shared writes: the result does
    not depend on how the sublattice is cut into chunks. One kernel per N, a compile-time constant (:func:`latticeml.groups.expm_algebra_into`).
    """

    @njit(nogil=True, cache=True)
    def overrelax_chunk(U, fwd, bwd, sites, mu, colour, start, stop):
        a = np.empty((N, N), dtype=np.complex128)
        w = np.empty((N, N), dtype=np.complex128)
        work = np.empty((2, N, N), dtype=np.complex128)
        for idx in range(start, stop):
            s = sites[colour, idx]
            link = U[mu, s]
            staple_into(U, fwd, bwd, mu, s, a, work)
            mat_mul(link, a, w)
            for i in range(N - 1):
                for j in range(i + 1, N):
                    a0, a1, a2, a3 = _subgroup_quaternion(w, i, j)
                    norm = np.sqrt(a0 * a0 + a1 * a1 + a2 * a2 + a3 * a3)
                    if norm == 0.0:
                        continue
                    v0 = a0 / norm
                    # (V^dagger)^2 with V^dagger = (v0, -v): (v0^2 - |v|^2, -2 v0 v)
                    vv = (a1 * a1 + a2 * a2 + a3 * a3) / (norm * norm)
                    r0 = v0 * v0 - vv
                    r1 = -2.0 * v0 * a1 / norm
                    r2 = -2.0 * v0 * a2 / norm
                    r3 = -2.0 * v0 * a3 / norm
                    _rotate_rows(link, i, j, r0, r1, r2, r3)
                    _rotate_rows(w, i, j, r0, r1, r2, r3)
            groups.restore_special_unitary_into(link, N)

    return overrelax_chunk


# ----------------------------------------------------------------------------- the sweeps


def _flat_links(U):
    """The in-place (D, V, N, N) view of a working copy of links, neighbour tables and sublattices."""
    check_in_place(U, np.complex128, "SU(N) links")
    if U.ndim < 5 or U.shape[-1] != U.shape[-2] or U.ndim != U.shape[0] + 3:
        raise ValueError(f"SU(N) links must have shape (D, L0, ..., L{{D-1}}, N, N), got {U.shape}")
    shape = U.shape[1:-2]
    N = U.shape[-1]
    fwd, bwd = neighbour_table(shape)
    return U.reshape(U.shape[0], -1, N, N), fwd, bwd, checkerboard_array(shape)


def metropolis_sweep(rng: np.random.Generator, U: np.ndarray, *, beta: float, step_size: float, hits: int) -> float:
    """One checkerboard Metropolis sweep of the links ``U`` (D, *shape, N, N) in place; returns the acceptance.

    Random numbers, drawn first in this order (``half = V/2``): the proposals as
    ``groups.random_near_identity(rng, N, (D, 2, half, hits), spread=step_size)`` (the normals
    ``rng.standard_normal((D, 2, half, hits, N^2 - 1))``), then accept uniforms
    ``rng.random((D, 2, half, hits))``; link ``(mu, i)`` of colour ``p`` reads entry ``[mu, p, i]``.
    """
    beta = finite_float(beta)
    hits = check_count(hits, "hits (Metropolis proposals per site and sweep)", minimum=1)
    flat, fwd, bwd, sites = _flat_links(U)
    D, N, half = flat.shape[0], flat.shape[-1], sites.shape[1]
    proposals = near_identity_proposals(rng, N, (D, 2, half, hits), float(step_size))
    uniforms = rng.random((D, 2, half, hits))
    accepted = np.empty((D, 2, half), dtype=np.int64)
    for mu in range(D):  # sublattice by sublattice: a link's staple reads the other colour only
        for p in range(2):
            run_chunks(
                "local_sun", half, _metropolis_chunk(N), flat, fwd, bwd, sites, beta / N, proposals, uniforms, accepted, mu, p,
                per_thread=8,
            )
    return float(accepted.sum()) / (accepted.size * hits)


def heatbath_sweep(rng: np.random.Generator, U: np.ndarray, *, beta: float, order=None) -> float:
    """One Cabibbo-Marinari heatbath sweep of the links ``U`` in place; returns the mean trials per SU(2) draw.

    The Generator is consumed inside the kernel, link by link in sweep order. ``order``: the
    (mu, colour) sublattices to visit (default :func:`latticeml.lattice.sweep_order`, all of them).
    """
    beta = finite_float(beta)
    flat, fwd, bwd, sites = _flat_links(U)
    N = flat.shape[-1]
    order = sweep_order(flat.shape[0]) if order is None else np.ascontiguousarray(order, dtype=np.int64)
    trials = _heatbath_kernel(N)(flat, fwd, bwd, sites, order, beta, rng)
    return trials / (order.shape[0] * sites.shape[1] * N * (N - 1) // 2)


def overrelax_sweep(U: np.ndarray, *, order=None) -> None:
    """One overrelaxation sweep of the links ``U`` in place (no random numbers).

    ``order``: the (mu, colour) sublattices to visit (default :func:`latticeml.lattice.sweep_order`;
    for SU(2) the reversed order undoes a sweep).
    """
    flat, fwd, bwd, sites = _flat_links(U)
    order = sweep_order(flat.shape[0]) if order is None else np.ascontiguousarray(order, dtype=np.int64)
    for mu, colour in order:  # sublattice by sublattice: a link's staple reads the other colour only
        run_chunks("local_sun", sites.shape[1], _overrelax_chunk(flat.shape[-1]), flat, fwd, bwd, sites, int(mu), int(colour), per_thread=8)
