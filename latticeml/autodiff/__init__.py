"""latticeml.autodiff: a small reverse-mode automatic differentiation engine over NumPy.

    from latticeml import autodiff as ad
    x = ad.Tensor(np.linspace(-1, 1, 5), requires_grad=True)
    loss = (ad.tanh(x) ** 2).sum()
    loss.backward()          # x.grad = 2 tanh(x) (1 - tanh(x)^2)

Modules: ``tensor`` (node type, tape, backward, custom ops), ``ops`` (primitives and the VJP
table), ``conv`` (periodic lattice convolution, Numba), ``nn`` (modules and layers), ``optim``
(SGD, Adam), ``gradcheck`` (finite-difference checks). Conventions (dtypes, the complex
gradient) are stated in ``tensor``.
"""

from .tensor import (  # noqa: F401
    CustomOp,
    Parameter,
    Primitive,
    Tensor,
    as_value,
    backprop,
    custom_op,
    defvjp,
    defvjp_argnum,
    grad,
    is_grad_enabled,
    no_grad,
    value_and_grad,
)
from .ops import (  # noqa: F401
    PRIMITIVES,
    abs,
    add,
    arctan2,
    broadcast_to,
    concatenate,
    conj,
    cos,
    dagger,
    divide,
    exp,
    getitem,
    imag,
    leaky_relu,
    log,
    logsumexp,
    matmul,
    mean,
    multiply,
    negative,
    power,
    real,
    relu,
    reshape,
    roll,
    sigmoid,
    sin,
    softplus,
    sqrt,
    square,
    stack,
    subtract,
    sum,
    swapaxes,
    tanh,
    trace,
    transpose,
    unbroadcast,
    where,
)
from .conv import neighbour_table, periodic_conv  # noqa: F401
from .gradcheck import check_grads, numerical_grad  # noqa: F401
from . import nn, optim  # noqa: F401,E402
