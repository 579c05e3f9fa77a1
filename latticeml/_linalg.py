"""Small dense colour-matrix kernels for use inside other Numba kernels.

Every function here is ``@njit(inline="always")`` and writes into a caller-provided ``out``
array, so a kernel allocates its work space once per thread (not once per site). Matrices are
complex128 C-contiguous ``(N, N)`` views such as ``U[mu, s]`` of a link field viewed as
``(D, V, N, N)``. ``out`` must not alias an input.

The loops run to the runtime size ``n = a.shape[0]``; N = 3 has unrolled fast paths, since
SU(3) is where the time goes (LLVM cannot unroll a loop whose trip count it does not know).
"""

from __future__ import annotations

from numba import njit


@njit(inline="always", cache=True)
def mat_mul(a, b, out):
    """out = a @ b."""
    n = a.shape[0]
    if n == 3:
        for i in range(3):
            a0 = a[i, 0]
            a1 = a[i, 1]
            a2 = a[i, 2]
            out[i, 0] = a0 * b[0, 0] + a1 * b[1, 0] + a2 * b[2, 0]
            out[i, 1] = a0 * b[0, 1] + a1 * b[1, 1] + a2 * b[2, 1]
            out[i, 2] = a0 * b[0, 2] + a1 * b[1, 2] + a2 * b[2, 2]
        return
    for i in range(n):
        for j in range(n):
            acc = 0j
            for k in range(n):
                acc += a[i, k] * b[k, j]
            out[i, j] = acc


@njit(inline="always", cache=True)
def mat_mul_adj(a, b, out):
    """out = a @ b^dagger."""
    n = a.shape[0]
    if n == 3:
        for i in range(3):
            a0 = a[i, 0]
            a1 = a[i, 1]
            a2 = a[i, 2]
            for j in range(3):
                out[i, j] = a0 * b[j, 0].conjugate() + a1 * b[j, 1].conjugate() + a2 * b[j, 2].conjugate()
        return
    for i in range(n):
        for j in range(n):
            acc = 0j
            for k in range(n):
                acc += a[i, k] * b[j, k].conjugate()
            out[i, j] = acc


@njit(inline="always", cache=True)
def adj_mul(a, b, out):
    """out = a^dagger @ b."""
    n = a.shape[0]
    if n == 3:
        for i in range(3):
            c0 = a[0, i].conjugate()
            c1 = a[1, i].conjugate()
            c2 = a[2, i].conjugate()
            out[i, 0] = c0 * b[0, 0] + c1 * b[1, 0] + c2 * b[2, 0]
            out[i, 1] = c0 * b[0, 1] + c1 * b[1, 1] + c2 * b[2, 1]
            out[i, 2] = c0 * b[0, 2] + c1 * b[1, 2] + c2 * b[2, 2]
        return
    for i in range(n):
        for j in range(n):
            acc = 0j
            for k in range(n):
                acc += a[k, i].conjugate() * b[k, j]
            out[i, j] = acc


@njit(inline="always", cache=True)
def re_trace_mul(a, b):
    """Re tr(a @ b) without forming the product."""
    n = a.shape[0]
    acc = 0.0
    for i in range(n):
        for k in range(n):
            acc += (a[i, k] * b[k, i]).real
    return acc


@njit(inline="always", cache=True)
def re_trace_mul_adj(a, b):
    """Re tr(a @ b^dagger) = Re sum_ik a_ik conj(b_ik)."""
    n = a.shape[0]
    acc = 0.0
    for i in range(n):
        for k in range(n):
            acc += a[i, k].real * b[i, k].real + a[i, k].imag * b[i, k].imag
    return acc


@njit(inline="always", cache=True)
def trace(a):
    n = a.shape[0]
    acc = 0j
    for i in range(n):
        acc += a[i, i]
    return acc


@njit(inline="always", cache=True)
def copy_into(a, out):
    n = a.shape[0]
    for i in range(n):
        for j in range(n):
            out[i, j] = a[i, j]


@njit(inline="always", cache=True)
def add_into(a, out):
    """out += a."""
    n = a.shape[0]
    for i in range(n):
        for j in range(n):
            out[i, j] += a[i, j]


@njit(inline="always", cache=True)
def traceless_antihermitian_into(m, scale, out):
    """out = scale * [ (m - m^dagger)/2 - tr(m - m^dagger)/(2N) ]  (projection onto su(N))."""
    n = m.shape[0]
    for i in range(n):
        for j in range(n):
            out[i, j] = scale * 0.5 * (m[i, j] - m[j, i].conjugate())
    tr = 0j
    for i in range(n):
        tr += out[i, i]
    tr /= n
    for i in range(n):
        out[i, i] -= tr
