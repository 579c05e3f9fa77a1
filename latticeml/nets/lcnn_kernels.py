"""Numba kernels of the L-CNN's Plaq, L-Conv and L-Bilin layers (forward and hand-written backward).

The layers themselves (formulas, the autodiff ops, the gradients' derivation) are in
:mod:`latticeml.nets.lcnn`; this module holds only the loops over sites that NumPy cannot do
without a Python loop or a stack of tiny batched ``matmul`` calls. The dense contractions with
the real weights stay in BLAS (``numpy.matmul`` in :mod:`latticeml.nets.lcnn`).

Shapes (complex128, C-contiguous; ``V`` sites numbered in C order, :mod:`latticeml.lattice`). The
kernels take every field flattened to a stack of matrices ``(count, N, N)`` and address matrix
``(a, b, c)`` of a ``(A, B, C, N, N)`` field as ``(a B + b) C + c``:

    U     links                ``(B, D, V, N, N)``   (U(1): 1 x 1 phases)
    W     channels             ``(B, C, V, N, N)``
    X     L-Conv terms         ``(B, T, C, V, N, N)``, ``T = 1 + 2 D K``: term 0 is W, then
                               ``t = 1 + (2 mu + neg) K + k - 1`` is W transported over k links
                               along +mu (``neg = 0``: from ``x + k mu``) or -mu (``neg = 1``)
    Z, M  L-Bilin right factor and its gradient ``(B, O, 2 c1 + 1, V, N, N)``, ``Z_ij = sum_k a_ijk Y_k``
    fwd, bwd  neighbour tables ``(V, D)`` int64 (:func:`latticeml.lattice.neighbour_table`)

One-link transport (Favoni et al., PRL 128 (2022) 032003, arXiv:2012.12901), for ``neg = 0``
``(S A)(x) = U_mu(x) A(x + mu) U_mu(x)^+`` and for ``neg = 1`` ``(S A)(x) = U_mu(x - mu)^+ A(x - mu) U_mu(x - mu)``;
each is the adjoint of the other (``Re <G, S A> = Re <S^+ G, A>``), which is what the backward uses.

Every kernel is a serial ``@njit(nogil=True, cache=True)`` function over the batch entries
``start <= b < stop`` (each entry is independent, so :func:`latticeml._threads.run_chunks` may run
chunks of the batch on several threads and the result never depends on the thread count). Each
operation has a generic kernel (``*_chunk``, any N) and an unrolled one for SU(2), the L-CNN papers'
group (``*_2x2``, the matrices held in registers); :func:`kernel` picks one in Python, so a run
compiles only the kernels it uses. Every kernel writes its whole output (no caller-side zeroing).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "kernel",
    "plaq_chunk",
    "lconv_terms_chunk",
    "lconv_backward_chunk",
    "lbilin_forward_chunk",
    "lbilin_grad_left_chunk",
    "lbilin_grad_right_chunk",
    "plaq_2x2",
    "lconv_terms_2x2",
    "lconv_backward_2x2",
    "lbilin_forward_2x2",
    "lbilin_grad_left_2x2",
    "lbilin_grad_right_2x2",
]


# ============================================================================ small products (any N)
#
# Matrices are addressed as (stack, index) with every stack a complex128 array (count, N, N): a view
# ``A[i]`` built inside a hot loop costs more than a 2 x 2 product. ``adj`` flags take the adjoint of
# a factor and ``acc`` adds to ``out`` instead of overwriting it. These serve the generic paths (N != 2)
# and are plain calls, not inlined: each inlined call site is compiled again (with them inlined, the
# first step of an L-CNN in a fresh process took ~30 s; see also :mod:`latticeml.smearing.paths`).


@njit(cache=True)
def _prod(A, ia, adj_a, Bm, ib, adj_b, O, io, acc):
    """``O[io] (+)= op(A[ia]) op(Bm[ib])``, ``op`` the adjoint where flagged; ``O[io]`` must not alias an input."""
    n = A.shape[1]
    for r in range(n):
        for c in range(n):
            z = 0j
            for k in range(n):
                a = A[ia, k, r].conjugate() if adj_a else A[ia, r, k]
                b = Bm[ib, c, k].conjugate() if adj_b else Bm[ib, k, c]
                z += a * b
            if acc:
                O[io, r, c] += z
            else:
                O[io, r, c] = z


@njit(cache=True)
def _copy(A, ia, adj, O, io, acc):
    """``O[io] (+)= A[ia]`` (or its adjoint)."""
    n = A.shape[1]
    for r in range(n):
        for c in range(n):
            a = A[ia, c, r].conjugate() if adj else A[ia, r, c]
            if acc:
                O[io, r, c] += a
            else:
                O[io, r, c] = a


@njit(cache=True)
def _step(U, ub, A, ab, mu, neg, fwd, bwd, s, O, io, acc, tmp):
    """``O[io] (+)= (S A)(s)``, the one-link transport to site s along +mu (``neg = 0``) or -mu (``neg = 1``).

    ``U[ub + s]`` is ``U_mu(s)`` and ``A[ab + s]`` the field at s (``ub``, ``ab``: offsets of the slices);
    ``tmp (1, N, N)`` scratch.
    """
    if neg == 0:  # U_mu(s) A(s + mu) U_mu(s)^+
        p, y, adj = ub + s, fwd[s, mu], False
    else:  # U_mu(s - mu)^+ A(s - mu) U_mu(s - mu)
        y = bwd[s, mu]
        p, adj = ub + y, True
    _prod(U, p, adj, A, ab + y, False, tmp, 0, False)
    _prod(tmp, 0, False, U, p, not adj, O, io, acc)


# ============================================================================ 2 x 2 values in registers
#
# The SU(2) fast paths hold each 2 x 2 matrix as a 4-tuple of entries (row-major) in registers and
# store once: accumulating into the output array instead (what the generic paths do) makes LLVM
# reload and store every entry after every product, since it cannot prove that the arrays do not
# alias (measured on one core: the L-Bilin product 9 against 26 ns per 2 x 2 product, the one-link
# transport 18 against 48 ns). The transport ``P A P^+`` is written out at each loop (the choice of
# ``P`` and of the neighbour, then two products): as a helper function it ran at 35 ns inlined by
# Numba and at 53 ns as a call.


@njit(cache=True)
def _ld(A, i):
    """The 2 x 2 matrix ``A[i]`` as the 4-tuple of its entries, row-major."""
    return A[i, 0, 0], A[i, 0, 1], A[i, 1, 0], A[i, 1, 1]


@njit(cache=True)
def _st(O, i, a):
    """``O[i] = a`` (a 4-tuple)."""
    O[i, 0, 0], O[i, 0, 1], O[i, 1, 0], O[i, 1, 1] = a


@njit(cache=True)
def _h(a):
    """The adjoint."""
    return a[0].conjugate(), a[2].conjugate(), a[1].conjugate(), a[3].conjugate()


@njit(cache=True)
def _mm(a, b):
    """The product ``a b``."""
    return (a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3], a[2] * b[0] + a[3] * b[2], a[2] * b[1] + a[3] * b[3])


@njit(cache=True)
def _add(a, b):
    """The sum ``a + b``."""
    return a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]


@njit(nogil=True, cache=True)
def lconv_terms_2x2(U, W, fwd, bwd, B, D, C, V, K, X, start, stop):
    """:func:`lconv_terms_chunk` for N = 2, the matrices held in registers."""
    T = 1 + 2 * D * K
    for b in range(start, stop):
        base = b * T * C * V
        for i in range(C * V):
            _st(X, base + i, _ld(W, b * C * V + i))
        for mu in range(D):
            ub = (b * D + mu) * V
            for neg in range(2):
                t0 = 1 + (2 * mu + neg) * K
                for k in range(K):
                    for c in range(C):
                        ob = base + ((t0 + k) * C + c) * V
                        A, ab = (W, (b * C + c) * V) if k == 0 else (X, base + ((t0 + k - 1) * C + c) * V)
                        for s in range(V):
                            if neg == 0:
                                P = _ld(U, ub + s)
                                y = fwd[s, mu]
                            else:
                                y = bwd[s, mu]
                                P = _h(_ld(U, ub + y))
                            _st(X, ob + s, _mm(_mm(P, _ld(A, ab + y)), _h(P)))


@njit(nogil=True, cache=True)
def lconv_backward_2x2(U, X, GX, fwd, bwd, B, D, C, V, K, want_links, gW, gU, start, stop):
    """:func:`lconv_backward_chunk` for N = 2, the matrices held in registers."""
    T = 1 + 2 * D * K
    H = np.empty((C * V, 2, 2), dtype=np.complex128)
    Hn = np.empty((C * V, 2, 2), dtype=np.complex128)
    for b in range(start, stop):
        base = b * T * C * V
        for i in range(C * V):
            _st(gW, b * C * V + i, _ld(GX, base + i))
        if want_links:
            for i in range(D * V):
                _st(gU, b * D * V + i, (0j, 0j, 0j, 0j))
        for mu in range(D if K > 0 else 0):  # K = 0: the site term alone
            ub = (b * D + mu) * V
            for neg in range(2):
                back = 1 - neg
                t0 = 1 + (2 * mu + neg) * K
                src, sb = GX, base + (t0 + K - 1) * C * V  # H_K = GX[t_K]: read in place
                for k in range(K - 1, -1, -1):
                    gb = base + (t0 + k) * C * V
                    if k < K - 1:  # H_k = GX[t_k] + S^+ H_{k+1}, into the scratch buffer not being read
                        dst = H if (K - 1 - k) % 2 == 1 else Hn
                        for c in range(C):
                            for s in range(V):
                                if back == 0:
                                    P = _ld(U, ub + s)
                                    y = fwd[s, mu]
                                else:
                                    y = bwd[s, mu]
                                    P = _h(_ld(U, ub + y))
                                i = c * V + s
                                _st(dst, i, _add(_ld(GX, gb + i), _mm(_mm(P, _ld(src, sb + c * V + y)), _h(P))))
                        src, sb = dst, 0
                    if want_links:
                        for s in range(V):
                            y = s if neg == 0 else fwd[s, mu]
                            m = (0j, 0j, 0j, 0j)
                            for c in range(C):
                                h = _ld(src, sb + c * V + y)
                                t = _ld(X, gb + c * V + y)
                                m = _add(m, _add(_mm(h, _h(t)), _mm(_h(h), t)))
                            u = _ld(U, ub + s)
                            if neg == 0:
                                g = _mm(m, u)
                            else:
                                g = _mm(u, _h(m))
                            _st(gU, ub + s, _add(_ld(gU, ub + s), g))
                for c in range(C):
                    for s in range(V):
                        if back == 0:
                            P = _ld(U, ub + s)
                            y = fwd[s, mu]
                        else:
                            y = bwd[s, mu]
                            P = _h(_ld(U, ub + y))
                        i = (b * C + c) * V + s
                        _st(gW, i, _add(_ld(gW, i), _mm(_mm(P, _ld(src, sb + c * V + y)), _h(P))))


@njit(nogil=True, cache=True)
def lbilin_forward_2x2(W1, Z, B, c1, O, V, out, start, stop):
    """:func:`lbilin_forward_chunk` for N = 2, the matrices held in registers."""
    C1 = 2 * c1 + 1
    for b in range(start, stop):
        for i in range(O):
            zb = (b * O + i) * C1 * V
            for s in range(V):
                o = _ld(Z, zb + 2 * c1 * V + s)
                for j in range(c1):
                    w = _ld(W1, (b * c1 + j) * V + s)
                    o = _add(o, _add(_mm(w, _ld(Z, zb + j * V + s)), _mm(_h(w), _ld(Z, zb + (c1 + j) * V + s))))
                _st(out, (b * O + i) * V + s, o)


@njit(nogil=True, cache=True)
def lbilin_grad_left_2x2(G, Z, B, c1, O, V, g1, start, stop):
    """:func:`lbilin_grad_left_chunk` for N = 2, the matrices held in registers."""
    C1 = 2 * c1 + 1
    for b in range(start, stop):
        for j in range(c1):
            for s in range(V):
                o = (0j, 0j, 0j, 0j)
                for i in range(O):
                    g = _ld(G, (b * O + i) * V + s)
                    zb = (b * O + i) * C1 * V + s
                    o = _add(o, _add(_mm(g, _h(_ld(Z, zb + j * V))), _mm(_ld(Z, zb + (c1 + j) * V), _h(g))))
                _st(g1, (b * c1 + j) * V + s, o)


@njit(nogil=True, cache=True)
def lbilin_grad_right_2x2(W1, G, B, c1, O, V, M, start, stop):
    """:func:`lbilin_grad_right_chunk` for N = 2, the matrices held in registers."""
    C1 = 2 * c1 + 1
    for b in range(start, stop):
        for i in range(O):
            mb = (b * O + i) * C1 * V
            for s in range(V):
                g = _ld(G, (b * O + i) * V + s)
                for j in range(c1):
                    w = _ld(W1, (b * c1 + j) * V + s)
                    _st(M, mb + j * V + s, _mm(_h(w), g))
                    _st(M, mb + (c1 + j) * V + s, _mm(w, g))
                _st(M, mb + 2 * c1 * V + s, g)


# ============================================================================ Plaq


@njit(cache=True)
def _plaq_channel(mu, nu, D):
    """Channel of the plaquette (mu, nu), mu != nu, in row-major order over the ordered pairs."""
    return mu * (D - 1) + (nu if nu < mu else nu - 1)


@njit(nogil=True, cache=True)
def plaq_2x2(U, fwd, B, D, V, P, start, stop):
    """:func:`plaq_chunk` for N = 2, the matrices held in registers."""
    C = D * (D - 1)
    for b in range(start, stop):
        for mu in range(D):
            for nu in range(mu + 1, D):
                um, un = (b * D + mu) * V, (b * D + nu) * V
                pa, pb = (b * C + _plaq_channel(mu, nu, D)) * V, (b * C + _plaq_channel(nu, mu, D)) * V
                for s in range(V):
                    a = _mm(_ld(U, um + s), _ld(U, un + fwd[s, mu]))
                    q = _mm(_ld(U, un + s), _ld(U, um + fwd[s, nu]))  # U_nu(x) U_mu(x + nu)
                    p = _mm(a, _h(q))
                    _st(P, pa + s, p)
                    _st(P, pb + s, _h(p))


@njit(nogil=True, cache=True)
def plaq_chunk(U, fwd, B, D, V, P, start, stop):
    """Every plaquette ``U_mu(x) U_nu(x + mu) U_mu(x + nu)^+ U_nu(x)^+``, mu != nu, for ``start <= b < stop``.

    ``U (B D V, N, N)``, ``P (B C V, N, N)`` with ``C = D (D - 1)`` channels, (mu, nu) in row-major order
    over the ordered pairs; each pair is computed once and ``U_nu,mu = U_mu,nu^+``.
    """
    n = U.shape[1]
    C = D * (D - 1)
    a = np.empty((1, n, n), dtype=np.complex128)
    q = np.empty((1, n, n), dtype=np.complex128)
    for b in range(start, stop):
        for mu in range(D):
            for nu in range(mu + 1, D):
                um, un = (b * D + mu) * V, (b * D + nu) * V
                pa, pb = (b * C + _plaq_channel(mu, nu, D)) * V, (b * C + _plaq_channel(nu, mu, D)) * V
                for s in range(V):
                    _prod(U, um + s, False, U, un + fwd[s, mu], False, a, 0, False)  # U_mu(x) U_nu(x + mu)
                    _prod(U, un + s, False, U, um + fwd[s, nu], False, q, 0, False)  # U_nu(x) U_mu(x + nu)
                    _prod(a, 0, False, q, 0, True, P, pa + s, False)
                    _copy(P, pa + s, True, P, pb + s, False)


# ============================================================================ L-Conv


@njit(nogil=True, cache=True)
def lconv_terms_chunk(U, W, fwd, bwd, B, D, C, V, K, X, start, stop):
    """Every transported term of every channel, for the batch entries ``start <= b < stop``.

    ``U (B D V, N, N)``, ``W (B C V, N, N)``, ``X (B T C V, N, N)`` (the shapes of the module docstring,
    flattened to stacks of matrices). ``X[b, 0] = W[b]``, ``X[b, t0 + k] = S X[b, t0 + k - 1]`` with
    ``t0 = 1 + (2 mu + neg) K``: term ``t0 + k`` (k = 0..K-1) is W transported over ``k + 1`` links,
    one link at a time (the first from W itself).
    """
    n = U.shape[1]
    T = 1 + 2 * D * K
    tmp = np.empty((1, n, n), dtype=np.complex128)
    for b in range(start, stop):
        base = b * T * C * V
        for i in range(C * V):
            _copy(W, b * C * V + i, False, X, base + i, False)
        for mu in range(D):
            ub = (b * D + mu) * V
            for neg in range(2):
                t0 = 1 + (2 * mu + neg) * K
                for k in range(K):
                    src = 0 if k == 0 else t0 + k - 1
                    for c in range(C):
                        ab = base + (src * C + c) * V
                        ob = base + ((t0 + k) * C + c) * V
                        for s in range(V):
                            _step(U, ub, X, ab, mu, neg, fwd, bwd, s, X, ob + s, False, tmp)


@njit(nogil=True, cache=True)
def lconv_backward_chunk(U, X, GX, fwd, bwd, B, D, C, V, K, want_links, gW, gU, start, stop):
    """Pull the gradients ``GX`` of every term back to W (``gW``) and, if ``want_links``, to the links (``gU``).

    Stacks as in :func:`lconv_terms_chunk`; ``GX`` like ``X``, ``gW`` like ``W``, ``gU`` like ``U``.
    Horner's rule along each chain: ``H_K = GX[t_K]``, ``H_k = GX[t_k] + S^+ H_{k+1}``, and
    ``gW += S^+ H_1`` (``S^+`` the transport the other way). The link of step k receives
    ``M = sum_c (H_k T_k^+ + H_k^+ T_k)`` (``T_k = X[t_k]``): ``gU_mu(x) += M(x) U_mu(x)`` for a
    step along +mu, ``gU_mu(x) += U_mu(x) M(x + mu)^+`` along -mu (a gather: each link is written
    from its own site only).
    """
    n = U.shape[1]
    T = 1 + 2 * D * K
    tmp = np.empty((1, n, n), dtype=np.complex128)
    M = np.empty((1, n, n), dtype=np.complex128)
    H = np.empty((C * V, n, n), dtype=np.complex128)
    Hn = np.empty((C * V, n, n), dtype=np.complex128)
    for b in range(start, stop):
        base = b * T * C * V
        for i in range(C * V):
            _copy(GX, base + i, False, gW, b * C * V + i, False)
        if want_links:
            for i in range(D * V):
                for r in range(n):
                    for c in range(n):
                        gU[b * D * V + i, r, c] = 0.0
        for mu in range(D if K > 0 else 0):  # K = 0: the site term alone
            ub = (b * D + mu) * V
            for neg in range(2):
                back = 1 - neg  # S^+ is the step the other way
                t0 = 1 + (2 * mu + neg) * K
                for k in range(K - 1, -1, -1):
                    gb = base + (t0 + k) * C * V
                    for c in range(C):
                        for s in range(V):
                            _copy(GX, gb + c * V + s, False, Hn, c * V + s, False)
                            if k < K - 1:
                                _step(U, ub, H, c * V, mu, back, fwd, bwd, s, Hn, c * V + s, True, tmp)
                    H, Hn = Hn, H
                    if want_links:
                        xb = base + (t0 + k) * C * V
                        for s in range(V):
                            y = s if neg == 0 else fwd[s, mu]
                            for c in range(C):
                                _prod(H, c * V + y, False, X, xb + c * V + y, True, M, 0, c > 0)
                                _prod(H, c * V + y, True, X, xb + c * V + y, False, M, 0, True)
                            if neg == 0:
                                _prod(M, 0, False, U, ub + s, False, gU, ub + s, True)
                            else:
                                _prod(U, ub + s, False, M, 0, True, gU, ub + s, True)
                for c in range(C):
                    for s in range(V):
                        _step(U, ub, H, c * V, mu, back, fwd, bwd, s, gW, (b * C + c) * V + s, True, tmp)


# ============================================================================ L-Bilin


@njit(nogil=True, cache=True)
def lbilin_forward_chunk(W1, Z, B, c1, O, V, out, start, stop):
    """``out_i = sum_j X_j Z_ij`` with ``X = (W1, W1^+, 1)``.

    ``W1 (B c1 V, N, N)``, ``Z (B O C1 V, N, N)`` with ``C1 = 2 c1 + 1``, ``out (B O V, N, N)``.
    """
    C1 = 2 * c1 + 1
    for b in range(start, stop):
        for i in range(O):
            zb = (b * O + i) * C1 * V
            ob = (b * O + i) * V
            for s in range(V):
                _copy(Z, zb + 2 * c1 * V + s, False, out, ob + s, False)
                for j in range(c1):
                    w = (b * c1 + j) * V + s
                    _prod(W1, w, False, Z, zb + j * V + s, False, out, ob + s, True)
                    _prod(W1, w, True, Z, zb + (c1 + j) * V + s, False, out, ob + s, True)


@njit(nogil=True, cache=True)
def lbilin_grad_left_chunk(G, Z, B, c1, O, V, g1, start, stop):
    """Gradient on W1: ``g1_j = sum_i G_i Z_ij^+ + Z_i,c1+j G_i^+`` (from ``X_j = W1_j`` and ``X_c1+j = W1_j^+``).

    ``G (B O V, N, N)`` (the output's gradient), ``Z`` as in :func:`lbilin_forward_chunk`, ``g1`` like ``W1``.
    """
    C1 = 2 * c1 + 1
    for b in range(start, stop):
        for j in range(c1):
            for s in range(V):
                o = (b * c1 + j) * V + s
                for i in range(O):
                    g = (b * O + i) * V + s
                    zb = (b * O + i) * C1 * V + s
                    _prod(G, g, False, Z, zb + j * V, True, g1, o, i > 0)
                    _prod(Z, zb + (c1 + j) * V, False, G, g, True, g1, o, True)


@njit(nogil=True, cache=True)
def lbilin_grad_right_chunk(W1, G, B, c1, O, V, M, start, stop):
    """``M_ij = X_j^+ G_i`` (the gradient on ``Z_ij``), ``X = (W1, W1^+, 1)``; ``M`` like ``Z``."""
    C1 = 2 * c1 + 1
    for b in range(start, stop):
        for i in range(O):
            mb = (b * O + i) * C1 * V
            for s in range(V):
                g = (b * O + i) * V + s
                for j in range(c1):
                    w = (b * c1 + j) * V + s
                    _prod(W1, w, True, G, g, False, M, mb + j * V + s, False)
                    _prod(W1, w, False, G, g, False, M, mb + (c1 + j) * V + s, False)
                _copy(G, g, False, M, mb + 2 * c1 * V + s, False)


# ============================================================================ choice of kernel

_KERNELS = {
    "plaq": (plaq_chunk, plaq_2x2),
    "lconv_terms": (lconv_terms_chunk, lconv_terms_2x2),
    "lconv_backward": (lconv_backward_chunk, lconv_backward_2x2),
    "lbilin_forward": (lbilin_forward_chunk, lbilin_forward_2x2),
    "lbilin_grad_left": (lbilin_grad_left_chunk, lbilin_grad_left_2x2),
    "lbilin_grad_right": (lbilin_grad_right_chunk, lbilin_grad_right_2x2),
}


def kernel(name: str, N: int):
    """The kernel ``name`` for N x N matrices: the unrolled ``*_2x2`` one for N = 2, the generic one otherwise.

    Chosen in Python (not by a branch inside one kernel) so that a run compiles only the kernels it uses.
    Both take the same arguments; ``name`` is a key of the table above (``"lconv_terms"``, ...).
    """
    return _KERNELS[name][1 if N == 2 else 0]
