"""Smearing of gauge links: APE, stout (with its backward pass, "the stout force") and the Wilson flow.

Fields and conventions
----------------------
* SU(N) links ``U`` are complex128 ``(D, L0, ..., L{D-1}, N, N)``; U(1) links are angles ``theta``
  float64 ``(D, L0, ..., L{D-1})`` (the group is read off the dtype, as in
  :mod:`latticeml.observables.loops`). ``batched=True`` adds a leading batch axis ``(B, D, ...)``.
  Inside the kernels a U(1) link is the 1 x 1 unitary matrix ``exp(i theta)``, so one code path
  serves U(1) and SU(N); for N = 1 the algebra projection keeps the anti-Hermitian part
  ``i Im(m)`` (there is no trace to remove).
* Algebra conventions of :mod:`latticeml.groups`: ``TA(M) = (M - M^+)/2 - tr(M - M^+)/(2N)``,
  inner product ``<X, Y> = -2 tr XY``, forces are gradients in it.
* Staple paths. A *loop term* is a set of paths from ``x`` to ``x + mu`` for every link
  ``U_mu(x)``; ``U_mu(x) C_mu(x)^+`` is then a sum of closed loops through the link. The terms:

  ================  =====================================================================  ==========
  ``plaquette``     ``U_nu(x) U_mu(x+nu) U_nu(x+mu)^+`` and the one through ``x - nu``       2 (D-1)
  ``rectangle``     the 2 x 1 loops: both positions along mu, and the 1 x 2 ones, each       6 (D-1)
                    above and below
  ``polyakov_time`` for mu = 0 only: the rest of the Polyakov line, ``L0 - 1`` links back   1
                    from x to x + mu the long way round, so ``U C^+ = P_0(x)``, the untraced
                    Polyakov loop
  ``polyakov_space`` the same for every spatial mu >= 1                                     1
  ================  =====================================================================  ==========

  ``C_mu(x) = sum_k w_k C^(k)_mu(x)`` with one real weight per term. With the staple sum
  ``A_mu(x)`` of :mod:`latticeml.theories.sun` (closing paths), ``C^(plaquette) = A^+``.

Algorithms
----------
* APE (M. Albanese et al., APE collaboration, PLB 192 (1987) 163):
  ``U' = P_SU(N)[ (1 - alpha) U + alpha / (2 (D - 1)) C^(plaquette) ]``, ``P_SU(N)`` the projection of
  :func:`latticeml.groups.project_su` (maximise ``Re tr(W^+ M)``); U(1): the phase of the sum.
* Stout (C. Morningstar and M. Peardon, PRD 69 (2004) 054501 [hep-lat/0311018]):
  ``U' = exp(X) U`` with ``X = TA(Omega)``, ``Omega = C U^+``, ``C = sum_k rho_k C^(k)``. (Their
  ``Q = (i/2)(Omega^+ - Omega) - (i/2N) tr(...)`` is ``-i X``, ``exp(iQ) = exp(X)``.) The exponential is
  exact: closed form for SU(2), Cayley-Hamilton ``exp(iQ) = f0 + f1 Q + f2 Q^2`` for SU(3) (their
  eqs. 19-34), a Taylor series with scaling and squaring for N >= 4.
* Backward (their Sec. III, the "stout force"): given the gradient ``G' = dL/dRe U' + i dL/dIm U'``
  (the convention of :mod:`latticeml.autodiff`), with ``M = G' U^+`` the gradient with respect
  to ``E = exp(X)``,

      Lambda = TA( dexp_X^*(M) ),                dexp_X^* the adjoint of the differential of exp at X,
      dL/dC  = Lambda U,                         (the gradient with respect to the staple sum)
      G      = E^+ G' - Lambda C  + sum over the staples that contain the link of dL/dC pulled back,
      dL/drho_k = sum_{x, mu} Re tr[(dL/dC_mu(x))^+ C^(k)_mu(x)].

  ``dexp_X^*`` is where Morningstar and Peardon's B_1, B_2 matrices enter (SU(3): derivatives
  ``b_1j = df_j/dc_1``, ``b_2j = df_j/dc_0`` of the Cayley-Hamilton coefficients; their eqs. 46-64);
  for SU(2) it follows from ``exp(X) = cos r + (sin r / r) X``; for N >= 4 it is the Frechet
  derivative of the exponential, read off the exponential of the block matrix
  ``[[X^+, M], [0, X^+]]`` (Higham, *Functions of Matrices*, SIAM 2008, thm. 3.6). Chaining this
  through the layers is their Lambda recursion: the same backward makes any action of smeared
  links differentiable with respect to the thin links and to the rho's (:data:`stout_op`), and
  gives the smeared-link HMC force (:func:`smeared_force`). The force of an action with gradient
  ``G`` is ``F = TA(G U^+)/2``.
* Wilson flow (M. Luscher, JHEP 08 (2010) 071 [arXiv:1006.4518]): ``dV/dt = Z(V) V`` with
  ``Z = -g0^2 dS_W`` = ``TA(C^(plaquette) U^+)`` here (``= -TA(U A)``; with ``c1 != 0`` the
  Luscher-Weisz "Symanzik" flow ``Z = TA((c0 C^(plaq) + c1 C^(rect)) U^+)``, ``c0 = 1 - 8 c1``). So an
  Euler step of size eps *is* a stout step with rho = eps. Integrated with Luscher's third-order
  Runge-Kutta scheme (his appendix C)::

      W1 = exp(Z0/4) V,   W2 = exp(8/9 Z1 - 17/36 Z0) W1,   V(t+eps) = exp(3/4 Z2 - 8/9 Z1 + 17/36 Z0) W2,

  ``Z_i = eps Z(W_i)``, ``W0 = V(t)``. The energy density in lattice units, per site:
  plaquette ``E = 2 sum_{mu<nu} Re tr(1 - U_P)`` and clover ``E = -sum_{mu<nu} tr(G_{mu nu}^2)``
  with the clover field strength of :func:`latticeml.observables.topology.clover_field_strength`
  (both are ``(1/4) G^a G^a`` in the continuum); ``t0`` solves ``t^2 E(t) = 0.3`` (the SU(3)
  reference value of Luscher's paper).
* Improved gauge actions (M. Luscher and P. Weisz, CMP 97 (1985) 59; Y. Iwasaki, UTHEP-118 (1983)):
  ``S = beta sum_x [ c0 sum_{mu<nu} (1 - Re tr P / N) + c1 sum_{mu != nu} (1 - Re tr R_{mu nu} / N) ]``,
  ``c0 = 1 - 8 c1``, R the 2 x 1 rectangles (2 per plane and site). ``c1 = 0``: Wilson;
  ``-1/12``: tree-level Luscher-Weisz; ``-0.331``: Iwasaki. For U(1) ``Re tr U / N`` is ``cos theta``.

Kernels run over flat sites (:mod:`latticeml.lattice`) with links viewed as ``(B, D, V, N, N)``
complex128, one compiled signature each; paths are walked with the neighbour tables, so one
kernel serves every D, every loop term and every N (1 for U(1)). The backward pass is a *gather*:
each link collects the contributions of every staple that contains it, so threads never write to
the same link. Each kernel is a serial loop over a range of links plus a thin parallel driver;
fields of fewer than ``_PARALLEL_MIN_LINKS`` links run serially (thread start-up costs more than
a 4^4 lattice's work).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from numba import get_num_threads, njit, prange

from . import groups
from ._checks import finite_float
from ._linalg import adj_mul, mat_mul, mat_mul_adj, re_trace_mul_adj, traceless_antihermitian_into
from ._threads import _n_chunks
from .autodiff.tensor import custom_op
from .groups import _su3_closed_form, _su3_q_powers, expm_taylor_into, wrap_angle
from .lattice import check_shape, neighbour_table
from .observables.topology import clover_field_strength

__all__ = [
    "LOOP_TERMS",
    "LUSCHER_WEISZ_C1",
    "IWASAKI_C1",
    "staple_sums",
    "ape",
    "stout",
    "stout_generator",
    "StoutResiduals",
    "stout_forward",
    "stout_backward",
    "stout_op",
    "gauge_action",
    "gauge_force",
    "gauge_action_op",
    "force_from_gradient",
    "smeared_action",
    "smeared_force",
    "flow_generator",
    "flow_step",
    "wilson_flow",
    "FlowResult",
    "energy_density",
    "scale_t0",
]

LOOP_TERMS = ("plaquette", "rectangle", "polyakov_time", "polyakov_space")

#: Tree-level Symanzik (Luscher-Weisz) rectangle coefficient.
LUSCHER_WEISZ_C1 = -1.0 / 12.0
#: Iwasaki's renormalisation-group improved rectangle coefficient.
IWASAKI_C1 = -0.331


# ============================================================================ staple paths


def _term_paths(term: str, mu: int, shape: tuple[int, ...]) -> list[list[int]]:
    """Paths from x to x + mu of one loop term, as lists of signed steps ``+-(d + 1)``."""
    D = len(shape)
    up = lambda d: d + 1  # noqa: E731
    dn = lambda d: -(d + 1)  # noqa: E731
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


#: Number of links in one closed loop of each term (the loop counts once per link in sum U C^+).
_LOOP_LENGTH = {"plaquette": 4, "rectangle": 6}


class _Paths(NamedTuple):
    """Flat tables of the staple paths of a tuple of loop terms on one lattice shape.

    steps[p, k]: signed step k of path p; length[p]; term[p]: index into the terms; mu[p]: the
    link direction; mu_start: paths of direction mu are mu_start[mu] .. mu_start[mu + 1] - 1;
    occ_*: for each direction d, the (path, step) pairs whose step runs along d (the gather list).
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
def _path_tables(terms: tuple[str, ...], shape: tuple[int, ...]) -> _Paths:
    D = len(shape)
    for term in terms:
        if term not in LOOP_TERMS:
            raise ValueError(f"unknown loop term {term!r}; choose from {LOOP_TERMS}")
        if term.startswith("polyakov") and min(shape) < 2:
            raise ValueError(f"Polyakov-loop terms need every extent >= 2, got shape {shape}")
    rows = []  # (mu, term index, steps)
    for mu in range(D):
        for k, term in enumerate(terms):
            for path in _term_paths(term, mu, shape):
                rows.append((mu, k, path))
    n = len(rows)
    maxlen = max([len(r[2]) for r in rows], default=1)
    steps = np.zeros((max(n, 1), maxlen), dtype=np.int64)
    length = np.zeros(max(n, 1), dtype=np.int64)
    term = np.zeros(max(n, 1), dtype=np.int64)
    mu_of = np.zeros(max(n, 1), dtype=np.int64)
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
    tables = _Paths(steps, length, term, mu_of, mu_start, occ_start, occ_path, occ_step)
    for a in tables:
        a.setflags(write=False)
    return tables


def _check_terms(terms) -> tuple[str, ...]:
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


# ============================================================================ small-matrix helpers


# Thin non-inlined wrappers of the inline helpers of latticeml._linalg: every call site of an
# inline="always" function is copied into the caller's IR, which made these kernels take minutes
# to compile; a plain call costs a few nanoseconds per 3 x 3 product and LLVM may still inline it.


@njit(cache=True)
def _mul(a, b, out):
    """out = a b."""
    mat_mul(a, b, out)


@njit(cache=True)
def _mul_adj(a, b, out):
    """out = a b^+."""
    mat_mul_adj(a, b, out)


@njit(cache=True)
def _adj_mul(a, b, out):
    """out = a^+ b."""
    adj_mul(a, b, out)


@njit(cache=True)
def _ta(m, scale, out):
    """out = scale TA(m) (N >= 2)."""
    traceless_antihermitian_into(m, scale, out)


@njit(cache=True)
def _re_tr_mul_adj(a, b):
    """Re tr(a b^+)."""
    return re_trace_mul_adj(a, b)


@njit(cache=True)
def _project_algebra_into(m, scale, out):
    """out = scale * TA(m); for N = 1 (U(1)) the anti-Hermitian part ``i scale Im m``."""
    if m.shape[0] == 1:
        out[0, 0] = 1j * (scale * m[0, 0].imag)
    else:
        _ta(m, scale, out)


@njit(cache=True)
def _copy_into(a, out, adjoint):
    """out = a, or a^+ if adjoint."""
    n = a.shape[0]
    if adjoint:
        for i in range(n):
            for j in range(n):
                out[i, j] = a[j, i].conjugate()
    else:
        for i in range(n):
            for j in range(n):
                out[i, j] = a[i, j]


@njit(inline="always", cache=True)
def _xi1(w):
    """(w cos w - sin w) / w^3 = d/dw (sin w / w) / w, by its Taylor series where the ratio cancels."""
    if abs(w) < 0.5:
        w2 = w * w
        acc = 0.0
        term = -1.0 / 3.0  # k = 1 of sum_k (-1)^k 2k w^(2k-2) / (2k+1)!
        for k in range(1, 12):
            acc += term
            term *= -w2 * (2.0 * (k + 1)) / (2.0 * k) / ((2.0 * k + 2.0) * (2.0 * k + 3.0))
        return acc
    return (w * np.cos(w) - np.sin(w)) / (w * w * w)


@njit(cache=True)
def _su3_coefficients(c0, c1):
    """exp(iQ) = f0 + f1 Q + f2 Q^2 for traceless Hermitian 3 x 3 Q, c0 = det Q, c1 = tr Q^2 / 2,
    and the derivatives b1j = df_j/dc1, b2j = df_j/dc0 (Morningstar & Peardon 2004, eqs. 29-34, 57-64).

    For c1 < 1 the coefficients are summed from the exponential series, reducing Q^n to
    p0 + p1 Q + p2 Q^2 with Cayley-Hamilton (Q^3 = c1 Q + c0) and carrying dp/dc0, dp/dc1 along:
    the closed forms divide by (9u^2 - w^2)^2 ~ c1^2 and lose digits for small Q. For c1 >= 1 the
    closed forms are used, with f_j(-c0) = (-1)^j conj f_j(c0) and b_ij(-c0) = (-1)^(i+j+1) conj b_ij(c0).
    Returns ((f0, f1, f2), (b10, b11, b12), (b20, b21, b22)).
    """
    if c1 < 1.0:
        p0, p1, p2 = 1.0, 0.0, 0.0
        a0, a1, a2 = 0.0, 0.0, 0.0  # dp/dc0
        e0, e1, e2 = 0.0, 0.0, 0.0  # dp/dc1
        f0 = 0j
        f1 = 0j
        f2 = 0j
        b10 = 0j
        b11 = 0j
        b12 = 0j
        b20 = 0j
        b21 = 0j
        b22 = 0j
        coef = 1.0 + 0j
        # |eigenvalues of Q| <= sqrt(4 c1 / 3) < 1.16: 40 terms bound the remainder by 1e-40
        for n in range(40):
            f0 += coef * p0
            f1 += coef * p1
            f2 += coef * p2
            b20 += coef * a0
            b21 += coef * a1
            b22 += coef * a2
            b10 += coef * e0
            b11 += coef * e1
            b12 += coef * e2
            a0, a1, a2 = p2 + c0 * a2, a0 + c1 * a2, a1
            e0, e1, e2 = c0 * e2, e0 + p2 + c1 * e2, e1
            p0, p1, p2 = c0 * p2, p0 + c1 * p2, p1
            coef *= 1j / (n + 1)
            if n > 6 and abs(coef) * (1.0 + abs(p0) + abs(p1) + abs(p2) + abs(a0) + abs(a1) + abs(a2) + abs(e0) + abs(e1) + abs(e2)) < 1e-20:
                break
        return (f0, f1, f2), (b10, b11, b12), (b20, b21, b22)
    f0, f1, f2, u, w, xi0, cw, e2iu, emiu, den, neg = _su3_closed_form(c0, c1)
    u2 = u * u
    w2 = w * w
    xi1 = _xi1(w)
    r10 = 2.0 * (u + 1j * (u2 - w2)) * e2iu + 2.0 * emiu * (
        4.0 * u * (2.0 - 1j * u) * cw + 1j * (9.0 * u2 + w2 - 1j * u * (3.0 * u2 + w2)) * xi0
    )
    r11 = 2.0 * (1.0 + 2j * u) * e2iu + emiu * (-2.0 * (1.0 - 1j * u) * cw + 1j * (6.0 * u + 1j * (w2 - 3.0 * u2)) * xi0)
    r12 = 2j * e2iu + 1j * emiu * (cw - 3.0 * (1.0 - 1j * u) * xi0)
    r20 = -2.0 * e2iu + 2j * u * emiu * (cw + (1.0 + 4j * u) * xi0 + 3.0 * u2 * xi1)
    r21 = -1j * emiu * (cw + (1.0 + 2j * u) * xi0 - 3.0 * u2 * xi1)
    r22 = emiu * (xi0 - 3j * u * xi1)
    d2 = 2.0 * den * den
    b10 = (2.0 * u * r10 + (3.0 * u2 - w2) * r20 - 2.0 * (15.0 * u2 + w2) * f0) / d2
    b11 = (2.0 * u * r11 + (3.0 * u2 - w2) * r21 - 2.0 * (15.0 * u2 + w2) * f1) / d2
    b12 = (2.0 * u * r12 + (3.0 * u2 - w2) * r22 - 2.0 * (15.0 * u2 + w2) * f2) / d2
    b20 = (r10 - 3.0 * u * r20 - 24.0 * u * f0) / d2
    b21 = (r11 - 3.0 * u * r21 - 24.0 * u * f1) / d2
    b22 = (r12 - 3.0 * u * r22 - 24.0 * u * f2) / d2
    if neg:
        f0, f1, f2 = f0.conjugate(), -f1.conjugate(), f2.conjugate()
        b10, b11, b12 = b10.conjugate(), -b11.conjugate(), b12.conjugate()
        b20, b21, b22 = -b20.conjugate(), b21.conjugate(), -b22.conjugate()
    return (f0, f1, f2), (b10, b11, b12), (b20, b21, b22)


@njit(cache=True)
def _expm_into(X, out, s1, s2):
    """out = exp(X) for X in su(N) (N = 1: X = i phi); s1, s2 are (N, N) complex scratch arrays."""
    n = X.shape[0]
    if n == 1:
        phi = X[0, 0].imag
        out[0, 0] = np.cos(phi) + 1j * np.sin(phi)
    elif n == 2:
        r = np.sqrt(abs(X[0, 0]) ** 2 + abs(X[0, 1]) ** 2)
        c = np.cos(r)
        s = np.sin(r) / r if r > 0.0 else 1.0
        out[0, 0] = c + s * X[0, 0]
        out[0, 1] = s * X[0, 1]
        out[1, 0] = s * X[1, 0]
        out[1, 1] = c + s * X[1, 1]
    elif n == 3:
        c0, c1 = _su3_q_powers(X, s1, s2)
        f, _, _ = _su3_coefficients(c0, c1)
        for i in range(3):
            for j in range(3):
                out[i, j] = f[1] * s1[i, j] + f[2] * s2[i, j]
            out[i, i] += f[0]
    else:
        expm_taylor_into(X, out, s1, s2)


@njit(cache=True)
def _dexp_adjoint_ta_into(X, M, E, out, s1, s2, s3, s4, big):
    """out = TA(dexp_X^*(M)): the su(N) gradient with respect to X of Re tr(M^+ exp(X)).

    ``E`` = exp(X) (used for N = 1); s1..s4 are (N, N) and ``big`` a (4, 2N, 2N) complex scratch array.
    """
    n = X.shape[0]
    if n == 1:
        y = E[0, 0].conjugate() * M[0, 0]
        out[0, 0] = 1j * y.imag
    elif n == 2:
        # exp(X) = cos r + s(r) X, s = sin r / r, r^2 = -tr X^2 / 2. With g = s'(r)/r:
        # Y = h X + s M, h = (-s Re tr M - g Re tr(X M)) / 2, and TA(X) = X
        r = np.sqrt(abs(X[0, 0]) ** 2 + abs(X[0, 1]) ** 2)
        s = np.sin(r) / r if r > 0.0 else 1.0
        g = _xi1(r)
        tr_m = (M[0, 0] + M[1, 1]).real
        tr_xm = (X[0, 0] * M[0, 0] + X[0, 1] * M[1, 0] + X[1, 0] * M[0, 1] + X[1, 1] * M[1, 1]).real
        h = 0.5 * (-s * tr_m - g * tr_xm)
        _ta(M, s, out)
        for i in range(2):
            for j in range(2):
                out[i, j] += h * X[i, j]
    elif n == 3:
        # exp(iQ) = sum_j f_j Q^j, Q = -iX; df_j = tr(B_j dQ), B_j = b1j Q + b2j Q^2. The gradient
        # with respect to Q is Gamma = sum_j s_j B_j^+ + conj(f1) M + conj(f2) (M Q + Q M),
        # s_j = tr(Q^j M); with respect to X it is i Gamma (dQ = -i dX).
        q = s1
        q2 = s2
        t1 = s3
        gam = s4
        c0, c1 = _su3_q_powers(X, q, q2)
        f, b1, b2 = _su3_coefficients(c0, c1)
        s0 = M[0, 0] + M[1, 1] + M[2, 2]
        s1 = 0j
        s2 = 0j
        for i in range(3):
            for k in range(3):
                s1 += q[i, k] * M[k, i]
                s2 += q2[i, k] * M[k, i]
        cq = s0 * b1[0].conjugate() + s1 * b1[1].conjugate() + s2 * b1[2].conjugate()
        cq2 = s0 * b2[0].conjugate() + s1 * b2[1].conjugate() + s2 * b2[2].conjugate()
        cf1 = f[1].conjugate()
        cf2 = f[2].conjugate()
        _mul(M, q, t1)
        _mul(q, M, gam)
        for i in range(3):
            for j in range(3):
                gam[i, j] = 1j * (cq * q[i, j] + cq2 * q2[i, j] + cf1 * M[i, j] + cf2 * (t1[i, j] + gam[i, j]))
        _ta(gam, 1.0, out)
    else:
        # Frechet derivative L(X^+, M) = int_0^1 exp(s X^+) M exp((1-s) X^+) ds, the upper-right block
        # of exp([[X^+, M], [0, X^+]]); M is normalised first so the scaling step depends on X only
        blk = big[0]
        res = big[1]
        mnorm = 0.0
        for i in range(n):
            for j in range(n):
                mnorm = max(mnorm, abs(M[i, j]))
        if mnorm == 0.0:
            for i in range(n):
                for j in range(n):
                    out[i, j] = 0.0
            return
        for i in range(2 * n):
            for j in range(2 * n):
                blk[i, j] = 0.0
        for i in range(n):
            for j in range(n):
                xa = X[j, i].conjugate()
                blk[i, j] = xa
                blk[n + i, n + j] = xa
                blk[i, n + j] = M[i, j] / mnorm
        expm_taylor_into(blk, res, big[2], big[3])
        for i in range(n):
            for j in range(n):
                s1[i, j] = res[i, n + j] * mnorm
        _ta(s1, 1.0, out)


# ============================================================================ path walking


@njit(cache=True)
def _path_product_into(U, fwd, bwd, steps, length, s, out, tmp):
    """out = product of the links along a path (signed steps) from site s; tmp is scratch."""
    pos = s
    cur = out
    nxt = tmp
    for k in range(length):
        st = steps[k]
        d = abs(st) - 1
        if st > 0:
            if k == 0:
                _copy_into(U[d, pos], cur, False)
            else:
                _mul(cur, U[d, pos], nxt)
                cur, nxt = nxt, cur
            pos = fwd[pos, d]
        else:
            pos = bwd[pos, d]
            if k == 0:
                _copy_into(U[d, pos], cur, True)
            else:
                _mul_adj(cur, U[d, pos], nxt)
                cur, nxt = nxt, cur
    if length % 2 == 0:  # an odd number of products left the result in tmp
        _copy_into(cur, out, False)


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


# ---------------------------------------------------------------------------- kernels
#
# Every kernel is a serial function over a range [i0, i1) of links (flat index
# idx = (b * D + mu) * V + s) plus a small parallel driver that splits the range into chunks.
# Small fields run the serial function directly: on two shared cores the thread start-up and
# synchronisation of a parallel region cost more than a 4^4 lattice's work (and far more when the
# cores are busy), see _run.

_PARALLEL_MIN_LINKS = 8192


def _parallel(total: int) -> bool:
    return total >= _PARALLEL_MIN_LINKS and get_num_threads() > 1


@njit(cache=True)
def _staple_sums_range(U, fwd, bwd, steps, lengths, terms, mu_start, weights, out, i0, i1):
    """out[b, mu, s] = C_mu(s) = sum_k weights[k] C^(k)_mu(s)."""
    B, D, V, n, _ = U.shape
    prod = np.empty((n, n), dtype=np.complex128)
    tmp = np.empty((n, n), dtype=np.complex128)
    for idx in range(i0, i1):
        b = idx // (D * V)
        mu = (idx // V) % D
        s = idx % V
        _staple_sum_into(U[b], fwd, bwd, steps, lengths, terms, mu_start[mu], mu_start[mu + 1], weights, s, out[b, mu, s], prod, tmp)


@njit(parallel=True, cache=True)
def _staple_sums_parallel(U, fwd, bwd, steps, lengths, terms, mu_start, weights, out, nchunk):
    total = U.shape[0] * U.shape[1] * U.shape[2]
    for c in prange(nchunk):
        _staple_sums_range(U, fwd, bwd, steps, lengths, terms, mu_start, weights, out, c * total // nchunk, (c + 1) * total // nchunk)


@njit(cache=True)
def _generator_range(U, fwd, bwd, steps, lengths, terms, mu_start, weights, C, X, i0, i1):
    """C[b, mu, s] = weighted staple sum and X[b, mu, s] = TA(C U^+) (the stout / flow generator)."""
    B, D, V, n, _ = U.shape
    prod = np.empty((n, n), dtype=np.complex128)
    tmp = np.empty((n, n), dtype=np.complex128)
    for idx in range(i0, i1):
        b = idx // (D * V)
        mu = (idx // V) % D
        s = idx % V
        _staple_sum_into(U[b], fwd, bwd, steps, lengths, terms, mu_start[mu], mu_start[mu + 1], weights, s, C[b, mu, s], prod, tmp)
        _mul_adj(C[b, mu, s], U[b, mu, s], tmp)
        _project_algebra_into(tmp, 1.0, X[b, mu, s])


@njit(parallel=True, cache=True)
def _generator_parallel(U, fwd, bwd, steps, lengths, terms, mu_start, weights, C, X, nchunk):
    total = U.shape[0] * U.shape[1] * U.shape[2]
    for c in prange(nchunk):
        _generator_range(U, fwd, bwd, steps, lengths, terms, mu_start, weights, C, X, c * total // nchunk, (c + 1) * total // nchunk)


@njit(cache=True)
def _exp_mul_range(X, U, out, i0, i1):
    """out = exp(X) U, link by link."""
    B, D, V, n, _ = U.shape
    E = np.empty((n, n), dtype=np.complex128)
    s1 = np.empty((n, n), dtype=np.complex128)
    s2 = np.empty((n, n), dtype=np.complex128)
    for idx in range(i0, i1):
        b = idx // (D * V)
        mu = (idx // V) % D
        s = idx % V
        _expm_into(X[b, mu, s], E, s1, s2)
        _mul(E, U[b, mu, s], out[b, mu, s])


@njit(parallel=True, cache=True)
def _exp_mul_parallel(X, U, out, nchunk):
    total = U.shape[0] * U.shape[1] * U.shape[2]
    for c in prange(nchunk):
        _exp_mul_range(X, U, out, c * total // nchunk, (c + 1) * total // nchunk)


@njit(cache=True)
def _backward_local_range(U, C, X, Gout, G, GC, i0, i1):
    """Per link: Lambda = TA(dexp_X^*(G' U^+)), GC = Lambda U (gradient w.r.t. C), G = E^+ G' - Lambda C."""
    B, D, V, n, _ = U.shape
    E = np.empty((n, n), dtype=np.complex128)
    M = np.empty((n, n), dtype=np.complex128)
    lam = np.empty((n, n), dtype=np.complex128)
    tmp = np.empty((n, n), dtype=np.complex128)
    s1 = np.empty((n, n), dtype=np.complex128)
    s2 = np.empty((n, n), dtype=np.complex128)
    s3 = np.empty((n, n), dtype=np.complex128)
    s4 = np.empty((n, n), dtype=np.complex128)
    big = np.empty((4, 2 * n, 2 * n), dtype=np.complex128)
    for idx in range(i0, i1):
        b = idx // (D * V)
        mu = (idx // V) % D
        s = idx % V
        _expm_into(X[b, mu, s], E, s1, s2)
        _mul_adj(Gout[b, mu, s], U[b, mu, s], M)
        _dexp_adjoint_ta_into(X[b, mu, s], M, E, lam, s1, s2, s3, s4, big)
        _mul(lam, U[b, mu, s], GC[b, mu, s])
        _adj_mul(E, Gout[b, mu, s], G[b, mu, s])
        _mul(lam, C[b, mu, s], tmp)
        for i in range(n):
            for j in range(n):
                G[b, mu, s, i, j] -= tmp[i, j]


@njit(parallel=True, cache=True)
def _backward_local_parallel(U, C, X, Gout, G, GC, nchunk):
    total = U.shape[0] * U.shape[1] * U.shape[2]
    for c in prange(nchunk):
        _backward_local_range(U, C, X, Gout, G, GC, c * total // nchunk, (c + 1) * total // nchunk)


@njit(cache=True)
def _gather_range(U, fwd, bwd, steps, terms, path_mu, occ_start, occ_path, occ_step, lengths, weights, GC, G, i0, i1):
    """G[b, d, y] += the pull-back of GC through every weighted staple path that contains link (d, y).

    For a path p from x (direction mu) whose step k is the link L (= U_d(y) or U_d(y)^+) with
    prefix A and suffix B, P = A L B and Re tr(GC^+ P) has gradient A^+ GC B^+ with respect to L.
    The walk goes backwards from the link to the path's start (building A and finding x) and
    forwards to its end (building B).
    """
    B_, D, V, n, _ = U.shape
    A = np.empty((n, n), dtype=np.complex128)
    Bm = np.empty((n, n), dtype=np.complex128)
    tmp = np.empty((n, n), dtype=np.complex128)
    K = np.empty((n, n), dtype=np.complex128)
    for idx in range(i0, i1):
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
                        _copy_into(Ub[dj, prev], A, False)
                    else:
                        _mul(Ub[dj, prev], A, tmp)
                        _copy_into(tmp, A, False)
                else:
                    prev = fwd[pos, dj]
                    if a_id:
                        _copy_into(Ub[dj, pos], A, True)
                    else:
                        _adj_mul(Ub[dj, pos], A, tmp)
                        _copy_into(tmp, A, False)
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
                        _copy_into(Ub[dj, pos], Bm, False)
                    else:
                        _mul(Bm, Ub[dj, pos], tmp)
                        _copy_into(tmp, Bm, False)
                    pos = fwd[pos, dj]
                else:
                    pos = bwd[pos, dj]
                    if b_id:
                        _copy_into(Ub[dj, pos], Bm, True)
                    else:
                        _mul_adj(Bm, Ub[dj, pos], tmp)
                        _copy_into(tmp, Bm, False)
                b_id = False
            # K = A^+ GC B^+ (the gradient w.r.t. L)
            gc = GC[b, path_mu[p], x]
            if a_id:
                _copy_into(gc, tmp, False)
            else:
                _adj_mul(A, gc, tmp)
            if b_id:
                _copy_into(tmp, K, False)
            else:
                _mul_adj(tmp, Bm, K)
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
def _gather_parallel(U, fwd, bwd, steps, terms, path_mu, occ_start, occ_path, occ_step, lengths, weights, GC, G, nchunk):
    total = U.shape[0] * U.shape[1] * U.shape[2]
    for c in prange(nchunk):
        _gather_range(U, fwd, bwd, steps, terms, path_mu, occ_start, occ_path, occ_step, lengths, weights, GC, G, c * total // nchunk, (c + 1) * total // nchunk)


@njit(cache=True)
def _term_overlaps_range(U, fwd, bwd, steps, lengths, terms, mu_start, GC, out, i0, i1):
    """out[k] += sum_{b, mu, s} Re tr(GC[b, mu, s]^+ C^(k)_mu(s)) (the gradients with respect to the weights)."""
    B, D, V, n, _ = U.shape
    prod = np.empty((n, n), dtype=np.complex128)
    tmp = np.empty((n, n), dtype=np.complex128)
    for idx in range(i0, i1):
        b = idx // (D * V)
        mu = (idx // V) % D
        s = idx % V
        for p in range(mu_start[mu], mu_start[mu + 1]):
            _path_product_into(U[b], fwd, bwd, steps[p], lengths[p], s, prod, tmp)
            out[terms[p]] += _re_tr_mul_adj(prod, GC[b, mu, s])


@njit(parallel=True, cache=True)
def _term_overlaps_parallel(U, fwd, bwd, steps, lengths, terms, mu_start, GC, partial, nchunk):
    total = U.shape[0] * U.shape[1] * U.shape[2]
    for c in prange(nchunk):
        _term_overlaps_range(U, fwd, bwd, steps, lengths, terms, mu_start, GC, partial[c], c * total // nchunk, (c + 1) * total // nchunk)


@njit(cache=True)
def _force_range(G, U, scale, out, i0, i1):
    """out = scale * TA(G U^+) per link (for N = 1 the anti-Hermitian part)."""
    B, D, V, n, _ = U.shape
    tmp = np.empty((n, n), dtype=np.complex128)
    for idx in range(i0, i1):
        b = idx // (D * V)
        mu = (idx // V) % D
        s = idx % V
        _mul_adj(G[b, mu, s], U[b, mu, s], tmp)
        _project_algebra_into(tmp, scale, out[b, mu, s])


@njit(parallel=True, cache=True)
def _force_parallel(G, U, scale, out, nchunk):
    total = U.shape[0] * U.shape[1] * U.shape[2]
    for c in prange(nchunk):
        _force_range(G, U, scale, out, c * total // nchunk, (c + 1) * total // nchunk)


@njit(cache=True)
def _re_trace_overlap_range(U, C, out, i0, i1):
    """out[b] += sum_{mu, s} Re tr(U C^+) over the links of the range."""
    B, D, V, n, _ = U.shape
    for idx in range(i0, i1):
        b = idx // (D * V)
        mu = (idx // V) % D
        s = idx % V
        out[b] += _re_tr_mul_adj(U[b, mu, s], C[b, mu, s])


@njit(parallel=True, cache=True)
def _re_trace_overlap_parallel(U, C, partial, nchunk):
    total = U.shape[0] * U.shape[1] * U.shape[2]
    for c in prange(nchunk):
        _re_trace_overlap_range(U, C, partial[c], c * total // nchunk, (c + 1) * total // nchunk)


def _run(serial, parallel, total, *args):
    """Call ``serial(*args, 0, total)`` or ``parallel(*args, nchunk)`` (see _PARALLEL_MIN_LINKS)."""
    if _parallel(total):
        parallel(*args, _n_chunks(total, per_thread=8))
    else:
        serial(*args, 0, total)


def _run_sum(serial, parallel, total, *args, width):
    """Like :func:`_run` for kernels that accumulate into a length-``width`` vector; returns the sums."""
    if _parallel(total):
        nchunk = _n_chunks(total, per_thread=8)
        partial = np.zeros((nchunk, width))
        parallel(*args, partial, nchunk)
        return partial.sum(axis=0)
    out = np.zeros(width)
    serial(*args, out, 0, total)
    return out


def _total(flat) -> int:
    return flat.shape[0] * flat.shape[1] * flat.shape[2]


# ============================================================================ input handling


class _Links(NamedTuple):
    """Links in kernel form: ``flat`` complex128 (B, D, V, N, N) (U(1): N = 1, exp(i theta))."""

    flat: np.ndarray
    shape: tuple
    u1: bool
    batched: bool

    @property
    def N(self):
        return self.flat.shape[-1]

    @property
    def B(self):
        return self.flat.shape[0]


def _as_links(U, batched: bool, *, check: bool = False) -> _Links:
    U = np.asarray(U)
    lead = 1 if batched else 0
    hint = "" if batched else "; for a batch of configurations pass batched=True"
    if U.dtype.kind in "iuf":
        form = "(B, D, L0, ..., L{D-1})" if batched else "(D, L0, ..., L{D-1})"
        if U.ndim < lead + 3 or U.ndim != lead + 1 + U.shape[lead]:
            raise ValueError(f"U(1) links must be angles of shape {form} with D >= 2, got shape {U.shape}{hint}")
        shape = check_shape(U.shape[lead + 1 :])
        theta = np.asarray(U, dtype=np.float64).reshape((-1, len(shape), int(np.prod(shape))))
        flat = np.ascontiguousarray(np.exp(1j * theta)[..., None, None])
        return _Links(flat, shape, True, batched)
    if U.dtype.kind != "c":
        raise TypeError(f"links must be U(1) angles (float64) or SU(N) matrices (complex128), got dtype {U.dtype}")
    form = "(B, D, L0, ..., L{D-1}, N, N)" if batched else "(D, L0, ..., L{D-1}, N, N)"
    if U.ndim < lead + 5 or U.ndim != lead + U.shape[lead] + 3:
        raise ValueError(f"SU(N) links must have shape {form} with D >= 2, got shape {U.shape}{hint}")
    N = U.shape[-1]
    if U.shape[-2] != N or N < 2:
        raise ValueError(f"the last two axes of SU(N) links must be N x N with N >= 2, got {U.shape[-2:]}")
    D = U.shape[lead]
    shape = check_shape(U.shape[lead + 1 : lead + 1 + D])
    flat = np.ascontiguousarray(U, dtype=np.complex128).reshape((-1, D, int(np.prod(shape)), N, N))
    if check:
        groups.check_special_unitary(flat)
    return _Links(flat, shape, False, batched)


def _restore_links(links: _Links, flat: np.ndarray) -> np.ndarray:
    """Kernel form -> the user's form (angles in (-pi, pi] for U(1))."""
    B, D = flat.shape[:2]
    if links.u1:
        out = wrap_angle(np.angle(flat[..., 0, 0])).reshape((B, D) + links.shape)
    else:
        out = flat.reshape((B, D) + links.shape + flat.shape[-2:])
    return out if links.batched else out[0]


def _restore_algebra(links: _Links, flat: np.ndarray) -> np.ndarray:
    """An algebra-valued field in kernel form -> user form (U(1): the real angle velocities Im X)."""
    B, D = flat.shape[:2]
    if links.u1:
        out = flat[..., 0, 0].imag.reshape((B, D) + links.shape)
    else:
        out = flat.reshape((B, D) + links.shape + flat.shape[-2:])
    return out if links.batched else out[0]


def _restore_matrices(links: _Links, flat: np.ndarray) -> np.ndarray:
    """A matrix-valued field (staple sums) in kernel form -> user form (U(1): complex numbers)."""
    B, D = flat.shape[:2]
    if links.u1:
        out = flat[..., 0, 0].reshape((B, D) + links.shape)
    else:
        out = flat.reshape((B, D) + links.shape + flat.shape[-2:])
    return out if links.batched else out[0]


def _weights(values, terms, name="rho") -> np.ndarray:
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


def _layer_weights(rho, terms) -> np.ndarray:
    """rho as (n_layers, n_terms): a 2-D array, or one layer given as a scalar / 1-D per-term array."""
    r = np.asarray(rho, dtype=np.float64)
    if r.ndim < 2:
        r = _weights(r, terms)[None, :]
    if r.ndim != 2 or r.shape[1] != len(terms):
        raise ValueError(
            f"rho must have shape (n_layers, n_terms) = (n, {len(terms)}) for terms {terms}, got {r.shape}"
        )
    if not np.all(np.isfinite(r)):
        raise ValueError(f"rho must be finite, got {r}")
    return np.ascontiguousarray(r)


# ============================================================================ array-level building blocks


def _staples(flat, shape, terms, weights):
    P = _path_tables(terms, shape)
    fwd, bwd = neighbour_table(shape)
    out = np.empty_like(flat)
    _run(_staple_sums_range, _staple_sums_parallel, _total(flat), flat, fwd, bwd, P.steps, P.length, P.term, P.mu_start, weights, out)
    return out


def _generator(flat, shape, terms, weights):
    """(C, X) with X = TA(C U^+)."""
    P = _path_tables(terms, shape)
    fwd, bwd = neighbour_table(shape)
    C = np.empty_like(flat)
    X = np.empty_like(flat)
    _run(_generator_range, _generator_parallel, _total(flat), flat, fwd, bwd, P.steps, P.length, P.term, P.mu_start, weights, C, X)
    return C, X


def _exp_mul(X, flat):
    out = np.empty_like(flat)
    _run(_exp_mul_range, _exp_mul_parallel, _total(flat), np.ascontiguousarray(X), flat, out)
    return out


class StoutResiduals(NamedTuple):
    """What the backward pass of one stout layer needs: the input links, C and X = TA(C U^+)."""

    links: np.ndarray
    C: np.ndarray
    X: np.ndarray
    shape: tuple
    terms: tuple
    rho: np.ndarray


def stout_forward(flat: np.ndarray, shape, *, rho, terms=("plaquette",)) -> tuple[np.ndarray, StoutResiduals]:
    """One stout layer on links in kernel form ``(B, D, V, N, N)``: ``(exp(X) U, residuals)``.

    A building block for :func:`stout_op` and :func:`smeared_force`; ``flat`` must be complex128
    C-contiguous (N = 1 for U(1) phases). ``rho`` has one value per loop term.
    """
    terms = _check_terms(terms)
    shape = check_shape(shape)
    rho = _weights(rho, terms)
    flat = np.ascontiguousarray(flat, dtype=np.complex128)
    C, X = _generator(flat, shape, terms, rho)
    return _exp_mul(X, flat), StoutResiduals(flat, C, X, shape, terms, rho)


def stout_backward(G_out: np.ndarray, res: StoutResiduals, *, want_rho: bool = True):
    """Backward of one stout layer: ``(G_in, g_rho)`` from ``G_out = dL/dRe U' + i dL/dIm U'``.

    ``G_in`` is the gradient with respect to the input links (same form), ``g_rho`` (one value
    per term, or None) the gradient with respect to the weights; see the module docstring.
    """
    U = res.links
    G_out = np.ascontiguousarray(G_out, dtype=np.complex128)
    P = _path_tables(res.terms, res.shape)
    fwd, bwd = neighbour_table(res.shape)
    total = _total(U)
    G = np.empty_like(U)
    GC = np.empty_like(U)
    _run(_backward_local_range, _backward_local_parallel, total, U, res.C, res.X, G_out, G, GC)
    _run(_gather_range, _gather_parallel, total, U, fwd, bwd, P.steps, P.term, P.mu, P.occ_start, P.occ_path, P.occ_step, P.length, res.rho, GC, G)
    g_rho = None
    if want_rho:
        g_rho = _run_sum(_term_overlaps_range, _term_overlaps_parallel, total, U, fwd, bwd, P.steps, P.length, P.term, P.mu_start, GC, width=len(res.terms))
    return G, g_rho


def _action_terms(c1: float):
    """The loop terms of the improved action and their weights ``(c0, c1)``, ``c0 = 1 - 8 c1``."""
    c1 = float(c1)
    if not np.isfinite(c1):
        raise ValueError(f"c1 must be finite, got {c1}")
    if c1 == 0.0:
        return ("plaquette",), np.array([1.0])
    return ("plaquette", "rectangle"), np.array([1.0 - 8.0 * c1, c1])


def _action_and_gradient(flat, shape, beta, c1, want_gradient):
    """S per configuration (B,) and its gradient G = -(beta/N) sum_k c_k C^(k) (or None)."""
    N = flat.shape[-1]
    terms, coef = _action_terms(c1)
    D = len(shape)
    V = int(np.prod(shape))
    n_loops = {"plaquette": V * D * (D - 1) // 2, "rectangle": V * D * (D - 1)}
    S = np.zeros(flat.shape[0])
    G = np.zeros_like(flat) if want_gradient else None
    for term, c in zip(terms, coef):
        C = _staples(flat, shape, (term,), np.ones(1))
        overlap = _run_sum(_re_trace_overlap_range, _re_trace_overlap_parallel, _total(flat), flat, C, width=flat.shape[0])
        # sum over loops of Re tr W = (sum_links Re tr U C^+) / (links per loop)
        S += beta * c * (n_loops[term] - overlap / (_LOOP_LENGTH[term] * N))
        if want_gradient:
            G -= (beta * c / N) * C
    return S, G


def _force_flat(G, flat):
    """F = TA(G U^+)/2 in kernel form."""
    out = np.empty_like(flat)
    _run(_force_range, _force_parallel, _total(flat), np.ascontiguousarray(G), flat, 0.5, out)
    return out


def _force_from_flat_gradient(links: _Links, G):
    """The force in user form from the gradient G w.r.t. the links in kernel form.

    SU(N): ``TA(G U^+)/2``; U(1): ``dS/dtheta = Im(G conj(u))``.
    """
    if links.u1:
        return _restore_algebra(links, 1j * _u1_grad_out(G, links.flat))
    return _restore_algebra(links, _force_flat(G, links.flat))


# ============================================================================ public API: smearing


def staple_sums(U, *, terms=("plaquette",), weights=None, batched: bool = False) -> np.ndarray:
    """``C_mu(x) = sum_k w_k C^(k)_mu(x)``, paths from x to x + mu (module docstring); same shape as U.

    ``weights`` default to 1 for every term. For U(1) the result is complex ``(D, *shape)``.
    ``U_mu(x) C_mu(x)^+`` is the sum of the closed loops through the link.
    """
    terms = _check_terms(terms)
    links = _as_links(U, batched)
    w = np.ones(len(terms)) if weights is None else _weights(weights, terms, "weights")
    return _restore_matrices(links, _staples(links.flat, links.shape, terms, w))


def ape(U, *, alpha: float, n_steps: int = 1, batched: bool = False) -> np.ndarray:
    """APE smearing, ``n_steps`` times: ``U' = P_SU(N)[(1 - alpha) U + alpha/(2(D-1)) C^(plaquette)]``.

    Albanese et al., PLB 192 (1987) 163. ``0 <= alpha <= 1`` (0.5 - 0.7 is typical). The SU(N)
    projection is :func:`latticeml.groups.project_su`; for U(1) the phase of the sum.
    """
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"APE needs 0 <= alpha <= 1, got {alpha}")
    n_steps = _check_count(n_steps, "n_steps")
    links = _as_links(U, batched)
    D = len(links.shape)
    flat = links.flat
    for _ in range(n_steps):
        C = _staples(flat, links.shape, ("plaquette",), np.ones(1))
        M = (1.0 - alpha) * flat + (alpha / (2.0 * (D - 1))) * C
        if links.u1:
            flat = np.exp(1j * np.angle(M))
        else:
            # a fixed number of Cabibbo-Marinari sweeps: stopping when the gain in Re tr(W^+ M)
            # drops below rounding leaves W converged only to ~1e-8 (the maximum is flat), which
            # would break gauge covariance at that level; 25 sweeps converge W to rounding
            flat = np.ascontiguousarray(groups.project_su(M, max_sweeps=_APE_SWEEPS, tol=-np.inf))
    return _restore_links(links, flat)


_APE_SWEEPS = 25


def _check_count(n, name):
    if isinstance(n, bool) or int(n) != n or n < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {n!r}")
    return int(n)


def stout(U, *, rho, n_steps: int = 1, terms=("plaquette",), batched: bool = False) -> np.ndarray:
    """Stout smearing (Morningstar & Peardon 2004), ``n_steps`` times: ``U -> exp(TA(C U^+)) U``.

    ``C = sum_k rho_k C^(k)`` over the loop ``terms``; ``rho`` is a number (one term) or one value
    per term (isotropic: the same for every direction). The result is exactly in SU(N)
    (U(1): angles in (-pi, pi]).
    """
    terms = _check_terms(terms)
    rho = _weights(rho, terms)
    n_steps = _check_count(n_steps, "n_steps")
    links = _as_links(U, batched)
    flat = links.flat
    for _ in range(n_steps):
        _, X = _generator(flat, links.shape, terms, rho)
        flat = _exp_mul(X, flat)
    return _restore_links(links, flat)


def stout_generator(U, *, rho, terms=("plaquette",), batched: bool = False) -> np.ndarray:
    """``X = TA(C U^+)``, the su(N) element of one stout step (U(1): the real angle shift)."""
    terms = _check_terms(terms)
    links = _as_links(U, batched)
    _, X = _generator(links.flat, links.shape, terms, _weights(rho, terms))
    return _restore_algebra(links, X)


# ============================================================================ public API: actions


def gauge_action(U, *, beta: float, c1: float = 0.0, batched: bool = False):
    """Plaquette + rectangle action ``beta sum_x [c0 sum_P (1 - Re tr P/N) + c1 sum_R (1 - Re tr R/N)]``.

    ``c0 = 1 - 8 c1`` (module docstring); ``c1 = 0`` is the Wilson action. A float (``(B,)`` if batched).
    """
    links = _as_links(U, batched)
    S, _ = _action_and_gradient(links.flat, links.shape, finite_float(beta), c1, False)
    return S if batched else float(S[0])


def gauge_force(U, *, beta: float, c1: float = 0.0, batched: bool = False) -> np.ndarray:
    """Force of :func:`gauge_action`: ``F = TA(G U^+)/2 = -(beta/2N) TA(sum_k c_k C^(k) U^+)``.

    su(N)-valued, same shape as U, with components ``-2 tr(T_a F) = d/dt S(exp(t T_a) U_mu(x))``;
    for U(1) the derivatives ``dS/dtheta_mu(x)``.
    """
    links = _as_links(U, batched)
    _, G = _action_and_gradient(links.flat, links.shape, finite_float(beta), c1, True)
    return _force_from_flat_gradient(links, G)


def force_from_gradient(G, U, *, batched: bool = False) -> np.ndarray:
    """The su(N) force ``TA(G U^+)/2`` of a function whose gradient (autodiff convention) is ``G``.

    For U(1) links (angles) ``G`` is already ``dS/dtheta`` and is returned unchanged.
    """
    links = _as_links(U, batched)
    if links.u1:
        return np.asarray(G, dtype=np.float64)
    G = np.ascontiguousarray(G, dtype=np.complex128).reshape(links.flat.shape)
    return _restore_algebra(links, _force_flat(G, links.flat))


# ============================================================================ autodiff ops


def _u1_grad_in(G_theta, flat):
    """Gradient w.r.t. the phases u = exp(i theta) from dL/dtheta: G_u = i u dL/dtheta."""
    return 1j * flat * G_theta.reshape(flat.shape)


def _u1_grad_out(G_u, flat):
    """dL/dtheta from the gradient G_u w.r.t. u = exp(i theta): Im(G_u conj(u))."""
    return (G_u * np.conj(flat)).imag


def _stout_op_fwd(U, rho, *, terms=("plaquette",), batched=False):
    terms = _check_terms(terms)
    links = _as_links(U, batched)
    out, res = stout_forward(links.flat, links.shape, rho=rho, terms=terms)
    return _restore_links(links, out), (links, out, res, np.shape(rho))


def _stout_op_bwd(g, residuals, needs):
    links, out, res, rho_shape = residuals
    g = np.asarray(g)
    if links.u1:
        G_out = _u1_grad_in(np.asarray(g, dtype=np.float64), out)
    else:
        G_out = np.ascontiguousarray(g, dtype=np.complex128).reshape(out.shape)
    G, g_rho = stout_backward(G_out, res, want_rho=needs[1])
    gU = None
    if needs[0]:
        gU = _u1_grad_out(G, res.links) if links.u1 else G
        gU = gU.reshape(np.shape(g))
    return gU, (None if g_rho is None else g_rho.reshape(rho_shape))


#: Autodiff op: ``stout_op(U, rho, *, terms=("plaquette",), batched=False)`` -> smeared links.
#: Differentiable with respect to the links ``U`` (complex SU(N) matrices or U(1) angles) and the
#: per-term weights ``rho`` (shape ``(n_terms,)`` or a scalar for one term); the backward is
#: :func:`stout_backward` (Morningstar & Peardon's Lambda recursion, one layer).
stout_op = custom_op("stout", _stout_op_fwd, _stout_op_bwd)


def _action_op_fwd(U, *, beta, c1=0.0, batched=False):
    links = _as_links(U, batched)
    S, G = _action_and_gradient(links.flat, links.shape, finite_float(beta), c1, True)
    return (S if batched else np.asarray(S[0])), (links, G, np.shape(U))


def _action_op_bwd(g, residuals, needs):
    links, G, shape = residuals
    gb = np.asarray(g, dtype=np.float64).reshape(-1)  # one seed per configuration
    G = G * gb[:, None, None, None, None]
    gU = _u1_grad_out(G, links.flat) if links.u1 else G
    return (gU.reshape(shape),)


#: Autodiff op: ``gauge_action_op(U, *, beta, c1=0.0, batched=False)`` -> S (scalar, or (B,)).
#: The gradient is ``-(beta/N) sum_k c_k C^(k)`` (every loop through a link, opened at the link).
gauge_action_op = custom_op("gauge_action", _action_op_fwd, _action_op_bwd)


# ============================================================================ smeared-link action and force


def _smear_chain(flat, shape, rho, terms):
    residuals = []
    for r in rho:
        flat, res = stout_forward(flat, shape, rho=r, terms=terms)
        residuals.append(res)
    return flat, residuals


def smeared_action(U, *, rho, terms=("plaquette",), beta: float, c1: float = 0.0, batched: bool = False):
    """``S[U^(n)]``: :func:`gauge_action` of the links after ``n`` stout layers.

    ``rho`` is ``(n_layers, n_terms)`` (a scalar or 1-D array is one layer). A float (``(B,)`` if batched).
    """
    terms = _check_terms(terms)
    rho = _layer_weights(rho, terms)
    links = _as_links(U, batched)
    smeared, _ = _smear_chain(links.flat, links.shape, rho, terms)
    S, _ = _action_and_gradient(smeared, links.shape, finite_float(beta), c1, False)
    return S if batched else float(S[0])


def smeared_force(U, *, rho, terms=("plaquette",), beta: float, c1: float = 0.0, batched: bool = False) -> np.ndarray:
    """HMC force of :func:`smeared_action` with respect to the *thin* links: ``TA(G U^+)/2``.

    ``G`` is the gradient of ``S[U^(n)]`` pulled back through the layers by :func:`stout_backward`
    (the stout force of Morningstar & Peardon, Sec. III). U(1): ``dS/dtheta``.
    """
    terms = _check_terms(terms)
    rho = _layer_weights(rho, terms)
    beta = finite_float(beta)
    links = _as_links(U, batched)
    smeared, residuals = _smear_chain(links.flat, links.shape, rho, terms)
    _, G = _action_and_gradient(smeared, links.shape, beta, c1, True)
    for res in reversed(residuals):
        G, _ = stout_backward(G, res, want_rho=False)
    return _force_from_flat_gradient(links, G)


# ============================================================================ Wilson flow


def _flow_Z(flat, shape, c1):
    terms, coef = _action_terms(c1)
    _, Z = _generator(flat, shape, terms, coef)
    return Z


def flow_generator(U, *, c1: float = 0.0, batched: bool = False) -> np.ndarray:
    """``Z(U) = -g0^2 dS`` of the flow: ``TA(C^(plaq) U^+)`` (Wilson), with rectangles for ``c1 != 0``.

    su(N)-valued (U(1): the real angle velocity). ``Z = -(2N/beta) * gauge_force(U, beta=beta, c1=c1)``.
    """
    links = _as_links(U, batched)
    return _restore_algebra(links, _flow_Z(links.flat, links.shape, c1))


_INTEGRATORS = ("rk3", "euler")


def _flow_step_flat(flat, shape, eps, integrator, c1):
    if integrator == "euler":
        return _exp_mul(eps * _flow_Z(flat, shape, c1), flat)
    # Luscher (2010), appendix C: the 3-stage Runge-Kutta-Munthe-Kaas scheme of Williamson type
    Z0 = eps * _flow_Z(flat, shape, c1)
    W1 = _exp_mul(0.25 * Z0, flat)
    Z1 = eps * _flow_Z(W1, shape, c1)
    W2 = _exp_mul((8.0 / 9.0) * Z1 - (17.0 / 36.0) * Z0, W1)
    Z2 = eps * _flow_Z(W2, shape, c1)
    return _exp_mul(0.75 * Z2 - (8.0 / 9.0) * Z1 + (17.0 / 36.0) * Z0, W2)


def _check_flow_args(step_size, integrator):
    step_size = float(step_size)
    if not (np.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be positive and finite, got {step_size}; 0.01 - 0.05 is typical")
    if integrator not in _INTEGRATORS:
        raise ValueError(f"unknown flow integrator {integrator!r}; choose one of {_INTEGRATORS}")
    return step_size


def flow_step(U, *, step_size: float, integrator: str = "rk3", c1: float = 0.0, batched: bool = False) -> np.ndarray:
    """One step of the Wilson flow ``dV/dt = Z(V) V`` (Luscher 2010): ``"rk3"`` (his appendix C) or ``"euler"``.

    An Euler step of size eps is a stout step with ``rho = eps`` (``c1 = 0``).
    """
    step_size = _check_flow_args(step_size, integrator)
    links = _as_links(U, batched)
    return _restore_links(links, _flow_step_flat(links.flat, links.shape, step_size, integrator, c1))


class FlowResult(NamedTuple):
    """What :func:`wilson_flow` returns.

    t:                flow times of the measurements, ``(n,)`` (``t = 0`` first).
    energy_plaquette: ``E(t)`` with the plaquette definition, ``(n,)`` (``(n, B)`` if batched).
    energy_clover:    ``E(t)`` with the clover definition (NaN for U(1)), same shape.
    links:            the flowed links at the last time.
    """

    t: np.ndarray
    energy_plaquette: np.ndarray
    energy_clover: np.ndarray
    links: np.ndarray


def _energies(links: _Links, flat):
    D = len(links.shape)
    n_planes = D * (D - 1) // 2
    N = flat.shape[-1]
    V = int(np.prod(links.shape))
    C = _staples(flat, links.shape, ("plaquette",), np.ones(1))
    overlap = _run_sum(_re_trace_overlap_range, _re_trace_overlap_parallel, _total(flat), flat, C, width=flat.shape[0])
    mean_re_tr = overlap / (4.0 * V * n_planes)  # <Re tr U_P> over planes and sites
    if links.u1:
        # U(1): E = sum_{mu<nu} (1 - cos theta_P) = (1/4) F^2 in the continuum (no trace normalisation)
        return n_planes * (1.0 - mean_re_tr), np.full(flat.shape[0], np.nan)
    e_plaq = 2.0 * n_planes * (N - mean_re_tr)
    F = clover_field_strength(flat.reshape((flat.shape[0], D) + links.shape + (N, N)), batched=True)
    # E = -sum_{mu<nu} tr G^2 per site; F has shape (B, n_planes, *shape, N, N)
    tr = np.einsum("...ij,...ji->...", F, F).real
    e_clov = -tr.reshape(flat.shape[0], -1).sum(axis=1) / V
    return e_plaq, e_clov


def energy_density(U, *, definition: str = "plaquette", batched: bool = False):
    """Energy density ``E`` in lattice units (``a^4 E``), averaged over sites (module docstring).

    ``definition`` is ``"plaquette"`` (``2 sum_{mu<nu} Re tr(1 - U_P)``) or ``"clover"``
    (``-sum_{mu<nu} tr G^2``; SU(N) only). A float (``(B,)`` if batched).
    """
    if definition not in ("plaquette", "clover"):
        raise ValueError(f"definition must be 'plaquette' or 'clover', got {definition!r}")
    links = _as_links(U, batched)
    if links.u1 and definition == "clover":
        raise ValueError("the clover energy density is implemented for SU(N) links; use definition='plaquette' for U(1)")
    e_plaq, e_clov = _energies(links, links.flat)
    E = e_plaq if definition == "plaquette" else e_clov
    return E if batched else float(E[0])


def wilson_flow(
    U,
    *,
    t_max: float,
    step_size: float,
    integrator: str = "rk3",
    c1: float = 0.0,
    measure_every: int = 1,
    batched: bool = False,
) -> FlowResult:
    """Integrate the Wilson flow to ``t_max`` and measure ``E(t)`` every ``measure_every`` steps.

    ``t_max / step_size`` is rounded to the nearest whole number of steps (at least one). Luscher's
    RK3 by default; ``c1 = -1/12`` gives the Symanzik (Luscher-Weisz) flow.
    """
    step_size = _check_flow_args(step_size, integrator)
    t_max = float(t_max)
    if not (np.isfinite(t_max) and t_max > 0):
        raise ValueError(f"t_max must be positive and finite, got {t_max}")
    if isinstance(measure_every, bool) or int(measure_every) != measure_every or measure_every < 1:
        raise ValueError(f"measure_every must be an integer >= 1, got {measure_every!r}")
    n = max(1, int(round(t_max / step_size)))
    links = _as_links(U, batched)
    flat = links.flat
    ts, ep, ec = [], [], []

    def record(t, f):
        a, b = _energies(links, f)
        ts.append(t)
        ep.append(a)
        ec.append(b)

    record(0.0, flat)
    for i in range(1, n + 1):
        flat = _flow_step_flat(flat, links.shape, step_size, integrator, c1)
        if i % measure_every == 0 or i == n:
            record(i * step_size, flat)
    ep, ec = np.array(ep), np.array(ec)
    if not batched:
        ep, ec = ep[:, 0], ec[:, 0]
    return FlowResult(np.array(ts), ep, ec, _restore_links(links, flat))


def scale_t0(t, E, *, reference: float = 0.3) -> float:
    """``t0`` with ``t0^2 E(t0) = reference``, by linear interpolation of ``t^2 E(t)`` (Luscher 2010).

    ``t`` ascending, ``E`` the energy density at those times (one configuration or an ensemble
    average). Raises ValueError if ``t^2 E`` never crosses the reference (flow further).
    """
    t = np.asarray(t, dtype=np.float64)
    E = np.asarray(E, dtype=np.float64)
    if t.ndim != 1 or t.shape != E.shape or len(t) < 2:
        raise ValueError(f"t and E must be 1-D arrays of the same length >= 2, got {t.shape} and {E.shape}")
    y = t * t * E - reference
    idx = np.flatnonzero((y[:-1] < 0) & (y[1:] >= 0))
    if len(idx) == 0:
        raise ValueError(
            f"t^2 E(t) does not cross {reference} on [{t[0]}, {t[-1]}] (max {np.max(y + reference):.3g}); "
            "flow to a larger t_max, or use a larger lattice / smaller beta"
        )
    i = idx[0]
    return float(t[i] + (t[i + 1] - t[i]) * (-y[i]) / (y[i + 1] - y[i]))
