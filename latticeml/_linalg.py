"""Small dense colour-matrix kernels for use inside other Numba kernels.

Every function here is ``@njit(inline="always")``. The matrix routines write into a
caller-provided ``out`` array, so a kernel allocates its work space once per thread (not once per
site); the SU(3) structure-of-arrays helpers at the end work on 18-tuples held in registers. Matrices are
complex128 C-contiguous ``(N, N)`` views such as ``U[mu, s]`` of a link field viewed as
``(D, V, N, N)``. ``out`` must not alias an input.

The loops run to the runtime size ``n = a.shape[0]``; N = 3 has unrolled fast paths, since
SU(3) is where the time goes (LLVM cannot unroll a loop whose trip count it does not know).
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit
from numba.core import cgutils, types
from numba.extending import intrinsic


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


# ----------------------------------------------------------------------------- SU(3), many sites at once
#
# The bulk SU(3) kernels (plaquette, staples, force in latticeml.theories.sun) vectorise across
# sites, not within a matrix: n sites are stored "structure of arrays", an (18, n) float64 block
# whose row 2*(3*r + c) holds Re U_rc and row 2*(3*r + c) + 1 holds Im U_rc for all n sites.
# A loop over the site index i then does the same scalar arithmetic for every i, which LLVM turns
# into AVX-512/AVX2 instructions. The helpers below are the per-site arithmetic on 18-tuples of
# floats (the matrix of one site, re/im interleaved). They contain no loops on purpose: a loop
# inside the site loop would stop LLVM from vectorising it.


@njit(inline="always", cache=True)
def soa3_load(M, i):
    """The SU(3) matrix of site ``i`` of an (18, L) block, as an 18-tuple (re, im interleaved)."""
    return (
        M[0, i], M[1, i], M[2, i], M[3, i], M[4, i], M[5, i],
        M[6, i], M[7, i], M[8, i], M[9, i], M[10, i], M[11, i],
        M[12, i], M[13, i], M[14, i], M[15, i], M[16, i], M[17, i],
    )  # fmt: skip


@njit(inline="always", cache=True)
def soa3_store(M, i, a):
    """M[:, i] = a."""
    M[0, i] = a[0]
    M[1, i] = a[1]
    M[2, i] = a[2]
    M[3, i] = a[3]
    M[4, i] = a[4]
    M[5, i] = a[5]
    M[6, i] = a[6]
    M[7, i] = a[7]
    M[8, i] = a[8]
    M[9, i] = a[9]
    M[10, i] = a[10]
    M[11, i] = a[11]
    M[12, i] = a[12]
    M[13, i] = a[13]
    M[14, i] = a[14]
    M[15, i] = a[15]
    M[16, i] = a[16]
    M[17, i] = a[17]


@njit(inline="always", cache=True)
def soa3_add_store(M, i, a):
    """M[:, i] += a (18 real additions)."""
    M[0, i] += a[0]
    M[1, i] += a[1]
    M[2, i] += a[2]
    M[3, i] += a[3]
    M[4, i] += a[4]
    M[5, i] += a[5]
    M[6, i] += a[6]
    M[7, i] += a[7]
    M[8, i] += a[8]
    M[9, i] += a[9]
    M[10, i] += a[10]
    M[11, i] += a[11]
    M[12, i] += a[12]
    M[13, i] += a[13]
    M[14, i] += a[14]
    M[15, i] += a[15]
    M[16, i] += a[16]
    M[17, i] += a[17]


@njit(inline="always", cache=True)
def su3_mul(a, b):
    """a @ b for 18-tuples: 27 complex multiplications and 18 complex additions (198 flops)."""
    return (
        a[0] * b[0] - a[1] * b[1] + a[2] * b[6] - a[3] * b[7] + a[4] * b[12] - a[5] * b[13],
        a[0] * b[1] + a[1] * b[0] + a[2] * b[7] + a[3] * b[6] + a[4] * b[13] + a[5] * b[12],
        a[0] * b[2] - a[1] * b[3] + a[2] * b[8] - a[3] * b[9] + a[4] * b[14] - a[5] * b[15],
        a[0] * b[3] + a[1] * b[2] + a[2] * b[9] + a[3] * b[8] + a[4] * b[15] + a[5] * b[14],
        a[0] * b[4] - a[1] * b[5] + a[2] * b[10] - a[3] * b[11] + a[4] * b[16] - a[5] * b[17],
        a[0] * b[5] + a[1] * b[4] + a[2] * b[11] + a[3] * b[10] + a[4] * b[17] + a[5] * b[16],
        a[6] * b[0] - a[7] * b[1] + a[8] * b[6] - a[9] * b[7] + a[10] * b[12] - a[11] * b[13],
        a[6] * b[1] + a[7] * b[0] + a[8] * b[7] + a[9] * b[6] + a[10] * b[13] + a[11] * b[12],
        a[6] * b[2] - a[7] * b[3] + a[8] * b[8] - a[9] * b[9] + a[10] * b[14] - a[11] * b[15],
        a[6] * b[3] + a[7] * b[2] + a[8] * b[9] + a[9] * b[8] + a[10] * b[15] + a[11] * b[14],
        a[6] * b[4] - a[7] * b[5] + a[8] * b[10] - a[9] * b[11] + a[10] * b[16] - a[11] * b[17],
        a[6] * b[5] + a[7] * b[4] + a[8] * b[11] + a[9] * b[10] + a[10] * b[17] + a[11] * b[16],
        a[12] * b[0] - a[13] * b[1] + a[14] * b[6] - a[15] * b[7] + a[16] * b[12] - a[17] * b[13],
        a[12] * b[1] + a[13] * b[0] + a[14] * b[7] + a[15] * b[6] + a[16] * b[13] + a[17] * b[12],
        a[12] * b[2] - a[13] * b[3] + a[14] * b[8] - a[15] * b[9] + a[16] * b[14] - a[17] * b[15],
        a[12] * b[3] + a[13] * b[2] + a[14] * b[9] + a[15] * b[8] + a[16] * b[15] + a[17] * b[14],
        a[12] * b[4] - a[13] * b[5] + a[14] * b[10] - a[15] * b[11] + a[16] * b[16] - a[17] * b[17],
        a[12] * b[5] + a[13] * b[4] + a[14] * b[11] + a[15] * b[10] + a[16] * b[17] + a[17] * b[16],
    )


@njit(inline="always", cache=True)
def su3_adj(a):
    """a^dagger for an 18-tuple: a permutation and sign flips, which the compiler folds away (0 flops)."""
    return (
        a[0], -a[1], a[6], -a[7], a[12], -a[13],
        a[2], -a[3], a[8], -a[9], a[14], -a[15],
        a[4], -a[5], a[10], -a[11], a[16], -a[17],
    )  # fmt: skip


@njit(inline="always", cache=True)
def su3_add(a, b):
    """a + b for 18-tuples (9 complex additions, 18 flops)."""
    return (
        a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4], a[5] + b[5],
        a[6] + b[6], a[7] + b[7], a[8] + b[8], a[9] + b[9], a[10] + b[10], a[11] + b[11],
        a[12] + b[12], a[13] + b[13], a[14] + b[14], a[15] + b[15], a[16] + b[16], a[17] + b[17],
    )  # fmt: skip


@njit(inline="always", cache=True)
def su3_re_trace_mul_adj(a, b):
    """Re tr(a b^dagger) = sum of the 18 products a_k b_k (18 multiplications, 17 additions)."""
    return (
        a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3] + a[4] * b[4] + a[5] * b[5]
        + a[6] * b[6] + a[7] * b[7] + a[8] * b[8] + a[9] * b[9] + a[10] * b[10] + a[11] * b[11]
        + a[12] * b[12] + a[13] * b[13] + a[14] * b[14] + a[15] * b[15] + a[16] * b[16] + a[17] * b[17]
    )  # fmt: skip


@njit(inline="always", cache=True)
def su3_traceless_antihermitian(m, scale):
    """scale * [ (m - m^dagger)/2 - tr(m - m^dagger)/6 ] for an 18-tuple (21 flops).

    Off-diagonal pairs: x_rc = scale/2 (m_rc - conj m_cr), x_cr = -conj x_rc. Diagonal: purely
    imaginary, i scale (Im m_rr - (Im m_00 + Im m_11 + Im m_22)/3).
    """
    h = 0.5 * scale
    t = (m[1] + m[9] + m[17]) * (1.0 / 3.0)
    x01r = h * (m[2] - m[6])
    x01i = h * (m[3] + m[7])
    x02r = h * (m[4] - m[12])
    x02i = h * (m[5] + m[13])
    x12r = h * (m[10] - m[14])
    x12i = h * (m[11] + m[15])
    return (
        0.0, scale * (m[1] - t), x01r, x01i, x02r, x02i,
        -x01r, x01i, 0.0, scale * (m[9] - t), x12r, x12i,
        -x02r, x02i, -x12r, x12i, 0.0, scale * (m[17] - t),
    )  # fmt: skip


# ----------------------------------------------------------------------------- memory prefetch


@intrinsic
def prefetch(typingctx, array, index):
    """Hint the CPU to bring element ``index`` of the C-contiguous ``array``'s buffer into cache.

    Emits LLVM's ``llvm.prefetch`` (read, high locality, data cache): no effect on results, no
    fault on any address. The SU(3) plaquette uses it to load the links of the next lattice plane
    from memory while it computes on the current one, so the transposition that follows reads
    from cache instead of waiting on DRAM.
    """
    sig = types.void(array, types.intp)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        address = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [address.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        builder.call(fn, [address, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen
