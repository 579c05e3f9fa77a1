"""Stout smearing, its backward pass (the "stout force") and actions of stout-smeared links.

C. Morningstar and M. Peardon, "Analytic smearing of SU(3) link variables in lattice QCD",
PRD 69 (2004) 054501 [hep-lat/0311018].

Shapes: links as in :mod:`latticeml.smearing.paths` (SU(N) complex128 ``(D, *L, N, N)``, U(1)
angles ``(D, *L)``, ``batched=True`` adds ``(B, ...)``); the kernel-form building blocks
(:func:`stout_forward`, :func:`stout_backward`, :func:`exp_multiply`) take complex128
``(B, D, V, N, N)`` (U(1): N = 1 phases).

Forward
-------
``U' = exp(X) U`` with ``X = TA(Omega)``, ``Omega = C U^+``, ``C = sum_k rho_k C^(k)`` (the staple
sums of :func:`latticeml.smearing.paths.staple_sums`). Their ``Q = (i/2)(Omega^+ - Omega) -
(i/2N) tr(...)`` is ``-i X``, ``exp(iQ) = exp(X)``. The exponential is exact
(:func:`latticeml.groups.expm_algebra_into`): closed form for SU(2), Cayley-Hamilton
``exp(iQ) = f0 + f1 Q + f2 Q^2`` for SU(3) (their eqs. 19-34), a Taylor series with scaling and
squaring for N >= 4, the phase for U(1).

Backward (their Sec. III)
-------------------------
Given the gradient ``G' = dL/dRe U' + i dL/dIm U'`` (the convention of :mod:`latticeml.autodiff`),
with ``M = G' U^+`` the gradient with respect to ``E = exp(X)``::

    Lambda = TA( dexp_X^*(M) ),                dexp_X^* the adjoint of the differential of exp at X,
    dL/dC  = Lambda U,                         (the gradient with respect to the staple sum)
    G      = E^+ G' - Lambda C  + sum over the staples that contain the link of dL/dC pulled back,
    dL/drho_k = sum_{x, mu} Re tr[(dL/dC_mu(x))^+ C^(k)_mu(x)].

The pull-back and the rho overlaps are :func:`~latticeml.smearing.paths.staple_sums_pullback` and
:func:`~latticeml.smearing.paths.term_overlaps`. ``dexp_X^*`` is where Morningstar and Peardon's
B_1, B_2 matrices enter (SU(3): derivatives ``b_1j = df_j/dc_1``, ``b_2j = df_j/dc_0`` of the
Cayley-Hamilton coefficients; their eqs. 46-64); for SU(2) it follows from
``exp(X) = cos r + (sin r / r) X``; for N >= 4 it is the Frechet derivative of the exponential,
read off the exponential of the block matrix ``[[X^+, M], [0, X^+]]`` (Higham, *Functions of
Matrices*, SIAM 2008, thm. 3.6). Chaining this through the layers is their Lambda recursion: the
same backward makes any action of smeared links differentiable with respect to the thin links and
to the rho's (:data:`stout_op`), and gives the smeared-link HMC force (:func:`smeared_force`). The
force of an action with gradient ``G`` is ``F = TA(G U^+)/2`` (:func:`force_from_gradient`).

Smeared actions use the plaquette + rectangle action ``S = beta sum [c0 P + c1 R]`` of
:mod:`latticeml.theories.improved` (``c0 = 1 - 8 c1``), evaluated on the smeared links.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .._threads import n_chunks, parallel_threads
from ..autodiff.tensor import custom_op
from ..checks import check_count, finite_float
from ..groups import expm_algebra_into, expm_taylor_into, su3_closed_form, su3_q_powers
from ..lattice import check_shape
from .paths import (
    adj_mul_into,
    angle_gradient,
    check_terms,
    improved_terms,
    layer_weights,
    link_matrices,
    loop_action,
    mul_adj_into,
    mul_into,
    phase_gradient,
    project_algebra_flat,
    staple_sums_flat,
    staple_sums_pullback,
    ta_into,
    term_overlaps,
    term_weights,
)

__all__ = [
    "stout",
    "stout_generator",
    "StoutResiduals",
    "stout_forward",
    "stout_backward",
    "exp_multiply",
    "stout_op",
    "force_from_gradient",
    "smeared_action",
    "smeared_force",
]

_CHUNKS_PER_THREAD = 8


# ============================================================================ the exponential and its derivative


@njit(cache=True)
def _expm(X, out, work1, work2):
    """out = exp(X), X in su(N) or u(1): a non-inlined call of :func:`latticeml.groups.expm_algebra_into`."""
    expm_algebra_into(X, out, work1, work2, X.shape[0])


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
    f0, f1, f2, u, w, xi0, cw, e2iu, emiu, den, neg = su3_closed_form(c0, c1)
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
        ta_into(M, s, out)
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
        c0, c1 = su3_q_powers(X, q, q2)
        f, b1, b2 = _su3_coefficients(c0, c1)
        tr0 = M[0, 0] + M[1, 1] + M[2, 2]
        tr1 = 0j
        tr2 = 0j
        for i in range(3):
            for k in range(3):
                tr1 += q[i, k] * M[k, i]
                tr2 += q2[i, k] * M[k, i]
        cq = tr0 * b1[0].conjugate() + tr1 * b1[1].conjugate() + tr2 * b1[2].conjugate()
        cq2 = tr0 * b2[0].conjugate() + tr1 * b2[1].conjugate() + tr2 * b2[2].conjugate()
        cf1 = f[1].conjugate()
        cf2 = f[2].conjugate()
        mul_into(M, q, t1)
        mul_into(q, M, gam)
        for i in range(3):
            for j in range(3):
                gam[i, j] = 1j * (cq * q[i, j] + cq2 * q2[i, j] + cf1 * M[i, j] + cf2 * (t1[i, j] + gam[i, j]))
        ta_into(gam, 1.0, out)
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
        ta_into(s1, 1.0, out)


# ============================================================================ kernels
#
# One prange over chunks of links each (flat index (b * D + mu) * V + s), run under
# parallel_threads("smearing", n_links) like the kernels of latticeml.smearing.paths.


@njit(parallel=True, cache=True)
def _exp_mul_kernel(X, U, out, nchunk):
    """out = exp(X) U, link by link."""
    B, D, V, n, _ = U.shape
    total = B * D * V
    for c in prange(nchunk):
        E = np.empty((n, n), dtype=np.complex128)
        s1 = np.empty((n, n), dtype=np.complex128)
        s2 = np.empty((n, n), dtype=np.complex128)
        for idx in range(c * total // nchunk, (c + 1) * total // nchunk):
            b = idx // (D * V)
            mu = (idx // V) % D
            s = idx % V
            _expm(X[b, mu, s], E, s1, s2)
            mul_into(E, U[b, mu, s], out[b, mu, s])


@njit(parallel=True, cache=True)
def _backward_local_kernel(U, C, X, Gout, G, GC, nchunk):
    """Per link: Lambda = TA(dexp_X^*(G' U^+)), GC = Lambda U (gradient w.r.t. C), G = E^+ G' - Lambda C."""
    B, D, V, n, _ = U.shape
    total = B * D * V
    for c in prange(nchunk):
        E = np.empty((n, n), dtype=np.complex128)
        M = np.empty((n, n), dtype=np.complex128)
        lam = np.empty((n, n), dtype=np.complex128)
        tmp = np.empty((n, n), dtype=np.complex128)
        s1 = np.empty((n, n), dtype=np.complex128)
        s2 = np.empty((n, n), dtype=np.complex128)
        s3 = np.empty((n, n), dtype=np.complex128)
        s4 = np.empty((n, n), dtype=np.complex128)
        big = np.empty((4, 2 * n, 2 * n), dtype=np.complex128)
        for idx in range(c * total // nchunk, (c + 1) * total // nchunk):
            b = idx // (D * V)
            mu = (idx // V) % D
            s = idx % V
            _expm(X[b, mu, s], E, s1, s2)
            mul_adj_into(Gout[b, mu, s], U[b, mu, s], M)
            _dexp_adjoint_ta_into(X[b, mu, s], M, E, lam, s1, s2, s3, s4, big)
            mul_into(lam, U[b, mu, s], GC[b, mu, s])
            adj_mul_into(E, Gout[b, mu, s], G[b, mu, s])
            mul_into(lam, C[b, mu, s], tmp)
            for i in range(n):
                for j in range(n):
                    G[b, mu, s, i, j] -= tmp[i, j]


# ============================================================================ kernel-form building blocks


def exp_multiply(X: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """``exp(X) U`` link by link, kernel form ``(B, D, V, N, N)`` (X in su(N), or ``i phi`` for U(1))."""
    out = np.empty_like(flat)
    total = flat.shape[0] * flat.shape[1] * flat.shape[2]
    with parallel_threads("smearing", total):
        _exp_mul_kernel(np.ascontiguousarray(X, dtype=np.complex128), flat, out, n_chunks(total, _CHUNKS_PER_THREAD))
    return out


def _generator(flat, shape, terms, weights):
    """(C, X) with C the weighted staple sum and X = TA(C U^+), kernel form."""
    C = staple_sums_flat(flat, shape, terms, weights)
    return C, project_algebra_flat(C, flat, 1.0)


class StoutResiduals(NamedTuple):
    """What the backward pass of one stout layer needs: the input links, C and X = TA(C U^+) (kernel form)."""

    links: np.ndarray
    C: np.ndarray
    X: np.ndarray
    shape: tuple
    terms: tuple
    rho: np.ndarray


def stout_forward(flat: np.ndarray, shape, *, rho, terms=("plaquette",)) -> tuple[np.ndarray, StoutResiduals]:
    """One stout layer on links in kernel form ``(B, D, V, N, N)``: ``(exp(X) U, residuals)``.

    A building block for :data:`stout_op` and :func:`smeared_force`; ``flat`` is converted to
    complex128 C-contiguous (N = 1 for U(1) phases). ``rho`` has one value per loop term.
    """
    terms = check_terms(terms)
    shape = check_shape(shape)
    rho = term_weights(rho, terms)
    flat = np.ascontiguousarray(flat, dtype=np.complex128)
    C, X = _generator(flat, shape, terms, rho)
    return exp_multiply(X, flat), StoutResiduals(flat, C, X, shape, terms, rho)


def stout_backward(G_out: np.ndarray, res: StoutResiduals, *, want_rho: bool = True):
    """Backward of one stout layer: ``(G_in, g_rho)`` from ``G_out = dL/dRe U' + i dL/dIm U'``.

    ``G_in`` is the gradient with respect to the input links (kernel form), ``g_rho`` (one value
    per term, or None) the gradient with respect to the weights; see the module docstring.
    """
    U = res.links
    G_out = np.ascontiguousarray(G_out, dtype=np.complex128)
    total = U.shape[0] * U.shape[1] * U.shape[2]
    G = np.empty_like(U)
    GC = np.empty_like(U)
    with parallel_threads("smearing", total):
        _backward_local_kernel(U, res.C, res.X, G_out, G, GC, n_chunks(total, _CHUNKS_PER_THREAD))
    staple_sums_pullback(U, res.shape, res.terms, res.rho, GC, G)
    g_rho = term_overlaps(U, res.shape, res.terms, GC) if want_rho else None
    return G, g_rho


# ============================================================================ public API


def stout(U, *, rho, n_steps: int = 1, terms=("plaquette",), batched: bool = False) -> np.ndarray:
    """Stout smearing (Morningstar & Peardon 2004), ``n_steps`` times: ``U -> exp(TA(C U^+)) U``.

    ``C = sum_k rho_k C^(k)`` over the loop ``terms``; ``rho`` is a number (one term) or one value
    per term (isotropic: the same for every direction). The result is exactly in SU(N)
    (U(1): angles in (-pi, pi]).
    """
    terms = check_terms(terms)
    rho = term_weights(rho, terms)
    n_steps = check_count(n_steps, "n_steps")
    links = link_matrices(U, batched=batched)
    flat = links.flat
    for _ in range(n_steps):
        _, X = _generator(flat, links.shape, terms, rho)
        flat = exp_multiply(X, flat)
    return links.restore_links(flat)


def stout_generator(U, *, rho, terms=("plaquette",), batched: bool = False) -> np.ndarray:
    """``X = TA(C U^+)``, the su(N) element of one stout step (U(1): the real angle shift)."""
    terms = check_terms(terms)
    links = link_matrices(U, batched=batched)
    _, X = _generator(links.flat, links.shape, terms, term_weights(rho, terms))
    return links.restore_algebra(X)


def force_from_gradient(G, U, *, batched: bool = False) -> np.ndarray:
    """The su(N) force ``TA(G U^+)/2`` of a function whose gradient (autodiff convention) is ``G``.

    For U(1) links (angles) ``G`` is already ``dS/dtheta`` and is returned unchanged.
    """
    links = link_matrices(U, batched=batched)
    if links.u1:
        return np.asarray(G, dtype=np.float64)
    G = np.ascontiguousarray(G, dtype=np.complex128).reshape(links.flat.shape)
    return links.restore_algebra(project_algebra_flat(G, links.flat, 0.5))


# ---------------------------------------------------------------------------- autodiff op


def _stout_op_fwd(U, rho, *, terms=("plaquette",), batched=False):
    terms = check_terms(terms)
    links = link_matrices(U, batched=batched)
    out, res = stout_forward(links.flat, links.shape, rho=rho, terms=terms)
    return links.restore_links(out), (links, out, res, np.shape(rho))


def _stout_op_bwd(g, residuals, needs):
    links, out, res, rho_shape = residuals
    g = np.asarray(g)
    if links.u1:
        G_out = phase_gradient(g, out)
    else:
        G_out = np.ascontiguousarray(g, dtype=np.complex128).reshape(out.shape)
    G, g_rho = stout_backward(G_out, res, want_rho=needs[1])
    gU = None
    if needs[0]:
        gU = angle_gradient(G, res.links) if links.u1 else G
        gU = gU.reshape(np.shape(g))
    return gU, (None if g_rho is None else g_rho.reshape(rho_shape))


#: Autodiff op: ``stout_op(U, rho, *, terms=("plaquette",), batched=False)`` -> smeared links.
#: Differentiable with respect to the links ``U`` (complex SU(N) matrices or U(1) angles) and the
#: per-term weights ``rho`` (shape ``(n_terms,)`` or a scalar for one term); the backward is
#: :func:`stout_backward` (Morningstar & Peardon's Lambda recursion, one layer).
stout_op = custom_op("stout", _stout_op_fwd, _stout_op_bwd)


# ---------------------------------------------------------------------------- smeared-link action and force


def _smear_chain(flat, shape, rho, terms):
    residuals = []
    for r in rho:
        flat, res = stout_forward(flat, shape, rho=r, terms=terms)
        residuals.append(res)
    return flat, residuals


def smeared_action(U, *, rho, terms=("plaquette",), beta: float, c1: float = 0.0, batched: bool = False):
    """``S[U^(n)]``: the plaquette + rectangle action (:mod:`latticeml.theories.improved`) after ``n`` stout layers.

    ``rho`` is ``(n_layers, n_terms)`` (a scalar or 1-D array is one layer). A float (``(B,)`` if batched).
    """
    terms = check_terms(terms)
    rho = layer_weights(rho, terms)
    beta = finite_float(beta)
    links = link_matrices(U, batched=batched)
    smeared, _ = _smear_chain(links.flat, links.shape, rho, terms)
    action_terms, coef = improved_terms(c1)
    S, _ = loop_action(smeared, links.shape, action_terms, beta * coef)
    return S if batched else float(S[0])


def smeared_force(U, *, rho, terms=("plaquette",), beta: float, c1: float = 0.0, batched: bool = False) -> np.ndarray:
    """HMC force of :func:`smeared_action` with respect to the *thin* links: ``TA(G U^+)/2``.

    ``G`` is the gradient of ``S[U^(n)]`` pulled back through the layers by :func:`stout_backward`
    (the stout force of Morningstar & Peardon, Sec. III). U(1): ``dS/dtheta``.
    """
    terms = check_terms(terms)
    rho = layer_weights(rho, terms)
    beta = finite_float(beta)
    links = link_matrices(U, batched=batched)
    smeared, residuals = _smear_chain(links.flat, links.shape, rho, terms)
    action_terms, coef = improved_terms(c1)
    _, G = loop_action(smeared, links.shape, action_terms, beta * coef, want_gradient=True)
    for res in reversed(residuals):
        G, _ = stout_backward(G, res, want_rho=False)
    return links.force(G)
