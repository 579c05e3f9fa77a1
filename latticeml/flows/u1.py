"""Gauge-equivariant coupling layers for 2D U(1) lattice gauge theory.

G. Kanwar, M. S. Albergo, D. Boyda, K. Cranmer, D. C. Hackett, S. Racaniere, D. J. Rezende,
P. E. Shanahan, "Equivariant flow-based sampling for lattice gauge theory", PRL 125 (2020) 121601
[arXiv:2003.06413]; the U(1) part of the tutorial, M. S. Albergo et al., arXiv:2101.08176, Sec. 4.

Shapes and conventions (those of :mod:`latticeml.theories.u1`, batched): links are angles
``theta`` ``(B, 2, L0, L1)``, ``U_mu(x) = exp(i theta_mu(x))``; a layer wraps the links it changes
into ``(-pi, pi]`` and passes the others through (the Haar prior draws them in ``[-pi, pi)``);
the plaquette ``theta_P(x) = theta_0(x) + theta_1(x + 0) - theta_0(x + 1) - theta_1(x)``; both
extents a multiple of 4.

One layer, for a direction ``mu`` and an offset ``off`` (:func:`plaquette_masks`):

1. Plaquettes come in stripes of the coordinate ``x_nu`` (nu = 1 - mu) modulo 4: *active* at
   ``x_nu = off``, *frozen* at ``off + 1`` and ``off + 2``, *passive* at ``off + 3``.
2. A periodic conv net reads ``cos`` and ``sin`` of the frozen plaquette angles (gauge-invariant
   input, zero on the other plaquettes) and returns, at every site, the parameters of an
   invertible map of the circle (:mod:`latticeml.flows.circle`: a mixture of non-compact
   projections, or a circular rational-quadratic spline; plus a rotation).
3. Each active plaquette angle ``P`` (taken in ``[0, 2 pi)``) is mapped to ``P' = h(P)``, and the
   change ``P' - P`` is pushed onto the one link of that plaquette that no frozen plaquette
   contains: ``theta_mu(x)`` at the active site ``x`` (sign +1 for mu = 0, -1 for mu = 1, the sign
   of that link in the plaquette). The passive plaquette beside it absorbs the opposite change.

Gauge equivariance: the shift added to a link is a gauge-invariant number, and gauge transforms act
on links by adding ``alpha(x) - alpha(x + mu)``, so the layer commutes with them; with the uniform
Haar prior (gauge invariant) the model density ``q`` is gauge invariant.

Exact log-Jacobian: with the frozen links fixed, the active link and its active plaquette differ by
a constant, and the conditioner depends only on frozen plaquettes (which contain no active link),
so the Jacobian is triangular and ``log |det| = sum_active log h'(P)``.

Layer stack (the tutorial's, :func:`u1_flow`): layer i uses ``mu = i mod 2``, ``off = (i // 2) mod 4``,
so 8 consecutive layers update every link once.

The layer is one custom operation of the autodiff engine (:data:`u1_coupling_op`): the periodic
conv net of :mod:`latticeml.flows.coupling` (shared batch-last kernels), evaluated only where the
active plaquettes depend on it (with 3x3 kernels: the linear output layer on the active stripe, the
hidden layer before it on three stripes of four, the first on every site), the circle map and its exact
derivatives in Numba (:mod:`latticeml.flows.circle`), the plaquette map and its transpose of
:mod:`latticeml.autodiff.u1`; one tape node per layer, backward by hand (checked against finite
differences in ``tests/test_flows_u1.py``).
"""

from __future__ import annotations

import math

import numpy as np

from ..autodiff import nn
from ..autodiff import ops as F
from ..autodiff.conv import receptive_tables
from ..autodiff.tensor import Tensor, custom_op
from ..autodiff.u1 import plaquette_map, plaquette_map_transpose
from ..checks import check_count, check_rng
from ..groups import wrap_angle
from ..lattice import check_shape
from .circle import KINDS, circle_backward, circle_forward, circle_inverse, n_parameters
from .coupling import _fused_layout, _net_backward, _run_net, _unpack

__all__ = ["plaquette_masks", "active_link_mask", "HaarPrior", "U1EquivariantCoupling", "u1_coupling_op", "U1_ARCHITECTURE_DEFAULTS"]

TWO_PI = 2.0 * math.pi

#: The tutorial's architecture (arXiv:2101.08176, Sec. 4.3): 16 layers, conv nets 2 -> 8 -> 8 -> out,
#: kernel 3, LeakyReLU, no final activation, a mixture of 2 non-compact projections.
U1_ARCHITECTURE_DEFAULTS = {
    "n_layers": 16,
    "hidden": [8, 8],
    "kernel_size": 3,
    "transform": "ncp",
    "components": 2,
}


def _check_u1_shape(shape) -> tuple[int, int]:
    shape = check_shape(shape)
    if len(shape) != 2 or any(L % 4 for L in shape):
        raise ValueError(
            f"the gauge-equivariant U(1) flow needs a 2D lattice with both extents multiples of 4 "
            f"(stripes of period 4), got shape {shape}"
        )
    return shape


def plaquette_masks(shape, mu: int, off: int) -> dict[str, np.ndarray]:
    """``{"frozen", "active", "passive"}`` -> float64 0/1 arrays of the lattice shape (a partition).

    Stripes along ``mu``: the pattern depends on ``x_nu mod 4`` (nu = 1 - mu): active at ``off``,
    frozen at ``off + 1, off + 2``, passive at ``off + 3`` (the tutorial's single/double stripes).
    """
    shape = _check_u1_shape(shape)
    if mu not in (0, 1):
        raise ValueError(f"mu must be 0 or 1, got {mu!r}")
    nu = 1 - mu
    coord = np.indices(shape)[nu]
    r = (coord - int(off)) % 4
    return {
        "frozen": ((r == 1) | (r == 2)).astype(np.float64),
        "active": (r == 0).astype(np.float64),
        "passive": (r == 3).astype(np.float64),
    }


def active_link_mask(shape, mu: int, off: int) -> np.ndarray:
    """1.0 on the links the layer changes, ``(2, L0, L1)``: ``theta_mu(x)`` at the active plaquettes' sites."""
    masks = plaquette_masks(shape, mu, off)
    out = np.zeros((2,) + tuple(shape))
    out[mu] = masks["active"]
    return out


class HaarPrior:
    """Independent uniform (Haar) links: ``theta ~ U[-pi, pi)`` on each of the ``D V`` links.

    Densities are with respect to the *normalised* Haar measure ``prod dtheta / 2 pi`` (total mass 1),
    so ``log r = 0``; then ``Z = int prod dtheta/2pi e^-S`` is the partition function of
    :func:`latticeml.exact.u1_2d_log_partition_function` (minus ``beta V``) and the
    importance-sampling ``ln Z`` of :mod:`latticeml.flows.free_energy` estimates it directly.
    """

    def __init__(self, shape):
        self.shape = check_shape(shape)
        self.field_shape = (len(self.shape),) + self.shape
        self.volume = int(np.prod(self.shape))

    def __repr__(self):
        return f"HaarPrior(shape={self.shape})"

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` independent configurations ``(n, D, *shape)``."""
        check_rng(rng)
        n = check_count(n, "the number of samples", minimum=1)
        return rng.uniform(-np.pi, np.pi, size=(n,) + self.field_shape)

    def log_prob(self, theta) -> np.ndarray:
        """``log r = 0`` per configuration, ``(B,)`` (density w.r.t. the normalised Haar measure)."""
        theta = np.asarray(theta.value if isinstance(theta, Tensor) else theta)
        if theta.shape[1:] != self.field_shape:
            raise ValueError(f"expected links of shape (B, *{self.field_shape}), got {theta.shape}")
        return np.zeros(theta.shape[0])


# ----------------------------------------------------------------------------- the fused layer


def _plaquettes(theta):
    """Plaquette angles ``(B, V)`` in ``[0, 2 pi)`` of links ``(B, 2, L0, L1)``."""
    return np.mod(plaquette_map(theta)[:, 0].reshape(theta.shape[0], -1), TWO_PI)


def _conditioner(plaq, frozen_mask, weights, biases, layout, tables, read):
    """The net on ``[cos, sin]`` of the masked plaquettes ``m P`` (so ``(1, 0)`` off the frozen ones, as in
    the tutorial), in the batch-last layout of :func:`latticeml.flows.coupling._run_net`, evaluated only
    where the active sites' parameters depend on it (:func:`latticeml.autodiff.conv.receptive_tables`:
    with 3x3 kernels the output layer runs on the active stripe, the one before on three stripes of
    four). ``read`` are the sites the first layer reads. Returns ``(pre-activations, activations,
    circle parameters (B, C, n_active))``, ``posts[0]`` the input ``(2, len(read), B)``."""
    fp = (plaq * frozen_mask)[:, read].T
    inp = np.empty((2,) + fp.shape)
    np.cos(fp, out=inp[0])
    np.sin(fp, out=inp[1])
    pres, posts = _run_net(inp, weights, biases, layout, tables)
    return pres, posts, np.ascontiguousarray(posts[-1].transpose(2, 0, 1))


def _u1_fwd(theta, *params, mu, sign, active, frozen, layout, kernel, kind):
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    B, D = theta.shape[:2]
    lattice = theta.shape[2:]
    V = int(np.prod(lattice))
    weights, biases = _unpack(params, layout)
    tables, sites = receptive_tables(lattice, kernel, active, len(layout))
    plaq = _plaquettes(theta)
    pres, posts, cparams = _conditioner(plaq, frozen, weights, biases, layout, tables, sites[0])
    x = np.ascontiguousarray(plaq[:, active])
    y, logd = circle_forward(kind, x, cparams)
    links = theta.reshape(B, D, V)
    out = np.empty((B, D * V + 1))
    new = out[:, : D * V].reshape(B, D, V)
    new[...] = links
    new[:, mu, active] = wrap_angle(links[:, mu, active] + sign * (y - x))  # only the changed links
    out[:, D * V] = logd.sum(axis=1)
    residuals = (theta.shape, x, cparams, pres, posts, weights, tables, sites[0], tuple(np.shape(p) for p in params),
                 (mu, sign, active, frozen, layout, kind))
    return out, residuals


def _u1_bwd(g, residuals, needs):
    shape, x, cparams, pres, posts, weights, tables, read, pshapes, (mu, sign, active, frozen, layout, kind) = residuals
    B, D = shape[:2]
    V = frozen.size
    g = np.asarray(g, dtype=np.float64)
    g_links = g[:, : D * V].reshape(B, D, V)
    g_logdet = g[:, D * V]
    a = sign * g_links[:, mu, active]  # cotangent of y (and -a of x, through y - x)
    gx, gparams = circle_backward(kind, x, cparams, a, g_logdet[:, None])
    grads = [None] * len(needs)
    g_out = np.ascontiguousarray(gparams.transpose(1, 2, 0))  # (C, n_active, B), the net's layout
    g_in = _net_backward(g_out, weights, pres, posts, layout, tables, pshapes, needs, grads, input_grad=needs[0])
    if needs[0]:
        g_plaq = np.zeros((B, V))
        g_plaq[:, active] = gx - a
        cos_fp, sin_fp = posts[0][0].T, posts[0][1].T  # the net's input
        g_plaq[:, read] += frozen[read] * (cos_fp * g_in[1].T - sin_fp * g_in[0].T)
        grads[0] = (g_links + plaquette_map_transpose(g_plaq.reshape((B, 1) + shape[2:])).reshape(B, D, V)).reshape(shape)
    return tuple(grads)


#: ``u1_coupling_op(theta, w0, b0, w1, b1, ..., mu=, sign=, active=, frozen=, layout=, kernel=, kind=)``
#: -> Tensor ``(B, 2 V + 1)``: columns ``[:2V]`` the new links (flattened ``(2, V)``), column ``2V``
#: the log-determinant. ``active`` the flat indices of the active plaquettes, ``frozen`` the flat
#: frozen mask ``(V,)``; ``kind`` ``"ncp"`` or ``"spline"``.
u1_coupling_op = custom_op("u1_equivariant_coupling", _u1_fwd, _u1_bwd)


# ----------------------------------------------------------------------------- the layer


class U1EquivariantCoupling(nn.Module):
    """One gauge-equivariant coupling layer (module docstring): ``forward(theta) -> (theta', log_det)``.

    ``net`` maps ``(B, 2, L0, L1)`` (cos, sin of the frozen plaquettes) to ``(B, C, L0, L1)``, C the
    parameter count of the circle transform (:func:`latticeml.flows.circle.n_parameters`); it must be
    a Sequential of periodic ``Conv`` layers and LeakyReLU/ReLU/Tanh activations
    (:func:`latticeml.autodiff.nn.conv_net`).
    """

    def __init__(self, net: nn.Module, shape, *, mu: int, off: int, transform: str = "ncp"):
        self.shape = _check_u1_shape(shape)
        if transform not in KINDS:
            raise ValueError(f"transform must be one of {sorted(KINDS)}, got {transform!r}")
        self.net = net
        self.mu, self.off, self.transform = int(mu), int(off) % 4, transform
        masks = plaquette_masks(self.shape, self.mu, self.off)
        self.masks = masks
        self._active = np.flatnonzero(masks["active"].ravel())
        self._frozen = np.ascontiguousarray(masks["frozen"].ravel())
        self._sign = 1.0 if self.mu == 0 else -1.0  # sign of theta_mu(x) in the plaquette at x
        fused = _fused_layout(net)
        if fused is None:
            raise ValueError("the U(1) coupling net must be a Sequential of periodic Conv layers and activations (nn.conv_net)")
        self._convs, self._layout = fused
        if self._layout[-1][0] != "identity":
            raise ValueError("the U(1) coupling net's last layer must be a linear Conv (no final activation): "
                             "its outputs are the circle map's parameters")
        c_in, c_out = self._convs[0].weight.shape[1], self._convs[-1].weight.shape[0]
        self._kernel = self._convs[0].weight.shape[2:]
        k = (c_out - 1) if transform == "ncp" else (c_out - 1) // 3
        if c_in != 2 or k < 1 or n_parameters(transform, k) != c_out or len(self._kernel) != 2:
            raise ValueError(
                f"the coupling net must map 2 channels (cos, sin) to the {transform} parameters "
                f"({'K + 1' if transform == 'ncp' else '3K + 1'} channels) with 2D kernels, got {c_in} -> {c_out} "
                f"and kernel {self._kernel}"
            )
        self.components = k

    def __repr__(self):
        return f"U1EquivariantCoupling(shape={self.shape}, mu={self.mu}, off={self.off}, {self.transform} x {self.components})"

    @property
    def field_shape(self):
        return (2,) + self.shape

    def _params(self, values=False):
        out = []
        for conv in self._convs:
            w = conv.weight
            b = conv.bias if conv.bias is not None else np.zeros(w.shape[0])
            out += [w.value, b.value if isinstance(b, Tensor) else b] if values else [w, b]
        return out

    def _kw(self):
        return dict(mu=self.mu, sign=self._sign, active=self._active, frozen=self._frozen, layout=self._layout,
                    kernel=self._kernel, kind=self.transform)

    def _check(self, theta):
        shape = np.shape(theta.value if isinstance(theta, Tensor) else theta)
        if tuple(shape[1:]) != self.field_shape:
            raise ValueError(f"expected links of shape (B, *{self.field_shape}), got {tuple(shape)}")

    def forward(self, theta):
        """``(theta', log_det)`` as Tensors, ``(B, 2, L0, L1)`` and ``(B,)``: one tape node."""
        self._check(theta)
        out = u1_coupling_op(theta, *self._params(), **self._kw())
        n = 2 * int(np.prod(self.shape))
        return F.reshape(out[:, :n], (out.shape[0],) + self.field_shape), out[:, n]

    def circle_parameters(self, theta) -> tuple[np.ndarray, np.ndarray]:
        """``(active plaquette angles (B, n_active) in [0, 2 pi), circle parameters (B, C, n_active))``, no tape."""
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        weights, biases = _unpack(self._params(values=True), self._layout)
        tables, sites = receptive_tables(self.shape, self._kernel, self._active, len(self._layout))
        plaq = _plaquettes(theta)
        _, _, cparams = _conditioner(plaq, self._frozen, weights, biases, self._layout, tables, sites[0])
        return np.ascontiguousarray(plaq[:, self._active]), cparams

    def inverse(self, theta) -> tuple[np.ndarray, np.ndarray]:
        """``(theta_in, log_det)`` with ``forward(theta_in) = theta``; ``log_det = -sum log h'`` ``(B,)``."""
        theta = np.ascontiguousarray(theta.value if isinstance(theta, Tensor) else theta, dtype=np.float64)
        self._check(theta)
        y, cparams = self.circle_parameters(theta)  # frozen plaquettes are unchanged by the layer
        x, logd = circle_inverse(self.transform, y, cparams)
        B = len(theta)
        links = theta.reshape(B, 2, -1).copy()
        links[:, self.mu, self._active] -= self._sign * (y - x)
        return wrap_angle(links).reshape(theta.shape), -logd.sum(axis=1)
