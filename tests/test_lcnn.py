"""L-CNN layers (latticeml.nets.lcnn): hand-written backward passes against central finite differences
(float64, complex inputs, real weights), gauge equivariance of every layer and of random whole networks
to 1e-12 (D = 2 and 4; U(1), SU(2), SU(3)), and the layers against plain NumPy references."""

import numpy as np
import pytest

from latticeml.autodiff import Tensor, check_grads
from latticeml.groups import haar_su
from latticeml.nets import lcnn as L

SEED = 1313


def _links(rng, B, shape, N):
    if N == 1:
        return L.links_from_angles(rng.uniform(-np.pi, np.pi, size=(B, len(shape)) + shape))
    return haar_su(rng, N, (B, len(shape)) + shape)


def _matrices(rng, B, C, shape, N):
    size = (B, C) + shape + (N, N)
    return rng.normal(size=size) + 1j * rng.normal(size=size)


CASES = [(1, (3, 4)), (2, (3, 4)), (3, (2, 3)), (1, (2, 2, 2, 3)), (2, (2, 3, 2, 2)), (3, (2, 2, 2, 2))]


@pytest.mark.parametrize("N,shape", CASES)
def test_every_layer_is_gauge_equivariant(rng, N, shape):
    D, B = len(shape), 2
    U, W = _links(rng, B, shape, N), _matrices(rng, B, 2, shape, N)
    Om = L.random_gauge(rng, B, shape, N)
    Ut, Wt = L.gauge_transform(U, W, Om)

    def covariant(out, out_t):  # out(Omega U) = Omega out(U) Omega^+
        np.testing.assert_allclose(out_t, L.gauge_transform(U, out, Om)[1], rtol=0, atol=1e-12)

    covariant(L.plaq(U).value, L.plaq(Ut).value)
    covariant(L.poly(U).value, L.poly(Ut).value)
    w = rng.normal(size=(3, 2, L.n_transport_terms(D, 2)))
    covariant(L.lconv(U, W, w, K=2).value, L.lconv(Ut, Wt, w, K=2).value)
    a = rng.normal(size=(3, 5, 5))
    covariant(L.lbilin(W, W[:, ::-1], a).value, L.lbilin(Wt, Wt[:, ::-1], a).value)
    for kind in ("relu", "sigmoid"):
        covariant(L.lact(W, kind).value, L.lact(Wt, kind).value)
    v = rng.normal(size=(D, 2))
    Unew, Unew_t = L.lexp(U, W, v).value, L.lexp(Ut, Wt, v).value
    np.testing.assert_allclose(Unew_t, L.gauge_transform(Unew, None, Om)[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(L.trace(Wt).value, L.trace(W).value, rtol=0, atol=1e-12)


def _random_network(rng, D, C=3):
    """Plaq + Poly -> L-Conv -> L-Bilin -> L-Act -> L-Exp (new links) -> Plaq -> L-Conv -> L-Bilin -> Trace."""
    c0 = D * (D - 1) + D
    w1 = rng.normal(size=(C, c0, L.n_transport_terms(D, 1))) / np.sqrt(c0 * L.n_transport_terms(D, 1))
    a1 = rng.normal(size=(C, 2 * c0 + 1, 2 * C + 1)) / (2 * c0 + 1)
    v = rng.normal(size=(D, C)) / 3
    w2 = rng.normal(size=(C, C + D * (D - 1), L.n_transport_terms(D, 2))) / np.sqrt(C * L.n_transport_terms(D, 2))
    a2 = rng.normal(size=(2, 2 * (C + D * (D - 1)) + 1, 2 * C + 1)) / (2 * C + 1)
    from latticeml.autodiff import concatenate

    def net(U, w1=w1, a1=a1, v=v, w2=w2, a2=a2):
        W = concatenate([L.plaq(U), L.poly(U)], axis=1)
        W = L.lact(L.lbilin(W, L.lconv(U, W, w1, K=1), a1), "sigmoid")
        U2 = L.lexp(U, W, v)
        W = concatenate([W, L.plaq(U2)], axis=1)
        return L.trace(L.lbilin(W, L.lconv(U2, W, w2, K=2), a2))

    return net, (w1, a1, v, w2, a2)


@pytest.mark.parametrize("N,shape", CASES)
def test_random_whole_network_is_gauge_invariant(rng, N, shape):
    net, _ = _random_network(rng, len(shape))
    U = _links(rng, 2, shape, N)
    Ut, _ = L.gauge_transform(U, None, L.random_gauge(rng, 2, shape, N))
    out, out_t = net(U).value, net(Ut).value
    scale = np.abs(out).max()
    assert scale > 1e-3  # not trivially zero
    np.testing.assert_allclose(out_t, out, rtol=0, atol=1e-12 * max(1.0, scale))  # relative to the output's size
    model = L.LCNN(D=len(shape), blocks=[(2, 1), (2, 2)], polyakov=True, act="sigmoid", rng=rng)
    np.testing.assert_allclose(model(Ut).value, model(U).value, rtol=0, atol=1e-12)


@pytest.mark.parametrize("N,shape", [(2, (2, 3)), (3, (2, 2)), (2, (2, 1, 2, 1))])
def test_layer_backward_matches_finite_differences(rng, N, shape):
    D = len(shape)
    U = haar_su(rng, N, (1, D) + shape)
    W = _matrices(rng, 1, 2, shape, N)
    check_grads(L.plaq, U, rng=rng)
    check_grads(L.poly, U, rng=rng)
    w = rng.normal(size=(2, 2, L.n_transport_terms(D, 2)))
    check_grads(lambda u, x, ww: L.lconv(u, x, ww, K=2), U, W, w, rng=rng)
    a = rng.normal(size=(2, 5, 5))
    check_grads(L.lbilin, W, W[:, ::-1].copy(), a, rng=rng)
    check_grads(lambda x, aa: L.lbilin(x, x, aa), W, a, rng=rng)  # the same tensor on both sides
    for kind in ("relu", "sigmoid"):
        check_grads(lambda x: L.lact(x, kind), W, rng=rng)
    check_grads(L.lexp, U, W, rng.normal(size=(D, 2)) / 2, rng=rng)
    check_grads(L.trace, W, rng=rng)


def test_u1_layers_backward_for_matrices_and_weights(rng):
    """U(1): links are unit phases (their gradient is checked for SU(N), where any matrix is allowed)."""
    shape = (3, 2)
    U = _links(rng, 1, shape, 1)
    W = _matrices(rng, 1, 2, shape, 1)
    w = rng.normal(size=(2, 2, L.n_transport_terms(2, 2)))
    check_grads(lambda x, ww: L.lconv(U, x, ww, K=2), W, w, rng=rng)
    check_grads(L.lbilin, W, W[:, ::-1].copy(), rng.normal(size=(2, 5, 5)), rng=rng)
    check_grads(lambda x, vv: L.lexp(U, x, vv), W, rng.normal(size=(2, 2)), rng=rng)


def test_whole_network_gradient_with_respect_to_weights(rng):
    net, weights = _random_network(rng, 2, C=2)
    U = _links(rng, 1, (2, 3), 2)
    check_grads(lambda *ws: net(U, *ws), *weights, rng=rng)


def test_layers_against_numpy_references(rng):
    """Plaq, L-Conv (one transport term at a time) and L-Bilin against loops written out with np.roll."""
    N, shape = 2, (3, 4)
    U = _links(rng, 1, shape, N)
    W = _matrices(rng, 1, 1, shape, N)
    dag = lambda a: np.conj(np.swapaxes(a, -1, -2))  # noqa: E731
    sh = lambda a, mu, k: np.roll(a, -k, axis=1 + mu)  # a(x + k mu), (B, *L, ...)  # noqa: E731
    U0, U1 = U[:, 0], U[:, 1]
    P01 = U0 @ sh(U1, 0, 1) @ dag(sh(U0, 1, 1)) @ dag(U1)
    np.testing.assert_allclose(L.plaq(U).value[:, 0], P01, atol=1e-13)
    np.testing.assert_allclose(L.plaq(U).value[:, 1], dag(P01), atol=1e-13)
    # term (mu = 1, sign +, k = 2): U_1(x) U_1(x+1) W(x+2) U_1(x+1)^+ U_1(x)^+
    K, D = 2, 2
    t = 1 + (1 * 2 + 0) * K + 1
    w = np.zeros((1, 1, L.n_transport_terms(D, K)))
    w[0, 0, t] = 1.0
    Pth = U1 @ sh(U1, 1, 1)
    np.testing.assert_allclose(L.lconv(U, W, w, K=K).value[:, 0], Pth @ sh(W[:, 0], 1, 2) @ dag(Pth), atol=1e-13)
    # term (mu = 0, sign -, k = 1): U_0(x-0)^+ W(x-0) U_0(x-0)
    w[:] = 0.0
    w[0, 0, 1 + (0 * 2 + 1) * K] = 1.0
    Ub = np.roll(U0, 1, axis=1)
    np.testing.assert_allclose(
        L.lconv(U, W, w, K=K).value[:, 0], dag(Ub) @ np.roll(W[:, 0], 1, axis=1) @ Ub, atol=1e-13
    )
    # L-Bilin: a_{0, j=W^+, k=1} + 2 a_{0, j=W, k=W}: W^+ + 2 W W
    a = np.zeros((1, 3, 3))
    a[0, 1, 2], a[0, 0, 0] = 1.0, 2.0
    np.testing.assert_allclose(L.lbilin(W, W, a).value[:, 0], dag(W[:, 0]) + 2 * W[:, 0] @ W[:, 0], atol=1e-13)


def test_lexp_keeps_links_special_unitary(rng):
    U = _links(rng, 2, (3, 3), 3)
    W = _matrices(rng, 2, 2, (3, 3), 3)
    Un = L.lexp(U, W, rng.normal(size=(2, 2))).value
    eye = np.eye(3)
    np.testing.assert_allclose(Un @ np.conj(np.swapaxes(Un, -1, -2)), np.broadcast_to(eye, Un.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(Un), 1.0, atol=1e-12)


def test_baseline_cnn_is_not_gauge_invariant(rng):
    cnn = L.BaselineCNN(D=2, N=2, channels=(4,), rng=rng)
    U = _links(rng, 2, (4, 4), 2)
    Ut, _ = L.gauge_transform(U, None, L.random_gauge(rng, 2, (4, 4), 2))
    y, yt = cnn(U).value, cnn(Ut).value
    assert y.shape == (2,)
    assert np.abs(y - yt).max() > 1e-3
    model = L.build_lcnn("2x2", "small", rng=rng)
    np.testing.assert_allclose(model(Ut).value, model(U).value, atol=1e-12)


def test_lcnn_gradients_reach_every_parameter(rng):
    model = L.LCNN(D=2, blocks=[(2, 1)], rng=rng)
    U = _links(rng, 2, (3, 3), 2)
    loss = (model(U) ** 2).mean()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and np.all(np.isfinite(p.grad)), name
    assert isinstance(loss, Tensor)


# ---------------------------------------------------------------- the Numba kernels of L-Conv and L-Bilin
#
# The previous NumPy formulation of both layers (transports with np.roll, stacked matmuls), kept here
# as the independent reference of latticeml.nets.lcnn_kernels: forward and every gradient must agree.


def _dag(a):
    return np.conj(np.swapaxes(a, -1, -2))


def _ref_step(T, U, mu, sign):
    """One-link transport of T (B, C, *L, N, N) along +mu (sign > 0: from x + mu) or -mu."""
    Um = U[:, mu][:, None]
    if sign > 0:
        return Um @ np.roll(T, -1, axis=2 + mu) @ _dag(Um)
    Ub = np.roll(Um, 1, axis=2 + mu)
    return _dag(Ub) @ np.roll(T, 1, axis=2 + mu) @ Ub


def _ref_lconv(U, W, w, K, G):
    D = U.shape[1]
    terms = [W]
    for mu in range(D):
        for sign in (1, -1):
            T = W
            for _ in range(K):
                T = _ref_step(T, U, mu, sign)
                terms.append(T)
    X = np.stack(terms, axis=1)  # (B, T, C, ...)
    out = np.einsum("oct,btc...->bo...", w, X)
    GX = np.einsum("oct,bo...->btc...", w, G)
    B, T, C = X.shape[:3]
    gw = np.einsum("boz,btcz->oct", np.conj(G).reshape(B, G.shape[1], -1), X.reshape(B, T, C, -1)).real
    gW, gU, t = GX[:, 0].copy(), np.zeros_like(U), 1
    for mu in range(D):
        for sign in (1, -1):
            H = None
            for k in range(K, 0, -1):
                Hk = GX[:, t + k - 1] if H is None else GX[:, t + k - 1] + _ref_step(H, U, mu, -sign)
                Tk = X[:, t + k - 1]
                M = np.sum(Hk @ _dag(Tk) + _dag(Hk) @ Tk, axis=1)
                if sign > 0:
                    gU[:, mu] += M @ U[:, mu]
                else:
                    gU[:, mu] += U[:, mu] @ np.roll(_dag(M), -1, axis=1 + mu)
                H = Hk
            gW += _ref_step(H, U, mu, -sign)
            t += K
    return out, (gU, gW, gw)


def _ref_lbilin(W1, W2, a, G):
    def extend(W):
        unit = np.broadcast_to(np.eye(W.shape[-1]), W.shape[:1] + (1,) + W.shape[2:])
        return np.concatenate([W, _dag(W), unit], axis=1)

    X, Y = extend(W1), extend(W2)
    c1, c2 = W1.shape[1], W2.shape[1]
    Z = np.einsum("ijk,bk...->bij...", a, Y)
    out = np.sum(X[:, None] @ Z, axis=2)
    gX = np.sum(G[:, :, None] @ _dag(Z), axis=1)
    M = _dag(X)[:, None] @ G[:, :, None]
    gY = np.einsum("ijk,bij...->bk...", a, M)
    B, O, C1 = M.shape[:3]
    ga = np.einsum("bijz,bkz->ijk", np.conj(M).reshape(B, O, C1, -1), Y.reshape(B, Y.shape[1], -1)).real
    return out, (gX[:, :c1] + _dag(gX[:, c1 : 2 * c1]), gY[:, :c2] + _dag(gY[:, c2 : 2 * c2]), ga)


@pytest.mark.parametrize("N,shape", [(1, (3, 4)), (2, (3, 4)), (2, (2, 3, 2, 2)), (3, (2, 3)), (4, (3, 2))])
@pytest.mark.parametrize("K", [1, 2, 3])
def test_lconv_lbilin_kernels_against_numpy_formulation(rng, N, shape, K):
    """Forward and all gradients of L-Conv and L-Bilin against the NumPy formulation (N = 2: the unrolled
    SU(2) kernels; N = 1, 3, 4: the generic ones), to rounding."""
    D, B, C, O = len(shape), 3, 2, 3
    U = _links(rng, B, shape, N)
    W = _matrices(rng, B, C, shape, N)
    w = rng.normal(size=(O, C, L.n_transport_terms(D, K)))
    G = _matrices(rng, B, O, shape, N)
    out, res = L._lconv_fwd(U, W[:, ::-1], w, K=K)  # a strided view in: converted at the boundary
    grads = L._lconv_bwd(G, res, (True, True, True))
    ref_out, ref_grads = _ref_lconv(U, W[:, ::-1], w, K, G)
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=1e-12)
    for got, want in zip(grads, ref_grads):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert L._lconv_bwd(G, res, (False, True, False))[0] is None  # no link gradient asked, none computed
    np.testing.assert_allclose(L._lconv_bwd(G, res, (False, True, False))[1], ref_grads[1], rtol=0, atol=1e-12)
    W2 = _matrices(rng, B, 3, shape, N)
    a = rng.normal(size=(O, 2 * C + 1, 2 * 3 + 1))
    out, res = L._lbilin_fwd(W, W2, a)
    ref_out, ref_grads = _ref_lbilin(W, W2, a, G)
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=1e-12)
    for got, want in zip(L._lbilin_bwd(G, res, (True, True, True)), ref_grads):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_lcnn_kernels_chunks_match_one_call(rng):
    """The kernels run over chunks of the batch (threads): chunked and whole calls give the same bits."""
    from latticeml.lattice import neighbour_table
    from latticeml.nets import lcnn_kernels as LK

    B, C, K, shape = 3, 2, 2, (3, 4)
    for N in (2, 3):
        Uf = L._flat_sites(_links(rng, B, shape, N), 2)
        Wf = L._flat_sites(_matrices(rng, B, C, shape, N), 2)
        fwd, bwd = neighbour_table(shape)
        T, V = L.n_transport_terms(2, K), Wf.shape[2]
        whole, parts = (np.empty((B, T, C, V, N, N), complex) for _ in range(2))
        terms = LK.kernel("lconv_terms", N)
        terms(L._stack(Uf), L._stack(Wf), fwd, bwd, B, 2, C, V, K, L._stack(whole), 0, B)
        for lo, hi in ((0, 1), (1, 3)):
            terms(L._stack(Uf), L._stack(Wf), fwd, bwd, B, 2, C, V, K, L._stack(parts), lo, hi)
        np.testing.assert_array_equal(parts, whole)


@pytest.mark.parametrize("N,K", [(2, 0), (2, 1), (2, 3), (1, 3), (3, 0), (3, 1), (4, 2)])
def test_lconv_lbilin_kernels_backward_finite_differences(rng, N, K):
    """The kernels' backward against central finite differences beyond the cases above (K = 0, 1, 3; N = 4)."""
    shape = (3, 2)
    U = _links(rng, 1, shape, N)
    W = _matrices(rng, 1, 2, shape, N)
    w = rng.normal(size=(2, 2, L.n_transport_terms(2, K)))
    if N == 1:  # U(1) links are unit phases; their gradient is checked for SU(N)
        check_grads(lambda x, ww: L.lconv(U, x, ww, K=K), W, w, rng=rng)
    else:
        check_grads(lambda u, x, ww: L.lconv(u, x, ww, K=K), U, W, w, rng=rng)
    check_grads(L.lbilin, W, _matrices(rng, 1, 3, shape, N), rng.normal(size=(2, 5, 7)), rng=rng)


def test_lconv_lbilin_refuse_mismatched_shapes(rng):
    U = _links(rng, 1, (3, 4), 2)
    W = _matrices(rng, 1, 2, (3, 4), 2)
    with pytest.raises(ValueError, match="L-Conv weight"):
        L.lconv(U, W, np.zeros((2, 2, 4)), K=1)
    with pytest.raises(ValueError, match="match the links"):
        L.lconv(U, _matrices(rng, 1, 2, (4, 3), 2), np.zeros((2, 2, 5)), K=1)
    with pytest.raises(ValueError, match="L-Bilin weight"):
        L.lbilin(W, W, np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match="L-Bilin inputs"):
        L.lbilin(W, _matrices(rng, 1, 2, (4, 3), 2), np.zeros((2, 5, 5)))


@pytest.mark.parametrize("N,shape", [(1, (3, 4)), (2, (3, 4)), (2, (2, 3, 2)), (3, (2, 3)), (3, (2, 2, 2, 3)), (4, (3, 2))])
def test_plaq_kernel_against_path_products(rng, N, shape):
    """Plaq's kernel (N = 2 unrolled, others generic) against the products along the paths (latticeml.smearing.paths)."""
    U = _links(rng, 2, shape, N)
    np.testing.assert_allclose(L.plaq(U).value, L._path_fwd(U, L._plaq_paths(len(shape))), rtol=0, atol=1e-13)
