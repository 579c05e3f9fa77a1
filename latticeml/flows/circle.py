"""Invertible maps of the circle, with exact derivatives: the transforms of the U(1) flows.

A coupling layer of :mod:`latticeml.flows.u1` moves each active plaquette angle ``x`` in
``[0, 2 pi)`` by a diffeomorphism of the circle ``y = h(x; params) + t  (mod 2 pi)``: ``h`` fixes 0,
is strictly increasing on ``[0, 2 pi]`` with ``h(2 pi) = 2 pi``, and its derivative is periodic,
``h'(0) = h'(2 pi)``, so the map is smooth on the circle; ``t`` is a rotation. Two families
(M. S. Albergo et al., "Introduction to normalizing flows for lattice field theory",
arXiv:2101.08176, Sec. 4; D. J. Rezende, G. Papamakarios, S. Racaniere et al., "Normalizing flows
on tori and spheres", ICML 2020):

``ncp``     a mixture of K non-compact projections (NCP),
            ``h(x) = (1/K) sum_k g(x; s_k)``,  ``g(x; s) = 2 atan(e^s tan(x/2))``, written here as
            ``2 atan2(e^s sin(x/2), cos(x/2))`` (continuous up to ``x = 2 pi``, no tan overflow);
            ``g'(x; s) = 1 / (e^-s cos^2(x/2) + e^s sin^2(x/2))``, equal at 0 and 2 pi.
            Parameters per site: ``[s_0, ..., s_{K-1}, t]`` (``K + 1`` channels).
``spline``  a circular rational-quadratic spline with K bins (C. Durkan, A. Bekasov, I. Murray,
            G. Papamakarios, "Neural spline flows", NeurIPS 2019, eqs. 4-6; made circular by Rezende
            et al. 2020: the knots span ``[0, 2 pi]`` and the derivative at the last knot is the one at
            the first). Bin widths and heights are ``2 pi (m + (1 - K m) softmax(a))`` with the
            minimum fraction ``m = 1e-3``; knot derivatives ``softplus(c) + 1e-3``.
            Parameters per site: ``[a_0..a_{K-1}, b_0..b_{K-1}, c_0..c_{K-1}, t]`` (``3K + 1`` channels).

Kernels (Numba, float64, C-contiguous; ``n`` sites, ``B`` configurations, ``C`` parameter channels):

* :func:`circle_forward` ``(kind, x (B, n), params (B, C, n))`` -> ``y (B, n)`` in ``[0, 2 pi)``,
  ``log h'(x) (B, n)``;
* :func:`circle_backward` -> for cotangents ``a`` of y and ``l`` of ``log h'``:
  ``gx = a h'(x) + l d log h'/dx`` and ``gparams = a dy/dparams + l d log h'/dparams``;
* :func:`circle_inverse` -> ``x = h^-1((y - t) mod 2 pi)`` and ``log h'(x)`` (the spline by its
  quadratic formula, Durkan et al. eq. 6, polished by one Newton step; the NCP mixture, which has no closed-form inverse, by
  Newton's method safeguarded by bisection on the bracket ``[0, 2 pi]``, to machine precision).

Derivatives are exact (hand-written chain rule) and checked against finite differences in
``tests/test_flows_u1.py``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["KINDS", "n_parameters", "circle_forward", "circle_backward", "circle_inverse", "MIN_FRACTION", "MIN_DERIVATIVE"]

TWO_PI = 2.0 * math.pi
#: Transform families: name -> the integer the kernels branch on.
KINDS = {"ncp": 0, "spline": 1}
MIN_FRACTION = 1e-3  # every bin is at least 2 pi * MIN_FRACTION wide and high
MIN_DERIVATIVE = 1e-3


def n_parameters(kind: str, k: int) -> int:
    """Parameter channels per site of ``kind`` with ``k`` components (NCP) or bins (spline), shift included."""
    if kind == "ncp":
        return k + 1
    if kind == "spline":
        return 3 * k + 1
    raise ValueError(f"unknown circle transform {kind!r}; choose one of {sorted(KINDS)}")


def n_components(kind: str, channels: int) -> int:
    """Inverse of :func:`n_parameters`."""
    return channels - 1 if kind == "ncp" else (channels - 1) // 3


# ----------------------------------------------------------------------------- NCP mixture


@njit(cache=True)
def _ncp_point(x, p, K, grad, gp):
    """Mixture of K NCPs at x in [0, 2 pi]; p[b, :, i] is passed as the 1-d view p (length K + 1).

    Returns (h(x), log h'(x), d log h'/dx) (the last only with ``grad``, else 0). With ``grad``: gp[k] = d h / d s_k for k < K and
    gp[K + k] = d log h' / d s_k (gp of length 2K).
    """
    sh = math.sin(0.5 * x)
    ch = math.cos(0.5 * x)
    sx = 2.0 * sh * ch  # sin x
    h = 0.0
    hp = 0.0
    hpp = 0.0
    for k in range(K):
        s = p[k]
        es = math.exp(s)
        ems = 1.0 / es
        D = ems * ch * ch + es * sh * sh
        h += 2.0 * math.atan2(es * sh, ch)
        hp += 1.0 / D
        if grad:
            hpp -= 0.5 * (es - ems) * sx / (D * D)  # D' = sinh(s) sin x
    h /= K
    hp /= K
    hpp /= K
    if grad:
        for k in range(K):
            s = p[k]
            es = math.exp(s)
            ems = 1.0 / es
            D = ems * ch * ch + es * sh * sh
            gp[k] = sx / (K * D)  # d g / d s = sin x / D
            gp[K + k] = -(es * sh * sh - ems * ch * ch) / (K * D * D) / hp  # d(1/D)/ds / (K h')
    return h, math.log(hp), hpp / hp


# ----------------------------------------------------------------------------- circular RQ spline


@njit(cache=True)
def _spline_knots(p, K, xk, yk, w, hh, d, sw, sh_):
    """Knots of the circular spline from the raw parameters p (a: 0..K-1, b: K..2K-1, c: 2K..3K-1).

    xk, yk (K + 1) knot positions; w, hh (K) bin widths and heights; d (K + 1) knot derivatives with
    d[K] = d[0]; sw, sh_ (K) the softmax fractions (kept for the backward pass).
    """
    m = MIN_FRACTION
    for which in range(2):
        off = which * K
        mx = p[off]
        for j in range(1, K):
            mx = max(mx, p[off + j])
        tot = 0.0
        for j in range(K):
            e = math.exp(p[off + j] - mx)
            if which == 0:
                sw[j] = e
            else:
                sh_[j] = e
            tot += e
        for j in range(K):
            if which == 0:
                sw[j] /= tot
                w[j] = TWO_PI * (m + (1.0 - K * m) * sw[j])
            else:
                sh_[j] /= tot
                hh[j] = TWO_PI * (m + (1.0 - K * m) * sh_[j])
    xk[0] = 0.0
    yk[0] = 0.0
    for j in range(K):
        xk[j + 1] = xk[j] + w[j]
        yk[j + 1] = yk[j] + hh[j]
    xk[K] = TWO_PI  # exact endpoints (rounding of the running sums)
    yk[K] = TWO_PI
    for j in range(K):
        c = p[2 * K + j]
        # softplus, stable for large |c|
        d[j] = (c if c > 30.0 else math.log1p(math.exp(c))) + MIN_DERIVATIVE
    d[K] = d[0]


@njit(cache=True)
def _find_bin(knots, K, x):
    k = 0
    while k < K - 1 and x >= knots[k + 1]:
        k += 1
    return k


@njit(cache=True)
def _spline_local(xi, W, H, s, d0, d1, out):
    """Rational-quadratic segment in local variables: fills out with
    [r, r_xi, r_s, r_d0, r_d1, l, l_xi, l_s, l_d0, l_d1] where y = Y + H r and l = log dy/dx."""
    u = xi * (1.0 - xi)
    u_xi = 1.0 - 2.0 * xi
    num = s * xi * xi + d0 * u
    den = s + (d0 + d1 - 2.0 * s) * u
    r = num / den
    num_xi = 2.0 * s * xi + d0 * u_xi
    den_xi = (d0 + d1 - 2.0 * s) * u_xi
    den_s = 1.0 - 2.0 * u
    out[0] = r
    out[1] = (num_xi - r * den_xi) / den
    out[2] = (xi * xi - r * den_s) / den
    out[3] = (u - r * u) / den
    out[4] = (-r * u) / den
    n2 = d1 * xi * xi + 2.0 * s * u + d0 * (1.0 - xi) * (1.0 - xi)
    out[5] = 2.0 * math.log(s) + math.log(n2) - 2.0 * math.log(den)
    out[6] = (2.0 * d1 * xi + 2.0 * s * u_xi - 2.0 * d0 * (1.0 - xi)) / n2 - 2.0 * den_xi / den
    out[7] = 2.0 / s + 2.0 * u / n2 - 2.0 * den_s / den
    out[8] = (1.0 - xi) * (1.0 - xi) / n2 - 2.0 * u / den
    out[9] = xi * xi / n2 - 2.0 * u / den


@njit(cache=True)
def _spline_point(x, p, K, grad, gp, scratch):
    """Circular RQ spline at x in [0, 2 pi]: (h, log h', d log h'/dx).

    With ``grad``: gp[0:3K] = dh/d(a, b, c), gp[3K:6K] = d log h'/d(a, b, c).
    scratch: float64 work array of length >= 9K + 30.
    """
    xk = scratch[0 : K + 1]
    yk = scratch[K + 1 : 2 * K + 2]
    w = scratch[2 * K + 2 : 3 * K + 2]
    hh = scratch[3 * K + 2 : 4 * K + 2]
    d = scratch[4 * K + 2 : 5 * K + 3]
    sw = scratch[5 * K + 3 : 6 * K + 3]
    sh_ = scratch[6 * K + 3 : 7 * K + 3]
    loc = scratch[7 * K + 3 : 7 * K + 13]
    _spline_knots(p, K, xk, yk, w, hh, d, sw, sh_)
    k = _find_bin(xk, K, x)
    W = w[k]
    H = hh[k]
    s = H / W
    xi = (x - xk[k]) / W
    _spline_local(xi, W, H, s, d[k], d[k + 1], loc)
    y = yk[k] + H * loc[0]
    ell = loc[5]
    ell_x = loc[6] / W
    if grad:
        for j in range(6 * K):
            gp[j] = 0.0
        for which in range(2):  # 0: F = y, 1: F = log h'
            F_xi = H * loc[1] if which == 0 else loc[6]
            F_s = H * loc[2] if which == 0 else loc[7]
            F_d0 = H * loc[3] if which == 0 else loc[8]
            F_d1 = H * loc[4] if which == 0 else loc[9]
            F_X = -F_xi / W
            F_W = -xi * F_xi / W - s * F_s / W
            F_H = F_s / W + (loc[0] if which == 0 else 0.0)
            F_Y = 1.0 if which == 0 else 0.0
            g = gp[3 * K * which : 3 * K * (which + 1)]
            # widths: W_k directly, X_k = sum_{j<k} W_j; heights likewise. gW, gH into g[0:K], g[K:2K]
            g[k] += F_W
            g[K + k] += F_H
            for j in range(k):
                g[j] += F_X
                g[K + j] += F_Y
            # derivatives d_k and d_{k+1} (d_K is d_0)
            kk = k + 1 if k + 1 < K else 0
            dsp_k = 1.0 - math.exp(-(d[k] - MIN_DERIVATIVE))  # softplus' = sigmoid = 1 - exp(-softplus)
            dsp_kk = 1.0 - math.exp(-(d[kk] - MIN_DERIVATIVE))
            g[2 * K + k] += F_d0 * dsp_k
            g[2 * K + kk] += F_d1 * dsp_kk
            # softmax backward: W_j = 2 pi (m + (1 - K m) sigma_j): g_a_i = c sigma_i (g_W_i - sum_j g_W_j sigma_j)
            cst = TWO_PI * (1.0 - K * MIN_FRACTION)
            for part in range(2):
                sig = sw if part == 0 else sh_
                dot = 0.0
                for j in range(K):
                    dot += g[part * K + j] * sig[j]
                for j in range(K):
                    g[part * K + j] = cst * sig[j] * (g[part * K + j] - dot)
    return y, ell, ell_x


@njit(cache=True)
def _spline_invert_point(y, p, K, scratch):
    """x with h(x) = y on [0, 2 pi] for the spline (quadratic formula of Durkan et al., eq. 6)."""
    xk = scratch[0 : K + 1]
    yk = scratch[K + 1 : 2 * K + 2]
    w = scratch[2 * K + 2 : 3 * K + 2]
    hh = scratch[3 * K + 2 : 4 * K + 2]
    d = scratch[4 * K + 2 : 5 * K + 3]
    sw = scratch[5 * K + 3 : 6 * K + 3]
    sh_ = scratch[6 * K + 3 : 7 * K + 3]
    _spline_knots(p, K, xk, yk, w, hh, d, sw, sh_)
    k = _find_bin(yk, K, y)
    W = w[k]
    H = hh[k]
    s = H / W
    d0 = d[k]
    d1 = d[k + 1]
    dy = y - yk[k]
    a = H * (s - d0) + dy * (d1 + d0 - 2.0 * s)
    b = H * d0 - dy * (d1 + d0 - 2.0 * s)
    c = -s * dy
    disc = max(b * b - 4.0 * a * c, 0.0)
    xi = (2.0 * c) / (-b - math.sqrt(disc))
    xi = min(max(xi, 0.0), 1.0)
    return xk[k] + xi * W


# ----------------------------------------------------------------------------- batched kernels


@njit(cache=True)
def _point(kind, x, p, K, grad, gp, scratch):
    if kind == 0:
        return _ncp_point(x, p, K, grad, gp)
    return _spline_point(x, p, K, grad, gp, scratch)


@njit(cache=True)
def _wrap_2pi(v):
    v = v - TWO_PI * math.floor(v / TWO_PI)
    return v if v < TWO_PI else 0.0


@njit(cache=True)
def _forward_kernel(kind, K, x, params, y, logd):
    B, n = x.shape
    C = params.shape[1]
    p = np.empty(C)
    gp = np.empty(6 * K)
    scratch = np.empty(9 * K + 30)
    for b in range(B):
        for i in range(n):
            for c in range(C):
                p[c] = params[b, c, i]
            h, ell, _ = _point(kind, x[b, i], p, K, False, gp, scratch)
            y[b, i] = _wrap_2pi(h + p[C - 1])
            logd[b, i] = ell


@njit(cache=True)
def _backward_kernel(kind, K, x, params, a, l, gx, gparams):
    B, n = x.shape
    C = params.shape[1]
    P = C - 1  # parameters of h; the last channel is the shift t
    p = np.empty(C)
    gp = np.empty(6 * K)
    scratch = np.empty(9 * K + 30)
    for b in range(B):
        for i in range(n):
            for c in range(C):
                p[c] = params[b, c, i]
            h, ell, ell_x = _point(kind, x[b, i], p, K, True, gp, scratch)
            hp = math.exp(ell)
            ab = a[b, i]
            lb = l[b, i]
            gx[b, i] = ab * hp + lb * ell_x
            for c in range(P):
                gparams[b, c, i] = ab * gp[c] + lb * gp[P + c]
            gparams[b, P, i] = ab  # d y / d t = 1


@njit(cache=True)
def _inverse_kernel(kind, K, y, params, x, logd):
    B, n = y.shape
    C = params.shape[1]
    p = np.empty(C)
    gp = np.empty(6 * K)
    scratch = np.empty(9 * K + 30)
    for b in range(B):
        for i in range(n):
            for c in range(C):
                p[c] = params[b, c, i]
            target = _wrap_2pi(y[b, i] - p[C - 1])
            if kind == 1:
                xx = _spline_invert_point(target, p, K, scratch)
                # one Newton step polishes the rounding of the quadratic formula
                h, ell, _ = _spline_point(xx, p, K, False, gp, scratch)
                xx = min(max(xx - (h - target) / math.exp(ell), 0.0), TWO_PI)
            else:
                # Newton's method on h(x) - target, safeguarded by bisection on [lo, hi]
                lo = 0.0
                hi = TWO_PI
                xx = target
                for _ in range(200):
                    h, ell, _ = _ncp_point(xx, p, K, False, gp)
                    f = h - target
                    if f > 0.0:
                        hi = xx
                    else:
                        lo = xx
                    step = f / math.exp(ell)
                    nxt = xx - step
                    if not (lo < nxt < hi):
                        nxt = 0.5 * (lo + hi)
                    if abs(nxt - xx) < 1e-15 or hi - lo < 1e-15:
                        xx = nxt
                        break
                    xx = nxt
            h, ell, _ = _point(kind, xx, p, K, False, gp, scratch)
            x[b, i] = xx
            logd[b, i] = ell


def _arrays(kind, x, params):
    if kind not in KINDS:
        raise ValueError(f"unknown circle transform {kind!r}; choose one of {sorted(KINDS)}")
    x = np.ascontiguousarray(x, dtype=np.float64)
    params = np.ascontiguousarray(params, dtype=np.float64)
    if x.ndim != 2 or params.ndim != 3 or params.shape[0] != x.shape[0] or params.shape[2] != x.shape[1]:
        raise ValueError(f"expected x (B, n) and params (B, C, n), got {x.shape} and {params.shape}")
    C = params.shape[1]
    K = n_components(kind, C)
    if K < 1 or n_parameters(kind, K) != C:
        raise ValueError(f"{kind} parameters need {'K + 1' if kind == 'ncp' else '3K + 1'} channels, got {C}")
    return KINDS[kind], K, x, params


def circle_forward(kind: str, x, params) -> tuple[np.ndarray, np.ndarray]:
    """``(y, log h'(x))`` for angles ``x`` ``(B, n)`` in ``[0, 2 pi]`` and parameters ``(B, C, n)``."""
    k, K, x, params = _arrays(kind, x, params)
    y = np.empty_like(x)
    logd = np.empty_like(x)
    _forward_kernel(k, K, x, params, y, logd)
    return y, logd


def circle_backward(kind: str, x, params, a, l) -> tuple[np.ndarray, np.ndarray]:
    """Vector-Jacobian product: ``(gx (B, n), gparams (B, C, n))`` for cotangents ``a`` of y, ``l`` of log h'."""
    k, K, x, params = _arrays(kind, x, params)
    gx = np.empty_like(x)
    gparams = np.empty_like(params)
    _backward_kernel(k, K, x, params, np.ascontiguousarray(a, dtype=np.float64),
                     np.ascontiguousarray(np.broadcast_to(l, x.shape), dtype=np.float64), gx, gparams)
    return gx, gparams


def circle_inverse(kind: str, y, params) -> tuple[np.ndarray, np.ndarray]:
    """``(x, log h'(x))`` with ``x = h^-1((y - t) mod 2 pi)`` in ``[0, 2 pi]``."""
    k, K, y, params = _arrays(kind, y, params)
    x = np.empty_like(y)
    logd = np.empty_like(y)
    _inverse_kernel(k, K, y, params, x, logd)
    return x, logd
