"""What the local-update samplers share: their state, the working copy, and the support check.

The sweeps themselves belong to the theories (``theory.metropolis_sweep``, ``heatbath_sweep``,
``overrelax_sweep``; :mod:`latticeml.theories.base`): a sampler here only validates, copies the
field, calls the theory's sweep on the copy and reports. A theory whose ``local_updates`` lacks
the algorithm is refused by :func:`latticeml.samplers.check_supported` in one line naming the
algorithms that do support it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..lattice import checkerboard_array
from . import check_supported

__all__ = ["State", "init", "working_copy", "check_local"]


class State(NamedTuple):
    """State of a local-update chain: just the configuration.

    field: the current field (shape and dtype of the theory's fields).
    """

    field: np.ndarray


def check_local(theory, algorithm: str, local_update: str) -> None:
    """Refuse a theory without ``local_update`` (one line naming what does support it); require even extents."""
    check_supported(theory, algorithm, local_update)
    checkerboard_array(theory.shape)  # raises unless every extent is even (the sweeps run on a checkerboard)


def init(field, theory) -> State:
    """Validate ``field`` with ``theory.check_field`` and wrap a private C-contiguous copy in a :class:`State`."""
    return State(np.array(theory.check_field(field), order="C", copy=True))


def working_copy(field, theory) -> np.ndarray:
    """A C-contiguous copy of ``field`` that a sweep may update in place (the input stays untouched).

    A field of the theory's shape and dtype is copied as it is (``init`` validated the chain's
    start and every sweep keeps the field valid; for SU(N) the unitarity test of ``check_field``
    would cost as much as a sweep); anything else goes through ``theory.check_field``, which
    converts it or raises the theory's own error.
    """
    field = np.asarray(field)
    if field.shape != theory.field_shape or field.dtype != theory.field_dtype:
        field = theory.check_field(field)
    return np.array(field, order="C", copy=True)
