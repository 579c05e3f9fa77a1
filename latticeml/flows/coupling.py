"""Affine coupling layers with checkerboard masks (real NVP on the lattice).

The layer (L. Dinh, J. Sohl-Dickstein, S. Bengio, "Density estimation using Real NVP", ICLR 2017;
on the lattice: M. S. Albergo, G. Kanwar, P. E. Shanahan, PRD 100 (2019) 034515, Sec. III B) maps
a batch of fields ``x`` of shape ``(B, *shape)`` to ``y`` of the same shape,

    y = m x + (1 - m) [ x exp(s(m x)) + t(m x) ],

with the checkerboard mask ``m`` (1 on frozen sites, :mod:`latticeml.flows.masks`) and the scale
``s`` and shift ``t`` the two output channels of a periodic convolutional net applied to the frozen
sites. The Jacobian dy/dx is triangular (active sites depend on frozen ones, never the reverse),
so its log-determinant is exact and cheap:

    log |det dy/dx| = sum_x (1 - m(x)) s(x)          (per configuration, shape (B,))

and the inverse needs no solve:  x = m y + (1 - m) (y - t(m y)) exp(-s(m y)),  since m y = m x.

The net is a :func:`latticeml.autodiff.nn.conv_net` with input 1 channel and output 2 channels
(s, t); the tutorial (Albergo et al., arXiv:2101.08176) uses hidden layers of 8 channels, kernel 3,
LeakyReLU between layers and a final tanh on both outputs.

Two implementations of the forward pass, tested against each other to 1e-12:

* :meth:`AffineCoupling.reference_forward` -- the formula above written with the autodiff engine's
  operations (the textbook version, about 20 tape nodes per layer);
* :meth:`AffineCoupling.forward` -- the same numbers from one custom operation (:data:`coupling_op`)
  with a hand-written backward: the activations, the affine map and the log-determinant fused, one
  tape node per layer instead of about twenty, and the net run by the batch-last kernels of
  :mod:`latticeml.autodiff.conv` (the batch in the SIMD lanes) only where the active sites depend
  on it (:func:`~latticeml.autodiff.conv.receptive_tables`: with checkerboard masks the output layer
  runs on the active half). Measured in ``benchmarks/bench_flows.py``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..autodiff import nn
from ..autodiff import ops as F
from ..autodiff.conv import correlate_rows, correlate_rows_adjoint, receptive_tables, weight_grad_rows
from ..autodiff.tensor import Tensor, custom_op, no_grad
from ..lattice import check_shape

__all__ = ["AffineCoupling", "coupling_op", "FUSED_ACTIVATIONS"]

#: Activations the fused layer implements: name -> nn module class.
FUSED_ACTIVATIONS = {"leaky_relu": nn.LeakyReLU, "relu": nn.ReLU, "tanh": nn.Tanh, "identity": nn.Identity}


# ----------------------------------------------------------------------------- the fused layer


@njit(cache=True)
def _leaky_relu_into(h, slope, out):
    """out = h if h > 0 else slope * h; 1-d float64 arrays."""
    for i in range(h.size):
        v = h[i]
        out[i] = v if v > 0.0 else slope * v


@njit(cache=True)
def _leaky_relu_grad_into(g, h, slope, out):
    """out = g if h > 0 else slope * g (the VJP of the leaky ReLU); 1-d float64 arrays."""
    for i in range(h.size):
        out[i] = g[i] if h[i] > 0.0 else slope * g[i]


def _activate(h, kind, slope):
    if kind == "leaky_relu":
        out = np.empty_like(h)
        _leaky_relu_into(h.reshape(-1), slope, out.reshape(-1))
        return out
    if kind == "tanh":
        return np.tanh(h)
    return h  # identity


def _activation_grad(g, h, a, kind, slope):
    """dL/dh from dL/da for a = act(h)."""
    if kind == "leaky_relu":
        out = np.empty_like(h)
        _leaky_relu_grad_into(np.ascontiguousarray(g).reshape(-1), h.reshape(-1), slope, out.reshape(-1))
        return out
    if kind == "tanh":
        return g * (1.0 - a * a)
    return g


def _run_net(inputs, weights, biases, layout, tables):
    """The conv net in the batch-last layout (:mod:`latticeml.autodiff.conv`): ``inputs`` ``(C, n_0, B)``
    on the sites ``sites[0]`` of :func:`~latticeml.autodiff.conv.receptive_tables`, layer j evaluated at
    ``sites[j + 1]`` through ``tables[j]``. Returns the pre-activations and activations of every layer
    (``posts[0]`` the input, ``posts[-1]`` the output ``(O, n_last, B)``). Shared by the affine couplings
    here and the U(1) couplings of :mod:`latticeml.flows.u1`."""
    a = inputs
    pres, posts = [], [a]
    for w, b, (kind, slope), nbr in zip(weights, biases, layout, tables):
        h = np.empty((w.shape[0], nbr.shape[1], a.shape[2]))
        correlate_rows(a, w, nbr, b, h)
        a = _activate(h, kind, slope)
        pres.append(h)
        posts.append(a)
    return pres, posts


def _net_backward(ga, weights, pres, posts, layout, tables, pshapes, needs, grads, *, input_grad):
    """Reverse pass of :func:`_run_net` from ``ga = dL/d(net output)`` ``(O, n_last, B)``.

    The op's positional arguments are ``(x, w0, b0, w1, b1, ...)``: the gradients of ``w_j``, ``b_j``
    go to ``grads[1 + 2 j]``, ``grads[2 + 2 j]`` where ``needs`` asks for them. Returns
    ``dL/d(net input)`` ``(C, n_0, B)`` if ``input_grad``, else None.
    """
    for j in range(len(weights) - 1, -1, -1):
        w, nbr = weights[j], tables[j]
        gh = _activation_grad(ga, pres[j], posts[j + 1], *layout[j])
        if needs[1 + 2 * j]:
            gw = np.empty(w.shape)
            weight_grad_rows(posts[j], gh, nbr, gw)
            grads[1 + 2 * j] = gw.reshape(pshapes[2 * j])
        if needs[2 + 2 * j]:
            grads[2 + 2 * j] = gh.sum(axis=(1, 2))
        if j > 0 or input_grad:
            ga = np.empty(posts[j].shape)
            correlate_rows_adjoint(gh, w, nbr, ga)
        else:
            ga = None
    return ga


def _unpack(params, layout):
    """Flat (w0, b0, w1, b1, ...) -> weights (O, I, K) float64 C-contiguous, biases (O,)."""
    weights, biases = [], []
    for j in range(len(layout)):
        w = np.asarray(params[2 * j], dtype=np.float64)
        weights.append(np.ascontiguousarray(w).reshape(w.shape[0], w.shape[1], -1))
        biases.append(np.ascontiguousarray(params[2 * j + 1], dtype=np.float64))
    return weights, biases


def _batch_last(a):
    """``(B, V)`` -> ``(1, V, B)`` C-contiguous: one input channel in the nets' batch-last layout."""
    return np.ascontiguousarray(a.T).reshape(1, a.shape[1], a.shape[0])


def _net_on_frozen(frozen, mask, weights, biases, layout, lattice, kernel):
    """The coupling net on the masked fields ``frozen = m x`` ``(B, V)``, evaluated only where the active
    sites depend on it. Returns ``(active, read, tables, pres, posts)``: the active sites, the sites the
    first layer reads, the tables of :func:`~latticeml.autodiff.conv.receptive_tables` and the layers'
    values (:func:`_run_net`); ``posts[-1][0].T`` and ``posts[-1][1].T`` are s and t ``(B, n_active)``."""
    active = np.flatnonzero(mask == 0.0)
    tables, sites = receptive_tables(lattice, kernel, active, len(layout))
    pres, posts = _run_net(_batch_last(frozen[:, sites[0]]), weights, biases, layout, tables)
    return active, sites[0], tables, pres, posts


def _coupling_fwd(x, *params, mask, layout, kernel):
    """``(B, V + 1)`` = [y flattened | log det], and the residuals of the backward."""
    B = x.shape[0]
    x2 = np.ascontiguousarray(x, dtype=np.float64).reshape(B, -1)
    weights, biases = _unpack(params, layout)
    active, read, tables, pres, posts = _net_on_frozen(x2 * mask, mask, weights, biases, layout, x.shape[1:], kernel)
    s, t = posts[-1][0].T, posts[-1][1].T  # channel 0: scale, channel 1: shift; (B, n_active)
    es = np.exp(s)
    V = x2.shape[1]
    out = np.empty((B, V + 1))
    out[:, :V] = x2
    out[:, active] = x2[:, active] * es + t
    out[:, V] = s.sum(axis=1)
    shapes = (x.shape, tuple(np.shape(p) for p in params))
    return out, (x2, mask, active, read, tables, weights, pres, posts, es, layout, shapes)


def _coupling_bwd(g, residuals, needs):
    x2, mask, active, read, tables, weights, pres, posts, es, layout, (xshape, pshapes) = residuals
    B, V = x2.shape
    gy, glogdet = g[:, :V], g[:, V:]
    # at the active sites y = x e^s + t, and log det = sum_active s
    gy_active = gy[:, active]
    gs = gy_active * x2[:, active] * es + glogdet
    ga = np.empty((2,) + gs.T.shape)  # dL/d(net output), (2, n_active, B)
    ga[0], ga[1] = gs.T, gy_active.T
    grads = [None] * len(needs)
    ga = _net_backward(ga, weights, pres, posts, layout, tables, pshapes, needs, grads, input_grad=needs[0])
    if needs[0]:
        # x enters directly (y = x on the frozen sites, x e^s on the active ones) and through the net's input m x
        gx = gy.copy()
        gx[:, read] += mask[read] * ga[0].T
        gx[:, active] = gy_active * es
        grads[0] = gx.reshape(xshape)
    return tuple(grads)


#: ``coupling_op(x, w0, b0, w1, b1, ..., mask=, layout=, kernel=)`` -> Tensor ``(B, V + 1)``:
#: columns ``[:V]`` hold the transformed field (flattened), column ``V`` the log-determinant.
#: ``x`` is ``(B, *shape)``, ``w_j`` ``(O, I, *kernel)``, ``b_j`` ``(O,)``, ``mask`` the flat
#: frozen-site mask ``(V,)`` and ``layout`` a tuple of ``(activation, slope)`` per conv layer,
#: the activation one of ``leaky_relu``, ``tanh``, ``identity`` (``relu`` is ``leaky_relu`` with slope 0).
coupling_op = custom_op("affine_coupling", _coupling_fwd, _coupling_bwd)


# ----------------------------------------------------------------------------- the layer


def _fused_layout(net):
    """``(convs, layout)`` if ``net`` is Conv [act] Conv [act] ... the fused op implements, else None."""
    layers = list(net.layers) if isinstance(net, nn.Sequential) else [net]
    convs, layout = [], []
    for layer in layers:
        if isinstance(layer, nn.Conv):
            convs.append(layer)
            layout.append(["identity", 0.0])
        elif convs and layout[-1][0] == "identity" and isinstance(layer, tuple(FUSED_ACTIVATIONS.values())):
            if isinstance(layer, nn.LeakyReLU):
                layout[-1] = ["leaky_relu", layer.slope]
            elif isinstance(layer, nn.ReLU):
                layout[-1] = ["leaky_relu", 0.0]
            elif isinstance(layer, nn.Tanh):
                layout[-1] = ["tanh", 0.0]
        else:
            return None
    if not convs or len({c.weight.shape[2:] for c in convs}) != 1:
        return None  # the fused op shares one neighbour table: one kernel shape for every conv
    return convs, tuple((kind, float(slope)) for kind, slope in layout)


class AffineCoupling(nn.Module):
    """``y = m x + (1 - m)[x e^s + t]``, ``(s, t) = net(m x)``; see the module docstring.

    ``net`` maps ``(B, 1, *shape)`` to ``(B, 2, *shape)`` (channel 0 the scale s, channel 1 the
    shift t): any :class:`~latticeml.autodiff.nn.Module`; a Sequential of periodic ``Conv`` layers
    and LeakyReLU/ReLU/Tanh activations runs on the fused path, anything else on the reference
    path. ``mask`` is a checkerboard mask (1 = frozen), :func:`latticeml.flows.masks.checkerboard_mask`.
    """

    def __init__(self, net: nn.Module, mask):
        mask = np.asarray(mask, dtype=np.float64)
        if not np.all((mask == 0.0) | (mask == 1.0)):
            raise ValueError("mask must contain only 0 (active) and 1 (frozen)")
        self.net = net
        self.shape = check_shape(mask.shape)
        self.mask = mask
        self._mask_flat = np.ascontiguousarray(mask.ravel())
        fused = _fused_layout(net)
        self._convs, self._layout = fused if fused is not None else (None, None)
        if self._convs is not None:
            c_in, c_out = self._convs[0].weight.shape[1], self._convs[-1].weight.shape[0]
            kernel = self._convs[0].weight.shape[2:]
            if c_in != 1 or c_out != 2 or len(kernel) != len(self.shape):
                raise ValueError(
                    f"the coupling net must map 1 channel to 2 (s, t) with {len(self.shape)}D kernels, got "
                    f"{c_in} -> {c_out} channels and kernel {kernel}; build it with "
                    f"nn.conv_net([1, ..., 2], ndim={len(self.shape)}, rng=rng)"
                )

    def __repr__(self):
        frozen = int(self.mask.sum())
        return f"AffineCoupling(shape={self.shape}, frozen sites={frozen}, net={self.net!r})"

    def _check(self, x):
        shape = np.shape(x.value if isinstance(x, Tensor) else x)
        if shape[1:] != self.shape:
            raise ValueError(f"expected a batch of fields of shape (B, *{self.shape}), got {shape}")

    # --- fast path ------------------------------------------------------------------------------
    def forward(self, x):
        """``(y, log_det)`` as Tensors, ``y`` ``(B, *shape)``, ``log_det`` ``(B,)``: one tape node."""
        self._check(x)
        if self._convs is None:
            return self.reference_forward(x)
        params = []
        for conv in self._convs:
            params.append(conv.weight)
            params.append(conv.bias if conv.bias is not None else np.zeros(conv.weight.shape[0]))
        out = coupling_op(x, *params, mask=self._mask_flat, layout=self._layout, kernel=self._convs[0].weight.shape[2:])
        V = self._mask_flat.size
        y = F.reshape(out[:, :V], (out.shape[0],) + self.shape)
        return y, out[:, V]

    def scale_and_shift(self, frozen) -> tuple[np.ndarray, np.ndarray]:
        """``(s, t)`` of the net on a batch of (masked) fields, plain arrays ``(B, *shape)``, no tape.

        Only the active sites' values are used by the layer; on the fused path the net is evaluated
        only where they depend on it and ``s = t = 0`` on the frozen sites.
        """
        frozen = np.asarray(frozen, dtype=np.float64)
        B = frozen.shape[0]
        if self._convs is None:
            with no_grad():
                st = self.net(frozen.reshape((B, 1) + self.shape)).value
            return st[:, 0], st[:, 1]
        weights, biases = _unpack(
            [a for c in self._convs for a in (c.weight.value, c.bias.value if c.bias is not None else np.zeros(c.weight.shape[0]))],
            self._layout,
        )
        active, _, _, _, posts = _net_on_frozen(frozen.reshape(B, -1), self._mask_flat, weights, biases, self._layout,
                                                self.shape, self._convs[0].weight.shape[2:])
        s, t = np.zeros((B, self._mask_flat.size)), np.zeros((B, self._mask_flat.size))
        s[:, active], t[:, active] = posts[-1][0].T, posts[-1][1].T
        return s.reshape((B,) + self.shape), t.reshape((B,) + self.shape)

    def inverse(self, y) -> tuple[np.ndarray, np.ndarray]:
        """``(x, log_det)`` with ``x = m y + (1 - m)(y - t) e^{-s}`` and ``log_det = -sum (1 - m) s``
        (the log-Jacobian of the inverse map); plain arrays, no tape."""
        self._check(y)
        y = np.asarray(y.value if isinstance(y, Tensor) else y, dtype=np.float64)
        m = self.mask
        frozen = y * m
        s, t = self.scale_and_shift(frozen)
        x = frozen + (1.0 - m) * (y - t) * np.exp(-s)
        return x, -((1.0 - m) * s).reshape(len(y), -1).sum(axis=1)

    # --- the textbook version, on the autodiff engine -------------------------------------------
    def reference_forward(self, x):
        """The forward pass written with engine operations (differentiable, ~20 tape nodes)."""
        self._check(x)
        m = self.mask
        B = np.shape(x.value if isinstance(x, Tensor) else x)[0]
        frozen = x * m
        st = self.net(F.reshape(frozen, (B, 1) + self.shape))
        s, t = st[:, 0], st[:, 1]
        y = frozen + (1.0 - m) * (x * F.exp(s) + t)
        log_det = ((1.0 - m) * s).sum(axis=tuple(range(1, 1 + len(self.shape))))
        return y, log_det

    def reference_inverse(self, y):
        """The inverse written with engine operations (differentiable): ``(x, log_det)``."""
        self._check(y)
        m = self.mask
        B = np.shape(y.value if isinstance(y, Tensor) else y)[0]
        frozen = y * m
        st = self.net(F.reshape(frozen, (B, 1) + self.shape))
        s, t = st[:, 0], st[:, 1]
        x = frozen + (1.0 - m) * (y - t) * F.exp(-s)
        log_det = -((1.0 - m) * s).sum(axis=tuple(range(1, 1 + len(self.shape))))
        return x, log_det
