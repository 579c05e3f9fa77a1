"""Check reverse-mode gradients against central finite differences in float64.

For a function ``out = f(*args)`` of any shape, :func:`check_grads` draws a random cotangent
``v`` (same shape and dtype as ``out``) and compares, for every selected argument x,

    analytic:  backprop of the seed v            (what the VJP rules compute)
    numeric:   dL/dx_j = [L(x + eps e_j) - L(x - eps e_j)] / (2 eps),   L = Re sum(conj(v) out)

element by element; for complex x also along i e_j, assembling dL/dRe x + i dL/dIm x (the
convention of ``tensor.py``). Central differences have error O(eps^2) from truncation and
O(macheps |L| / eps) from rounding, about 1e-10 at eps = 1e-6 (Press et al., *Numerical
Recipes*, 3rd ed., sec. 5.7); HIPS autograd's ``check_grads`` works the same way.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..checks import check_rng
from .tensor import Tensor, backprop, no_grad

__all__ = ["check_grads", "numerical_grad"]


def _scalar_loss(f, args, v) -> float:
    with no_grad():
        out = f(*args)
    out = out.value if isinstance(out, Tensor) else np.asarray(out)
    return float(np.real(np.vdot(v, out)))


def numerical_grad(f: Callable, args: Sequence, argnum: int, v, *, eps: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of ``Re sum(conj(v) f(*args))`` with respect to ``args[argnum]``."""
    args = list(args)
    x0 = np.asarray(args[argnum])
    out = np.zeros_like(x0)
    directions = (1.0, 1j) if np.iscomplexobj(x0) else (1.0,)
    for j in np.ndindex(x0.shape):
        for unit in directions:
            x = x0.copy()
            x[j] += unit * eps
            args[argnum] = x
            up = _scalar_loss(f, args, v)
            x[j] -= 2 * unit * eps
            down = _scalar_loss(f, args, v)
            out[j] += unit * (up - down) / (2 * eps)
    return out


def check_grads(
    f: Callable,
    *args,
    rng: np.random.Generator,
    argnums: Sequence[int] | None = None,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-7,
) -> dict:
    """Assert that the VJPs of ``f`` at ``args`` match central finite differences.

    ``f`` takes Tensors (at ``argnums``; by default every float64/complex128 array argument)
    and constants elsewhere, and returns a Tensor. Raises AssertionError with the worst
    element on failure; returns ``{argnum: max |analytic - numeric|}``.
    """
    check_rng(rng)  # for the random cotangent
    if argnums is None:
        argnums = [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.dtype.kind in "fc"]
    for i in argnums:
        a = args[i]
        if not isinstance(a, np.ndarray) or a.dtype not in (np.float64, np.complex128):
            raise TypeError(
                f"argument {i} must be a float64 or complex128 ndarray for finite differences, "
                f"got {type(a).__name__} {getattr(a, 'dtype', '')}"
            )
    leaves = {i: Tensor(args[i], requires_grad=True) for i in argnums}
    call_args = [leaves.get(i, a) for i, a in enumerate(args)]
    out = f(*call_args)
    if not isinstance(out, Tensor):
        raise TypeError("f must return a Tensor")
    v = rng.standard_normal(out.shape)
    if np.iscomplexobj(out.value):
        v = v + 1j * rng.standard_normal(out.shape)
    found = backprop(out, v)
    errors = {}
    for i in argnums:
        analytic = found.get(leaves[i], np.zeros_like(args[i]))
        numeric = numerical_grad(f, args, i, v, eps=eps)
        diff = np.abs(analytic - numeric)
        bad = diff > atol + rtol * np.abs(numeric)
        if np.any(bad):
            j = np.unravel_index(np.argmax(diff - rtol * np.abs(numeric)), diff.shape)
            raise AssertionError(
                f"gradient of argument {i} (shape {args[i].shape}) disagrees with finite differences "
                f"at {j}: analytic {analytic[j]}, numeric {numeric[j]} (max abs error {diff.max():.3e})"
            )
        errors[i] = float(diff.max()) if diff.size else 0.0
    return errors
