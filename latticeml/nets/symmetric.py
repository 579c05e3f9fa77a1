"""Nets with a symmetry imposed by construction: the odd (antisymmetric) MLP.

A function h: R^n -> R^m is odd if h(-x) = -h(x). A composition of odd maps is odd, so an MLP
whose layers are all odd is odd for every value of its weights:

    linear maps without bias   W(-x) = -(W x)
    odd activations            tanh(-x) = -tanh(x),  sin(-x) = -sin(x)

(Ipp, "Symmetries and ML", SLAC Summer Institute 2023: "remove bias and use antisymmetric
activation function -> every layer is antisymmetric"). In floating point the symmetry is exact,
not just approximate: IEEE-754 rounding to nearest is symmetric under x -> -x, so each product,
sum (in the same order) and tanh/sin of -x is bit for bit minus that of x.

The symmetric and antisymmetric parts of any h,

    Delta_sym(x)  = (h(x) + h(-x)) / 2,     Delta_anti(x) = (h(x) - h(-x)) / 2,

measure how far a generic net is from the symmetry; for :class:`OddMLP`, Delta_sym = 0 exactly.

Shapes: input (N, n_in), output (N, n_out), as for :func:`latticeml.autodiff.nn.mlp`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..autodiff.nn import ODD_ACTIVATIONS, Dense, Sequential, activation as make_activation
from ..autodiff.tensor import as_value, no_grad

__all__ = ["OddMLP", "symmetric_part", "antisymmetric_part"]


class OddMLP(Sequential):
    """MLP with h(-x) = -h(x) exactly: Dense layers without bias, odd activations, linear output.

    ``sizes = (n_in, hidden..., n_out)``; ``activation`` one of ``ODD_ACTIVATIONS``.
    """

    def __init__(self, sizes, *, activation: str = "tanh", rng: np.random.Generator):
        sizes = [int(n) for n in sizes]
        if len(sizes) < 2:
            raise ValueError(f"OddMLP needs at least (n_in, n_out), got {sizes}")
        if activation not in ODD_ACTIVATIONS:
            raise ValueError(
                f"activation {activation!r} is not odd; an odd net needs one of {ODD_ACTIVATIONS} "
                "(h(-x) = -h(x) must hold layer by layer)"
            )
        layers = []
        for j, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Dense(n_in, n_out, bias=False, rng=rng))
            if j < len(sizes) - 2 and activation != "identity":
                layers.append(make_activation(activation))
        super().__init__(*layers)


def _evaluate(h: Callable, x) -> np.ndarray:
    with no_grad():
        return np.asarray(as_value(h(x)))


def symmetric_part(h: Callable, x) -> np.ndarray:
    """Delta_sym(x) = (h(x) + h(-x)) / 2, evaluated without recording a tape."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * (_evaluate(h, x) + _evaluate(h, -x))


def antisymmetric_part(h: Callable, x) -> np.ndarray:
    """Delta_anti(x) = (h(x) - h(-x)) / 2."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * (_evaluate(h, x) - _evaluate(h, -x))
