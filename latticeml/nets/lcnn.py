"""Lattice gauge equivariant convolutional neural networks (L-CNN): layers, networks, a baseline CNN.

M. Favoni, A. Ipp, D. I. Muller and D. Schuh, "Lattice gauge equivariant convolutional neural
networks", PRL 128 (2022) 032003 [arXiv:2012.12901]. An L-CNN acts on pairs ``(U, W)``:

    U   links, complex128 ``(B, D, L0, ..., L{D-1}, N, N)``: U_mu(x) -> Omega(x) U_mu(x) Omega(x+mu)^+
    W   locally transforming matrices, complex128 ``(B, C, L0, ..., L{D-1}, N, N)``: W(x) -> Omega(x) W(x) Omega(x)^+

U(1) links enter as 1 x 1 unit phases ``exp(i theta)`` (``N = 1``; :func:`links_from_angles`). Every
layer below commutes with gauge transformations (equivariance), and :func:`trace` makes the output
gauge invariant. Each layer is one op of :mod:`latticeml.autodiff` with a hand-written backward
(complex gradients ``dL/dRe + i dL/dIm``, the engine's convention); the weights are real.

=========== =========================================================================== =================
layer       formula                                                                     channels
=========== =========================================================================== =================
Plaq        ``U_mu(x) U_nu(x+mu) U_mu(x+nu)^+ U_nu(x)^+`` for every ordered pair mu != nu  ``D (D-1)``
            (so both orientations: ``U_nu,mu = U_mu,nu^+``)
Poly        Polyakov loops ``prod_k U_mu(x + k mu)`` around each axis                      ``D``
L-Conv      ``W'_i(x) = sum_{j, t} w_ijt T_t W_j(x)``, ``T_t`` the parallel transport       C_in -> C_out
            along a straight line from ``x +- k mu`` to ``x``, ``k = 0..K``, every mu, both
            orientations (``1 + 2 D K`` terms; :func:`latticeml.smearing.paths.parallel_transport`)
L-Bilin     ``W''_i(x) = sum_{j,k} a_ijk X_j(x) Y_k(x)`` with ``X = (W, W^+, 1)``,            -> C_out
            ``Y = (W', W'^+, 1)``: the unit matrix gives the bias and the residual terms
L-Act       ``W -> g(Re tr W) W``, ``g`` = step (the ReLU: Theta(t) t) or the logistic sigmoid  same
L-Exp       ``U_mu(x) -> exp(TA(sum_c v_mu,c W_c(x))) U_mu(x)``                            links
Trace       ``(Re tr W_c, Im tr W_c)``: gauge invariant real features                      ``2 C``
=========== =========================================================================== =================

The loops over sites of Plaq, L-Conv and L-Bilin, forward and backward, are Numba kernels
(:mod:`latticeml.nets.lcnn_kernels`); the contractions with the real weights are BLAS products on real
views (the L-Bilin product ``sum_k a_ijk Y_k`` and its transposes, L-Conv's weighted sum of terms).

The backward passes. L-Conv's transports are built one step at a time (``T_k = S T_{k-1}`` with
the one-link transport ``S``), so the gradient goes back by Horner's rule with the adjoint step,
the transport the other way (``Re <G, S W> = Re <S^+ G, W>``); a one-step transport
``T = V T' V^+`` sends ``(H T^+ + H^+ T) V`` to the link ``V``. Plaq and Poly are path products;
a factor ``M`` of ``P = A M B`` receives ``A^+ G B^+``. The exponential uses the eigenbasis of the
Hermitian ``-i X`` and the Daleckii-Krein formula for its Frechet derivative (divided differences
``(e^{i l_a} - e^{i l_b}) / (i (l_a - l_b)) = e^{i (l_a + l_b)/2} sinc((l_a - l_b)/2)``;
Higham, *Functions of Matrices*, SIAM 2008, thm 3.11).

Networks. :class:`LCNN` is ``Plaq (+ Poly) -> [L-Conv -> L-Bilin (-> L-Act)] x n -> Trace ->
linear`` with one prediction per site; an L-Conv followed by an L-Bilin of its input with its output
is the paper's "L-CB" block. :class:`BaselineCNN` is the paper's comparison: a periodic CNN on the
raw entries of the links and plaquettes (ReLU, global average pooling), which is not gauge invariant.
"""

from __future__ import annotations

import numpy as np

from .._threads import run_chunks
from ..autodiff import nn, ops
from ..autodiff.tensor import Parameter, Tensor, as_value, custom_op
from ..checks import check_rng
from ..lattice import neighbour_table
from ..smearing.paths import path_product
from .lcnn_kernels import kernel

__all__ = [
    "links_from_angles",
    "random_gauge",
    "gauge_transform",
    "plaq",
    "poly",
    "lconv",
    "lbilin",
    "lact",
    "lexp",
    "trace",
    "n_transport_terms",
    "LConv",
    "LBilin",
    "LAct",
    "LExp",
    "LCNN",
    "BaselineCNN",
    "ARCHITECTURES",
    "build_lcnn",
]


# ============================================================================ small helpers


def _dag(a):
    return np.conj(np.swapaxes(a, -1, -2))


def _eye(N):
    return np.eye(N, dtype=np.complex128)


def _lattice_axes(D: int, lead: int = 1) -> tuple:
    """Axes of the lattice in an array ``(lead axes..., L0, ..., L{D-1}, N, N)``."""
    return tuple(range(lead, lead + D))


def _roll(a, offset, lead: int = 1):
    """``b(x) = a(x - offset)`` on the lattice axes (periodic)."""
    D = len(offset)
    if not any(offset):
        return a
    return np.roll(a, tuple(int(o) for o in offset), axis=_lattice_axes(D, lead))


def _links_arg(U):
    """The links in the form :mod:`latticeml.smearing.paths` takes: SU(N) matrices, or U(1) angles for N = 1."""
    return np.angle(U[..., 0, 0]) if U.shape[-1] == 1 else U


def links_from_angles(theta) -> np.ndarray:
    """U(1) angles ``(B, D, *L)`` -> 1 x 1 unit phases ``(B, D, *L, 1, 1)``, the form the layers take."""
    return np.exp(1j * np.asarray(theta, dtype=np.float64))[..., None, None]


def random_gauge(rng: np.random.Generator, B: int, shape, N: int) -> np.ndarray:
    """Haar-random gauge transformations ``Omega(x)``, ``(B, *shape, N, N)`` (U(1): random phases)."""
    check_rng(rng)
    shape = tuple(int(n) for n in shape)
    if N == 1:
        return np.exp(1j * rng.uniform(-np.pi, np.pi, size=(B,) + shape))[..., None, None]
    from ..groups import haar_su

    return haar_su(rng, N, (B,) + shape)


def gauge_transform(U, W, Omega):
    """``(U, W) -> (Omega(x) U_mu(x) Omega(x+mu)^+, Omega(x) W(x) Omega(x)^+)``; ``W`` may be None.

    Shapes: ``U (B, D, *L, N, N)``, ``W (B, C, *L, N, N)``, ``Omega (B, *L, N, N)``.
    """
    D = U.shape[1]
    Ut = np.empty_like(U)
    for mu in range(D):
        shifted = np.roll(Omega, -1, axis=1 + mu)  # Omega(x + mu)
        Ut[:, mu] = Omega @ U[:, mu] @ _dag(shifted)
    Wt = None if W is None else Omega[:, None] @ W @ _dag(Omega)[:, None]
    return Ut, Wt


def _ta(M):
    """Traceless anti-Hermitian part (N >= 2); the anti-Hermitian part ``i Im M`` for N = 1."""
    A = 0.5 * (M - _dag(M))
    N = M.shape[-1]
    if N > 1:
        A = A - (np.trace(A, axis1=-2, axis2=-1) / N)[..., None, None] * _eye(N)
    return A


def _real_view(a):
    """float64 view ``(..., 2 S)`` of a complex array whose trailing axes were flattened to ``S``."""
    return np.ascontiguousarray(a).view(np.float64)


# ============================================================================ path products (Plaq, Poly)


def _path_fwd(U, paths):
    """Products along each path from every site: ``(B, len(paths), *L, N, N)``."""
    links = _links_arg(U)
    N = U.shape[-1]
    outs = []
    for steps in paths:
        P = path_product(links, steps, batched=True)
        outs.append(P[..., None, None] if N == 1 else P)
    return np.stack(outs, axis=1)


def _offsets(steps, D):
    """Positions along a path: ``off[i]`` = displacement after the first i steps."""
    off = np.zeros((len(steps) + 1, D), dtype=np.int64)
    for i, s in enumerate(steps):
        off[i + 1] = off[i]
        off[i + 1, abs(s) - 1] += 1 if s > 0 else -1
    return off


def _path_vjp(U, paths, G):
    """Gradient with respect to ``U`` of ``Re <G, path products>`` (G ``(B, P, *L, N, N)``).

    For the factor ``M`` at step i of ``P = A M B``: ``dL/dM = A^+ G B^+``; ``M = U_mu(y)`` for a
    forward step from y, ``M = U_mu(y - mu)^+`` for a backward one (the gradient is then conjugated).
    """
    B, D = U.shape[:2]
    N = U.shape[-1]
    links = _links_arg(U)
    gU = np.zeros_like(U)

    def prod(steps):
        if len(steps) == 0:
            return np.broadcast_to(_eye(N), (B,) + U.shape[2:-2] + (N, N))
        P = path_product(links, list(steps), batched=True)
        return P[..., None, None] if N == 1 else P

    for p, steps in enumerate(paths):
        off = _offsets(steps, D)
        Gp = G[:, p]
        for i, s in enumerate(steps):
            A = prod(steps[:i])
            Bm = _roll(prod(steps[i + 1 :]), -off[i + 1])  # suffix starts at x + off[i+1]
            gM = _dag(A) @ Gp @ _dag(Bm)  # at base point x
            mu = abs(s) - 1
            if s > 0:
                gU[:, mu] += _roll(gM, off[i])  # link U_mu(x + off[i])
            else:
                gU[:, mu] += _roll(_dag(gM), off[i + 1])  # link U_mu(x + off[i+1]), entered as U^+
    return gU


def _plaq_paths(D):
    return [[mu + 1, nu + 1, -(mu + 1), -(nu + 1)] for mu in range(D) for nu in range(D) if mu != nu]


def _poly_paths(shape):
    return [[mu + 1] * int(L) for mu, L in enumerate(shape)]


def _plaq_fwd(U):
    """Every plaquette from one kernel call (:mod:`latticeml.nets.lcnn_kernels`): ``(B, D (D-1), *L, N, N)``."""
    B, D = U.shape[:2]
    Uf = _flat_sites(U, 2)
    V, N = Uf.shape[2], Uf.shape[-1]
    fwd, _ = neighbour_table(U.shape[2:-2])
    P = np.empty((B, D * (D - 1), V, N, N), dtype=np.complex128)
    run_chunks("smearing", B, kernel("plaq", N), _stack(Uf), fwd, B, D, V, _stack(P), size=B * D * V)
    return P.reshape((B, D * (D - 1)) + U.shape[2:])


def _paths_fwd(U, *, kind):
    if kind == "plaq":
        _check_links(U)
        return _plaq_fwd(U), (U, _plaq_paths(U.shape[1]))
    paths = _poly_paths(U.shape[2:-2])
    return _path_fwd(U, paths), (U, paths)


def _paths_bwd(g, res, needs):
    U, paths = res
    return (_path_vjp(U, paths, g) if needs[0] else None,)


_paths_op = custom_op("lcnn_paths", _paths_fwd, _paths_bwd)


def plaq(U):
    """Plaq: every plaquette ``U_mu,nu(x)``, mu != nu, as channels ``(B, D (D-1), *L, N, N)``.

    Channel order: (mu, nu) in row-major order over mu, nu = 0..D-1 with mu != nu; ``U_nu,mu = U_mu,nu^+``.
    """
    return _paths_op(U, kind="plaq")


def poly(U):
    """Poly: the untraced Polyakov loop around each axis mu from every site, ``(B, D, *L, N, N)``."""
    return _paths_op(U, kind="poly")


# ============================================================================ L-Conv


def n_transport_terms(D: int, K: int) -> int:
    """Number of transports of one channel in an L-Conv of reach K: the site itself + 2 D K lines."""
    return 1 + 2 * D * K


def _flat_sites(a, lead: int):
    """``(lead axes..., L0, ..., L{D-1}, N, N)`` -> C-contiguous complex128 ``(lead axes..., V, N, N)``."""
    a = np.ascontiguousarray(a, dtype=np.complex128)
    return a.reshape(a.shape[:lead] + (-1,) + a.shape[-2:])


def _check_links(U):
    """The kernels index without bounds checks: the links must be ``(B, D, L0, ..., L{D-1}, N, N)``."""
    if U.ndim < 5 or U.shape[1] != U.ndim - 4 or U.shape[-1] != U.shape[-2]:
        raise ValueError(f"links must have shape (B, D, L0, ..., L{{D-1}}, N, N), got {U.shape}")


def _check_matrices(W, U, name: str):
    """``W`` must be ``(B, C, *L, N, N)`` on the lattice and batch of the links ``U (B, D, *L, N, N)``."""
    _check_links(U)
    want = (U.shape[0], "C") + U.shape[2:]
    if W.ndim != U.ndim or W.shape[0] != U.shape[0] or W.shape[2:] != U.shape[2:]:
        raise ValueError(f"{name} must have shape {want} to match the links, got {W.shape}")


#: The backward passes make their largest scratch arrays (L-Conv's gradient of every transported term,
#: L-Bilin's gradient on ``Z``) a block of batch entries at a time, blocks of about this size, so that
#: they stay in cache and their pages are reused (a fresh 40 MB array costs ~3 ms in page faults alone).
_BLOCK_BYTES = 4 << 20


def _stack(a):
    """A C-contiguous ``(..., N, N)`` array as the stack of matrices ``(count, N, N)`` the kernels take (a view)."""
    return a.reshape((-1,) + a.shape[-2:])


def _lconv_fwd(U, W, weight, *, K):
    """``out_i = sum_{j,t} w_ijt T_t W_j``; term t = 0 is W itself, then (mu, sign, k) row-major.

    The terms ``X (B, T, C, V, N, N)`` come from one kernel call (every direction, both signs, one link
    at a time); the weighted sum is one BLAS product per batch entry on their real view.
    """
    _check_matrices(W, U, "W")
    B, C = W.shape[:2]
    D = U.shape[1]
    nT = n_transport_terms(D, K)
    if K < 0 or weight.shape[1:] != (C, nT):
        raise ValueError(f"L-Conv weight must have shape (C_out, {C}, {nT}) for C_in = {C}, D = {D}, K = {K}, got {weight.shape}")
    Uf, Wf = _flat_sites(U, 2), _flat_sites(W, 2)
    V, N = Wf.shape[2], Wf.shape[-1]
    fwd, bwd = neighbour_table(U.shape[2:-2])
    X = np.empty((B, nT, C, V, N, N), dtype=np.complex128)
    run_chunks("smearing", B, kernel("lconv_terms", N), _stack(Uf), _stack(Wf), fwd, bwd, B, D, C, V, K, _stack(X),
               size=B * nT * C * V)
    O = weight.shape[0]
    w2 = np.ascontiguousarray(np.transpose(weight, (0, 2, 1)).reshape(O, nT * C))
    out = (w2 @ X.reshape(B, nT * C, -1).view(np.float64)).view(np.complex128)
    return out.reshape((B, O) + W.shape[2:]), (Uf, X, w2, weight.shape, K, U.shape, W.shape)


def _lconv_bwd(g, res, needs):
    Uf, X, w2, wshape, K, ushape, wshape_in = res
    B, nT, C, V, N = X.shape[:5]
    O = wshape[0]
    gv = np.ascontiguousarray(g, dtype=np.complex128).reshape(B, O, -1).view(np.float64)
    gU = gW = gw = None
    if needs[2]:
        Xv = X.reshape(B, nT * C, -1).view(np.float64)
        gw = sum(gv[b] @ Xv[b].T for b in range(B)).reshape(O, nT, C).transpose(0, 2, 1)
    if needs[0] or needs[1]:
        fwd, bwd = neighbour_table(ushape[2:-2])
        gWf = np.empty((B, C, V, N, N), dtype=np.complex128)
        gUf = np.empty(Uf.shape, dtype=np.complex128) if needs[0] else np.empty((1, N, N), dtype=np.complex128)
        D = ushape[1]
        # GX, the gradient of every transported term, is as large as X: made and pulled back a few batch
        # entries at a time, so that it stays in cache
        nb = max(1, min(B, _BLOCK_BYTES // (16 * nT * C * V * N * N)))
        GX = np.empty((nb,) + X.shape[1:], dtype=np.complex128)
        for b0 in range(0, B, nb):
            n = min(nb, B - b0)
            GXb = GX[:n]
            np.matmul(w2.T, gv[b0 : b0 + n], out=GXb.reshape(n, nT * C, -1).view(np.float64))
            gUb = _stack(gUf[b0 : b0 + n]) if needs[0] else gUf
            run_chunks("smearing", n, kernel("lconv_backward", N), _stack(Uf[b0 : b0 + n]), _stack(X[b0 : b0 + n]), _stack(GXb),
                       fwd, bwd, n, D, C, V, K, bool(needs[0]), _stack(gWf[b0 : b0 + n]), gUb, size=n * nT * C * V)
        gW = gWf.reshape(wshape_in) if needs[1] else None
        gU = gUf.reshape(ushape) if needs[0] else None
    return gU, gW, gw


_lconv_op = custom_op("lconv", _lconv_fwd, _lconv_bwd)


def lconv(U, W, weight, *, K: int):
    """L-Conv with reach ``K`` (transports over 0..K links); ``weight`` real ``(C_out, C_in, 1 + 2 D K)``."""
    return _lconv_op(U, W, weight, K=int(K))


# ============================================================================ L-Bilin


def _extend(W):
    """``(W, W^+, 1)`` along the channel axis: ``(B, 2 C + 1, *L, N, N)``."""
    N = W.shape[-1]
    unit = np.broadcast_to(_eye(N), W.shape[:1] + (1,) + W.shape[2:])
    return np.concatenate([W, _dag(W), unit], axis=1)


def _lbilin_fwd(W1, W2, weight):
    """``Z_ij = sum_k a_ijk Y_k`` by BLAS on the real view of ``Y``, then ``out_i = sum_j X_j Z_ij`` (kernel)."""
    B, c1 = W1.shape[:2]
    if W2.ndim != W1.ndim or W2.shape[0] != B or W2.shape[2:] != W1.shape[2:] or W1.shape[-1] != W1.shape[-2]:
        raise ValueError(f"L-Bilin inputs must be (B, C, *L, N, N) on one lattice, got {W1.shape} and {W2.shape}")
    if weight.ndim != 3 or weight.shape[1:] != (2 * c1 + 1, 2 * W2.shape[1] + 1):
        raise ValueError(f"L-Bilin weight must have shape (C_out, {2 * c1 + 1}, {2 * W2.shape[1] + 1}), got {weight.shape}")
    W1f = _flat_sites(W1, 2)
    Y = _flat_sites(_extend(W2), 2)
    C2, V, N = Y.shape[1], Y.shape[2], Y.shape[-1]
    O, C1 = weight.shape[:2]
    a2 = np.ascontiguousarray(weight, dtype=np.float64).reshape(O * C1, C2)
    Z = (a2 @ Y.reshape(B, C2, -1).view(np.float64)).view(np.complex128).reshape(B, O, C1, V, N, N)
    out = np.empty((B, O, V, N, N), dtype=np.complex128)
    run_chunks("smearing", B, kernel("lbilin_forward", N), _stack(W1f), _stack(Z), B, c1, O, V, _stack(out), size=B * O * C1 * V)
    return out.reshape((B, O) + W1.shape[2:]), (W1f, Y, Z, a2, W1.shape, W2.shape)


def _lbilin_bwd(g, res, needs):
    """``dL/dX_j = sum_i G_i Z_ij^+`` (kernel), ``M_ij = X_j^+ G_i`` (kernel), ``dL/dY_k = sum_ij a_ijk M_ij``
    and ``dL/da_ijk = Re <M_ij, Y_k>`` (BLAS)."""
    W1f, Y, Z, a2, shape1, shape2 = res
    B, O, C1, V, N = Z.shape[:5]
    C2, c2, c1 = Y.shape[1], shape2[1], shape1[1]
    G = _flat_sites(g, 2)
    g1 = g2 = ga = None
    if needs[0]:
        g1 = np.empty(W1f.shape, dtype=np.complex128)
        run_chunks("smearing", B, kernel("lbilin_grad_left", N), _stack(G), _stack(Z), B, c1, O, V, _stack(g1), size=B * O * C1 * V)
        g1 = g1.reshape(shape1)
    if needs[1] or needs[2]:
        # M = dL/dZ is as large as Z: made and contracted a few batch entries at a time, so that it stays in cache
        nb = max(1, min(B, _BLOCK_BYTES // (16 * O * C1 * V * N * N)))
        M = np.empty((nb, O, C1, V, N, N), dtype=np.complex128)
        Yv = Y.reshape(B, C2, -1).view(np.float64)
        gY = np.empty(Y.shape, dtype=np.complex128) if needs[1] else None
        ga = np.zeros((O * C1, C2)) if needs[2] else None
        for b0 in range(0, B, nb):
            n = min(nb, B - b0)
            Mb = M[:n]
            run_chunks("smearing", n, kernel("lbilin_grad_right", N), _stack(W1f[b0 : b0 + n]), _stack(G[b0 : b0 + n]), n, c1, O, V,
                       _stack(Mb), size=n * O * C1 * V)
            Mv = Mb.reshape(n, O * C1, -1).view(np.float64)
            if needs[1]:
                np.matmul(a2.T, Mv, out=gY[b0 : b0 + n].reshape(n, C2, -1).view(np.float64))
            if needs[2]:
                for b in range(n):
                    ga += Mv[b] @ Yv[b0 + b].T
        if needs[1]:
            g2 = (gY[:, :c2] + _dag(gY[:, c2 : 2 * c2])).reshape(shape2)
        if needs[2]:
            ga = ga.reshape(O, C1, C2)
    return g1, g2, ga


_lbilin_op = custom_op("lbilin", _lbilin_fwd, _lbilin_bwd)


def lbilin(W1, W2, weight):
    """L-Bilin: ``sum_{j,k} a_ijk X_j Y_k``, ``X = (W1, W1^+, 1)``, ``Y = (W2, W2^+, 1)``; ``weight (C_out, 2 C1 + 1, 2 C2 + 1)``."""
    return _lbilin_op(W1, W2, weight)


# ============================================================================ L-Act


def _retr(W):
    return np.trace(W, axis1=-2, axis2=-1).real


def _sigmoid(t):
    return 0.5 * (1.0 + np.tanh(0.5 * t))


def _lact_fwd(W, *, kind):
    t = _retr(W)
    s = (t > 0).astype(np.float64) if kind == "relu" else _sigmoid(t)
    return s[..., None, None] * W, (W, t, s, kind)


def _lact_bwd(g, res, needs):
    W, t, s, kind = res
    out = s[..., None, None] * g
    if kind == "sigmoid":  # d/dW of sigma(Re tr W): sigma' Re tr(G^+ W) times the unit matrix
        c = s * (1.0 - s) * np.sum(np.conj(g) * W, axis=(-2, -1)).real
        out = out + c[..., None, None] * _eye(W.shape[-1])
    return (out,)


_lact_op = custom_op("lact", _lact_fwd, _lact_bwd)


def lact(W, kind: str = "relu"):
    """L-Act: ``W -> g(Re tr W) W`` with ``g`` the step function (``"relu"``) or the logistic sigmoid."""
    if kind not in ("relu", "sigmoid"):
        raise ValueError(f"L-Act kind must be 'relu' or 'sigmoid', got {kind!r}")
    return _lact_op(W, kind=kind)


# ============================================================================ L-Exp


def _expi(X):
    """``exp(X)`` for anti-Hermitian X through the eigenbasis of ``H = -i X``: returns (E, V, lam)."""
    H = -1j * X
    H = 0.5 * (H + _dag(H))
    lam, V = np.linalg.eigh(H)
    E = (V * np.exp(1j * lam)[..., None, :]) @ _dag(V)
    return E, V, lam


def _lexp_fwd(U, W, weight):
    Y = np.einsum("mc,bc...->bm...", weight, W)  # (B, D, *L, N, N)
    E, V, lam = _expi(_ta(Y))
    return E @ U, (U, W, weight, E, V, lam)


def _lexp_bwd(g, res, needs):
    U, W, weight, E, V, lam = res
    gU = _dag(E) @ g if needs[0] else None
    gW = gw = None
    if needs[1] or needs[2]:
        gE = g @ _dag(U)
        d = lam[..., :, None] - lam[..., None, :]
        m = 0.5 * (lam[..., :, None] + lam[..., None, :])
        F = np.exp(1j * m) * np.sinc(d / (2 * np.pi))  # divided differences of exp(i lam)
        gX = V @ (np.conj(F) * (_dag(V) @ gE @ V)) @ _dag(V)  # adjoint Frechet derivative
        gY = _ta(gX)  # TA is an orthogonal projection: self-adjoint
        if needs[1]:
            gW = np.einsum("mc,bm...->bc...", weight, gY)
        if needs[2]:
            B, D, C = U.shape[0], U.shape[1], W.shape[1]
            gw = np.tensordot(_real_view(gY.reshape(B, D, -1)), _real_view(W.reshape(B, C, -1)), axes=([0, 2], [0, 2]))
    return gU, gW, gw


_lexp_op = custom_op("lexp", _lexp_fwd, _lexp_bwd)


def lexp(U, W, weight):
    """L-Exp: ``U_mu(x) -> exp(TA(sum_c v_mu,c W_c(x))) U_mu(x)``; ``weight`` real ``(D, C)``."""
    return _lexp_op(U, W, weight)


# ============================================================================ Trace


def _trace_fwd(W):
    N = W.shape[-1]
    B, C = W.shape[:2]
    out = np.empty((B, 2 * C) + W.shape[2:-2])
    t = W[..., 0, 0].copy()  # the diagonal summed entry by entry: np.trace on (..., N, N) loops per matrix
    for a in range(1, N):
        t += W[..., a, a]
    out[:, :C], out[:, C:] = t.real, t.imag
    return out, (W.shape,)


def _trace_bwd(g, res, needs):
    (shape,) = res
    C, N = shape[1], shape[-1]
    z = g[:, :C] + 1j * g[:, C:]
    return (z[..., None, None] * _eye(N),)


_trace_op = custom_op("lcnn_trace", _trace_fwd, _trace_bwd)


def trace(W):
    """Trace: ``(Re tr W_c, Im tr W_c)`` stacked on the channel axis, real ``(B, 2 C, *L)``."""
    return _trace_op(W)


# ============================================================================ modules


def _normal(rng, std, shape):
    return rng.normal(0.0, std, size=shape)


class LConv(nn.Module):
    """L-Conv layer ``C_in -> C_out`` of reach ``K`` on a ``D``-dimensional lattice."""

    def __init__(self, c_in: int, c_out: int, K: int, *, D: int, rng: np.random.Generator):
        check_rng(rng)
        self.K = int(K)
        nT = n_transport_terms(D, self.K)
        self.weight = Parameter(_normal(rng, 1.0 / np.sqrt(c_in * nT), (c_out, c_in, nT)))

    def forward(self, UW):
        U, W = UW
        return lconv(U, W, self.weight, K=self.K)


class LBilin(nn.Module):
    """L-Bilin layer: ``(C1, C2) -> C_out`` with the unit matrix and the conjugates as extra channels."""

    def __init__(self, c1: int, c2: int, c_out: int, *, rng: np.random.Generator):
        check_rng(rng)
        n1, n2 = 2 * c1 + 1, 2 * c2 + 1
        w = _normal(rng, 1.0 / np.sqrt(n1 * n2), (c_out, n1, n2))
        self.weight = Parameter(w)

    def forward(self, W12):
        W1, W2 = W12
        return lbilin(W1, W2, self.weight)


class LAct(nn.Module):
    def __init__(self, kind: str = "relu"):
        self.kind = kind

    def forward(self, W):
        return lact(W, self.kind)


class LExp(nn.Module):
    """L-Exp: update the links with the exponential of a weighted sum of channels (weights start at ``scale``)."""

    def __init__(self, c_in: int, *, D: int, rng: np.random.Generator, scale: float = 0.1):
        check_rng(rng)
        self.weight = Parameter(_normal(rng, scale, (D, c_in)))

    def forward(self, UW):
        U, W = UW
        return lexp(U, W, self.weight)


#: Paper-like architectures per target loop: ``(channels, reach K)`` of each L-Conv + L-Bilin block.
#: Our choice (the PRL's supplemental tables list its own); a loop of m x n tiles needs about
#: log2(m n) bilinear doublings, and reach K lets one block join tiles K links apart.
ARCHITECTURES = {
    "1x1": {"small": [], "medium": [], "large": []},
    "1x2": {"small": [(2, 1)], "medium": [(4, 1)], "large": [(4, 2)]},
    "2x2": {"small": [(2, 1), (2, 1)], "medium": [(4, 1), (4, 1)], "large": [(4, 2), (4, 2)]},
    "4x4": {"small": [(4, 1), (4, 1), (4, 2), (4, 2)], "medium": [(8, 1), (8, 1), (8, 2), (8, 2)],
            "large": [(12, 1), (12, 2), (12, 2), (12, 2)]},
}


class LCNN(nn.Module):
    """``Plaq (+ Poly) -> [L-Conv -> L-Bilin(W, L-Conv W) (-> L-Act)] x n -> Trace -> linear``, one output per site.

    ``blocks``: ``[(channels, K), ...]``; ``D``: lattice dimension; ``polyakov``: add the Polyakov loops
    as channels; ``act``: None, ``"relu"`` or ``"sigmoid"`` after every block. Input links complex
    ``(B, D, *L, N, N)`` (U(1): :func:`links_from_angles`); output real ``(B, *L)``.
    """

    def __init__(self, *, D: int, blocks, rng: np.random.Generator, polyakov: bool = False, act=None):
        check_rng(rng)
        self.D = int(D)
        self.blocks_spec = [(int(c), int(k)) for c, k in blocks]
        self.polyakov = bool(polyakov)
        self.act = act
        c = D * (D - 1) + (D if polyakov else 0)
        self.convs, self.bilins = [], []
        for c_out, K in self.blocks_spec:
            self.convs.append(LConv(c, c_out, K, D=D, rng=rng))
            self.bilins.append(LBilin(c, c_out, c_out, rng=rng))
            c = c_out
        self.head = nn.Dense(2 * c, 1, rng=rng)

    def leading_blocks(self, n: int, *, rng: np.random.Generator) -> "LCNN":
        """An LCNN of this one's first ``n`` blocks (the same parameters, not copies) and a fresh head:
        a stage of :func:`latticeml.nets.lcnn_train.train_curriculum`."""
        if not 1 <= n <= len(self.blocks_spec):
            raise ValueError(f"n must be 1..{len(self.blocks_spec)}, got {n}")
        stage = LCNN(D=self.D, blocks=self.blocks_spec[:n], rng=rng, polyakov=self.polyakov, act=self.act)
        stage.convs, stage.bilins = self.convs[:n], self.bilins[:n]
        return stage

    def features(self, U):
        """The gauge-covariant channels ``W`` before the trace: ``(B, C, *L, N, N)``."""
        W = plaq(U)
        if self.polyakov:
            W = ops.concatenate([W, poly(U)], axis=1)
        for conv, bilin in zip(self.convs, self.bilins):
            W = bilin((W, conv((U, W))))
            if self.act:
                W = lact(W, self.act)
        return W

    def forward(self, U):
        t = trace(self.features(U))  # (B, 2C, *L)
        axes = (0,) + tuple(range(2, t.ndim)) + (1,)
        y = self.head(ops.transpose(t, axes))  # (B, *L, 1)
        return ops.reshape(y, y.shape[:-1])


def build_lcnn(target: str, arch: str = "medium", *, D: int = 2, rng: np.random.Generator, **kw) -> LCNN:
    """The :data:`ARCHITECTURES` entry for ``target`` (``"1x1"``, ``"1x2"``, ``"2x2"``, ``"4x4"``) and size."""
    if target not in ARCHITECTURES:
        raise ValueError(f"target must be one of {', '.join(ARCHITECTURES)}, got {target!r}")
    if arch not in ARCHITECTURES[target]:
        raise ValueError(f"arch must be small, medium or large, got {arch!r}")
    return LCNN(D=D, blocks=ARCHITECTURES[target][arch], rng=rng, **kw)


def _raw_features(U):
    """Real input channels of the baseline CNN: Re/Im of every link and plaquette entry, ``(B, c, *L)``."""
    B, D = U.shape[:2]
    P = _path_fwd(U, [p for p in _plaq_paths(D) if p[0] < p[1]])  # mu < nu
    M = np.concatenate([U, P], axis=1)  # (B, D + D(D-1)/2, *L, N, N)
    M = np.moveaxis(M, (-2, -1), (2, 3)).reshape((B, -1) + U.shape[2:-2])
    return np.concatenate([M.real, M.imag], axis=1)


class BaselineCNN(nn.Module):
    """The non-equivariant baseline: periodic convolutions on raw link and plaquette entries, ReLU,
    global average pooling (``forward`` returns the lattice average ``(B,)``; :meth:`site_map` the map).
    """

    def __init__(self, *, D: int, N: int, channels=(16, 16), kernel: int = 3, rng: np.random.Generator):
        check_rng(rng)
        c = 2 * N * N * (D + D * (D - 1) // 2)
        self.layers = []
        for c_out in channels:
            self.layers.append(nn.Conv(c, c_out, kernel, ndim=D, rng=rng))
            c = c_out
        self.out = nn.Conv(c, 1, 1, ndim=D, rng=rng)

    def site_map(self, U):
        x = Tensor(_raw_features(as_value(U)))
        for conv in self.layers:
            x = ops.relu(conv(x))
        y = self.out(x)
        return ops.reshape(y, (y.shape[0],) + y.shape[2:])

    def forward(self, U):
        y = self.site_map(U)
        return ops.mean(y, axis=tuple(range(1, y.ndim)))
