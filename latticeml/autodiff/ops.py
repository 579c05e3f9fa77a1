"""The primitives and their vector-Jacobian products: one line per rule, HIPS-autograd style.

Every primitive is a NumPy function of arrays. Its VJP rule for argument k has the signature
``rule(g, ans, *args, **kwargs)`` and returns dL/d(args[k]) given ``g`` = dL/d(ans), with the
forward inputs ``args`` as plain arrays. Broadcasting in the forward pass is undone by
:func:`unbroadcast` (sum over the broadcast axes). Complex arrays follow the convention of
``tensor.py``: a holomorphic f(z) has the rule ``g * conj(f'(z))`` (see :func:`cj`), and a real
argument of a complex result gets the real part of its gradient.

Shapes: elementwise primitives broadcast like NumPy; ``matmul`` is NumPy's batched matmul
(``(..., n, k) @ (..., k, m)``, 1-d operands as vectors); reductions take ``axis``/``keepdims``
as in NumPy. Real-only primitives (``relu``, ``sigmoid``, ...) raise a TypeError on complex input.

Reference: Griewank & Walther, *Evaluating Derivatives* (SIAM 2008) for the adjoint rules;
Maclaurin, Duvenaud & Adams, "Autograd" (2015) for the table layout.
"""

from __future__ import annotations

import builtins

import numpy as np

from .tensor import Primitive, Tensor, defvjp, defvjp_argnum

# ------------------------------------------------------------------------------------------
# Helpers used by the rules
# ------------------------------------------------------------------------------------------


def cj(a):
    """Complex conjugate, free for real arrays (``np.conj`` would copy them)."""
    if isinstance(a, np.ndarray):
        return a.conj() if a.dtype.kind == "c" else a
    return np.conj(a) if np.iscomplexobj(a) else a


def unbroadcast(g, x):
    """Reduce ``g`` to the shape of ``x`` by summing the axes broadcasting added or stretched.

    Also drops the imaginary part when ``x`` is real (the real argument of a complex result).
    """
    shape = x.shape if isinstance(x, np.ndarray) else np.shape(x)
    if g.shape == shape and (g.dtype.kind != "c" or np.iscomplexobj(x)):
        return g  # the common case: nothing to undo
    if g.shape != shape:
        lead = g.ndim - len(shape)
        if lead > 0:
            g = g.sum(axis=tuple(range(lead)))
        stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
        if stretched:
            g = g.sum(axis=stretched, keepdims=True)
    if np.iscomplexobj(g) and not np.iscomplexobj(x):
        g = g.real
    return g


def _norm_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    return tuple(sorted(a % ndim for a in axes))


def _expand_reduced(g, x, axis, keepdims):
    """Broadcast the gradient of a reduction back over the reduced axes of ``x``."""
    if not keepdims:
        g = np.expand_dims(g, _norm_axes(axis, np.ndim(x)))
    return np.broadcast_to(g, np.shape(x))


def _reduced_count(x, axis):
    return int(np.prod([np.shape(x)[a] for a in _norm_axes(axis, np.ndim(x))]))


def _matmul_vjp(g, a, b, which):
    """VJP of ``a @ b``: g @ b^H for a, a^H @ g for b; 1-d operands promoted to matrices."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g[..., None] if b.ndim == 1 else g
    g2 = g2[..., None, :] if a.ndim == 1 else g2
    if which == 0:
        ga = g2 @ cj(np.swapaxes(b2, -1, -2))
        return unbroadcast(ga[..., 0, :] if a.ndim == 1 else ga, a)
    gb = cj(np.swapaxes(a2, -1, -2)) @ g2
    return unbroadcast(gb[..., 0] if b.ndim == 1 else gb, b)


def _may_repeat(idx):
    """True if the index holds an integer array (which may pick one element twice)."""
    items = idx if isinstance(idx, tuple) else (idx,)
    return builtins.any(
        isinstance(i, (list, np.ndarray)) and np.asarray(i).dtype.kind in "iu" for i in items
    )


def _getitem_vjp(g, ans, x, idx):
    out = np.zeros(np.shape(x), dtype=np.result_type(g, x))
    if _may_repeat(idx):  # x[[0, 0]] uses x[0] twice: accumulate
        np.add.at(out, idx, g)
    else:
        out[idx] = g
    return out


def _split_vjp(argnum, g, ans, args, kwargs):
    """VJP of concatenate: the slab of g that came from argument ``argnum``."""
    axis = kwargs.get("axis", 0)
    start = builtins.sum(np.shape(a)[axis] for a in args[:argnum])
    stop = start + np.shape(args[argnum])[axis]
    return unbroadcast(np.take(g, np.arange(start, stop), axis=axis), args[argnum])


def _unstack_vjp(argnum, g, ans, args, kwargs):
    return unbroadcast(np.take(g, argnum, axis=kwargs.get("axis", 0)), args[argnum])


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1/(1+e^-x), without overflow


def _leaky_relu(x, slope=0.01):
    return np.where(x > 0, x, slope * x)


def _logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=_norm_axes(axis, np.ndim(x)))


def _trace(x):
    return np.trace(x, axis1=-2, axis2=-1)


def _transpose_inverse(axes, ndim):
    return tuple(range(ndim))[::-1] if axes is None else tuple(np.argsort(axes))


def _neg_shift(shift):
    return -shift if np.ndim(shift) == 0 else tuple(-s for s in shift)


# ------------------------------------------------------------------------------------------
# The primitives
# ------------------------------------------------------------------------------------------
P = Primitive
add = P("add", np.add)
subtract = P("subtract", np.subtract)
multiply = P("multiply", np.multiply)
divide = P("divide", np.divide)
negative = P("negative", np.negative)
power = P("power", np.power)
matmul = P("matmul", np.matmul)
exp = P("exp", np.exp)
log = P("log", np.log)
sqrt = P("sqrt", np.sqrt)
sin = P("sin", np.sin)
cos = P("cos", np.cos)
tanh = P("tanh", np.tanh)
sigmoid = P("sigmoid", _sigmoid, real_only=True)
softplus = P("softplus", lambda x: np.logaddexp(0.0, x), real_only=True)
relu = P("relu", lambda x: np.maximum(x, 0.0), real_only=True)
leaky_relu = P("leaky_relu", _leaky_relu, real_only=True)
arctan2 = P("arctan2", np.arctan2, real_only=True)
abs = P("abs", np.abs)  # noqa: A001  (shadows the builtin inside this module only)
conj = P("conj", np.conj)
real = P("real", np.real)
imag = P("imag", np.imag)
sum = P("sum", np.sum)  # noqa: A001
mean = P("mean", np.mean)
logsumexp = P("logsumexp", _logsumexp, real_only=True)
trace = P("trace", _trace)
reshape = P("reshape", np.reshape)
transpose = P("transpose", np.transpose)
swapaxes = P("swapaxes", np.swapaxes)
broadcast_to = P("broadcast_to", np.broadcast_to)
getitem = P("getitem", lambda x, idx: x[idx])
where = P("where", np.where)
roll = P("roll", np.roll)
_concatenate = P("concatenate", lambda *xs, axis=0: np.concatenate(xs, axis=axis))
_stack = P("stack", lambda *xs, axis=0: np.stack(xs, axis=axis))

# ------------------------------------------------------------------------------------------
# The VJP table: rule for argument 0, rule for argument 1, ...   (g = dL/d ans)
# ------------------------------------------------------------------------------------------
# fmt: off
defvjp(add,         lambda g, ans, x, y: unbroadcast(g, x),                lambda g, ans, x, y: unbroadcast(g, y))
defvjp(subtract,    lambda g, ans, x, y: unbroadcast(g, x),                lambda g, ans, x, y: unbroadcast(-g, y))
defvjp(multiply,    lambda g, ans, x, y: unbroadcast(g * cj(y), x),        lambda g, ans, x, y: unbroadcast(g * cj(x), y))
defvjp(divide,      lambda g, ans, x, y: unbroadcast(g / cj(y), x),        lambda g, ans, x, y: unbroadcast(-g * cj(ans / y), y))
defvjp(negative,    lambda g, ans, x: -g)
defvjp(power,       lambda g, ans, x, p: unbroadcast(g * cj(p * x ** (np.asarray(p) - 1)), x),
                    lambda g, ans, x, p: unbroadcast(g * cj(ans * np.log(np.where(x == 0, 1, x))), p))
defvjp(matmul,      lambda g, ans, a, b: _matmul_vjp(g, a, b, 0),         lambda g, ans, a, b: _matmul_vjp(g, a, b, 1))
defvjp(exp,         lambda g, ans, x: g * cj(ans))
defvjp(log,         lambda g, ans, x: g / cj(x))
defvjp(sqrt,        lambda g, ans, x: g / (2.0 * cj(ans)))
defvjp(sin,         lambda g, ans, x: g * cj(np.cos(x)))
defvjp(cos,         lambda g, ans, x: -g * cj(np.sin(x)))
defvjp(tanh,        lambda g, ans, x: g * cj(1.0 - ans * ans))
defvjp(sigmoid,     lambda g, ans, x: g * ans * (1.0 - ans))
defvjp(softplus,    lambda g, ans, x: g * _sigmoid(x))
defvjp(relu,        lambda g, ans, x: g * (x > 0))
defvjp(leaky_relu,  lambda g, ans, x, slope=0.01: g * np.where(x > 0, 1.0, slope))
defvjp(arctan2,     lambda g, ans, y, x: unbroadcast(g * x / (x * x + y * y), y),
                    lambda g, ans, y, x: unbroadcast(-g * y / (x * x + y * y), x))
defvjp(abs,         lambda g, ans, x: g * np.where(ans == 0, 0.0, x / np.where(ans == 0, 1.0, ans)))
defvjp(conj,        lambda g, ans, x: np.conj(g))
defvjp(real,        lambda g, ans, x: np.real(g).astype(x.dtype))
defvjp(imag,        lambda g, ans, x: unbroadcast(1j * np.real(g), x))
defvjp(sum,         lambda g, ans, x, axis=None, keepdims=False: _expand_reduced(g, x, axis, keepdims))
defvjp(mean,        lambda g, ans, x, axis=None, keepdims=False: _expand_reduced(g, x, axis, keepdims) / _reduced_count(x, axis))
defvjp(logsumexp,   lambda g, ans, x, axis=None, keepdims=False:
                        _expand_reduced(g, x, axis, keepdims) * np.exp(x - _expand_reduced(ans, x, axis, keepdims)))
defvjp(trace,       lambda g, ans, x: g[..., None, None] * np.eye(x.shape[-1]))
defvjp(reshape,     lambda g, ans, x, shape: np.reshape(g, np.shape(x)))
defvjp(transpose,   lambda g, ans, x, axes=None: np.transpose(g, _transpose_inverse(axes, np.ndim(x))))
defvjp(swapaxes,    lambda g, ans, x, a1, a2: np.swapaxes(g, a1, a2))
defvjp(broadcast_to, lambda g, ans, x, shape: unbroadcast(g, x))
defvjp(getitem,     lambda g, ans, x, idx: _getitem_vjp(g, ans, x, idx))
defvjp(where,       None,  lambda g, ans, c, x, y: unbroadcast(np.where(c, g, 0), x),
                           lambda g, ans, c, x, y: unbroadcast(np.where(c, 0, g), y))
defvjp(roll,        lambda g, ans, x, shift, axis=None: np.roll(g, _neg_shift(shift), axis))
defvjp_argnum(_concatenate, _split_vjp)
defvjp_argnum(_stack,       _unstack_vjp)
# fmt: on

# Every primitive defined above, by name (the test suite checks each one with gradcheck).
PRIMITIVES = {p.name: p for p in globals().values() if isinstance(p, Primitive)}


# ------------------------------------------------------------------------------------------
# Composite functions and the NumPy-like surface
# ------------------------------------------------------------------------------------------


def concatenate(arrays, axis: int = 0):
    """``np.concatenate`` for a sequence of Tensors/arrays."""
    return _concatenate(*arrays, axis=axis)


def stack(arrays, axis: int = 0):
    """``np.stack`` for a sequence of Tensors/arrays."""
    return _stack(*arrays, axis=axis)


def square(x):
    return multiply(x, x)


def dagger(x):
    """Conjugate transpose of the last two axes (batched matrices)."""
    return conj(swapaxes(x, -1, -2))


def _attach_operators():
    T = Tensor
    T.__add__ = lambda a, b: add(a, b)
    T.__radd__ = lambda a, b: add(b, a)
    T.__sub__ = lambda a, b: subtract(a, b)
    T.__rsub__ = lambda a, b: subtract(b, a)
    T.__mul__ = lambda a, b: multiply(a, b)
    T.__rmul__ = lambda a, b: multiply(b, a)
    T.__truediv__ = lambda a, b: divide(a, b)
    T.__rtruediv__ = lambda a, b: divide(b, a)
    T.__neg__ = lambda a: negative(a)
    T.__pow__ = lambda a, p: power(a, p)
    T.__rpow__ = lambda a, b: power(b, a)
    T.__matmul__ = lambda a, b: matmul(a, b)
    T.__rmatmul__ = lambda a, b: matmul(b, a)
    T.__getitem__ = lambda a, idx: getitem(a, idx)
    T.__abs__ = lambda a: abs(a)
    T.sum = lambda a, axis=None, keepdims=False: sum(a, axis=axis, keepdims=keepdims)
    T.mean = lambda a, axis=None, keepdims=False: mean(a, axis=axis, keepdims=keepdims)
    T.reshape = lambda a, *shape: reshape(a, shape[0] if len(shape) == 1 else shape)
    T.transpose = lambda a, *axes: transpose(a, (axes[0] if len(axes) == 1 else axes) or None)
    T.T = property(lambda a: transpose(a))
    T.conj = lambda a: conj(a)
    T.real = property(lambda a: real(a))
    T.imag = property(lambda a: imag(a))
    T.exp = lambda a: exp(a)
    T.log = lambda a: log(a)
    T.tanh = lambda a: tanh(a)


_attach_operators()
