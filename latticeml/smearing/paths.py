"""Paths on the lattice: products of links, parallel transport and staple sums.

The machinery every smearing, gradient flow, improved action and gauge-equivariant layer is built
from: walk a path of links from every site, multiply the links (or their adjoints) along it, and
sum such products with weights.

Fields and conventions
----------------------
* SU(N) links ``U`` are complex128 ``(D, L0, ..., L{D-1}, N, N)``; U(1) links are angles ``theta``
  float64 ``(D, L0, ..., L{D-1})``. ``batched=True`` adds a leading batch axis ``(B, D, ...)``.
  Inside the kernels a U(1) link is the 1 x 1 unitary matrix ``exp(i theta)``, so one code path
  serves U(1) and SU(N) (:func:`link_matrices` makes this *kernel form*: complex128
  ``(B, D, V, N, N)`` with flat sites numbered in C order, :mod:`latticeml.lattice`).
* Gauge transformations ``U_mu(x) -> Omega(x) U_mu(x) Omega(x + mu)^+``. Site-local matrices
  ``W`` (the L-CNN's channels, complex128 ``(C, L0, ..., N, N)``) transform as
  ``W(x) -> Omega(x) W(x) Omega(x)^+``.
* A *path* is a sequence of signed steps: ``+(mu + 1)`` moves from ``y`` to ``y + mu`` and
  multiplies by ``U_mu(y)``; ``-(mu + 1)`` moves from ``y`` to ``y - mu`` and multiplies by
  ``U_mu(y - mu)^+``. The product along a path from ``x`` to ``z`` transforms as
  ``P(x) -> Omega(x) P(x) Omega(z)^+``; a closed path gives a Wilson loop (traced: gauge invariant).
* Algebra conventions of :mod:`latticeml.groups`: ``TA(M) = (M - M^+)/2 - tr(M - M^+)/(2N)``
  (for N = 1 the anti-Hermitian part ``i Im M``), inner product ``<X, Y> = -2 tr XY``.

Loop terms and staple sums
--------------------------
A *loop term* is a set of paths from ``x`` to ``x + mu`` for every link ``U_mu(x)``;
``U_mu(x) C_mu(x)^+`` is then a sum of closed loops through the link (:func:`term_paths`):

================== ======================================================================= ==========
``plaquette``      ``U_nu(x) U_mu(x+nu) U_nu(x+mu)^+`` and the one through ``x - nu``        2 (D-1)
``rectangle``      the 2 x 1 loops: both positions along mu, and the 1 x 2 ones, each        6 (D-1)
                   above and below
``polyakov_time``  for mu = 0 only: the rest of the Polyakov line, ``L0 - 1`` links back    1
                   from x to x + mu the long way round, so ``U C^+ = P_0(x)``, the untraced
                   Polyakov loop
``polyakov_space`` the same for every spatial mu >= 1                                      1
================== ======================================================================= ==========

``C_mu(x) = sum_k w_k C^(k)_mu(x)`` with one real weight per term (:func:`staple_sums`). With the
staple sum ``A_mu(x)`` of :mod:`latticeml.theories.sun` (closing paths), ``C^(plaquette) = A^+``.
A weighted sum of Wilson loops, ``sum_k c_k sum_{loops of term k} (1 - Re tr W / N)``, and its
gradient ``-(1/N) sum_k c_k C^(k)`` are :func:`loop_action` (the Wilson and improved gauge actions
of :mod:`latticeml.theories.improved`, the flow's generator, the energy density).

Kernels
-------
One Numba kernel per operation, each a ``prange`` over chunks of links (flat index
``(b * D + mu) * V + s``), run under :func:`latticeml._threads.parallel_threads` ``("smearing", n)``
(one thread below the threshold, where thread start-up costs more than the work). Paths are walked
with the neighbour tables (:func:`latticeml.lattice.neighbour_table`) and flat tables of signed
steps (:func:`path_tables`), so one compiled kernel serves every D, every loop term and every N.
The pull-back through the staples (:func:`staple_sums_pullback`, the backward pass of
:func:`staple_sums`) is a *gather*: each link collects the contributions of every staple path that
contains it, so threads never write to the same link. Results do not depend on the thread count
except for the order of the per-chunk partial sums of :func:`re_trace_overlap` and
:func:`term_overlaps` (rounding only).

The small non-inlined Numba helpers (:func:`mul_into`, :func:`ta_into`, ...) are public for the
kernels of :mod:`latticeml.smearing.stout_smearing` and the gauge-equivariant layers: each call site of an
``inline="always"`` helper of :mod:`latticeml._linalg` is copied into the caller's IR, which made
these kernels take minutes to compile; a plain call costs a few nanoseconds per 3 x 3 product.

Parallel transport as in the lattice gauge-equivariant CNN: M. Favoni, A. Ipp, D. I. Muller and
D. Schuh, PRL 128 (2022) 032003 [arXiv:2012.12901].
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .._linalg import adj_mul, mat_mul, mat_mul_adj, re_trace_mul_adj, traceless_antihermitian_into
from .._threads import n_chunks, parallel_threads
from ..checks import GaugeLinks, gauge_links
from ..groups import wrap_angle
from ..lattice import check_shape, neighbour_table

__all__ = [
    "LOOP_TERMS",
    "LOOP_LENGTH",
    "check_terms",
    "term_weights",
    "layer_weights",
    "improved_terms",
    "term_paths",
    "PathTables",
    "path_tables",
    "LinkMatrices",
    "link_matrices",
    "path_product",
    "parallel_transport",
    "staple_sums",
    "staple_sums_flat",
    "staple_sums_pullback",
    "term_overlaps",
    "re_trace_overlap",
    "loop_action",
    "project_algebra_flat",
    "phase_gradient",
    "angle_gradient",
    "mul_into",
    "mul_adj_into",
    "adj_mul_into",
    "copy_into",
    "ta_into",
]

#: The loop terms a staple sum is built from (module docstring).
LOOP_TERMS = ("plaquette", "rectangle", "polyakov_time", "polyakov_space")

#: Number of links in one closed loop of each term (the loop counts once per link in sum U C^+).
LOOP_LENGTH = {"plaquette": 4, "rectangle": 6}

#: Kernels split their links into this many chunks per thread (each chunk allocates its scratch once).
_CHUNKS_PER_THREAD = 8


# ============================================================================ loop terms and weights


def check_terms(terms) -> tuple[str, ...]:
    """The loop terms as a tuple of distinct names from :data:`LOOP_TERMS` (one name may be a string)."""
    if isinstance(terms, str):
        terms = (terms,)
    terms = tuple(terms)
    if not terms:
        raise ValueError(f"give at least one loop term from {LOOP_TERMS}")
    for t in terms:
        if t not in LOOP_TERMS:
            raise ValueError(f"unknown loop term {t!r}; choose from {LOOP_TERMS}")
    if len(set(terms)) != len(terms):
        raise ValueError(f"loop terms must be distinct, got {terms}")
    return terms


def term_weights(values, terms, name: str = "rho") -> np.ndarray:
    """One finite float64 weight per loop term, ``(n_terms,)``; a single number for a single term."""
    w = np.asarray(values, dtype=np.float64)
    if w.ndim == 0:
        if len(terms) != 1:
            raise ValueError(f"{name} needs one value per loop term {terms}, got the single value {float(w)}")
        w = w.reshape(1)
    if w.shape != (len(terms),):
        raise ValueError(f"{name} must have one value per loop term {terms}, got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{name} must be finite, got {w}")
    return np.ascontiguousarray(w)


def layer_weights(rho, terms) -> np.ndarray:
    """``rho`` as ``(n_layers, n_terms)``: a 2-D array, or one layer given as a scalar / 1-D per-term array."""
    r = np.asarray(rho, dtype=np.float64)
    if r.ndim < 2:
        r = term_weights(r, terms)[None, :]
    if r.ndim != 2 or r.shape[1] != len(terms):
        raise ValueError(f"rho must have shape (n_layers, n_terms) = (n, {len(terms)}) for terms {terms}, got {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError(f"rho must be finite, got {r}")
    return np.ascontiguousarray(r)


def improved_terms(c1: float) -> tuple[tuple[str, ...], np.ndarray]:
    """The loop terms and weights ``(c0, c1)``, ``c0 = 1 - 8 c1``, of the plaquette + rectangle actions.

    ``c1 = 0`` (Wilson) gives the plaquette term alone. The actions themselves are in
    :mod:`latticeml.theories.improved`; the gradient flow with ``c1 != 0`` uses the same weights.
    """
    c1 = float(c1)
    if not np.isfinite(c1):
        raise ValueError(f"c1 must be finite, got {c1}")
    if c1 == 0.0:
        return ("plaquette",), np.array([1.0])
    return ("plaquette", "rectangle"), np.array([1.0 - 8.0 * c1, c1])


def term_paths(term: str, mu: int, shape) -> list[list[int]]:
    """The staple paths of one loop term for links in direction ``mu``: lists of signed steps ``+-(d + 1)``.

    Each path runs from ``x`` to ``x + mu`` (module docstring), so ``U_mu(x) P(x)^+`` is a closed loop.
    """
    shape = check_shape(shape)
    D = len(shape)
    if not 0 <= mu < D:
        raise ValueError(f"direction mu={mu} out of range for a {D}-dimensional lattice")

    def up(d):
        return d + 1

    def dn(d):
        return -(d + 1)

    paths = []
    if term == "plaquette":
        for nu in range(D):
            if nu != mu:
                paths.append([up(nu), up(mu), dn(nu)])
                paths.append([dn(nu), up(mu), up(nu)])
    elif term == "rectangle":
        for nu in range(D):
            if nu == mu:
                continue
            for s_in, s_out in ((up(nu), dn(nu)), (dn(nu), up(nu))):
                paths.append([s_in, up(mu), up(mu), s_out, dn(mu)])  # link first along the long side
                paths.append([dn(mu), s_in, up(mu), up(mu), s_out])  # link second along the long side
                paths.append([s_in, s_in, up(mu), s_out, s_out])  # link on the short side
    elif term in ("polyakov_time", "polyakov_space"):
        if (term == "polyakov_time") == (mu == 0):
            paths.append([dn(mu)] * (shape[mu] - 1))
    else:
        raise ValueError(f"unknown loop term {term!r}; choose from {LOOP_TERMS}")
    return paths


class PathTables(NamedTuple):
    """Flat tables of the staple paths of a tuple of loop terms on one lattice shape (read-only).

    steps[p, k]:  signed step k of path p (zero-padded); length[p]: its number of steps;
    term[p]:      index into the terms; mu[p]: the link direction of the path;
    mu_start:     paths of direction mu are ``mu_start[mu] .. mu_start[mu + 1] - 1``;
    occ_*:        for each direction d, the (path, step) pairs whose step runs along d
                  (``occ_start[d] .. occ_start[d + 1] - 1`` index ``occ_path``, ``occ_step``): the
                  gather list of :func:`staple_sums_pullback`.
    """

    steps: np.ndarray
    length: np.ndarray
    term: np.ndarray
    mu: np.ndarray
    mu_start: np.ndarray
    occ_start: np.ndarray
    occ_path: np.ndarray
    occ_step: np.ndarray


@lru_cache(maxsize=64)
def _path_tables(terms: tuple[str, ...], shape: tuple[int, ...]) -> PathTables:
    D = len(shape)
    for term in terms:
        if term not in LOOP_TERMS:
            raise ValueError(f"unknown loop term {term!r}; choose from {LOOP_TERMS}")
        if term.startswith("polyakov") and min(shape) < 2:
            raise ValueError(f"Polyakov-loop terms need every extent >= 2, got shape {shape}")
    rows = []  # (mu, term index, steps)
    for mu in range(D):
        for k, term in enumerate(terms):
            for path in term_paths(term, mu, shape):
                rows.append((mu, k, path))
    n = max(len(rows), 1)
    maxlen = max([len(r[2]) for r in rows], default=1)
    steps = np.zeros((n, maxlen), dtype=np.int64)
    length = np.zeros(n, dtype=np.int64)
    term = np.zeros(n, dtype=np.int64)
    mu_of = np.zeros(n, dtype=np.int64)
    mu_start = np.zeros(D + 1, dtype=np.int64)
    for p, (mu, k, path) in enumerate(rows):
        steps[p, : len(path)] = path
        length[p], term[p], mu_of[p] = len(path), k, mu
        mu_start[mu + 1] += 1
    mu_start = np.cumsum(mu_start)
    occ = [[] for _ in range(D)]
    for p, (_, _, path) in enumerate(rows):
        for k, st in enumerate(path):
            occ[abs(st) - 1].append((p, k))
    occ_start = np.cumsum([0] + [len(o) for o in occ]).astype(np.int64)
    flat = [pk for o in occ for pk in o] or [(0, 0)]
    occ_path = np.array([pk[0] for pk in flat], dtype=np.int64)
    occ_step = np.array([pk[1] for pk in flat], dtype=np.int64)
    tables = PathTables(steps, length, term, mu_of, mu_start, occ_start, occ_path, occ_step)
    for a in tables:
        a.setflags(write=False)
    return tables


def path_tables(terms, shape) -> PathTables:
    """The :class:`PathTables` of the loop ``terms`` on a lattice of ``shape`` (cached per terms and shape)."""
    return _path_tables(check_terms(terms), check_shape(shape))


# ============================================================================ links in kernel form


class LinkMatrices(NamedTuple):
    """Validated links in kernel form: ``flat`` complex128 ``(B, D, V, N, N)`` (U(1): N = 1, ``exp(i theta)``).

    ``links`` is the :class:`latticeml.checks.GaugeLinks` they came from (group, shape, batched);
    the ``restore_*`` methods put a kernel-form field back in the caller's form.
    """

    flat: np.ndarray
    links: GaugeLinks

    @property
    def shape(self) -> tuple:
        return self.links.shape

    @property
    def u1(self) -> bool:
        return self.links.group == "u1"

    @property
    def batched(self) -> bool:
        return self.links.batched

    @property
    def N(self) -> int:
        return self.flat.shape[-1]

    @property
    def B(self) -> int:
        return self.flat.shape[0]

    def restore_links(self, flat: np.ndarray) -> np.ndarray:
        """Links in kernel form -> the caller's form (angles in (-pi, pi] for U(1))."""
        return self.links.restore(wrap_angle(np.angle(flat[..., 0, 0])) if self.u1 else flat)

    def restore_algebra(self, flat: np.ndarray) -> np.ndarray:
        """An algebra-valued field -> the caller's form (U(1): the real angle velocities ``Im X``)."""
        return self.links.restore(flat[..., 0, 0].imag if self.u1 else flat)

    def restore_matrices(self, flat: np.ndarray) -> np.ndarray:
        """A matrix-valued field (staple sums) -> the caller's form (U(1): complex numbers ``(B, D, *L)``)."""
        return self.links.restore(flat[..., 0, 0] if self.u1 else flat)

    def force(self, G: np.ndarray) -> np.ndarray:
        """The HMC force in the caller's form from the gradient ``G`` (kernel form) of an action.

        SU(N): ``F = TA(G U^+)/2``; U(1): ``dS/dtheta = Im(G conj u)``.
        """
        if self.u1:
            return self.links.restore(angle_gradient(G, self.flat)[..., 0, 0])
        return self.links.restore(project_algebra_flat(G, self.flat, 0.5))


def link_matrices(U, *, batched: bool = False) -> LinkMatrices:
    """Validate links (:func:`latticeml.checks.gauge_links`) and put them in kernel form (U(1) as phases)."""
    links = gauge_links(U, batched=batched)
    if links.group == "u1":
        flat = np.ascontiguousarray(np.exp(1j * links.flat)[..., None, None])
    else:
        flat = links.flat
    return LinkMatrices(flat, links)


def phase_gradient(G_theta: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """The gradient with respect to the phases ``u = exp(i theta)`` from ``dL/dtheta``: ``i u dL/dtheta``."""
    return 1j * flat * np.asarray(G_theta, dtype=np.float64).reshape(flat.shape)


def angle_gradient(G_u: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """``dL/dtheta`` from the gradient ``G_u`` with respect to the phases ``u = exp(i theta)``: ``Im(G_u conj u)``."""
    return (G_u * np.conj(flat)).imag


# ============================================================================ Numba helpers


@njit(cache=True)
def mul_into(a, b, out):
    """out = a b (square complex matrices)."""
    mat_mul(a, b, out)


@njit(cache=True)
def mul_adj_into(a, b, out):
    """out = a b^+."""
    mat_mul_adj(a, b, out)


@njit(cache=True)
def adj_mul_into(a, b, out):
    """out = a^+ b."""
    adj_mul(a, b, out)


@njit(cache=True)
def ta_into(m, scale, out):
    """out = scale TA(m); for N = 1 (U(1)) the anti-Hermitian part ``i scale Im m``."""
    if m.shape[0] == 1:
        out[0, 0] = 1j * (scale * m[0, 0].imag)
    else:
        traceless_antihermitian_into(m, scale, out)


@njit(cache=True)
def copy_into(a, out, adjoint):
    """out = a, or a^+ if ``adjoint``."""
    n = a.shape[0]
    if adjoint:
        for i in range(n):
            for j in range(n):
                out[i, j] = a[j, i].conjugate()
    else:
        for i in range(n):
            for j in range(n):
                out[i, j] = a[i, j]


@njit(cache=True)
def _path_product_into(U, fwd, bwd, steps, length, s, out, tmp):
    """out = product of the links of ``U`` (D, V, N, N) along a path of signed steps from site s.

    Returns the end site. ``tmp`` is scratch; a path of length 0 gives the identity.
    """
    pos = s
    cur = out
    nxt = tmp
    if length == 0:
        n = out.shape[0]
        for i in range(n):
            for j in range(n):
                out[i, j] = 1.0 if i == j else 0.0
        return pos
    for k in range(length):
        st = steps[k]
        d = abs(st) - 1
        if st > 0:
            if k == 0:
                copy_into(U[d, pos], cur, False)
            else:
                mul_into(cur, U[d, pos], nxt)
                cur, nxt = nxt, cur
            pos = fwd[pos, d]
        else:
            pos = bwd[pos, d]
            if k == 0:
                copy_into(U[d, pos], cur, True)
            else:
                mul_adj_into(cur, U[d, pos], nxt)
                cur, nxt = nxt, cur
    if length % 2 == 0:  # an odd number of products left the result in tmp
        copy_into(cur, out, False)
    return pos


@njit(cache=True)
def _staple_sum_into(U, fwd, bwd, steps, lengths, terms, p0, p1, weights, s, out, prod, tmp):
    """out = sum_p weights[terms[p]] * (path p from s), p in [p0, p1)."""
    n = out.shape[0]
    for i in range(n):
        for j in range(n):
            out[i, j] = 0.0
    for p in range(p0, p1):
        w = weights[terms[p]]
        if w == 0.0:
            continue
        _path_product_into(U, fwd, bwd, steps[p], lengths[p], s, prod, tmp)
        for i in range(n):
            for j in range(n):
                out[i, j] += w * prod[i, j]


# ============================================================================ kernels
#
# Each kernel is one prange over `nchunk` chunks of its work items; the wrappers below run it under
# parallel_threads("smearing", items) with n_chunks(items, per_thread=8) chunks.


@njit(parallel=True, cache=True)
def _path_product_kernel(U, fwd, bwd, steps, length, out, nchunk):
    """out[b, s] = the product along the path from site s, U (B, D, V, N, N), out (B, V, N, N)."""
    B, D, V, n, _ = U.shape
    total = B * V
    for c in prange(nchunk):
        tmp = np.empty((n, n), dtype=np.complex128)
        for idx in range(c * total // nchunk, (c + 1) * total // nchunk):
            b = idx // V
            _path_product_into(U[b], fwd, bwd, steps, length, idx % V, out[b, idx % V], tmp)


@njit(parallel=True, cache=True)
def _transport_kernel(U, W, fwd, bwd, steps, length, out, nchunk):
    """out[b, c, s] = P W[b, c, z] P^+ with P the product along the path from s to z."""
    B, C, V, n, _ = W.shape
    total = B * C * V
    for ch in prange(nchunk):
        P = np.empty((n, n), dtype=np.complex128)
        tmp = np.empty((n, n), dtype=np.complex128)
        for idx in range(ch * total // nchunk, (ch + 1) * total // nchunk):
            b = idx // (C * V)
            c = (idx // V) % C
            s = idx % V
            z = _path_product_into(U[b], fwd, bwd, steps, length, s, P, tmp)
            mul_into(P, W[b, c, z], tmp)
            mul_adj_into(tmp, P, out[b, c, s])


@njit(parallel=True, cache=True)
def _staple_sums_kernel(U, fwd, bwd, steps, lengths, terms, mu_start, weights, out, nchunk):
    """out[b, mu, s] = C_mu(s) = sum_k weights[k] C^(k)_mu(s)."""
    B, D, V, n, _ = U.shape
    total = B * D * V
    for c in prange(nchunk):
        prod = np.empty((n, n), dtype=np.complex128)
        tmp = np.empty((n, n), dtype=np.complex128)
        for idx in range(c * total // nchunk, (c + 1) * total // nchunk):
            b = idx // (D * V)
            mu = (idx // V) % D
            s = idx % V
            _staple_sum_into(U[b], fwd, bwd, steps, lengths, terms, mu_start[mu], mu_start[mu + 1], weights, s, out[b, mu, s], prod, tmp)


@njit(parallel=True, cache=True)
def _pullback_kernel(U, fwd, bwd, steps, terms, path_mu, occ_start, occ_path, occ_step, lengths, weights, GC, G, nchunk):
    """G[b, d, y] += the pull-back of GC through every weighted staple path that contains link (d, y).

    For a path p from x (direction mu) whose step k is the link L (= U_d(y) or U_d(y)^+) with
    prefix A and suffix B, P = A L B and Re tr(GC^+ P) has gradient A^+ GC B^+ with respect to L.
    The walk goes backwards from the link to the path's start (building A and finding x) and
    forwards to its end (building B).
    """
    B_, D, V, n, _ = U.shape
    total = B_ * D * V
    for c in prange(nchunk):
        A = np.empty((n, n), dtype=np.complex128)
        Bm = np.empty((n, n), dtype=np.complex128)
        tmp = np.empty((n, n), dtype=np.complex128)
        K = np.empty((n, n), dtype=np.complex128)
        for idx in range(c * total // nchunk, (c + 1) * total // nchunk):
            b = idx // (D * V)
            d = (idx // V) % D
            y = idx % V
            Ub = U[b]
            for e in range(occ_start[d], occ_start[d + 1]):
                p = occ_path[e]
                w = weights[terms[p]]
                if w == 0.0:
                    continue
                k = occ_step[e]
                st = steps[p, k]
                if st > 0:
                    before = y
                    after = fwd[y, d]
                else:
                    before = fwd[y, d]
                    after = y
                # prefix A = L_0 ... L_{k-1}, walking back from `before`
                pos = before
                a_id = True
                for j in range(k - 1, -1, -1):
                    sj = steps[p, j]
                    dj = abs(sj) - 1
                    if sj > 0:
                        prev = bwd[pos, dj]
                        if a_id:
                            copy_into(Ub[dj, prev], A, False)
                        else:
                            mul_into(Ub[dj, prev], A, tmp)
                            copy_into(tmp, A, False)
                    else:
                        prev = fwd[pos, dj]
                        if a_id:
                            copy_into(Ub[dj, pos], A, True)
                        else:
                            adj_mul_into(Ub[dj, pos], A, tmp)
                            copy_into(tmp, A, False)
                    a_id = False
                    pos = prev
                x = pos
                # suffix B = L_{k+1} ... L_{len-1}, walking forward from `after`
                pos = after
                b_id = True
                for j in range(k + 1, lengths[p]):
                    sj = steps[p, j]
                    dj = abs(sj) - 1
                    if sj > 0:
                        if b_id:
                            copy_into(Ub[dj, pos], Bm, False)
                        else:
                            mul_into(Bm, Ub[dj, pos], tmp)
                            copy_into(tmp, Bm, False)
                        pos = fwd[pos, dj]
                    else:
                        pos = bwd[pos, dj]
                        if b_id:
                            copy_into(Ub[dj, pos], Bm, True)
                        else:
                            mul_adj_into(Bm, Ub[dj, pos], tmp)
                            copy_into(tmp, Bm, False)
                    b_id = False
                # K = A^+ GC B^+ (the gradient w.r.t. L)
                gc = GC[b, path_mu[p], x]
                if a_id:
                    copy_into(gc, tmp, False)
                else:
                    adj_mul_into(A, gc, tmp)
                if b_id:
                    copy_into(tmp, K, False)
                else:
                    mul_adj_into(tmp, Bm, K)
                g = G[b, d, y]
                if st > 0:
                    for i in range(n):
                        for jj in range(n):
                            g[i, jj] += w * K[i, jj]
                else:  # L = U^+: the gradient w.r.t. U is K^+
                    for i in range(n):
                        for jj in range(n):
                            g[i, jj] += w * K[jj, i].conjugate()


@njit(parallel=True, cache=True)
def _term_overlaps_kernel(U, fwd, bwd, steps, lengths, terms, mu_start, GC, partial, nchunk):
    """partial[c, k] = sum over chunk c's links of Re tr(GC[b, mu, s]^+ C^(k)_mu(s))."""
    B, D, V, n, _ = U.shape
    total = B * D * V
    for c in prange(nchunk):
        prod = np.empty((n, n), dtype=np.complex128)
        tmp = np.empty((n, n), dtype=np.complex128)
        for idx in range(c * total // nchunk, (c + 1) * total // nchunk):
            b = idx // (D * V)
            mu = (idx // V) % D
            s = idx % V
            for p in range(mu_start[mu], mu_start[mu + 1]):
                _path_product_into(U[b], fwd, bwd, steps[p], lengths[p], s, prod, tmp)
                partial[c, terms[p]] += re_trace_mul_adj(prod, GC[b, mu, s])


@njit(parallel=True, cache=True)
def _re_trace_overlap_kernel(U, C, partial, nchunk):
    """partial[c, b] = sum over chunk c's links of configuration b of Re tr(U C^+)."""
    B, D, V, n, _ = U.shape
    total = B * D * V
    for c in prange(nchunk):
        for idx in range(c * total // nchunk, (c + 1) * total // nchunk):
            b = idx // (D * V)
            mu = (idx // V) % D
            s = idx % V
            partial[c, b] += re_trace_mul_adj(U[b, mu, s], C[b, mu, s])


@njit(parallel=True, cache=True)
def _project_algebra_kernel(G, U, scale, out, nchunk):
    """out = scale * TA(G U^+) per link (for N = 1 the anti-Hermitian part)."""
    B, D, V, n, _ = U.shape
    total = B * D * V
    for c in prange(nchunk):
        tmp = np.empty((n, n), dtype=np.complex128)
        for idx in range(c * total // nchunk, (c + 1) * total // nchunk):
            b = idx // (D * V)
            mu = (idx // V) % D
            s = idx % V
            mul_adj_into(G[b, mu, s], U[b, mu, s], tmp)
            ta_into(tmp, scale, out[b, mu, s])


def _n_links(flat) -> int:
    return flat.shape[0] * flat.shape[1] * flat.shape[2]


# ============================================================================ kernel-form building blocks


def staple_sums_flat(flat: np.ndarray, shape, terms, weights) -> np.ndarray:
    """``C = sum_k weights[k] C^(k)`` for links in kernel form ``(B, D, V, N, N)``; same shape.

    ``flat`` complex128 C-contiguous (as :func:`link_matrices` makes it), ``terms`` checked loop
    terms, ``weights`` float64 ``(n_terms,)``.
    """
    P = path_tables(terms, shape)
    fwd, bwd = neighbour_table(shape)
    out = np.empty_like(flat)
    total = _n_links(flat)
    with parallel_threads("smearing", total):
        _staple_sums_kernel(flat, fwd, bwd, P.steps, P.length, P.term, P.mu_start, weights, out, n_chunks(total, _CHUNKS_PER_THREAD))
    return out


def staple_sums_pullback(flat: np.ndarray, shape, terms, weights, GC: np.ndarray, G: np.ndarray) -> None:
    """Backward of :func:`staple_sums_flat` with respect to the links: ``G += dL/dU`` given ``GC = dL/dC``.

    Gradients in the convention of :mod:`latticeml.autodiff` (``dL/dRe + i dL/dIm``), all arrays in
    kernel form ``(B, D, V, N, N)`` complex128 C-contiguous; ``G`` is updated in place.
    """
    P = path_tables(terms, shape)
    fwd, bwd = neighbour_table(shape)
    total = _n_links(flat)
    with parallel_threads("smearing", total):
        _pullback_kernel(
            flat, fwd, bwd, P.steps, P.term, P.mu, P.occ_start, P.occ_path, P.occ_step, P.length,
            weights, np.ascontiguousarray(GC), G, n_chunks(total, _CHUNKS_PER_THREAD),
        )


def term_overlaps(flat: np.ndarray, shape, terms, GC: np.ndarray) -> np.ndarray:
    """``sum_{b, mu, x} Re tr(GC_mu(x)^+ C^(k)_mu(x))`` per term ``k``, ``(n_terms,)``.

    The backward of :func:`staple_sums_flat` with respect to the weights, given ``GC = dL/dC``.
    """
    terms = check_terms(terms)
    P = path_tables(terms, shape)
    fwd, bwd = neighbour_table(shape)
    total = _n_links(flat)
    with parallel_threads("smearing", total):
        nchunk = n_chunks(total, _CHUNKS_PER_THREAD)
        partial = np.zeros((nchunk, len(terms)))
        _term_overlaps_kernel(flat, fwd, bwd, P.steps, P.length, P.term, P.mu_start, np.ascontiguousarray(GC), partial, nchunk)
    return partial.sum(axis=0)


def re_trace_overlap(flat: np.ndarray, C: np.ndarray) -> np.ndarray:
    """``sum_{mu, x} Re tr(U_mu(x) C_mu(x)^+)`` per configuration, ``(B,)``, both in kernel form."""
    total = _n_links(flat)
    with parallel_threads("smearing", total):
        nchunk = n_chunks(total, _CHUNKS_PER_THREAD)
        partial = np.zeros((nchunk, flat.shape[0]))
        _re_trace_overlap_kernel(flat, np.ascontiguousarray(C), partial, nchunk)
    return partial.sum(axis=0)


def project_algebra_flat(G: np.ndarray, flat: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """``scale * TA(G U^+)`` per link, kernel form (N = 1: ``i scale Im(G conj u)``).

    With ``G`` a staple sum this is the stout / flow generator ``X = TA(C U^+)``; with ``G`` the
    gradient of an action and ``scale = 1/2`` it is the HMC force ``F = TA(G U^+)/2``.
    """
    out = np.empty_like(flat)
    total = _n_links(flat)
    with parallel_threads("smearing", total):
        _project_algebra_kernel(np.ascontiguousarray(G, dtype=np.complex128), flat, float(scale), out, n_chunks(total, _CHUNKS_PER_THREAD))
    return out


def loop_action(flat: np.ndarray, shape, terms, coefficients, *, want_gradient: bool = False):
    """``S = sum_k c_k sum_{loops W of term k} (1 - Re tr W / N)`` per configuration, and its gradient.

    Links in kernel form ``(B, D, V, N, N)``; ``terms`` from ``("plaquette", "rectangle")`` (the
    closed-loop terms), ``coefficients`` one float each. Returns ``(S (B,), G)`` with
    ``G = -(1/N) sum_k c_k C^(k)`` (kernel form, the gradient of S with respect to the links) or
    ``G = None``. Each loop is counted once: ``sum_loops Re tr W = sum_links Re tr(U C^+) / length``.
    """
    N = flat.shape[-1]
    D = len(shape)
    V = int(np.prod(shape))
    n_loops = {"plaquette": V * D * (D - 1) // 2, "rectangle": V * D * (D - 1)}
    S = np.zeros(flat.shape[0])
    G = np.zeros_like(flat) if want_gradient else None
    for term, c in zip(terms, coefficients):
        if term not in LOOP_LENGTH:
            raise ValueError(f"loop_action sums closed loops of the terms {tuple(LOOP_LENGTH)}, got {term!r}")
        C = staple_sums_flat(flat, shape, (term,), np.ones(1))
        S += c * (n_loops[term] - re_trace_overlap(flat, C) / (LOOP_LENGTH[term] * N))
        if want_gradient:
            G -= (c / N) * C
    return S, G


# ============================================================================ public API


def staple_sums(U, *, terms=("plaquette",), weights=None, batched: bool = False) -> np.ndarray:
    """``C_mu(x) = sum_k w_k C^(k)_mu(x)``, paths from x to x + mu (module docstring); same shape as U.

    ``weights`` default to 1 for every term. For U(1) the result is complex ``(D, *shape)``.
    ``U_mu(x) C_mu(x)^+`` is the sum of the closed loops through the link.
    """
    terms = check_terms(terms)
    links = link_matrices(U, batched=batched)
    w = np.ones(len(terms)) if weights is None else term_weights(weights, terms, "weights")
    return links.restore_matrices(staple_sums_flat(links.flat, links.shape, terms, w))


def _check_path(path, D: int) -> np.ndarray:
    steps = np.asarray(path, dtype=np.int64).reshape(-1)
    if np.any(steps == 0) or np.any(np.abs(steps) > D) or steps.size != np.size(path):
        raise ValueError(
            f"a path is a sequence of signed steps +-(mu + 1) with 0 <= mu < D = {D} "
            f"(+(mu + 1): U_mu(y), -(mu + 1): U_mu(y - mu)^+), got {path!r}"
        )
    return np.ascontiguousarray(steps)


def path_product(U, path, *, batched: bool = False) -> np.ndarray:
    """The ordered product of links along ``path`` from every site: ``P(x)``, ``(*L, N, N)``.

    ``path`` is a sequence of signed steps (module docstring): ``[2, 1, -2]`` is
    ``U_1(x) U_0(x + 1) U_1(x + 0)^+``, a staple from x to x + 0. ``P(x)`` transforms as
    ``Omega(x) P(x) Omega(z)^+`` with z the end of the path; the empty path gives the identity.
    Batched: ``(B, *L, N, N)``. U(1) angles give complex phases ``(*L)``.
    """
    links = link_matrices(U, batched=batched)
    D = len(links.shape)
    steps = _check_path(path, D)
    fwd, bwd = neighbour_table(links.shape)
    B, _, V, N, _ = links.flat.shape
    out = np.empty((B, V, N, N), dtype=np.complex128)
    with parallel_threads("smearing", B * V):
        _path_product_kernel(links.flat, fwd, bwd, steps, len(steps), out, n_chunks(B * V, _CHUNKS_PER_THREAD))
    out = out[..., 0, 0] if links.u1 else out
    out = out.reshape((B,) + links.shape + out.shape[2:])
    return out if batched else out[0]


def parallel_transport(W, U, mu: int, distance: int = 1, *, batched: bool = False) -> np.ndarray:
    """Parallel transport of site-local matrices along a straight line: ``W'(x) = P W(x + k mu) P^+``.

    ``P = U_mu(x) U_mu(x + mu) ... U_mu(x + (k-1) mu)`` for ``k = distance > 0`` (bring ``W`` from
    ``x + k mu`` to ``x``), ``P = U_mu(x - mu)^+ ... U_mu(x - |k| mu)^+`` for ``k < 0``; ``k = 0``
    returns a copy. ``W`` is complex ``(C, L0, ..., L{D-1}, N, N)`` (C channels; batched
    ``(B, C, ...)`` with batched links), ``U`` SU(N) links ``(D, *L, N, N)`` (U(1) angles with
    ``N = 1``). ``W'`` transforms like ``W``: ``W(x) -> Omega(x) W(x) Omega(x)^+`` (Favoni et al.
    2022, the L-CNN's parallel transport). The map is linear in ``W`` and its adjoint is the transport
    back, ``parallel_transport(G, U, mu, -distance)`` (``Re <G, T W> = Re <T^+ G, W>``): that is its
    backward pass with respect to ``W`` at fixed links.
    """
    links = link_matrices(U, batched=batched)
    D = len(links.shape)
    B, _, V, N, _ = links.flat.shape
    if isinstance(mu, bool) or int(mu) != mu or not 0 <= mu < D:
        raise ValueError(f"mu must be a lattice direction 0 <= mu < {D}, got {mu!r}")
    if isinstance(distance, bool) or int(distance) != distance:
        raise ValueError(f"distance must be an integer (negative: transport from x - |k| mu), got {distance!r}")
    W = np.asarray(W)
    lead = 2 if batched else 1
    form = f"({'B, ' if batched else ''}C, {', '.join(map(str, links.shape))}, {N}, {N})"
    if W.ndim != lead + D + 2 or W.shape[lead:] != links.shape + (N, N) or (batched and W.shape[0] != B):
        raise ValueError(f"W must have shape {form} to match the links, got {W.shape}")
    C = W.shape[lead - 1]
    Wf = np.ascontiguousarray(W, dtype=np.complex128).reshape(B, C, V, N, N)
    k = int(distance)
    steps = np.full(abs(k), (mu + 1) if k > 0 else -(mu + 1), dtype=np.int64)
    fwd, bwd = neighbour_table(links.shape)
    out = np.empty_like(Wf)
    total = B * C * V
    with parallel_threads("smearing", total):
        _transport_kernel(links.flat, Wf, fwd, bwd, steps, len(steps), out, n_chunks(total, _CHUNKS_PER_THREAD))
    return out.reshape(W.shape)
