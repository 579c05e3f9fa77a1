"""The periodic lattice convolution: forward against a plain np.roll reference, backward against
finite differences, both kernel paths (gather input / gather output), 1D/2D/3D, equivariance."""

import numpy as np
import pytest

from latticeml import autodiff as ad
from latticeml.autodiff import Tensor, check_grads, periodic_conv


def roll_reference(x, w, b):
    """out[b, o, x] = b[o] + sum_{i, d} w[o, i, d] x[b, i, x + d - r], by explicit np.roll shifts."""
    D = w.ndim - 2
    r = [k // 2 for k in w.shape[2:]]
    out = np.zeros((x.shape[0], w.shape[0]) + x.shape[2:])
    for d in np.ndindex(*w.shape[2:]):
        # x[.., s + d - r] is x rolled by -(d - r) along each lattice axis
        shifted = np.roll(x, [-(d[mu] - r[mu]) for mu in range(D)], axis=tuple(range(2, 2 + D)))
        out += np.einsum("oi,bi...->bo...", w[(slice(None), slice(None)) + d], shifted)
    if b is not None:
        out += b.reshape((1, -1) + (1,) * D)
    return out


# (batch, c_in, c_out, lattice, kernel): C_in <= C_out and C_in > C_out take different paths
SHAPES = [
    (2, 1, 3, (7,), (3,)),
    (3, 4, 2, (6,), (5,)),
    (2, 2, 3, (5, 4), (3, 3)),
    (2, 3, 2, (4, 6), (3, 1)),
    (1, 2, 2, (3, 4, 5), (3, 3, 1)),
    (2, 3, 1, (3, 2, 4), (1, 3, 3)),
    (1, 2, 3, (2, 3), (5, 3)),  # kernel wider than the lattice: wraps around several times
]


@pytest.mark.parametrize("B,ci,co,lattice,kernel", SHAPES)
def test_forward_matches_roll_reference(B, ci, co, lattice, kernel):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, ci) + lattice)
    w = rng.standard_normal((co, ci) + kernel)
    b = rng.standard_normal(co)
    out = periodic_conv(x, w, b)
    np.testing.assert_allclose(out.value, roll_reference(x, w, b), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(periodic_conv(x, w).value, roll_reference(x, w, None), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("B,ci,co,lattice,kernel", SHAPES)
def test_backward_matches_finite_differences(B, ci, co, lattice, kernel):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((B, ci) + lattice)
    w = rng.standard_normal((co, ci) + kernel)
    b = rng.standard_normal(co)
    errors = check_grads(periodic_conv, x, w, b, rng=rng)
    assert set(errors) == {0, 1, 2}


@pytest.mark.parametrize("ci,co", [(2, 3), (3, 2)])
def test_site_chunking_gives_the_same_result(monkeypatch, ci, co):
    """Large lattices split the sites into chunks (to keep BLAS single-threaded); force it here."""
    from latticeml.autodiff import conv

    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, ci, 5, 3))
    w = rng.standard_normal((co, ci, 3, 3))
    b = rng.standard_normal(co)
    monkeypatch.setattr(conv, "_MNK_SINGLE_THREAD", 4 * ci * co * 9)  # chunks of 4 sites, remainder 3
    assert conv._site_chunk(co, ci, 9, 15) == 4
    np.testing.assert_allclose(periodic_conv(x, w, b).value, roll_reference(x, w, b), rtol=1e-12, atol=1e-12)
    check_grads(periodic_conv, x, w, b, rng=rng)


def test_backward_matches_autodiff_through_the_roll_reference():
    """An independent gradient: the same convolution built from roll/matmul primitives."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 2, 4, 5))
    w = rng.standard_normal((4, 2, 3, 3))
    b = rng.standard_normal(4)

    def composite(x, w, b):
        out = 0.0
        for d0 in range(3):
            for d1 in range(3):
                shifted = ad.roll(x, (1 - d0, 1 - d1), axis=(2, 3))  # x[s + d - r]
                wd = w[:, :, d0, d1]  # (O, I)
                out = out + ad.transpose(ad.transpose(shifted, (0, 2, 3, 1)) @ wd.T, (0, 3, 1, 2))
        return out + ad.reshape(b, (1, 4, 1, 1))

    seed = rng.standard_normal((3, 4, 4, 5))
    loss = lambda f: lambda x, w, b: (f(x, w, b) * seed).sum()  # noqa: E731
    v1, g1 = ad.value_and_grad(loss(periodic_conv), (0, 1, 2))(x, w, b)
    v2, g2 = ad.value_and_grad(loss(composite), (0, 1, 2))(x, w, b)
    assert v1 == pytest.approx(v2, rel=1e-12)
    for a, c in zip(g1, g2):
        np.testing.assert_allclose(a, c, rtol=1e-11, atol=1e-12)


def test_translation_equivariance():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 6, 5))
    w = rng.standard_normal((2, 3, 3, 3))
    shift = (2, -1)
    lhs = periodic_conv(np.roll(x, shift, axis=(2, 3)), w).value
    rhs = np.roll(periodic_conv(x, w).value, shift, axis=(2, 3))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-13, atol=1e-13)


def test_only_requested_gradients_are_computed():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 1, 4, 4))
    w = Tensor(rng.standard_normal((2, 1, 3, 3)), requires_grad=True)
    out = periodic_conv(x, w)
    assert out.parents == (w,)
    out.sum().backward()
    # d/dw of sum(out) = sum over batch and sites of x (every offset sees every site once)
    np.testing.assert_allclose(w.grad, np.broadcast_to(x.sum(), w.shape), rtol=1e-12)


def test_bad_shapes_raise_clear_errors():
    x = np.zeros((2, 3, 4, 4))
    with pytest.raises(ValueError, match="odd"):
        periodic_conv(x, np.zeros((1, 3, 2, 3)))
    with pytest.raises(ValueError, match="channels"):
        periodic_conv(x, np.zeros((1, 2, 3, 3)))
    with pytest.raises(ValueError, match="batch axis"):
        periodic_conv(x[0], np.zeros((1, 3, 3, 3)))
    with pytest.raises(ValueError, match="bias"):
        periodic_conv(x, np.zeros((1, 3, 3, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="1D/2D/3D"):
        periodic_conv(np.zeros((1, 1, 2, 2, 2, 2)), np.zeros((1, 1, 1, 1, 1, 1)))


def test_neighbour_table():
    nbr = ad.neighbour_table((3, 4), (3, 3))
    assert nbr.shape == (9, 12)
    # offset d = (0, 2) -> shift (-1, +1): site (0, 3) -> (2, 0)
    assert nbr[2, 3] == 2 * 4 + 0
    # every row is a permutation of the sites
    assert all(sorted(row) == list(range(12)) for row in nbr)


def test_against_torch_circular_conv_if_installed():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 2, 6, 5))
    w = rng.standard_normal((4, 2, 3, 3))
    b = rng.standard_normal(4)
    seed = rng.standard_normal((3, 4, 6, 5))
    v, (gx, gw, gb) = ad.value_and_grad(lambda x, w, b: (periodic_conv(x, w, b) * seed).sum(), (0, 1, 2))(x, w, b)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    xp = torch.nn.functional.pad(tx, (1, 1, 1, 1), mode="circular")
    tv = (torch.nn.functional.conv2d(xp, tw, tb) * torch.tensor(seed)).sum()
    tv.backward()
    assert v == pytest.approx(tv.item(), rel=1e-12)
    for g, t in ((gx, tx), (gw, tw), (gb, tb)):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-11, atol=1e-12)


def roll_reference_grads(x, w, seed):
    """Gradients of sum(conv(x, w, b) * seed) w.r.t. (x, w, b), written with np.roll only:
    gw[o, i, d] = sum_{b, s} seed[b, o, s] x[b, i, s + d - r]; gx is the adjoint shift of seed."""
    D = w.ndim - 2
    r = [k // 2 for k in w.shape[2:]]
    axes = tuple(range(2, 2 + D))
    gx, gw = np.zeros_like(x), np.zeros_like(w)
    for d in np.ndindex(*w.shape[2:]):
        shift = [-(d[mu] - r[mu]) for mu in range(D)]
        idx = (slice(None), slice(None)) + d
        shifted = np.roll(x, shift, axis=axes)
        gw[idx] = np.einsum("bos,bis->oi", seed.reshape(seed.shape[:2] + (-1,)), shifted.reshape(x.shape[:2] + (-1,)))
        gx += np.einsum("oi,bo...->bi...", w[idx], np.roll(seed, [-s for s in shift], axis=axes))
    return gx, gw, seed.sum(axis=(0,) + axes)


# the flows' channel counts (1/2 -> 8 -> 8 -> 2/3) on 8x8 and odd ones
GRAD_SHAPES = [
    (5, 2, 8, (8, 8), (3, 3)),
    (3, 8, 8, (8, 8), (3, 3)),
    (4, 8, 3, (8, 8), (3, 3)),
    (3, 1, 8, (4, 8), (3, 3)),
    (3, 3, 5, (5, 7), (3, 1)),
    (2, 5, 3, (7,), (5,)),
    (3, 2, 3, (3, 2, 5), (3, 1, 3)),
]


@pytest.mark.parametrize("chunk_scale", [None, 1, 5])
@pytest.mark.parametrize("B,ci,co,lattice,kernel", GRAD_SHAPES)
def test_forward_and_gradients_match_roll_reference(monkeypatch, B, ci, co, lattice, kernel, chunk_scale):
    """Forward, input gradient and weight gradient against the np.roll reference, on both kernel paths
    (C_in <= C_out: gather the input; C_in > C_out: multiply first, gather the output; the input
    gradient swaps them); ``chunk_scale`` forces products of that many sites (chunks with a remainder)."""
    from latticeml.autodiff import conv

    if chunk_scale is not None:
        monkeypatch.setattr(conv, "_MNK_SINGLE_THREAD", chunk_scale * ci * co * int(np.prod(kernel)))
    rng = np.random.default_rng(11)
    x = rng.standard_normal((B, ci) + lattice)
    w = rng.standard_normal((co, ci) + kernel)
    b = rng.standard_normal(co)
    seed = rng.standard_normal((B, co) + lattice)
    v, (gx, gw, gb) = ad.value_and_grad(lambda x, w, b: (periodic_conv(x, w, b) * seed).sum(), (0, 1, 2))(x, w, b)
    assert v == pytest.approx((roll_reference(x, w, b) * seed).sum(), rel=1e-12)
    rx, rw, rb = roll_reference_grads(x, w, seed)
    np.testing.assert_allclose(gx, rx, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(gw, rw, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(gb, rb, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("vc", [1, 7, 63, 64, 65, 200, 320])
def test_weight_grad_kernel_any_column_chunk(vc):
    """The weight-gradient kernel called directly with site chunks below, at and above V = 64."""
    from latticeml.autodiff import conv

    rng = np.random.default_rng(12)
    for ci, co in ((1, 8), (2, 8), (8, 8), (8, 3)):
        x = rng.standard_normal((5, ci, 8, 8))
        w = rng.standard_normal((co, ci, 3, 3))
        seed = rng.standard_normal((5, co, 8, 8))
        gw = np.empty((co, ci, 9))
        conv._correlate_weight_grad(x.reshape(5, ci, 64), seed.reshape(5, co, 64), conv.neighbour_table((8, 8), (3, 3)), gw, vc)
        np.testing.assert_allclose(gw.reshape(w.shape), roll_reference_grads(x, w, seed)[1], rtol=1e-11, atol=1e-11)


# ----------------------------------------------------------------------------- batch-last kernels

def _batch_last(a):
    """(B, C, *L) -> (C, V, B) C-contiguous."""
    return np.ascontiguousarray(a.reshape(a.shape[0], a.shape[1], -1).transpose(1, 2, 0))


@pytest.mark.parametrize("B,ci,co,lattice,kernel", GRAD_SHAPES + [(1, 2, 9, (4, 4), (3, 3)), (6, 9, 5, (4,), (3,))])
def test_batch_last_kernels_match_roll_reference(B, ci, co, lattice, kernel):
    """correlate_rows, its adjoint and weight_grad_rows on the full table against the np.roll reference
    (batch sizes and channel counts that are not multiples of the four terms summed per pass)."""
    from latticeml.autodiff import conv

    rng = np.random.default_rng(13)
    x = rng.standard_normal((B, ci) + lattice)
    w = rng.standard_normal((co, ci) + kernel)
    b = rng.standard_normal(co)
    seed = rng.standard_normal((B, co) + lattice)
    nbr = conv.neighbour_table(lattice, kernel)
    V, K = nbr.shape[1], nbr.shape[0]
    w3 = np.ascontiguousarray(w.reshape(co, ci, K))
    out = np.empty((co, V, B))
    conv.correlate_rows(_batch_last(x), w3, nbr, b, out)
    np.testing.assert_allclose(out, _batch_last(roll_reference(x, w, b)), rtol=1e-12, atol=1e-12)
    rx, rw, _ = roll_reference_grads(x, w, seed)
    gx = np.full((ci, V, B), np.nan)  # overwritten everywhere
    conv.correlate_rows_adjoint(_batch_last(seed), w3, nbr, gx)
    np.testing.assert_allclose(gx, _batch_last(rx), rtol=1e-11, atol=1e-11)
    gw = np.full((co, ci, K), np.nan)
    conv.weight_grad_rows(_batch_last(x), _batch_last(seed), nbr, gw)
    np.testing.assert_allclose(gw.reshape(w.shape), rw, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("lattice,kernel,n_layers", [((8, 8), (3, 3), 3), ((6, 5), (3, 1), 2), ((9,), (5,), 2), ((4, 4, 4), (3, 3, 3), 1)])
def test_receptive_tables_evaluate_a_stack_only_where_it_is_read(lattice, kernel, n_layers):
    """A stack of convolutions through receptive_tables equals the full stack at the wanted sites; the
    gradients of <out, seed> through the pruned stack equal those of the full stack with seed zero elsewhere."""
    from latticeml import autodiff as ad
    from latticeml.autodiff import conv

    rng = np.random.default_rng(14)
    V = int(np.prod(lattice))
    wanted = np.sort(rng.choice(V, size=max(1, V // 5), replace=False))
    tables, sites = conv.receptive_tables(lattice, kernel, wanted, n_layers)
    assert len(tables) == n_layers and len(sites) == n_layers + 1
    np.testing.assert_array_equal(sites[-1], wanted)
    full = conv.neighbour_table(lattice, kernel)
    for j in range(n_layers):  # every table entry points at the right lattice site
        np.testing.assert_array_equal(sites[j][tables[j]], full[:, sites[j + 1]])
    channels = [2] + [3] * n_layers
    B = 3
    ws = [rng.standard_normal((channels[j + 1], channels[j]) + kernel) for j in range(n_layers)]
    bs = [rng.standard_normal(channels[j + 1]) for j in range(n_layers)]
    x = rng.standard_normal((B, channels[0]) + lattice)
    seed = np.zeros((B, channels[-1], V))
    seed[:, :, wanted] = rng.standard_normal((B, channels[-1], wanted.size))

    def full_stack(x, *params):
        h = x
        for j in range(n_layers):
            h = periodic_conv(h, params[2 * j], params[2 * j + 1])
        return (h * seed.reshape(h.shape)).sum()

    params = [p for pair in zip(ws, bs) for p in pair]
    value, grads = ad.value_and_grad(full_stack, tuple(range(1 + 2 * n_layers)))(x, *params)

    acts = [_batch_last(x)[:, sites[0]]]
    for j in range(n_layers):
        out = np.empty((channels[j + 1], tables[j].shape[1], B))
        conv.correlate_rows(np.ascontiguousarray(acts[-1]), np.ascontiguousarray(ws[j].reshape(channels[j + 1], channels[j], -1)), tables[j], bs[j], out)
        acts.append(out)
    g = np.ascontiguousarray(seed[:, :, wanted].transpose(1, 2, 0))
    assert (acts[-1] * g).sum() == pytest.approx(value, rel=1e-12)
    for j in range(n_layers - 1, -1, -1):
        gw = np.empty((channels[j + 1], channels[j], full.shape[0]))
        conv.weight_grad_rows(acts[j], g, tables[j], gw)
        np.testing.assert_allclose(gw.reshape(ws[j].shape), grads[1 + 2 * j], rtol=1e-10, atol=1e-10)
        gin = np.empty(acts[j].shape)
        conv.correlate_rows_adjoint(g, np.ascontiguousarray(ws[j].reshape(channels[j + 1], channels[j], -1)), tables[j], gin)
        g = gin
    gx = np.zeros((channels[0], V, B))
    gx[:, sites[0]] = g
    np.testing.assert_allclose(gx, _batch_last(grads[0]), rtol=1e-10, atol=1e-10)
