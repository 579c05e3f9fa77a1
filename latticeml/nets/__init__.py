"""Neural nets for lattice field theory built on ``latticeml.autodiff``.

``symmetric``: the odd MLP (a symmetry imposed by construction) and symmetric/antisymmetric parts.
The generic layers and builders live in ``latticeml.autodiff.nn`` and are re-exported here.
"""

from ..autodiff.nn import Conv, Dense, Module, Sequential, conv_net, mlp  # noqa: F401
from .symmetric import OddMLP, antisymmetric_part, symmetric_part  # noqa: F401
