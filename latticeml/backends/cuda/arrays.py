"""Fields that stay on the device, their arithmetic, reductions and the lattice tables on the device.

:class:`DeviceField` is what the CUDA kernels return for a field (links, momenta, forces): a
device array with the field's shape and dtype. It behaves enough like a NumPy array for the
samplers, which are written once for every backend:

* ``np.asarray(f)`` (``__array__``) copies it to the host: measurements, checkpoints and kept
  configurations see a NumPy array, everything else stays on the device;
* ``a * f``, ``f + g``, ``f - g``, ``-f`` (scalars ``a``; NumPy arrays are copied to the device
  first) run one elementwise kernel each, so the integrators of
  :mod:`latticeml.samplers.integrators` (``p - eps/2 * F``) move momenta on the device;
  ``__array_ufunc__ = None`` makes NumPy hand ``ndarray - DeviceField`` to ``DeviceField.__rsub__``.

Reductions (:func:`total`) sum in a fixed tree (per block in shared memory, then over the
blocks' partial sums), so a sum is the same on every run; it differs from the cpu's chunked sum
by rounding only.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import float64

from ...lattice import _planes_array, neighbour_table
from ._shim import THREADS, cuda, grid, kernel

__all__ = ["DeviceField", "check_one_configuration", "device_array", "is_device_array", "planes", "sum_squares", "tables", "to_device", "total"]


# ----------------------------------------------------------------------------- kernels


@kernel
def _axpby_kernel(a, x, b, y, out):
    """out = a x + b y elementwise (1-D views)."""
    for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):  # grid-stride loop
        out[i] = a * x[i] + b * y[i]


@kernel
def _abs2_kernel(x, out):
    """out = |x|^2 elementwise (real or complex 1-D views)."""
    for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):  # grid-stride loop
        v = x[i]
        out[i] = v.real * v.real + v.imag * v.imag


@kernel
def _block_sums_kernel(x, out):
    """out[block] = the block's share of sum(x): each thread sums its grid-stride entries, then a tree in shared memory."""
    part = cuda.shared.array(THREADS, float64)
    t = cuda.threadIdx.x
    acc = 0.0
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        acc += x[i]
    part[t] = acc
    cuda.syncthreads()
    step = THREADS // 2
    while step > 0:
        if t < step:
            part[t] += part[t + step]
        cuda.syncthreads()
        step //= 2
    if t == 0:
        out[cuda.blockIdx.x] = part[0]


# ----------------------------------------------------------------------------- reductions


def total(x) -> float:
    """Sum of a 1-D float64 device array (a fixed tree of block sums; one float copied to the host)."""
    while x.shape[0] > 1:
        blocks, threads = grid(x.shape[0])
        out = cuda.device_array(blocks, dtype=np.float64)
        _block_sums_kernel[blocks, threads](x, out)
        x = out
    return float(x.copy_to_host()[0])


def sum_squares(x) -> float:
    """``sum |x_i|^2`` over every entry of a device array (real or complex)."""
    flat = x.reshape(x.size)
    sq = cuda.device_array(flat.shape[0], dtype=np.float64)
    _abs2_kernel[grid(flat.shape[0])](flat, sq)
    return total(sq)


# ----------------------------------------------------------------------------- tables


@lru_cache(maxsize=16)
def tables(shape: tuple) -> tuple:
    """The neighbour tables ``(fwd, bwd)`` of :func:`latticeml.lattice.neighbour_table`, on the device (kept)."""
    fwd, bwd = neighbour_table(shape)
    return cuda.to_device(fwd), cuda.to_device(bwd)


@lru_cache(maxsize=8)
def planes(D: int):
    """The plane table ``(n_planes, 2)`` (mu < nu, the order of :func:`latticeml.lattice.planes`) on the device."""
    return cuda.to_device(_planes_array(D))


def device_array(shape, dtype):
    """An uninitialised device array."""
    return cuda.device_array(tuple(shape), dtype=np.dtype(dtype))


def check_one_configuration(batched: bool) -> None:
    if batched:
        raise ValueError("the CUDA kernels take one configuration at a time (batched=False); loop over the batch or use backend='cpu'")


# ----------------------------------------------------------------------------- the field


def is_device_array(x) -> bool:
    """True for a Numba device array (or the simulator's stand-in), False for a DeviceField or a host array."""
    return hasattr(x, "copy_to_host") and hasattr(x, "copy_to_device")


def to_device(x, dtype):
    """The device array of ``x``: a :class:`DeviceField`'s own data, a device array itself, or a copy of a host array."""
    if isinstance(x, DeviceField):
        x = x.data
    if is_device_array(x):
        if np.dtype(x.dtype) != np.dtype(dtype):
            raise TypeError(f"the device array has dtype {np.dtype(x.dtype)}, the kernel takes {np.dtype(dtype)}")
        return x
    return cuda.to_device(np.ascontiguousarray(x, dtype=dtype))


class DeviceField:
    """A field on the device with the shape and dtype of the cpu field (module docstring).

    ``data`` is the C-contiguous device array; ``np.asarray(field)`` copies it to the host.
    """

    __array_ufunc__ = None  # NumPy defers ``ndarray op DeviceField`` to our reflected operators
    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data

    # ---- the array facts the samplers and checks read
    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.data.dtype)

    @property
    def ndim(self) -> int:
        return len(self.data.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.data.shape))

    def __len__(self) -> int:
        return self.data.shape[0]

    def __array__(self, dtype=None, copy=None):
        host = self.data.copy_to_host()
        return host if dtype is None else host.astype(dtype, copy=False)

    def copy_to_host(self) -> np.ndarray:
        return self.data.copy_to_host()

    def __repr__(self):
        return f"DeviceField(shape={self.shape}, dtype={self.dtype})"

    # ---- arithmetic: one elementwise kernel per operation, a new field each time
    def _combine(self, a, other, b):
        y = self.data if other is None else to_device(other, self.dtype)
        if other is not None and tuple(y.shape) != self.shape:
            raise ValueError(f"shapes {self.shape} and {tuple(y.shape)} differ")
        out = cuda.device_array(self.shape, dtype=self.dtype)
        n = self.size
        _axpby_kernel[grid(n)](a, self.data.reshape(n), b, y.reshape(n), out.reshape(n))
        return DeviceField(out)

    def __add__(self, other):
        return self._combine(1.0, other, 1.0) if _is_field(other) else NotImplemented

    __radd__ = __add__

    def __sub__(self, other):
        return self._combine(1.0, other, -1.0) if _is_field(other) else NotImplemented

    def __rsub__(self, other):
        return self._combine(-1.0, other, 1.0) if _is_field(other) else NotImplemented

    def __mul__(self, a):
        return self._combine(float(a), None, 0.0) if _is_scalar(a) else NotImplemented

    __rmul__ = __mul__

    def __truediv__(self, a):
        return self._combine(1.0 / float(a), None, 0.0) if _is_scalar(a) else NotImplemented

    def __neg__(self):
        return self._combine(-1.0, None, 0.0)


def _is_scalar(a) -> bool:
    return isinstance(a, (int, float, np.integer, np.floating)) and not isinstance(a, bool)


def _is_field(x) -> bool:
    return isinstance(x, (DeviceField, np.ndarray)) or is_device_array(x)
