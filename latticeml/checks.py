"""Input validation: the one home of every check a public function makes on its arguments.

Each check raises an error that says what is wrong and what to do, and returns the value in the
form the kernels want (a Python ``int`` or ``float``, a C-contiguous float64/complex128 array), so
a public function reads ``beta = finite_float(beta, "beta")`` and never re-implements the test.

* :func:`check_rng`      -- a ``numpy.random.Generator`` (every random draw takes one explicitly);
* :func:`check_count`    -- an integer ``>= minimum`` (sweeps, steps, hits, layers);
* :func:`finite_float`   -- a finite real number (couplings such as beta, m^2, c1);
* :func:`positive_float` -- a positive finite real number (step sizes, lambda, smearing weights);
* :func:`gauge_links`    -- U(1) angles ``(D, *shape)`` float64 or SU(N) matrices
  ``(D, *shape, N, N)`` complex128 (optionally batched ``(B, D, ...)``), viewed with flat sites.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

from .lattice import check_shape

__all__ = ["check_rng", "check_count", "finite_float", "positive_float", "GaugeLinks", "gauge_links"]


def check_rng(rng, name: str = "rng") -> np.random.Generator:
    """``rng`` itself if it is a ``numpy.random.Generator``, else ``TypeError`` saying how to make one."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{name} must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    return rng


def check_count(value, name: str, *, minimum: int = 0) -> int:
    """``int(value)`` for an integer ``>= minimum`` (bools and non-integral floats are refused)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (numbers.Integral, numbers.Real))
        or not math.isfinite(float(value))
        or int(value) != value
        or value < minimum
    ):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def finite_float(value, name: str = "beta") -> float:
    """``float(value)``, or ``ValueError`` unless it is a finite real number (couplings such as beta)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value


def positive_float(value, name: str) -> float:
    """``float(value)``, or ``ValueError`` unless it is a positive finite real number."""
    value = finite_float(value, name)
    if value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value}")
    return value


class GaugeLinks(NamedTuple):
    """Validated gauge links with flat sites.

    group:   ``"u1"`` (``flat`` float64 ``(B, D, V)`` angles) or ``"su"`` (``flat`` complex128
             ``(B, D, V, N, N)``); B = 1 for unbatched input.
    flat:    the C-contiguous kernel view (a copy only where the input was not already one).
    shape:   the lattice shape ``(L0, ..., L{D-1})``.
    batched: whether the caller passed a leading batch axis.
    """

    group: str
    flat: np.ndarray
    shape: tuple
    batched: bool

    @property
    def B(self) -> int:
        return self.flat.shape[0]

    @property
    def D(self) -> int:
        return self.flat.shape[1]

    @property
    def V(self) -> int:
        return self.flat.shape[2]

    @property
    def N(self) -> int:
        """Colours: 1 for U(1)."""
        return 1 if self.group == "u1" else self.flat.shape[-1]

    def restore(self, flat: np.ndarray) -> np.ndarray:
        """A field in kernel form ``(B, D, V, ...)`` back in the caller's form (batch axis only if batched)."""
        out = flat.reshape(flat.shape[:2] + self.shape + flat.shape[3:])
        return out if self.batched else out[0]


def gauge_links(links, *, batched: bool = False, group: str | None = None, min_dim: int = 2) -> GaugeLinks:
    """Validate gauge links and view them with flat sites (see :class:`GaugeLinks`).

    Real dtypes are U(1) angles, complex dtypes SU(N) matrices; ``group="u1"`` or ``"su"`` insists
    on one of them. The lattice needs ``D >= min_dim`` directions. Errors name the expected shape
    and, for a stack of configurations, suggest ``batched=True``.
    """
    links = np.asarray(links)
    lead = 1 if batched else 0
    hint = "" if batched else "; for a batch of configurations pass batched=True"
    b = "(B, " if batched else "("
    kind = links.dtype.kind
    if kind in "iuf":
        found = "u1"
    elif kind == "c":
        found = "su"
    else:
        raise TypeError(f"links have dtype {links.dtype}: use float64 angles for U(1) or complex128 matrices for SU(N)")
    if group is not None and found != group:
        if group == "u1":
            raise TypeError(f"U(1) links must be real angles (float64), got dtype {links.dtype}; pass theta = np.angle(U) if you hold complex phases U")
        raise TypeError(f"SU(N) links must be complex128 matrices, got dtype {links.dtype}")
    if batched and (links.ndim == 0 or links.shape[0] == 0):
        raise ValueError(f"a batch of links needs at least one configuration, got shape {links.shape}")
    if found == "u1":
        form = f"{b}D, L0, ..., L{{D-1}})"
        if links.ndim < lead + 1 + min_dim or links.ndim != lead + 1 + links.shape[lead]:
            raise ValueError(f"U(1) links must be angles of shape {form} with D >= {min_dim}, got shape {links.shape}{_axes_note(links, lead, 1)}{hint}")
        shape = check_shape(links.shape[lead + 1 :])
        flat = np.ascontiguousarray(links, dtype=np.float64).reshape(-1, len(shape), int(np.prod(shape)))
        return GaugeLinks("u1", flat, shape, batched)
    form = f"{b}D, L0, ..., L{{D-1}}, N, N)"
    if links.ndim < lead + 3 + min_dim or links.ndim != lead + 3 + links.shape[lead]:
        raise ValueError(f"SU(N) links must have shape {form} with D >= {min_dim}, got shape {links.shape}{_axes_note(links, lead, 3)}{hint}")
    N = links.shape[-1]
    if links.shape[-2] != N or N < 2:
        raise ValueError(f"SU(N) links must have shape {form}: the last two axes must be N x N colour matrices with N >= 2, got {links.shape[-2:]}")
    shape = check_shape(links.shape[lead + 1 : -2])
    flat = np.ascontiguousarray(links, dtype=np.complex128).reshape(-1, len(shape), int(np.prod(shape)), N, N)
    return GaugeLinks("su", flat, shape, batched)


def _axes_note(links, lead: int, extra: int) -> str:
    """': the direction axis has D entries but there are k lattice axes' when that is the mismatch."""
    if links.ndim <= lead:
        return ""
    n_axes = links.ndim - lead - extra
    D = links.shape[lead]
    return f": the direction axis has {D} entries but there are {n_axes} lattice axes" if n_axes >= 1 and D != n_axes else ""
