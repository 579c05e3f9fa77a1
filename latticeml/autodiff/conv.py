"""Periodic convolution over 1D/2D/3D lattices with channels: Numba kernels and their backward.

Shapes (D = 1, 2 or 3 lattice dimensions, all float64):

    x       (B, C_in,  L0, ..., L{D-1})      a batch of fields with C_in channels
    weight  (C_out, C_in, k0, ..., k{D-1})   odd kernel sizes k_mu = 2 r_mu + 1
    bias    (C_out,) or None
    out     (B, C_out, L0, ..., L{D-1})

    out[b, o, x] = bias[o] + sum_{i, d} weight[o, i, d] * x[b, i, (x + d - r) mod L]

i.e. a cross-correlation (the deep-learning "convolution") with periodic ("circular") padding,
so the layer commutes with every lattice translation: translation equivariance on the torus
(LeCun et al., Proc. IEEE 86 (1998) 2278; on the lattice: Albergo, Kanwar & Shanahan,
PRD 100 (2019) 034515, whose coupling layers use exactly these nets).

How it is computed. The D lattice axes are flattened to V sites and the kernel offsets to
K = prod(k) entries; ``nbr[d, s]`` is the flat index of site s shifted by offset d. For each
batch entry the kernel either gathers the C_in*K shifted copies of the input ("im2col") and
does one (C_out x C_in K) @ (C_in K x V) matrix product, or, when C_out < C_in, first multiplies
(K C_out x C_in) @ (C_in x V) and then gathers the C_out*K shifted partial sums: it gathers the
smaller side, and BLAS does the multiply-adds (im2col: Chellapilla, Puri & Simard, "High
performance convolutional neural networks for document processing", IWFHR 2006). Measured against
plain Numba loops in ``benchmarks/bench_autodiff.py``: 3-5x faster at 8 channels. Per-entry
products are small (fits in cache, no (C_in K x B V) buffer) and run on one thread; large
lattices are split into chunks of sites so that BLAS never goes multi-threaded inside the loop.

Backward. With g = dL/d(out)::

  dL/dx      = the same periodic correlation of g with the flipped, transposed kernel
               w'[i, o, d] = w[o, i, K-1-d]  (reversing the flat offset reverses every axis),
  dL/dweight[o, i, d] = sum_{b, s} g[b, o, s] x[b, i, nbr[d, s]],
  dL/dbias[o]         = sum_{b, s} g[b, o, s].

Batch-last kernels (for many small configurations: the flows' coupling nets). In the layout
``(C, n, B)`` every (channel, site) pair is a contiguous row of the B batch entries, so one term
``w[o, i, d] x[i, nbr[d, s], :]`` is a row times a number: the batch runs in the SIMD lanes and
the neighbour table is read once per B multiply-adds, with no gathers of single numbers (the
sites-in-lanes idea of lattice QCD codes, P. Boyle et al., arXiv:1512.03487, with the batch in
the lanes instead of the sites). Four terms are summed per pass over two accumulator rows (two
output channels in the forward, two input channels in the adjoint), so each row is loaded and
stored once per four products and each input row read once for eight. The tables may list a subset of the sites:
``nbr`` (K, n) gives, for each of n output sites, the positions of its K neighbours among the
input's sites, so a layer can be evaluated only where the next layer reads it
(:func:`receptive_tables`). With g = dL/d(out) ``(O, n, B)``:

* :func:`correlate_rows`: ``out[o, s, :] = bias[o] + sum_{i, d} w[o, i, d] x[i, nbr[d, s], :]``;
* :func:`correlate_rows_adjoint`: ``gx[i, t, :] = sum of w[o, i, d] g[o, s, :] over (o, d, s) with nbr[d, s] = t``;
* :func:`weight_grad_rows`: ``gw[o, i, d] = sum_{s, b} g[o, s, b] x[i, nbr[d, s], b]``.

Measured on one core (8x8, batch 64, 3x3 kernel, 8 -> 8 channels): 0.19 ms for the forward and
0.18-0.30 ms for the weight gradient against 0.47-0.49 ms for the im2col kernels above
(``benchmarks/RESULTS.md``, issue 14).
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit

from .tensor import custom_op

__all__ = ["periodic_conv", "neighbour_table", "receptive_tables", "correlate_rows", "correlate_rows_adjoint",
           "weight_grad_rows"]


@functools.lru_cache(maxsize=64)
def _neighbour_table_cached(lattice: tuple, kernel: tuple) -> np.ndarray:
    coords = np.indices(lattice).reshape(len(lattice), -1)  # (D, V)
    table = np.empty((int(np.prod(kernel)), coords.shape[1]), dtype=np.int64)
    for d, offset in enumerate(np.ndindex(*kernel)):
        shifted = [(coords[mu] + offset[mu] - kernel[mu] // 2) % lattice[mu] for mu in range(len(lattice))]
        table[d] = np.ravel_multi_index(shifted, lattice)
    return table


def neighbour_table(lattice_shape, kernel_shape) -> np.ndarray:
    """``nbr[d, s]``: flat site index of s shifted by kernel offset d - r (periodic), shape (K, V).

    Offsets are enumerated in C order over ``kernel_shape``; the result is cached and shared:
    do not modify it.
    """
    return _neighbour_table_cached(tuple(int(n) for n in lattice_shape), tuple(int(k) for k in kernel_shape))


# OpenBLAS runs a matrix product on several threads once M*N*K exceeds about 2.6e5
# (interface/gemm.c). For the small per-batch products here that costs more in synchronisation
# than it gains, and on a loaded machine a descheduled helper thread stalls the call for a whole
# scheduler slice (measured: 100x slower). So every product is kept below that size by
# splitting the sites into chunks of ``vc`` (one chunk, vc = V, on small lattices).
_MNK_SINGLE_THREAD = 2**17


def _site_chunk(n_out: int, n_in: int, n_offsets: int, n_sites: int) -> int:
    return int(max(1, min(n_sites, _MNK_SINGLE_THREAD // (n_out * n_in * n_offsets))))


@njit(cache=True)
def _correlate(x, w, nbr, bias, out, vc):
    """out[b, o, s] = bias[o] + sum_{i, d} w[o, i, d] x[b, i, nbr[d, s]].

    x (B, I, V), w (O, I, K), nbr (K, V) int64, bias (O,), out (B, O, V); float64, C order;
    sites are processed in chunks of ``vc`` (see _MNK_SINGLE_THREAD).
    """
    B, I, V = x.shape
    O = w.shape[0]
    K = nbr.shape[0]
    rem = V % vc
    if I <= O:
        # gather the I*K shifted input rows, then (O x IK) @ (IK x V)
        w2 = w.reshape(O, I * K)
        cols_full, cols_rem = np.empty((I * K, vc)), np.empty((I * K, rem))
        tmp_full, tmp_rem = np.empty((O, vc)), np.empty((O, rem))
        for b in range(B):
            for s0 in range(0, V, vc):
                n = min(vc, V - s0)
                cols = cols_full if n == vc else cols_rem
                for i in range(I):
                    for d in range(K):
                        row = i * K + d
                        for j in range(n):
                            cols[row, j] = x[b, i, nbr[d, s0 + j]]
                if n == V:  # one chunk: write straight into the output
                    ob = out[b]
                    np.dot(w2, cols, ob)
                    for o in range(O):
                        for j in range(V):
                            ob[o, j] += bias[o]
                else:
                    tmp = tmp_full if n == vc else tmp_rem
                    np.dot(w2, cols, tmp)
                    for o in range(O):
                        for j in range(n):
                            out[b, o, s0 + j] = tmp[o, j] + bias[o]
    else:
        # multiply first: y[d*O + o, t] = sum_i w[o, i, d] x[b, i, t]; then gather O*K rows
        wk = np.empty((K * O, I))
        for o in range(O):
            for i in range(I):
                for d in range(K):
                    wk[d * O + o, i] = w[o, i, d]
        y = np.empty((K * O, V))
        x_full, x_rem = np.empty((I, vc)), np.empty((I, rem))
        y_full, y_rem = np.empty((K * O, vc)), np.empty((K * O, rem))
        for b in range(B):
            if vc == V:
                np.dot(wk, x[b], y)
            else:
                for t0 in range(0, V, vc):
                    n = min(vc, V - t0)
                    xc = x_full if n == vc else x_rem
                    yc = y_full if n == vc else y_rem
                    xc[:, :] = x[b, :, t0 : t0 + n]
                    np.dot(wk, xc, yc)
                    y[:, t0 : t0 + n] = yc
            for o in range(O):
                for s in range(V):
                    acc = bias[o]
                    for d in range(K):
                        acc += y[d * O + o, nbr[d, s]]
                    out[b, o, s] = acc


@njit(cache=True)
def _correlate_weight_grad(x, g, nbr, gw, vc):
    """gw[o, i, d] = sum_{b, s} g[b, o, s] x[b, i, nbr[d, s]]; gw (O, I, K) is overwritten."""
    B, I, V = x.shape
    O = g.shape[1]
    K = nbr.shape[0]
    rem = V % vc
    gw[:] = 0.0
    if I <= O:
        # gather x: gw (O x IK) += g_b (O x V) @ cols^T (V x IK)
        gw2 = gw.reshape(O, I * K)
        cols_full, cols_rem = np.empty((I * K, vc)), np.empty((I * K, rem))
        g_full, g_rem = np.empty((O, vc)), np.empty((O, rem))
        tmp = np.empty((O, I * K))
        for b in range(B):
            for s0 in range(0, V, vc):
                n = min(vc, V - s0)
                cols = cols_full if n == vc else cols_rem
                for i in range(I):
                    for d in range(K):
                        row = i * K + d
                        for j in range(n):
                            cols[row, j] = x[b, i, nbr[d, s0 + j]]
                if n == V:
                    np.dot(g[b], cols.T, tmp)
                else:
                    gc = g_full if n == vc else g_rem
                    gc[:, :] = g[b, :, s0 : s0 + n]
                    np.dot(gc, cols.T, tmp)
                gw2 += tmp
    else:
        # gather g with the reversed offset: sum_s g[s] x[nbr[d, s]] = sum_t x[t] g[nbr[K-1-d, t]]
        gcols_full, gcols_rem = np.empty((O * K, vc)), np.empty((O * K, rem))
        x_full, x_rem = np.empty((I, vc)), np.empty((I, rem))
        tmp = np.empty((O * K, I))
        for b in range(B):
            for t0 in range(0, V, vc):
                n = min(vc, V - t0)
                gcols = gcols_full if n == vc else gcols_rem
                for o in range(O):
                    for d in range(K):
                        row = o * K + d
                        for j in range(n):
                            gcols[row, j] = g[b, o, nbr[K - 1 - d, t0 + j]]
                if n == V:
                    np.dot(gcols, x[b].T, tmp)
                else:
                    xc = x_full if n == vc else x_rem
                    xc[:, :] = x[b, :, t0 : t0 + n]
                    np.dot(gcols, xc.T, tmp)
                for o in range(O):
                    for i in range(I):
                        for d in range(K):
                            gw[o, i, d] += tmp[o * K + d, i]


# ----------------------------------------------------------------------------- batch-last kernels
# Offsets into the flat arrays are uint64: with a signed index and a runtime offset Numba keeps its
# negative-index wraparound select, and that blocks LLVM's loop vectorizer (measured: 4x slower).


@njit(inline="always", fastmath={"contract"}, cache=True)
def _rows4_into(dst, t0, t1, pair, src, r0, r1, r2, r3, u0, u1, u2, u3, v0, v1, v2, v3, nb):
    """dst[t0 + b] += sum_k u_k src[r_k + b] and, if ``pair``, dst[t1 + b] += sum_k v_k src[r_k + b]
    for b < nb: four source rows into one or two accumulator rows (the inner pass of the batch-last
    kernels; every offset uint64)."""
    if pair:
        for b in range(nb):
            x0, x1, x2, x3 = src[r0 + b], src[r1 + b], src[r2 + b], src[r3 + b]
            dst[t0 + b] += u0 * x0 + u1 * x1 + u2 * x2 + u3 * x3
            dst[t1 + b] += v0 * x0 + v1 * x1 + v2 * x2 + v3 * x3
    else:
        for b in range(nb):
            dst[t0 + b] += u0 * src[r0 + b] + u1 * src[r1 + b] + u2 * src[r2 + b] + u3 * src[r3 + b]


@njit(inline="always", fastmath={"contract"}, cache=True)
def _rows1_into(dst, t0, t1, pair, src, r0, u0, v0, nb):
    """:func:`_rows4_into` for one source row (the remainder of a count not divisible by four)."""
    if pair:
        for b in range(nb):
            x0 = src[r0 + b]
            dst[t0 + b] += u0 * x0
            dst[t1 + b] += v0 * x0
    else:
        for b in range(nb):
            dst[t0 + b] += u0 * src[r0 + b]


@njit(cache=True, fastmath={"contract"})
def correlate_rows(x, w, nbr, bias, out):
    """out[o, s, :] = bias[o] + sum_{i, d} w[o, i, d] x[i, nbr[d, s], :].

    x (I, V_in, B), w (O, I, K), nbr (K, n) int64 positions in x's site axis, bias (O,),
    out (O, n, B); float64, C order. See the module docstring (batch-last kernels): output
    channels in pairs, four input rows per pass over the two accumulator rows.
    """
    I, V_in, B = x.shape
    O = w.shape[0]
    K, n = nbr.shape
    IK = I * K
    xf = x.reshape(I * V_in * B)
    of = out.reshape(O * n * B)
    wf = w.reshape(O, IK)
    start = np.empty(IK, np.uint64)  # where the row of term q = i K + d begins in xf
    nb = np.uint64(B)
    for s in range(n):
        for i in range(I):
            for d in range(K):
                start[i * K + d] = np.uint64((i * V_in + nbr[d, s]) * B)
        for o in range(0, O, 2):
            pair = o + 1 < O  # the last channel of an odd count goes alone
            o1 = o + 1 if pair else o
            a0, a1 = np.uint64((o * n + s) * B), np.uint64((o1 * n + s) * B)
            of[a0 : a0 + nb] = bias[o]
            of[a1 : a1 + nb] = bias[o1]
            q = 0
            while q + 4 <= IK:
                _rows4_into(of, a0, a1, pair, xf, start[q], start[q + 1], start[q + 2], start[q + 3],
                            wf[o, q], wf[o, q + 1], wf[o, q + 2], wf[o, q + 3],
                            wf[o1, q], wf[o1, q + 1], wf[o1, q + 2], wf[o1, q + 3], nb)
                q += 4
            for q in range(q, IK):
                _rows1_into(of, a0, a1, pair, xf, start[q], wf[o, q], wf[o1, q], nb)


@njit(cache=True, fastmath={"contract"})
def correlate_rows_adjoint(g, w, nbr, gx):
    """The transpose of :func:`correlate_rows` in x: gx[i, t, :] = sum over (o, d, s) with
    nbr[d, s] = t of w[o, i, d] g[o, s, :].

    g (O, n, B), w (O, I, K), nbr (K, n), gx (I, V_in, B) overwritten (sites no table entry
    names get 0). Scatter form, so a table of a subset of sites needs no inverse table; input
    channels in pairs, four output rows per pass.
    """
    O, n, B = g.shape
    I = w.shape[1]
    K = nbr.shape[0]
    V_in = gx.shape[1]
    gx[:] = 0.0
    gf = g.reshape(O * n * B)
    gxf = gx.reshape(I * V_in * B)
    start = np.empty(O, np.uint64)  # where g[o, s, :] begins in gf
    nb = np.uint64(B)
    for s in range(n):
        for o in range(O):
            start[o] = np.uint64((o * n + s) * B)
        for d in range(K):
            for i in range(0, I, 2):
                pair = i + 1 < I
                i1 = i + 1 if pair else i
                t0, t1 = np.uint64((i * V_in + nbr[d, s]) * B), np.uint64((i1 * V_in + nbr[d, s]) * B)
                p = 0
                while p + 4 <= O:
                    _rows4_into(gxf, t0, t1, pair, gf, start[p], start[p + 1], start[p + 2], start[p + 3],
                                w[p, i, d], w[p + 1, i, d], w[p + 2, i, d], w[p + 3, i, d],
                                w[p, i1, d], w[p + 1, i1, d], w[p + 2, i1, d], w[p + 3, i1, d], nb)
                    p += 4
                for p in range(p, O):
                    _rows1_into(gxf, t0, t1, pair, gf, start[p], w[p, i, d], w[p, i1, d], nb)


@njit(cache=True, fastmath={"reassoc", "contract"})
def weight_grad_rows(x, g, nbr, gw):
    """gw[o, i, d] = sum_{s, b} g[o, s, b] x[i, nbr[d, s], b]; x (I, V_in, B), g (O, n, B), gw (O, I, K)
    overwritten. Four output channels share each pass over an input row; the sums over the batch
    are vectorised (``reassoc`` lets LLVM split them into lane-wise partial sums)."""
    I = x.shape[0]
    O, n, B = g.shape
    K = nbr.shape[0]
    gw[:] = 0.0
    for s in range(n):
        for i in range(I):
            for d in range(K):
                xr = x[i, nbr[d, s]]
                o = 0
                while o + 4 <= O:
                    g0, g1, g2, g3 = g[o, s], g[o + 1, s], g[o + 2, s], g[o + 3, s]
                    a0 = a1 = a2 = a3 = 0.0
                    for b in range(B):
                        v = xr[b]
                        a0 += g0[b] * v
                        a1 += g1[b] * v
                        a2 += g2[b] * v
                        a3 += g3[b] * v
                    gw[o, i, d] += a0
                    gw[o + 1, i, d] += a1
                    gw[o + 2, i, d] += a2
                    gw[o + 3, i, d] += a3
                    o += 4
                while o < O:
                    g0 = g[o, s]
                    a0 = 0.0
                    for b in range(B):
                        a0 += g0[b] * xr[b]
                    gw[o, i, d] += a0
                    o += 1


@functools.lru_cache(maxsize=128)
def _receptive_tables_cached(lattice: tuple, kernel: tuple, out_sites: bytes, n_layers: int):
    full = _neighbour_table_cached(lattice, kernel)  # (K, V)
    sites = [np.frombuffer(out_sites, dtype=np.int64).copy()]
    tables = []
    for _ in range(n_layers):
        needed = full[:, sites[0]]  # the lattice sites the layer reads, (K, n)
        inputs = np.unique(needed)
        position = np.full(full.shape[1], -1, dtype=np.int64)
        position[inputs] = np.arange(inputs.size)
        tables.insert(0, np.ascontiguousarray(position[needed]))
        sites.insert(0, inputs)
    for a in sites + tables:
        a.flags.writeable = False
    return tuple(tables), tuple(sites)


def receptive_tables(lattice_shape, kernel_shape, out_sites, n_layers: int):
    """Tables to evaluate a stack of ``n_layers`` periodic convolutions only where it is read.

    The last layer is wanted at the flat sites ``out_sites``; layer j then needs its input only at
    the sites its outputs read, ``sites[j]`` (sorted), which the layer before must produce. Returns
    ``(tables, sites)``: ``sites[0..n_layers]`` with ``sites[n_layers] = out_sites``, and
    ``tables[j]`` (K, len(sites[j + 1])) the positions within ``sites[j]`` of the neighbours of
    each site of ``sites[j + 1]``, for :func:`correlate_rows`. With a 3x3 kernel and one stripe of
    sites in four wanted (the U(1) flow), the layer before runs on three stripes, the ones before
    that on all sites. Cached and read-only.
    """
    lattice = tuple(int(n) for n in lattice_shape)
    kernel = tuple(int(k) for k in kernel_shape)
    # keyed by the sites' bytes: the flows call this once per layer and step, and a tuple of ints costs
    # more to build and hash than the whole lookup
    key = np.ascontiguousarray(out_sites, dtype=np.int64).tobytes()
    return _receptive_tables_cached(lattice, kernel, key, int(n_layers))


def _check_conv_args(x, weight, bias):
    x = np.asarray(x)
    weight = np.asarray(weight)
    if x.dtype.kind == "c" or weight.dtype.kind == "c":
        raise TypeError("periodic_conv is defined for real float64 arrays, got complex input")
    D = weight.ndim - 2
    if D not in (1, 2, 3):
        raise ValueError(
            f"weight must have shape (C_out, C_in, k0[, k1[, k2]]) for a 1D/2D/3D lattice, got {weight.shape}"
        )
    if x.ndim != D + 2:
        raise ValueError(
            f"input must have shape (B, C_in, L0, ...) with {D} lattice axes to match the weight "
            f"{weight.shape}, got {x.shape}; add a batch axis with x[None] for a single field"
        )
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"input has {x.shape[1]} channels but the weight expects C_in = {weight.shape[1]}")
    kernel = weight.shape[2:]
    if any(k % 2 == 0 for k in kernel):
        raise ValueError(f"kernel sizes must be odd (centred stencil), got {kernel}")
    if bias is not None and np.shape(bias) != (weight.shape[0],):
        raise ValueError(f"bias must have shape (C_out,) = ({weight.shape[0]},), got {np.shape(bias)}")
    return x, weight, kernel


def _conv_fwd(x, weight, bias=None):
    x, weight, kernel = _check_conv_args(x, weight, bias)
    B, I, lattice = x.shape[0], x.shape[1], x.shape[2:]
    O, K, V = weight.shape[0], int(np.prod(kernel)), int(np.prod(lattice))
    x3 = np.ascontiguousarray(x, dtype=np.float64).reshape(B, I, V)
    w3 = np.ascontiguousarray(weight, dtype=np.float64).reshape(O, I, K)
    b = np.zeros(O) if bias is None else np.ascontiguousarray(bias, dtype=np.float64)
    nbr = neighbour_table(lattice, kernel)
    out = np.empty((B, O, V))
    _correlate(x3, w3, nbr, b, out, _site_chunk(O, I, K, V))
    return out.reshape((B, O) + lattice), (x3, w3, nbr, weight.shape)


def _conv_bwd(g, residuals, needs):
    x3, w3, nbr, wshape = residuals
    B, I, V = x3.shape
    O, K = w3.shape[0], w3.shape[2]
    g3 = np.ascontiguousarray(g, dtype=np.float64).reshape(B, O, V)
    gx = gw = gb = None
    if needs[0]:
        w_flipped = np.ascontiguousarray(w3[:, :, ::-1].transpose(1, 0, 2))  # (I, O, K)
        gx = np.empty((B, I, V))
        _correlate(g3, w_flipped, nbr, np.zeros(I), gx, _site_chunk(I, O, K, V))
        gx = gx.reshape(np.shape(g)[:1] + (I,) + np.shape(g)[2:])
    if needs[1]:
        gw = np.empty((O, I, K))
        _correlate_weight_grad(x3, g3, nbr, gw, _site_chunk(O, I, K, V))
        gw = gw.reshape(wshape)
    if len(needs) > 2 and needs[2]:
        gb = g3.sum(axis=(0, 2))
    return (gx, gw, gb)[: len(needs)]


_periodic_conv = custom_op("periodic_conv", _conv_fwd, _conv_bwd)


def periodic_conv(x, weight, bias=None):
    """Periodic correlation of ``x`` (B, C_in, L...) with ``weight`` (C_out, C_in, k...), plus ``bias``.

    Tensors or arrays; returns a Tensor (B, C_out, L...). See the module docstring for the
    formula and the backward.
    """
    return _periodic_conv(x, weight, bias)
