"""latticeml._linalg: the inlined colour-matrix kernels against NumPy.

Each helper is called from one small Numba driver (the helpers are ``inline="always"`` and only
run inside other kernels) on random complex matrices of N = 2, 3, 4, so both the generic loops and
the unrolled N = 3 paths are compared with ``@``, ``conj().T``, ``np.trace``. The SU(3)
structure-of-arrays helpers are compared on an (18, n) block of random matrices laid out as the
module docstring says (row 2 (3 r + c) = Re U_rc, row 2 (3 r + c) + 1 = Im U_rc).
"""

import numpy as np
import pytest
from numba import njit

from latticeml import _linalg as la

SEED = 1907


# Cached like the library's kernels. Numba's cache key is this file, not the inlined _linalg: after
# editing _linalg.py, clear NUMBA_CACHE_DIR (CI starts from an empty one) or the old code runs.
@njit(cache=True)
def _dense(a, b, scale):
    n = a.shape[0]
    out = np.empty((7, n, n), dtype=np.complex128)
    la.mat_mul(a, b, out[0])
    la.mat_mul_adj(a, b, out[1])
    la.adj_mul(a, b, out[2])
    la.traceless_antihermitian_into(a, scale, out[3])
    la.copy_into(a, out[4])
    la.copy_into(b, out[5])
    la.add_into(a, out[5])
    la.prefetch(a.ravel(), 0)  # a hint only: must not change anything
    la.copy_into(a, out[6])
    scalars = np.array([la.re_trace_mul(a, b), la.re_trace_mul_adj(a, b), la.trace(a).real, la.trace(a).imag])
    return out, scalars


@njit(cache=True)
def _soa3(A, B, scale, out):
    n = A.shape[1]
    acc = np.empty(n)
    for i in range(n):
        a = la.soa3_load(A, i)
        b = la.soa3_load(B, i)
        la.soa3_store(out[0], i, la.su3_mul(a, b))
        la.soa3_store(out[1], i, la.su3_adj(a))
        la.soa3_store(out[2], i, la.su3_add(a, b))
        la.soa3_store(out[3], i, la.su3_traceless_antihermitian(a, scale))
        la.soa3_store(out[4], i, b)
        la.soa3_add_store(out[4], i, a)
        acc[i] = la.su3_re_trace_mul_adj(a, b)
    return acc


def _dag(M):
    return np.conj(np.swapaxes(M, -1, -2))


def _ta(M, scale):
    A = 0.5 * scale * (M - _dag(M))
    return A - np.trace(A, axis1=-2, axis2=-1)[..., None, None] * np.eye(M.shape[-1]) / M.shape[-1]


@pytest.mark.parametrize("N", [2, 3, 4])
def test_dense_matrix_kernels_match_numpy(N, rng):
    a = rng.normal(size=(N, N)) + 1j * rng.normal(size=(N, N))
    b = rng.normal(size=(N, N)) + 1j * rng.normal(size=(N, N))
    out, scalars = _dense(a, b, 0.7)
    np.testing.assert_allclose(out[0], a @ b, rtol=0, atol=1e-13)
    np.testing.assert_allclose(out[1], a @ _dag(b), rtol=0, atol=1e-13)
    np.testing.assert_allclose(out[2], _dag(a) @ b, rtol=0, atol=1e-13)
    np.testing.assert_allclose(out[3], _ta(a, 0.7), rtol=0, atol=1e-14)
    np.testing.assert_allclose(out[3], -_dag(out[3]), rtol=0, atol=1e-14)
    assert abs(np.trace(out[3])) < 1e-14
    np.testing.assert_array_equal(out[4], a)
    np.testing.assert_allclose(out[5], a + b, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(out[6], a)
    np.testing.assert_allclose(scalars, [np.trace(a @ b).real, np.trace(a @ _dag(b)).real, np.trace(a).real, np.trace(a).imag],
                               rtol=0, atol=1e-13)


def _to_soa(M):
    """(n, 3, 3) complex -> (18, n) float64, row 2 (3 r + c) = Re, + 1 = Im."""
    return np.ascontiguousarray(np.stack([M.real, M.imag], axis=-1).reshape(len(M), 18).T)


def _from_soa(S):
    x = S.T.reshape(-1, 3, 3, 2)
    return x[..., 0] + 1j * x[..., 1]


def test_su3_structure_of_arrays_kernels_match_numpy(rng):
    n = 11
    a = rng.normal(size=(n, 3, 3)) + 1j * rng.normal(size=(n, 3, 3))
    b = rng.normal(size=(n, 3, 3)) + 1j * rng.normal(size=(n, 3, 3))
    A, B = _to_soa(a), _to_soa(b)
    np.testing.assert_array_equal(_from_soa(A), a)  # the layout helpers of this test are each other's inverse
    out = np.zeros((5, 18, n))
    acc = _soa3(A, B, 1.3, out)
    np.testing.assert_allclose(_from_soa(out[0]), a @ b, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(_from_soa(out[1]), _dag(a))
    np.testing.assert_allclose(_from_soa(out[2]), a + b, rtol=0, atol=1e-15)
    np.testing.assert_allclose(_from_soa(out[3]), _ta(a, 1.3), rtol=0, atol=1e-14)
    np.testing.assert_allclose(_from_soa(out[4]), a + b, rtol=0, atol=1e-15)
    np.testing.assert_allclose(acc, np.trace(a @ _dag(b), axis1=-2, axis2=-1).real, rtol=0, atol=1e-13)
