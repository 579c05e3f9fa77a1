"""The node type, the tape and ``backward``: reverse-mode automatic differentiation over NumPy.

A :class:`Tensor` wraps a NumPy array ``value`` (float64, or complex128) and remembers how it
was made: its ``parents`` (the Tensor arguments that need gradients) and a ``backward`` function
that maps the gradient of the output to the gradients of those parents (a vector-Jacobian
product, VJP). Calling an operation on Tensors runs NumPy forward at once and records one node;
the recorded nodes form the tape, a directed acyclic graph that :func:`backprop` walks in reverse
topological order (Linnainmaa 1976; Griewank & Walther, *Evaluating Derivatives*, SIAM 2008,
ch. 3). The design follows micrograd (A. Karpathy) and HIPS autograd (Maclaurin, Duvenaud &
Adams, ICML AutoML workshop 2015): the gradient rules are a table, one line per primitive, in
``latticeml/autodiff/ops.py``.

Two ways to define a differentiable operation:

* :class:`Primitive` + :func:`defvjp`: a NumPy function and one VJP rule per argument,
  ``rule(g, ans, *args, **kwargs) -> gradient for that argument``, where ``g`` is the gradient
  of the output, ``ans`` the output and ``args`` the forward inputs as plain arrays.
* :func:`custom_op`: a forward ``fwd(*args, **kwargs) -> (out, residuals)`` and a backward
  ``bwd(g, residuals, needs) -> tuple of gradients``, for a Numba kernel with a hand-written
  backward (the periodic convolution, stout smearing, lattice gauge-equivariant layers)::

      import numpy as np
      from numba import njit
      from latticeml.autodiff import custom_op, check_grads

      @njit(cache=True)
      def _cube_kernel(x, out):              # one dtype, one layout: float64, C-contiguous
          for i in range(x.size):
              out.flat[i] = x.flat[i] ** 3

      def _cube_fwd(x):
          x = np.ascontiguousarray(x, dtype=np.float64)
          out = np.empty_like(x)
          _cube_kernel(x, out)
          return out, x                      # residuals: whatever backward needs

      def _cube_bwd(g, x, needs):            # needs[i]: does argument i want a gradient?
          return (3.0 * x**2 * g,)           # one entry per positional argument (or None)

      cube = custom_op("cube", _cube_fwd, _cube_bwd)
      check_grads(cube, np.linspace(-1.0, 1.0, 5), rng=np.random.default_rng(0))

Gradient convention. For a real scalar loss L the gradient stored for an array z is dL/dz
elementwise. For complex z = x + i y it is ``dL/dx + i dL/dy`` (twice the conjugate Wirtinger
derivative dL/dz*, the convention of PyTorch), so ``z - lr * grad`` is a descent step. A VJP rule
of a holomorphic f(z) is then ``g * conj(f'(z))``; a real argument of a complex-valued operation
receives the real part of its gradient.

This engine is first order: backward works on plain arrays and records nothing, so it gives
gradients, not gradients of gradients.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Sequence

import numpy as np

__all__ = [
    "Tensor",
    "Parameter",
    "Primitive",
    "CustomOp",
    "defvjp",
    "defvjp_argnum",
    "custom_op",
    "no_grad",
    "is_grad_enabled",
    "backprop",
    "grad",
    "value_and_grad",
    "as_value",
]

# Recording switch for :func:`no_grad` (the only module state; it holds no numbers).
_GRAD_ENABLED = True


def is_grad_enabled() -> bool:
    """True unless inside a :func:`no_grad` block."""
    return _GRAD_ENABLED


@contextlib.contextmanager
def no_grad():
    """Evaluate without recording a tape (inference, plotting, parameter updates)."""
    global _GRAD_ENABLED
    previous, _GRAD_ENABLED = _GRAD_ENABLED, False
    try:
        yield
    finally:
        _GRAD_ENABLED = previous


def _as_float_array(value) -> np.ndarray:
    """float64 (or complex128) array from anything array-like; refuse other kinds clearly."""
    arr = np.asarray(value)
    kind = arr.dtype.kind
    if kind == "c":
        return arr.astype(np.complex128, copy=False)
    if kind in "fiub":
        return arr.astype(np.float64, copy=False)
    raise TypeError(
        f"a Tensor holds float64 or complex128 numbers, got dtype {arr.dtype}; "
        "convert with np.asarray(x, dtype=np.float64)"
    )


def as_value(x):
    """The array inside a Tensor, or ``x`` itself for anything else."""
    return x.value if isinstance(x, Tensor) else x


class Tensor:
    """A node of the tape: ``value`` (ndarray), ``grad`` (filled by :meth:`backward` on leaves).

    Create leaves with ``Tensor(array, requires_grad=True)`` (or :class:`Parameter`); operations
    on Tensors return new Tensors that remember their parents. NumPy arrays and Python numbers
    mix freely with Tensors and are treated as constants.
    """

    __slots__ = ("value", "grad", "requires_grad", "parents", "backward_fn", "op", "name")
    # Make NumPy's binary operators defer to ours, so that ``ndarray * Tensor`` records a node.
    __array_ufunc__ = None

    def __init__(self, value, *, requires_grad: bool = False, name: str | None = None):
        self.value = _as_float_array(value)
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.parents = ()
        self.backward_fn = None
        self.op = "leaf"
        self.name = name

    @classmethod
    def _node(cls, value, parents, backward_fn, op):
        """Fast constructor for operation outputs (no dtype conversion)."""
        t = object.__new__(cls)
        t.value = value if isinstance(value, np.ndarray) else np.asarray(value)
        t.grad = None
        t.requires_grad = bool(parents)
        t.parents = parents
        t.backward_fn = backward_fn
        t.op = op
        t.name = None
        return t

    # --- array-like attributes -----------------------------------------------------------
    shape = property(lambda self: self.value.shape)
    ndim = property(lambda self: self.value.ndim)
    size = property(lambda self: self.value.size)
    dtype = property(lambda self: self.value.dtype)

    def __len__(self):
        return len(self.value)

    def __repr__(self):
        body = np.array2string(self.value, precision=4, threshold=8, edgeitems=2)
        tag = f", op={self.op}" if self.op != "leaf" else ""
        rg = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({body}{tag}{rg})"

    def __float__(self):
        return float(self.value)

    def item(self):
        return self.value.item()

    def numpy(self) -> np.ndarray:
        """The value (not a copy)."""
        return self.value

    def detach(self) -> "Tensor":
        """A constant Tensor sharing this value; gradients do not flow through it."""
        return Tensor._node(self.value, (), None, "detach")

    # --- reverse pass ----------------------------------------------------------------------
    def backward(self, grad=None) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        ``self`` must be a real scalar unless ``grad`` (the gradient of a scalar loss with
        respect to ``self``, same shape) is given. Gradients add up over calls, as in PyTorch:
        call ``zero_grad()`` on the module or optimizer between steps.
        """
        for leaf, g in backprop(self, grad).items():
            if leaf.grad is None:
                leaf.grad = np.array(g, dtype=leaf.value.dtype)  # own copy: never aliased
            else:
                leaf.grad = leaf.grad + g

    # --- operators (defined in ops.py, attached at import there) ---------------------------
    def __hash__(self):
        return id(self)

    # Comparisons give plain boolean masks of the values (not differentiable).
    def __lt__(self, other):
        return self.value < as_value(other)

    def __le__(self, other):
        return self.value <= as_value(other)

    def __gt__(self, other):
        return self.value > as_value(other)

    def __ge__(self, other):
        return self.value >= as_value(other)


class Parameter(Tensor):
    """A trainable leaf: ``requires_grad`` is True; optimizers update ``value`` in place."""

    __slots__ = ()

    def __init__(self, value, *, name: str | None = None):
        super().__init__(np.array(value, dtype=_as_float_array(value).dtype), requires_grad=True, name=name)


def backprop(root: Tensor, seed=None) -> dict:
    """Reverse sweep from ``root``; returns ``{leaf: gradient}`` for the leaves that require grad.

    ``seed`` is dL/d(root) (default 1 for a real scalar root). Each node's gradient is complete
    once all its consumers have been processed, which reverse topological order guarantees.
    """
    if not isinstance(root, Tensor):
        raise TypeError(f"backprop needs a Tensor, got {type(root).__name__}")
    if seed is None:
        if root.value.size != 1 or np.iscomplexobj(root.value):
            raise ValueError(
                f"backward() without a seed needs a real scalar output, got shape {root.shape} "
                f"and dtype {root.dtype}; reduce to a real loss first (e.g. .sum()) or pass grad="
            )
        seed = np.ones_like(root.value)
    else:
        seed = np.asarray(seed)
        if seed.shape != root.value.shape:
            raise ValueError(f"seed gradient has shape {seed.shape}, output has shape {root.value.shape}")
    if not root.requires_grad:
        return {}

    # Topological order by an iterative depth-first search (deep nets would overflow recursion).
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for p in node.parents:
            if id(p) not in visited:
                stack.append((p, False))

    grads = {id(root): seed}
    leaves = {}
    for node in reversed(order):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if node.backward_fn is None:  # a leaf
            leaves[node] = g
            continue
        for parent, gp in zip(node.parents, node.backward_fn(g)):
            if gp is None:
                continue
            if gp.shape != parent.value.shape:
                raise RuntimeError(
                    f"VJP of '{node.op}' returned a gradient of shape {gp.shape} for an argument "
                    f"of shape {parent.value.shape}: the rule must reduce broadcast axes (unbroadcast)"
                )
            key = id(parent)
            grads[key] = grads[key] + gp if key in grads else gp
    return leaves


# --- defining operations ------------------------------------------------------------------


class Primitive:
    """A differentiable NumPy function; its VJP rules are attached with :func:`defvjp`.

    ``Primitive(name, fn)`` is called like ``fn``; positional arguments may be Tensors (all
    other arguments are constants). With ``real_only=True`` complex inputs raise a TypeError.
    """

    __slots__ = ("name", "fn", "vjps", "vjp_argnum", "real_only")

    def __init__(self, name: str, fn: Callable, *, real_only: bool = False):
        self.name = name
        self.fn = fn
        self.vjps = ()
        self.vjp_argnum = None
        self.real_only = real_only

    def __repr__(self):
        return f"Primitive({self.name!r})"

    def _missing(self, i):
        return NotImplementedError(
            f"no VJP rule for primitive '{self.name}' with respect to argument {i}; "
            f"register one with latticeml.autodiff.defvjp"
        )

    def __call__(self, *args, **kwargs):
        vals, argnums = [], []
        for i, a in enumerate(args):
            if isinstance(a, Tensor):
                vals.append(a.value)
                if a.requires_grad:
                    argnums.append(i)
            else:
                vals.append(a)
        if self.real_only:
            for v in vals:
                if isinstance(v, np.ndarray) and v.dtype.kind == "c":
                    raise TypeError(f"'{self.name}' is defined for real arrays only, got complex input")
        ans = self.fn(*vals, **kwargs)
        if not (argnums and _GRAD_ENABLED):
            return Tensor._node(ans, (), None, self.name)
        parents = tuple(args[i] for i in argnums)
        if self.vjp_argnum is not None:
            rule = self.vjp_argnum

            def backward_fn(g):
                return [rule(i, g, ans, vals, kwargs) for i in argnums]

        else:
            vjps = self.vjps
            rules = []
            for i in argnums:
                if i >= len(vjps) or vjps[i] is None:
                    raise self._missing(i)
                rules.append(vjps[i])

            def backward_fn(g):
                return [r(g, ans, *vals, **kwargs) for r in rules]

        return Tensor._node(ans, parents, backward_fn, self.name)


def defvjp(prim: Primitive, *rules) -> Primitive:
    """Attach one VJP rule per positional argument: ``rule(g, ans, *args, **kwargs)``.

    Use ``None`` for an argument that is never differentiated (a mask, an axis).
    """
    prim.vjps = tuple(rules)
    return prim


def defvjp_argnum(prim: Primitive, rule) -> Primitive:
    """One rule for variadic primitives: ``rule(argnum, g, ans, args, kwargs)``."""
    prim.vjp_argnum = rule
    return prim


class CustomOp:
    """An operation with a hand-written forward and backward; see :func:`custom_op`."""

    __slots__ = ("name", "fwd", "bwd")

    def __init__(self, name: str, fwd: Callable, bwd: Callable):
        self.name, self.fwd, self.bwd = name, fwd, bwd

    def __repr__(self):
        return f"CustomOp({self.name!r})"

    def __call__(self, *args, **kwargs):
        vals = [a.value if isinstance(a, Tensor) else a for a in args]
        out, residuals = self.fwd(*vals, **kwargs)
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        if not (_GRAD_ENABLED and any(needs)):
            return Tensor._node(out, (), None, self.name)
        parents = tuple(a for a, n in zip(args, needs) if n)
        bwd, name = self.bwd, self.name

        def backward_fn(g):
            gs = bwd(g, residuals, needs)
            if len(gs) != len(needs):
                raise RuntimeError(
                    f"backward of custom op '{name}' returned {len(gs)} gradients for {len(needs)} arguments"
                )
            return [np.asarray(gi) for gi, n in zip(gs, needs) if n]

        return Tensor._node(out, parents, backward_fn, self.name)


def custom_op(name: str, fwd: Callable, bwd: Callable) -> CustomOp:
    """Register an operation with a hand-written backward (see the module docstring).

    ``fwd(*args, **kwargs) -> (out, residuals)`` receives plain arrays and returns the output
    array and anything the backward needs. ``bwd(g, residuals, needs) -> tuple`` receives the
    gradient ``g`` of the output and returns one gradient per positional argument (``None``
    where ``needs[i]`` is False), each the shape of its argument, following the convention in
    the module docstring for complex arrays. Check it with :func:`latticeml.autodiff.check_grads`.
    """
    return CustomOp(name, fwd, bwd)


# --- functional helpers -----------------------------------------------------------------


def _argnums_tuple(argnums):
    return (argnums,) if isinstance(argnums, int) else tuple(argnums)


def value_and_grad(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """``value_and_grad(f)(*args) -> (f(*args) as float, gradient(s))``.

    The arguments named by ``argnums`` are wrapped as fresh leaves; ``f`` must return a real
    scalar Tensor. A single ``argnums`` gives one gradient array, a sequence gives a tuple.
    """
    nums = _argnums_tuple(argnums)

    def wrapped(*args, **kwargs):
        args = list(args)
        leaves = []
        for i in nums:
            leaf = Tensor(as_value(args[i]), requires_grad=True)
            args[i] = leaf
            leaves.append(leaf)
        out = f(*args, **kwargs)
        if not isinstance(out, Tensor):  # f does not depend on the arguments: a constant
            out = Tensor(out)
        found = backprop(out)
        gs = tuple(
            np.array(found[leaf], dtype=leaf.value.dtype) if leaf in found else np.zeros_like(leaf.value)
            for leaf in leaves
        )
        value = out.value.real.item() if out.value.size == 1 else out.value
        return value, (gs[0] if isinstance(argnums, int) else gs)

    return wrapped


def grad(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """``grad(f)(*args)``: the gradient of the real scalar ``f`` with respect to ``args[argnums]``."""
    vg = value_and_grad(f, argnums)

    def wrapped(*args, **kwargs):
        return vg(*args, **kwargs)[1]

    return wrapped
