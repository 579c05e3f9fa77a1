"""Modules, layers and net builders on top of the autodiff engine.

A :class:`Module` owns :class:`~latticeml.autodiff.Parameter` s (directly, in sub-modules, or in
lists of sub-modules) and computes ``forward(x)``. Parameters are found by walking the
attributes in the order they were set, and named by their attribute path
(``"layers.0.weight"``); that name is the key in :meth:`Module.state_dict` and in the ``.npz``
file written by :meth:`Module.save`.

Layers and shapes:

    Dense(n_in, n_out)                x (..., n_in)           -> (..., n_out)      y = x W + b
    Conv(c_in, c_out, k, ndim=D)      x (B, c_in, L0..L{D-1}) -> (B, c_out, L...)  periodic
    Tanh, Sin, ReLU, LeakyReLU, Sigmoid, Softplus, Identity    elementwise
    Sequential(*modules)              composition

Initialisation: every weight and bias is drawn from U(-1/sqrt(fan_in), +1/sqrt(fan_in)) with
fan_in = n_in (Dense) or c_in * prod(k) (Conv), the scale of LeCun et al., "Efficient
BackProp" (1998) and PyTorch's default; every constructor takes an explicit ``rng``.
"""

from __future__ import annotations

import pathlib

import numpy as np

from ..checks import check_rng
from . import ops
from .conv import periodic_conv
from .tensor import Parameter

__all__ = [
    "Module",
    "Dense",
    "Conv",
    "Sequential",
    "Activation",
    "Tanh",
    "Sin",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Softplus",
    "Identity",
    "ACTIVATIONS",
    "ODD_ACTIVATIONS",
    "activation",
    "mlp",
    "conv_net",
]


class Module:
    """Base class: parameters found by attribute walk, save/load as ``.npz``."""

    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} must define forward(x)")

    def __call__(self, x):
        return self.forward(x)

    def named_parameters(self, prefix: str = "") -> list[tuple[str, Parameter]]:
        """``[(name, parameter), ...]`` in definition order, each parameter once."""
        out, seen = [], set()

        def walk(obj, name):
            if isinstance(obj, Parameter):
                if id(obj) not in seen:
                    seen.add(id(obj))
                    out.append((name, obj))
            elif isinstance(obj, Module):
                for key, val in vars(obj).items():
                    walk(val, f"{name}.{key}" if name else key)
            elif isinstance(obj, (list, tuple)):
                for j, val in enumerate(obj):
                    walk(val, f"{name}.{j}" if name else str(j))

        walk(self, prefix)
        return out

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        return int(sum(p.value.size for p in self.parameters()))

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of all parameter values, keyed by name."""
        return {name: p.value.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state) -> None:
        """Copy values into the parameters; names, shapes and dtypes must match exactly."""
        params = dict(self.named_parameters())
        missing, unexpected = set(params) - set(state), set(state) - set(params)
        if missing or unexpected:
            raise ValueError(
                f"state does not match {type(self).__name__}: missing {sorted(missing)}, "
                f"unexpected {sorted(unexpected)}; was it saved from the same architecture?"
            )
        for name, p in params.items():
            val = np.asarray(state[name])
            if val.shape != p.value.shape or val.dtype != p.value.dtype:
                raise ValueError(
                    f"parameter {name!r}: stored {val.shape} {val.dtype}, module has {p.value.shape} {p.value.dtype}"
                )
            p.value[...] = val

    def save(self, path) -> pathlib.Path:
        """Write the parameters to ``path`` (``.npz``; plain arrays, no pickle)."""
        path = pathlib.Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz")
        np.savez(path, **self.state_dict())
        return path

    def load(self, path) -> "Module":
        """Read parameters written by :meth:`save` (``allow_pickle=False``)."""
        with np.load(path, allow_pickle=False) as data:
            self.load_state_dict({k: data[k] for k in data.files})
        return self


def _uniform(rng, bound, shape):
    return rng.uniform(-bound, bound, size=shape)


class Dense(Module):
    """Affine layer ``y = x @ weight + bias``; ``weight`` (n_in, n_out), ``bias`` (n_out,)."""

    def __init__(self, n_in: int, n_out: int, *, bias: bool = True, rng: np.random.Generator):
        check_rng(rng)
        bound = 1.0 / np.sqrt(n_in)
        self.weight = Parameter(_uniform(rng, bound, (n_in, n_out)))
        self.bias = Parameter(_uniform(rng, bound, (n_out,))) if bias else None

    def forward(self, x):
        y = ops.matmul(x, self.weight)
        return y if self.bias is None else ops.add(y, self.bias)

    def __repr__(self):
        n_in, n_out = self.weight.shape
        return f"Dense({n_in} -> {n_out}, bias={self.bias is not None})"


class Conv(Module):
    """Periodic convolution on a ``ndim``-dimensional lattice (see ``autodiff.conv``).

    ``weight`` (c_out, c_in, k, ..., k), ``bias`` (c_out,); input (B, c_in, L0, ...).
    """

    def __init__(
        self, c_in: int, c_out: int, kernel_size, *, ndim: int = 2, bias: bool = True, rng: np.random.Generator
    ):
        check_rng(rng)
        kernel = (kernel_size,) * ndim if np.ndim(kernel_size) == 0 else tuple(kernel_size)
        if len(kernel) != ndim or any(k % 2 == 0 or k < 1 for k in kernel):
            raise ValueError(f"kernel_size must be odd and have {ndim} entries, got {kernel_size}")
        bound = 1.0 / np.sqrt(c_in * np.prod(kernel))
        self.weight = Parameter(_uniform(rng, bound, (c_out, c_in) + kernel))
        self.bias = Parameter(_uniform(rng, bound, (c_out,))) if bias else None

    def forward(self, x):
        return periodic_conv(x, self.weight, self.bias)

    def __repr__(self):
        c_out, c_in = self.weight.shape[:2]
        return f"Conv({c_in} -> {c_out}, kernel={self.weight.shape[2:]}, periodic, bias={self.bias is not None})"


class Activation(Module):
    """An elementwise function with no parameters."""

    fn = staticmethod(lambda x: x)

    def forward(self, x):
        return self.fn(x)

    def __repr__(self):
        return f"{type(self).__name__}()"


class Tanh(Activation):
    fn = staticmethod(ops.tanh)


class Sin(Activation):
    fn = staticmethod(ops.sin)


class ReLU(Activation):
    fn = staticmethod(ops.relu)


class Sigmoid(Activation):
    fn = staticmethod(ops.sigmoid)


class Softplus(Activation):
    fn = staticmethod(ops.softplus)


class Identity(Activation):
    pass


class LeakyReLU(Activation):
    def __init__(self, slope: float = 0.01):
        self.slope = float(slope)

    def forward(self, x):
        return ops.leaky_relu(x, slope=self.slope)


ACTIVATIONS = {
    "tanh": Tanh,
    "sin": Sin,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "sigmoid": Sigmoid,
    "softplus": Softplus,
    "identity": Identity,
}
# h(-x) = -h(x) exactly in floating point (IEEE rounding is symmetric under sign flips).
ODD_ACTIVATIONS = ("tanh", "sin", "identity")


def activation(name) -> Activation:
    """An activation module from its name (or the module itself)."""
    if isinstance(name, Module):
        return name
    if name is None:
        return Identity()
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


class Sequential(Module):
    """Apply ``layers`` one after the other."""

    def __init__(self, *layers: Module):
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, i):
        return self.layers[i]

    def __repr__(self):
        body = "".join(f"\n  ({j}) {layer!r}" for j, layer in enumerate(self.layers))
        return f"{type(self).__name__}({body}\n)"

    def __len__(self):
        return len(self.layers)


def _stack_layers(make_layer, sizes, activation_name, final_activation):
    layers = []
    for j, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(make_layer(n_in, n_out))
        last = j == len(sizes) - 2
        act = final_activation if last else activation_name
        if act is not None and act != "identity":
            layers.append(activation(act))
    return Sequential(*layers)


def mlp(
    sizes,
    *,
    activation: str = "tanh",
    final_activation: str | None = None,
    bias: bool = True,
    rng: np.random.Generator,
) -> Sequential:
    """Multilayer perceptron ``sizes = (n_in, hidden..., n_out)``: Dense + activation, last layer linear."""
    sizes = [int(n) for n in sizes]
    if len(sizes) < 2:
        raise ValueError(f"mlp needs at least (n_in, n_out), got {sizes}")
    check_rng(rng)
    return _stack_layers(lambda i, o: Dense(i, o, bias=bias, rng=rng), sizes, activation, final_activation)


def conv_net(
    channels,
    *,
    kernel_size=3,
    ndim: int = 2,
    activation: str = "tanh",
    final_activation: str | None = None,
    bias: bool = True,
    rng: np.random.Generator,
) -> Sequential:
    """Stack of periodic convolutions ``channels = (c_in, hidden..., c_out)``, last layer linear.

    The translation-equivariant nets of Albergo, Kanwar & Shanahan, PRD 100 (2019) 034515.
    """
    channels = [int(c) for c in channels]
    if len(channels) < 2:
        raise ValueError(f"conv_net needs at least (c_in, c_out), got {channels}")
    check_rng(rng)
    return _stack_layers(
        lambda i, o: Conv(i, o, kernel_size, ndim=ndim, bias=bias, rng=rng), channels, activation, final_activation
    )
