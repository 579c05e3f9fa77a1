"""Device functions every CUDA kernel shares: index arithmetic, colour matrices, exp of su(N), staples.

All are ``@cuda.jit(device=True)``; the kernels of :mod:`latticeml.backends.cuda.u1` and
:mod:`latticeml.backends.cuda.sun` are thin loops around them, so each piece of arithmetic exists
once on the device (the cpu kernels of :mod:`latticeml._linalg`, :mod:`latticeml.groups` and
:mod:`latticeml.theories.sun` are the reference they are tested against, to 1e-12).

Shapes and conventions
----------------------
* Links flattened as on the cpu: U(1) angles ``theta[mu, s]`` ``(D, V)``, SU(N) matrices
  ``U[mu, s]`` ``(D, V, N, N)``; ``fwd[s, mu]``, ``bwd[s, mu]`` the neighbour tables of
  :func:`latticeml.lattice.neighbour_table` (int64 ``(V, D)``). Thread ``i`` of a link kernel
  handles link ``(mu, s) = divmod(i, V)`` (:func:`link_of`).
* Colour matrices are 2-D views (``U[mu, s]``) or per-thread scratch arrays
  ``cuda.local.array((MAXN, MAXN), complex128)``; the colour count ``n`` (1 for U(1) phases, 2, 3)
  is passed explicitly, since a scratch array is always ``MAXN x MAXN``. ``out`` never aliases
  an input.
* su(N): traceless anti-Hermitian matrices, ``TA(M) = (M - M^+)/2 - tr(M - M^+)/(2N)`` (for N = 1 the
  anti-Hermitian part ``i Im M``), as in :mod:`latticeml.groups`.

References: the SU(3) exponential by Cayley-Hamilton, C. Morningstar and M. Peardon, PRD 69 (2004)
054501 [hep-lat/0311018], eqs. 19-34; the staple sum and the Wilson action, K. G. Wilson,
PRD 10 (1974) 2445.
"""

from __future__ import annotations

import math

from numba import complex128  # noqa: F401  (the dtype of the scratch arrays the kernels allocate)

from ._shim import device

#: Largest colour count of the CUDA kernels (scratch matrices are MAXN x MAXN): U(1) as 1 x 1
#: phases, SU(2) and SU(3). SU(N >= 4) runs on the cpu backend.
MAXN = 3


# ----------------------------------------------------------------------------- index arithmetic


@device
def link_of(i, V):
    """``(mu, s)`` of the flat link index ``i = mu * V + s``."""
    mu = i // V
    return mu, i - mu * V


@device
def plane_of(p, planes):
    """``(mu, nu)`` of plane ``p`` in the table ``planes`` ((n_planes, 2) int64, mu < nu)."""
    return planes[p, 0], planes[p, 1]


# ----------------------------------------------------------------------------- colour matrices


@device
def mat_mul(a, b, out, n):
    """out = a b."""
    for i in range(n):
        for j in range(n):
            acc = 0j
            for k in range(n):
                acc += a[i, k] * b[k, j]
            out[i, j] = acc


@device
def mat_mul_adj(a, b, out, n):
    """out = a b^+."""
    for i in range(n):
        for j in range(n):
            acc = 0j
            for k in range(n):
                acc += a[i, k] * b[j, k].conjugate()
            out[i, j] = acc


@device
def adj_mul(a, b, out, n):
    """out = a^+ b."""
    for i in range(n):
        for j in range(n):
            acc = 0j
            for k in range(n):
                acc += a[k, i].conjugate() * b[k, j]
            out[i, j] = acc


@device
def copy_into(a, out, n):
    for i in range(n):
        for j in range(n):
            out[i, j] = a[i, j]


@device
def add_into(a, out, n):
    """out += a."""
    for i in range(n):
        for j in range(n):
            out[i, j] += a[i, j]


@device
def zero_into(out, n):
    for i in range(n):
        for j in range(n):
            out[i, j] = 0j


@device
def re_trace_mul_adj(a, b, n):
    """Re tr(a b^+) = Re sum_ik a_ik conj(b_ik)."""
    acc = 0.0
    for i in range(n):
        for k in range(n):
            acc += a[i, k].real * b[i, k].real + a[i, k].imag * b[i, k].imag
    return acc


@device
def re_trace_mul(a, b, n):
    """Re tr(a b) without forming the product."""
    acc = 0.0
    for i in range(n):
        for k in range(n):
            acc += (a[i, k] * b[k, i]).real
    return acc


@device
def ta_into(m, scale, out, n):
    """out = scale TA(m) (module docstring); for n = 1 the anti-Hermitian part ``i scale Im m``."""
    if n == 1:
        out[0, 0] = 1j * (scale * m[0, 0].imag)
        return
    for i in range(n):
        for j in range(n):
            out[i, j] = scale * 0.5 * (m[i, j] - m[j, i].conjugate())
    tr = 0j
    for i in range(n):
        tr += out[i, i]
    tr /= n
    for i in range(n):
        out[i, i] -= tr


# ----------------------------------------------------------------------------- exp of su(N) and SU(N) projection


@device
def _det3(M):
    return (
        M[0, 0] * (M[1, 1] * M[2, 2] - M[1, 2] * M[2, 1])
        - M[0, 1] * (M[1, 0] * M[2, 2] - M[1, 2] * M[2, 0])
        + M[0, 2] * (M[1, 0] * M[2, 1] - M[1, 1] * M[2, 0])
    )


@device
def _expm_su3_into(X, out, q, q2):
    """exp(X) for X in su(3): Cayley-Hamilton, exp(iQ) = f0 + f1 Q + f2 Q^2 with Q = -i X (Morningstar & Peardon).

    The same steps as :func:`latticeml.groups.expm_su3_into`: c0 = det Q, c1 = tr Q^2 / 2, the
    small-Q series below c1 = 1e-12, and f_j(-c0) = (-1)^j conj f_j(c0) to keep theta in [0, pi/2].
    """
    for i in range(3):
        for j in range(3):
            q[i, j] = -1j * X[i, j]
    for i in range(3):
        for j in range(3):
            q2[i, j] = q[i, 0] * q[0, j] + q[i, 1] * q[1, j] + q[i, 2] * q[2, j]
    c0 = _det3(q).real
    c1 = 0.5 * (q2[0, 0] + q2[1, 1] + q2[2, 2]).real
    if c1 < 1e-12:
        f0 = 1.0 - 1j * c0 / 6.0
        f1 = 1j * (1.0 - c1 / 6.0) + c0 / 24.0
        f2 = -0.5 + c1 / 24.0 + 1j * c0 / 120.0
    else:
        neg = c0 < 0.0
        c0a = -c0 if neg else c0
        ratio = c0a / (2.0 * (c1 / 3.0) ** 1.5)
        ratio = min(ratio, 1.0)
        theta = math.acos(ratio)
        u = math.sqrt(c1 / 3.0) * math.cos(theta / 3.0)
        w = math.sqrt(c1) * math.sin(theta / 3.0)
        u2 = u * u
        w2 = w * w
        if abs(w) < 0.05:  # sin(w)/w by its series where the ratio loses digits
            xi0 = 1.0 - w2 / 6.0 * (1.0 - w2 / 20.0 * (1.0 - w2 / 42.0))
        else:
            xi0 = math.sin(w) / w
        cw = math.cos(w)
        e2iu = complex(math.cos(2.0 * u), math.sin(2.0 * u))
        emiu = complex(math.cos(u), -math.sin(u))
        den = 9.0 * u2 - w2
        f0 = ((u2 - w2) * e2iu + emiu * (8.0 * u2 * cw + 2j * u * (3.0 * u2 + w2) * xi0)) / den
        f1 = (2.0 * u * e2iu - emiu * (2.0 * u * cw - 1j * (3.0 * u2 - w2) * xi0)) / den
        f2 = (e2iu - emiu * (cw + 3j * u * xi0)) / den
        if neg:
            f0 = f0.conjugate()
            f1 = -f1.conjugate()
            f2 = f2.conjugate()
    for i in range(3):
        for j in range(3):
            out[i, j] = f1 * q[i, j] + f2 * q2[i, j]
        out[i, i] += f0


@device
def expm_into(X, out, w1, w2, n):
    """out = exp(X) for X in u(1) (n = 1: X = i phi), su(2) or su(3); w1, w2 scratch (MAXN, MAXN).

    n = 1: the phase; n = 2: ``cos r + (sin r / r) X`` with ``X^2 = -r^2``; n = 3:
    Cayley-Hamilton. The choice by n of :func:`latticeml.groups.expm_algebra_into`.
    """
    if n == 1:
        phi = X[0, 0].imag
        out[0, 0] = complex(math.cos(phi), math.sin(phi))
    elif n == 2:
        r = math.sqrt(abs(X[0, 0]) ** 2 + abs(X[0, 1]) ** 2)
        c = math.cos(r)
        s = math.sin(r) / r if r > 1e-300 else 1.0
        out[0, 0] = c + s * X[0, 0]
        out[0, 1] = s * X[0, 1]
        out[1, 0] = s * X[1, 0]
        out[1, 1] = c + s * X[1, 1]
    else:
        _expm_su3_into(X, out, w1, w2)


@device
def restore_special_unitary_into(U, n):
    """Remove the rounding drift of an SU(2) or SU(3) matrix in place (:func:`latticeml.groups.restore_special_unitary_into`).

    n = 2: the nearest matrix of the quaternion form ``[[a, b], [-b*, a*]]``; n = 3: Gram-Schmidt
    on the first two rows and the third as the conjugate of their cross product (det = 1 exactly).
    """
    if n == 2:
        a = 0.5 * (U[0, 0] + U[1, 1].conjugate())
        b = 0.5 * (U[0, 1] - U[1, 0].conjugate())
        r = math.sqrt(a.real * a.real + a.imag * a.imag + b.real * b.real + b.imag * b.imag)
        a /= r
        b /= r
        U[0, 0] = a
        U[0, 1] = b
        U[1, 0] = -b.conjugate()
        U[1, 1] = a.conjugate()
        return
    for i in range(2):
        for k in range(i):
            proj = 0j
            for j in range(3):
                proj += U[k, j].conjugate() * U[i, j]
            for j in range(3):
                U[i, j] -= proj * U[k, j]
        nrm = 0.0
        for j in range(3):
            nrm += U[i, j].real ** 2 + U[i, j].imag ** 2
        nrm = math.sqrt(nrm)
        for j in range(3):
            U[i, j] /= nrm
    U[2, 0] = (U[0, 1] * U[1, 2] - U[0, 2] * U[1, 1]).conjugate()
    U[2, 1] = (U[0, 2] * U[1, 0] - U[0, 0] * U[1, 2]).conjugate()
    U[2, 2] = (U[0, 0] * U[1, 1] - U[0, 1] * U[1, 0]).conjugate()


# ----------------------------------------------------------------------------- loops


@device
def staple_into(U, fwd, bwd, mu, s, out, w0, w1, n):
    """out = A_mu(x), the staple sum of link (mu, s) (:func:`latticeml.theories.sun.staple_into`).

    ``A_mu(x) = sum_{nu != mu} [U_nu(x+mu) U_mu(x+nu)^+ U_nu(x)^+ + U_nu(x+mu-nu)^+ U_mu(x-nu)^+ U_nu(x-nu)]``,
    so that ``U_mu(x) A_mu(x)`` is the sum of the 2 (D - 1) plaquettes through the link.
    """
    D = U.shape[0]
    zero_into(out, n)
    xp = fwd[s, mu]
    for nu in range(D):
        if nu == mu:
            continue
        xm = bwd[s, nu]
        mat_mul_adj(U[nu, xp], U[mu, fwd[s, nu]], w0, n)
        mat_mul_adj(w0, U[nu, s], w1, n)
        add_into(w1, out, n)
        mat_mul(U[mu, xm], U[nu, bwd[xp, nu]], w0, n)
        adj_mul(w0, U[nu, xm], w1, n)
        add_into(w1, out, n)


@device
def plaquette_at(U, fwd, mu, nu, s, w0, w1, n):
    """Re tr U_P(x) / N of plane (mu, nu) at site s: ``Re tr(U_mu(x) U_nu(x+mu) [U_nu(x) U_mu(x+nu)]^+) / N``."""
    mat_mul(U[mu, s], U[nu, fwd[s, mu]], w0, n)
    mat_mul(U[nu, s], U[mu, fwd[s, nu]], w1, n)
    return re_trace_mul_adj(w0, w1, n) / n


@device
def u1_plaquette_angle(theta, fwd, mu, nu, s):
    """theta_mu(x) + theta_nu(x + mu) - theta_mu(x + nu) - theta_nu(x) (:func:`latticeml.theories.u1.plaquette_angle_at`)."""
    return theta[mu, s] + theta[nu, fwd[s, mu]] - theta[mu, fwd[s, nu]] - theta[nu, s]
