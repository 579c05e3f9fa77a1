"""Gauge groups U(1) and SU(N): random elements, the Lie algebra, exponentials and projections.

Shapes and conventions
----------------------
* U(1) elements are angles ``theta`` (float64), ``U = exp(i theta)``; angles are kept in
  ``(-pi, pi]`` by :func:`wrap_angle`.
* SU(N) elements are complex128 arrays ``(..., N, N)`` (any leading batch/direction/site axes),
  row-major colour matrices.
* The Lie algebra su(N) is represented by traceless anti-Hermitian matrices ``X``. Generators
  ``T_a = i lambda_a / 2`` (generalised Gell-Mann matrices, ``tr lambda_a lambda_b = 2 delta_ab``)
  satisfy ``tr(T_a T_b) = -delta_ab / 2``, so ``X = sum_a x_a T_a`` has components
  ``x_a = -2 tr(T_a X)`` and the positive inner product ``<X, Y> = -2 tr(X Y) = sum_a x_a y_a``.
* Forces are gradients in this inner product: for an action S, ``F = sum_a (d/dt S(e^{t T_a} U))|_0 T_a``.
  HMC momenta are ``P = sum_a p_a T_a`` with ``p_a ~ N(0, 1)``, kinetic energy
  ``K = -tr(P^2) = 1/2 sum_a p_a^2`` (:func:`random_algebra`).
* Gauge transformations act as ``U_mu(x) -> Omega(x) U_mu(x) Omega(x + mu)^dagger`` (for U(1):
  ``theta_mu(x) -> theta_mu(x) + alpha(x) - alpha(x + mu)``).

References: Haar draws by QR with phase fixing, F. Mezzadri, Notices AMS 54 (2007) 592
[math-ph/0609050]; the SU(3) exponential by Cayley-Hamilton, C. Morningstar and M. Peardon,
PRD 69 (2004) 054501 [hep-lat/0311018]; projection by SU(2) subgroups, N. Cabibbo and
E. Marinari, PLB 119 (1982) 387.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

from ._threads import run_chunks
from .lattice import check_shape

__all__ = [
    "wrap_angle",
    "su_generators",
    "random_algebra",
    "algebra_components",
    "from_components",
    "traceless_antihermitian",
    "expm_su",
    "expm_algebra_into",
    "su3_q_powers",
    "su3_closed_form",
    "restore_special_unitary_into",
    "haar_su",
    "random_near_identity",
    "project_su",
    "reunitarize",
    "unitarity_violation",
    "check_special_unitary",
    "random_gauge_transform",
    "gauge_transform",
    "random_gauge_transform_u1",
    "gauge_transform_u1",
]


# ----------------------------------------------------------------------------- U(1)


def wrap_angle(theta):
    """Map angles into ``(-pi, pi]``: ``wrap(t) = t - 2 pi * round(t / 2 pi)`` with the -pi edge sent to +pi."""
    w = np.remainder(np.asarray(theta, dtype=np.float64) + np.pi, 2 * np.pi) - np.pi
    return np.where(w == -np.pi, np.pi, w)


def random_gauge_transform_u1(rng: np.random.Generator, shape) -> np.ndarray:
    """Uniform random U(1) gauge transformation: angles ``alpha(x)`` of shape ``shape``."""
    shape = check_shape(shape)
    return rng.uniform(-np.pi, np.pi, size=shape)


def gauge_transform_u1(theta: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``theta_mu(x) + alpha(x) - alpha(x + mu)``, wrapped into (-pi, pi]; theta is ``(D, *shape)``."""
    theta = np.asarray(theta, dtype=np.float64)
    alpha = np.asarray(alpha, dtype=np.float64)
    D = theta.shape[0]
    if theta.ndim != D + 1 or alpha.shape != theta.shape[1:]:
        raise ValueError(
            f"U(1) links must have shape (D, L0, ..., L{{D-1}}) and alpha the lattice shape; got {theta.shape} and {alpha.shape}"
        )
    out = np.empty_like(theta)
    for mu in range(D):
        out[mu] = theta[mu] + alpha - np.roll(alpha, -1, axis=mu)
    return wrap_angle(out)


# ----------------------------------------------------------------------------- su(N) algebra


@lru_cache(maxsize=16)
def _generators(N: int) -> np.ndarray:
    lams = []
    for i in range(N):  # symmetric and antisymmetric off-diagonal Gell-Mann matrices
        for j in range(i + 1, N):
            s = np.zeros((N, N), complex)
            s[i, j] = s[j, i] = 1
            a = np.zeros((N, N), complex)
            a[i, j], a[j, i] = -1j, 1j
            lams += [s, a]
    for k in range(1, N):  # diagonal ones, normalised to tr lambda^2 = 2
        d = np.zeros((N, N), complex)
        d[np.arange(k), np.arange(k)] = 1
        d[k, k] = -k
        lams.append(d * np.sqrt(2.0 / (k * (k + 1))))
    T = 0.5j * np.array(lams)
    T.setflags(write=False)
    return T


def su_generators(N: int) -> np.ndarray:
    """Anti-Hermitian generators ``T_a = i lambda_a / 2``, shape ``(N^2 - 1, N, N)``, ``tr T_a T_b = -delta_ab / 2``."""
    if int(N) != N or N < 2:
        raise ValueError(f"SU(N) needs an integer N >= 2, got N={N}")
    return _generators(int(N))


def from_components(x: np.ndarray, N: int) -> np.ndarray:
    """``X = sum_a x_a T_a`` for components ``x`` of shape ``(..., N^2 - 1)``."""
    x = np.asarray(x, dtype=np.float64)
    T = su_generators(N)
    if x.shape[-1] != len(T):
        raise ValueError(f"su({N}) has {len(T)} components, got an array with last axis {x.shape[-1]}")
    return np.tensordot(x, T, axes=([-1], [0]))


def algebra_components(X: np.ndarray) -> np.ndarray:
    """Components ``x_a = -2 tr(T_a X)`` of traceless anti-Hermitian ``X`` (shape ``(..., N, N)``)."""
    X = np.asarray(X)
    T = su_generators(X.shape[-1])
    return -2.0 * np.einsum("aij,...ji->...a", T, X).real


def random_algebra(rng: np.random.Generator, N: int, size=()) -> np.ndarray:
    """Gaussian su(N) elements ``P = sum_a p_a T_a``, ``p_a ~ N(0,1)``: density ``exp(tr P^2) = exp(-1/2 sum p_a^2)``.

    These are the HMC momenta conjugate to ``U -> exp(t P) U``. Shape ``(*size, N, N)``.
    """
    size = (size,) if np.isscalar(size) else tuple(size)
    p = rng.standard_normal(size + (N * N - 1,))
    return from_components(p, N)


def traceless_antihermitian(M: np.ndarray) -> np.ndarray:
    """Projection onto su(N): ``(M - M^dagger)/2 - tr(M - M^dagger)/(2N)``, for ``(..., N, N)``."""
    M = np.asarray(M)
    N = M.shape[-1]
    A = 0.5 * (M - np.conj(np.swapaxes(M, -1, -2)))
    tr = np.trace(A, axis1=-2, axis2=-1)[..., None, None]
    return A - tr * np.eye(N) / N


# ----------------------------------------------------------------------------- exponential


@njit(inline="always", cache=True)
def expm_su2_into(X, out):
    """exp(X) for traceless anti-Hermitian 2x2 X, exactly: X^2 = -r^2 1 so exp(X) = cos r + (sin r / r) X."""
    r = np.sqrt(abs(X[0, 0]) ** 2 + abs(X[0, 1]) ** 2)
    c = np.cos(r)
    s = np.sin(r) / r if r > 1e-300 else 1.0
    out[0, 0] = c + s * X[0, 0]
    out[0, 1] = s * X[0, 1]
    out[1, 0] = s * X[1, 0]
    out[1, 1] = c + s * X[1, 1]


@njit(inline="always", cache=True)
def _su3_q_powers(X, q, q2):
    """q = -i X (Hermitian and traceless for X in su(3)), q2 = q q; returns (c0, c1) = (det q, tr q^2 / 2).

    These two invariants fix exp(X) = exp(iq) by Cayley-Hamilton (:func:`_su3_closed_form`).
    """
    for i in range(3):
        for j in range(3):
            q[i, j] = -1j * X[i, j]
    for i in range(3):
        for j in range(3):
            q2[i, j] = q[i, 0] * q[0, j] + q[i, 1] * q[1, j] + q[i, 2] * q[2, j]
    return _det(q).real, 0.5 * (q2[0, 0] + q2[1, 1] + q2[2, 2]).real


@njit(inline="always", cache=True)
def _su3_closed_form(c0, c1):
    """Morningstar & Peardon's closed form of exp(iQ) = f0 + f1 Q + f2 Q^2 (PRD 69 (2004) 054501, eqs. 23-33).

    For traceless Hermitian 3x3 Q with c0 = det Q, c1 = tr Q^2 / 2 > 0. The f_j returned are those of
    |c0|; the caller applies f_j(-c0) = (-1)^j conj f_j(c0) (their eq. 34) when ``neg``, which keeps
    theta in [0, pi/2] and the formulas stable. Also returns the intermediates that the derivatives
    of the f_j (the stout backward in :mod:`latticeml.smearing`) reuse:
    ``(f0, f1, f2, u, w, xi0, cos w, e^{2iu}, e^{-iu}, 9u^2 - w^2, neg)``.
    """
    neg = c0 < 0.0
    c0a = -c0 if neg else c0
    ratio = c0a / (2.0 * (c1 / 3.0) ** 1.5)
    if ratio > 1.0:
        ratio = 1.0
    theta = np.arccos(ratio)
    u = np.sqrt(c1 / 3.0) * np.cos(theta / 3.0)
    w = np.sqrt(c1) * np.sin(theta / 3.0)
    u2 = u * u
    w2 = w * w
    if abs(w) < 0.05:  # xi0(w) = sin(w)/w by its series where the ratio loses digits
        xi0 = 1.0 - w2 / 6.0 * (1.0 - w2 / 20.0 * (1.0 - w2 / 42.0))
    else:
        xi0 = np.sin(w) / w
    cw = np.cos(w)
    e2iu = np.cos(2.0 * u) + 1j * np.sin(2.0 * u)
    emiu = np.cos(u) - 1j * np.sin(u)
    den = 9.0 * u2 - w2
    f0 = ((u2 - w2) * e2iu + emiu * (8.0 * u2 * cw + 2j * u * (3.0 * u2 + w2) * xi0)) / den
    f1 = (2.0 * u * e2iu - emiu * (2.0 * u * cw - 1j * (3.0 * u2 - w2) * xi0)) / den
    f2 = (e2iu - emiu * (cw + 3j * u * xi0)) / den
    return f0, f1, f2, u, w, xi0, cw, e2iu, emiu, den, neg


#: Public names of the two SU(3) building blocks, for kernels in other modules: the stout backward
#: (:mod:`latticeml.smearing.stout_smearing`) needs the invariants and the coefficients, not only exp.
su3_q_powers = _su3_q_powers
su3_closed_form = _su3_closed_form


@njit(inline="always", cache=True)
def expm_su3_into(X, out):
    """exp(X) for traceless anti-Hermitian 3x3 X by Cayley-Hamilton (Morningstar & Peardon 2004, eqs. 19-34).

    With Q = -i X (Hermitian, traceless), exp(iQ) = f0 + f1 Q + f2 Q^2, where f_j depend on
    c0 = det Q and c1 = tr Q^2 / 2 only (:func:`_su3_closed_form`).
    """
    q = np.empty((3, 3), dtype=np.complex128)
    q2 = np.empty((3, 3), dtype=np.complex128)
    c0, c1 = _su3_q_powers(X, q, q2)
    if c1 < 1e-12:
        # small Q: with Q^3 = c1 Q + c0 (Cayley-Hamilton) the Taylor series of exp(iQ) gives the f_j
        # to first order in c0 and c1; the next terms are O(c1^2) < 1e-24
        f0 = 1.0 - 1j * c0 / 6.0
        f1 = 1j * (1.0 - c1 / 6.0) + c0 / 24.0
        f2 = -0.5 + c1 / 24.0 + 1j * c0 / 120.0
    else:
        f0, f1, f2, _, _, _, _, _, _, _, neg = _su3_closed_form(c0, c1)
        if neg:
            f0 = f0.conjugate()
            f1 = -f1.conjugate()
            f2 = f2.conjugate()
    for i in range(3):
        for j in range(3):
            out[i, j] = f1 * q[i, j] + f2 * q2[i, j]
        out[i, i] += f0


@njit(inline="always", cache=True)
def expm_taylor_into(X, out, work1, work2):
    """exp(X) for any small matrix by scaling and squaring a degree-16 Taylor series.

    X is scaled by 2^-k so that its max-row-sum norm is below 1/4 (truncation error < 1e-19),
    the series is summed by Horner's rule, and the result is squared k times. work1 and work2
    are (N, N) complex scratch arrays.
    """
    n = X.shape[0]
    nrm = 0.0
    for i in range(n):
        row = 0.0
        for j in range(n):
            row += abs(X[i, j])
        nrm = max(nrm, row)
    k = 0
    while nrm > 0.25:
        nrm *= 0.5
        k += 1
    scale = 0.5**k
    # Horner: out = 1 + Y/1 (1 + Y/2 (1 + ... (1 + Y/16)))
    for i in range(n):
        for j in range(n):
            out[i, j] = 0.0
        out[i, i] = 1.0
    for m in range(16, 0, -1):
        for i in range(n):
            for j in range(n):
                acc = 0j
                for l in range(n):
                    acc += X[i, l] * out[l, j]
                work1[i, j] = acc * (scale / m)
        for i in range(n):
            for j in range(n):
                out[i, j] = work1[i, j]
            out[i, i] += 1.0
    for _ in range(k):
        for i in range(n):
            for j in range(n):
                acc = 0j
                for l in range(n):
                    acc += out[i, l] * out[l, j]
                work2[i, j] = acc
        for i in range(n):
            for j in range(n):
                out[i, j] = work2[i, j]


@njit(inline="always", cache=True)
def _expm_u1_into(X, out):
    """exp(i phi) for the 1x1 u(1) element X = i phi."""
    phi = X[0, 0].imag
    out[0, 0] = np.cos(phi) + 1j * np.sin(phi)


@njit(inline="always", cache=True)
def expm_algebra_into(X, out, work1, work2, n):
    """out = exp(X) for X in u(1) (n = 1: X = i phi) or su(n): the one choice of method by N.

    n = 1: the phase ``cos phi + i sin phi``; n = 2: the closed form of :func:`expm_su2_into`;
    n = 3: Cayley-Hamilton, :func:`expm_su3_into`; n >= 4: :func:`expm_taylor_into`. ``work1``,
    ``work2`` are (N, N) complex128 scratch matrices (used for n >= 4 only); ``n = X.shape[0]``.
    Every kernel that exponentiates an algebra element calls this, so the choice is made in one
    place.

    Compile only the method a run uses: a kernel that knows ``n`` only at run time compiles every
    branch (most of an MD kernel's code). The SU(N) update kernels are therefore built per N by a
    ``functools.cache``'d factory whose closure holds N (e.g. ``theories.sun._evolve_chunk(N)``):
    this function and :func:`restore_special_unitary_into` are inlined (``inline="always"``) and
    Numba prunes the branches for other N before typing them; the closure is cached on disk per N.
    (``numba.literally`` does the same at compile time but sends every call from Python through the
    dispatcher's compile path, ~13 ms a call: measured, it made an 8x8 SU(2) sweep 400x slower.)
    """
    if n == 1:
        _expm_u1_into(X, out)
    elif n == 2:
        expm_su2_into(X, out)
    elif n == 3:
        expm_su3_into(X, out)
    else:
        expm_taylor_into(X, out, work1, work2)


@njit(cache=True)
def _expm_batch(X, out, n):
    work1 = np.empty((n, n), dtype=np.complex128)
    work2 = np.empty((n, n), dtype=np.complex128)
    for b in range(X.shape[0]):
        expm_algebra_into(X[b], out[b], work1, work2, n)


def _as_matrices(M, name="matrix") -> tuple[np.ndarray, tuple]:
    M = np.asarray(M)
    if M.ndim < 2 or M.shape[-1] != M.shape[-2]:
        raise ValueError(f"{name} must have shape (..., N, N), got {M.shape}")
    lead = M.shape[:-2]
    flat = np.ascontiguousarray(M.reshape((-1,) + M.shape[-2:]), dtype=np.complex128)
    return flat, lead


def expm_su(X: np.ndarray) -> np.ndarray:
    """exp(X) for traceless anti-Hermitian ``X`` of shape ``(..., N, N)``: an SU(N) element.

    Exact closed form for N = 2, Cayley-Hamilton (Morningstar & Peardon 2004) for N = 3,
    scaling and squaring of the Taylor series for N >= 4.
    """
    flat, lead = _as_matrices(X, "the su(N) element X")
    out = np.empty_like(flat)
    _expm_batch(flat, out, flat.shape[-1])
    return out.reshape(lead + flat.shape[-2:])


# ----------------------------------------------------------------------------- random elements


def haar_su(rng: np.random.Generator, N: int, size=()) -> np.ndarray:
    """Haar-random SU(N) matrices, shape ``(*size, N, N)`` (Mezzadri 2007).

    QR of a complex Ginibre matrix with the phases of diag(R) moved into Q gives Haar U(N); dividing
    by one N-th root of the determinant maps Haar U(N) to Haar SU(N) (the map commutes with left
    multiplication by SU(N)).
    """
    if int(N) != N or N < 2:
        raise ValueError(f"SU(N) needs an integer N >= 2, got N={N}")
    size = (size,) if np.isscalar(size) else tuple(size)
    Z = (rng.standard_normal(size + (N, N)) + 1j * rng.standard_normal(size + (N, N))) / np.sqrt(2.0)
    Q, R = np.linalg.qr(Z)
    d = np.diagonal(R, axis1=-2, axis2=-1)
    Q = Q * (d / np.abs(d))[..., None, :]
    det = np.linalg.det(Q)
    Q = Q / (det ** (1.0 / N))[..., None, None]
    return np.ascontiguousarray(Q)


def random_near_identity(rng: np.random.Generator, N: int, size=(), *, spread: float) -> np.ndarray:
    """SU(N) elements ``exp(spread * P)`` with Gaussian ``P`` (:func:`random_algebra`), shape ``(*size, N, N)``.

    ``spread`` sets the typical distance from the identity; the distribution is symmetric under
    ``U -> U^dagger``, as a Metropolis proposal must be.
    """
    if spread < 0:
        raise ValueError(f"spread must be >= 0, got {spread}")
    return expm_su(spread * random_algebra(rng, N, size))


# ----------------------------------------------------------------------------- projections


@njit(inline="always", cache=True)
def _det_lu(M):
    """det of an (N, N) complex matrix by Gaussian elimination with partial pivoting, on a copy.

    Written out rather than ``np.linalg.det``: this is inlined into every update kernel (through
    :func:`reunitarize_into`), and ``np.linalg.det`` would make each of them compile Numba's LAPACK
    wrappers, for every N, even where only the N = 2, 3 branches ever run.
    """
    n = M.shape[0]
    A = M.copy()
    det = 1.0 + 0.0j
    for k in range(n):
        p = k
        best = abs(A[k, k])
        for i in range(k + 1, n):
            if abs(A[i, k]) > best:
                p = i
                best = abs(A[i, k])
        if best == 0.0:
            return 0.0j
        if p != k:
            for j in range(n):
                t = A[k, j]
                A[k, j] = A[p, j]
                A[p, j] = t
            det = -det
        det *= A[k, k]
        for i in range(k + 1, n):
            f = A[i, k] / A[k, k]
            for j in range(k + 1, n):
                A[i, j] -= f * A[k, j]
    return det


@njit(inline="always", cache=True)
def reunitarize_into(U):
    """Gram-Schmidt on the rows of U in place, then fix det = 1 (exactly for N = 3 via the cross product)."""
    n = U.shape[0]
    for i in range(n):
        if n == 3 and i == 2:
            # third row = conj(row0 x row1): orthonormal to both with det = 1
            U[2, 0] = (U[0, 1] * U[1, 2] - U[0, 2] * U[1, 1]).conjugate()
            U[2, 1] = (U[0, 2] * U[1, 0] - U[0, 0] * U[1, 2]).conjugate()
            U[2, 2] = (U[0, 0] * U[1, 1] - U[0, 1] * U[1, 0]).conjugate()
            return
        for k in range(i):
            proj = 0j
            for j in range(n):
                proj += U[k, j].conjugate() * U[i, j]
            for j in range(n):
                U[i, j] -= proj * U[k, j]
        nrm = 0.0
        for j in range(n):
            nrm += U[i, j].real ** 2 + U[i, j].imag ** 2
        nrm = np.sqrt(nrm)
        for j in range(n):
            U[i, j] /= nrm
    # general N: rows are orthonormal, det has modulus 1; rotate the last row's phase
    det = _det_lu(U)
    phase = (det / abs(det)).conjugate()
    for j in range(n):
        U[n - 1, j] *= phase


@njit(inline="always", cache=True)
def _restore_su2_into(U):
    """The nearest SU(2) matrix in the quaternion form (see :func:`restore_special_unitary_into`), in place."""
    a = 0.5 * (U[0, 0] + U[1, 1].conjugate())
    b = 0.5 * (U[0, 1] - U[1, 0].conjugate())
    r = np.sqrt(a.real * a.real + a.imag * a.imag + b.real * b.real + b.imag * b.imag)
    a /= r
    b /= r
    U[0, 0] = a
    U[0, 1] = b
    U[1, 0] = -b.conjugate()
    U[1, 1] = a.conjugate()


@njit(inline="always", cache=True)
def restore_special_unitary_into(U, n):
    """Remove the rounding drift of a matrix that is SU(n) up to rounding, in place: the one re-unitarisation.

    n = 2: the nearest SU(2) matrix in the quaternion form ``[[a, b], [-b*, a*]]``,
    ``a = (U00 + U11*)/2``, ``b = (U01 - U10*)/2``, normalised (no determinant needed);
    n >= 3: :func:`reunitarize_into` (Gram-Schmidt, det fixed to 1). Every update kernel
    (molecular dynamics, Metropolis, heatbath, overrelaxation) calls this after changing a link,
    so links stay in SU(N) to ~1e-15 however long the chain. ``n = U.shape[0]``.
    """
    if n == 2:
        _restore_su2_into(U)
    else:
        reunitarize_into(U)


@njit(cache=True)
def _reunitarize_batch(U):
    for b in range(U.shape[0]):
        reunitarize_into(U[b])


def reunitarize(U: np.ndarray) -> np.ndarray:
    """Return the nearest-by-Gram-Schmidt SU(N) matrices to nearly unitary ``U`` (``(..., N, N)``).

    Use it to remove rounding drift after many updates; for a genuine projection of an arbitrary
    matrix onto SU(N) use :func:`project_su`.
    """
    flat, lead = _as_matrices(U, "U")
    flat = flat.copy()
    _reunitarize_batch(flat)
    return flat.reshape(lead + flat.shape[-2:])


@njit(cache=True)
def _project_batch(M, W, max_sweeps, tol):
    """Maximise Re tr(W^dagger M) over W in SU(N) by sweeps over the SU(2) subgroups (Cabibbo-Marinari).

    Each subgroup step multiplies W from the left by the SU(2) element g that maximises
    Re tr(g^dagger A_sub) with A = M W^dagger: g is A_sub's quaternion part normalised (exact max).
    """
    n = M.shape[1]
    A = np.empty((n, n), dtype=np.complex128)
    Wn = np.empty((n, n), dtype=np.complex128)
    for b in range(M.shape[0]):
        # start from the Gram-Schmidt SU(N) matrix nearest to M
        for i in range(n):
            for j in range(n):
                W[b, i, j] = M[b, i, j]
        reunitarize_into(W[b])
        for _sweep in range(max_sweeps):
            largest = 0.0  # the largest subgroup rotation angle of this sweep
            for p in range(n):
                for q in range(p + 1, n):
                    # A = M W^dagger restricted to rows/cols (p, q)
                    a00 = 0j
                    a01 = 0j
                    a10 = 0j
                    a11 = 0j
                    for k in range(n):
                        a00 += M[b, p, k] * W[b, p, k].conjugate()
                        a01 += M[b, p, k] * W[b, q, k].conjugate()
                        a10 += M[b, q, k] * W[b, p, k].conjugate()
                        a11 += M[b, q, k] * W[b, q, k].conjugate()
                    # quaternion part of the 2x2 block: g = (x0 + i x.sigma)/|x|, maximising Re tr(g^+ a)
                    x0 = 0.5 * (a00.real + a11.real)
                    x3 = 0.5 * (a00.imag - a11.imag)
                    x2 = 0.5 * (a01.real - a10.real)
                    x1 = 0.5 * (a01.imag + a10.imag)
                    r = np.sqrt(x0 * x0 + x1 * x1 + x2 * x2 + x3 * x3)
                    if r < 1e-300:
                        continue
                    # sin of the rotation angle (a rotation by more than pi/2 counts as large)
                    largest = max(largest, np.sqrt(x1 * x1 + x2 * x2 + x3 * x3) / r if x0 > 0 else 1.0)
                    g00 = complex(x0, x3) / r
                    g01 = complex(x2, x1) / r
                    g10 = complex(-x2, x1) / r
                    g11 = complex(x0, -x3) / r
                    # W <- g W on rows p, q
                    for k in range(n):
                        wp = W[b, p, k]
                        wq = W[b, q, k]
                        W[b, p, k] = g00 * wp + g01 * wq
                        W[b, q, k] = g10 * wp + g11 * wq
            # stop on the step in W, not on the gain in Re tr: near the maximum the gain is
            # quadratic in the step, so a gain of 1e-16 would leave W uncertain at 1e-8
            if largest <= tol:
                break
        # keep it on the group to rounding
        for i in range(n):
            for j in range(n):
                Wn[i, j] = W[b, i, j]
        reunitarize_into(Wn)
        for i in range(n):
            for j in range(n):
                W[b, i, j] = Wn[i, j]


def project_su(M: np.ndarray, *, max_sweeps: int = 200, tol: float = 1e-14) -> np.ndarray:
    """Project arbitrary ``(..., N, N)`` matrices onto SU(N) by maximising ``Re tr(W^dagger M)``.

    This is the projection APE smearing needs. For SU(2) one subgroup step is exact; for N >= 3 the
    Cabibbo-Marinari sweeps converge to the maximum (iterated until no subgroup rotation of a
    sweep exceeds the angle ``tol``, at most ``max_sweeps`` sweeps).
    """
    flat, lead = _as_matrices(M, "M")
    W = np.empty_like(flat)
    _project_batch(flat, W, int(max_sweeps), float(tol))
    return W.reshape(lead + flat.shape[-2:])


# ----------------------------------------------------------------------------- checks


@njit(inline="always", cache=True)
def _det(M):
    """det of one (N, N) complex matrix in closed form, N = 2 or 3 only.

    No ``np.linalg.det`` fallback here on purpose: every kernel that inlines this (the SU(3)
    exponential, the unitarity check) would compile Numba's LAPACK wrappers, which took about as
    long as the rest of those kernels with an empty Numba cache. N >= 4 determinants are taken
    in NumPy (:func:`unitarity_violation`).
    """
    if M.shape[0] == 2:
        return M[0, 0] * M[1, 1] - M[0, 1] * M[1, 0]
    return (
        M[0, 0] * (M[1, 1] * M[2, 2] - M[1, 2] * M[2, 1])
        - M[0, 1] * (M[1, 0] * M[2, 2] - M[1, 2] * M[2, 0])
        + M[0, 2] * (M[1, 0] * M[2, 1] - M[1, 1] * M[2, 0])
    )


@njit(nogil=True, cache=True)
def _violation_chunk(U, start, stop):
    """(max |U U^dagger - 1|^2, max |det U - 1|^2) over the matrices ``start <= b < stop`` of U (M, N, N).

    The determinant part is computed for N = 2, 3 only (0 is returned for N >= 4; see _det).
    """
    n = U.shape[1]
    unit = 0.0
    det = 0.0
    for b in range(start, stop):
        for i in range(n):
            for j in range(n):
                acc = 0j
                for k in range(n):
                    acc += U[b, i, k] * U[b, j, k].conjugate()
                if i == j:
                    acc -= 1.0
                unit = max(unit, acc.real * acc.real + acc.imag * acc.imag)  # |.|^2: no sqrt per entry
        if n <= 3:
            d = _det(U[b]) - 1.0
            det = max(det, d.real * d.real + d.imag * d.imag)
    return unit, det


def unitarity_violation(U: np.ndarray) -> tuple[float, float]:
    """``(max |U U^dagger - 1|, max |det U - 1|)`` over all matrices of ``U`` (``(..., N, N)``)."""
    flat, _ = _as_matrices(U, "U")
    if flat.shape[0] == 0:
        return 0.0, 0.0
    worst = np.array(run_chunks("matrices", flat.shape[0], _violation_chunk, flat))
    unit, det = (float(v) for v in np.sqrt(worst.max(axis=0)))
    if flat.shape[-1] > 3:  # LU determinants in NumPy (see _det)
        det = float(np.abs(np.linalg.det(flat) - 1.0).max())
    return unit, det


def check_special_unitary(U: np.ndarray, *, tol: float = 1e-10, name: str = "links") -> None:
    """Raise ``ValueError`` unless every matrix of ``U`` is in SU(N) to ``tol``."""
    unit, det = unitarity_violation(U)
    if unit > tol or det > tol:
        raise ValueError(
            f"{name} are not SU(N) matrices: max|U U^dagger - 1| = {unit:.2e}, max|det U - 1| = {det:.2e} "
            f"(tolerance {tol:.0e}). Build links with latticeml.groups (haar_su, expm_su) or repair drift "
            "with latticeml.groups.reunitarize."
        )


# ----------------------------------------------------------------------------- gauge transformations


def random_gauge_transform(rng: np.random.Generator, shape, N: int) -> np.ndarray:
    """Haar-random SU(N) gauge transformation ``Omega(x)``, shape ``(*shape, N, N)``."""
    return haar_su(rng, N, check_shape(shape))


def gauge_transform(U: np.ndarray, Omega: np.ndarray) -> np.ndarray:
    """``U_mu(x) -> Omega(x) U_mu(x) Omega(x + mu)^dagger`` for links ``(D, *shape, N, N)``."""
    U = np.asarray(U)
    Omega = np.asarray(Omega)
    D = U.shape[0]
    if U.ndim != D + 3 or Omega.shape != U.shape[1:]:
        raise ValueError(
            f"SU(N) links must have shape (D, L0, ..., L{{D-1}}, N, N) and Omega (L0, ..., N, N); got {U.shape} and {Omega.shape}"
        )
    out = np.empty_like(U)
    for mu in range(D):
        Om_fwd = np.roll(Omega, -1, axis=mu)
        out[mu] = Omega @ U[mu] @ np.conj(np.swapaxes(Om_fwd, -1, -2))
    return out
