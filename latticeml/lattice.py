"""Lattice geometry: shapes, site numbering, neighbour tables, shifts and checkerboards.

Conventions (the contract every module keeps; see DESIGN.md):

* A lattice is a tuple ``shape = (L0, L1, ..., L{D-1})`` with periodic boundaries; axis 0 is
  "time" where it matters.
* Fields put the lattice axes after any leading axes (batch ``B``, direction ``mu``, channel ``C``)
  and before any colour axes: U(1) links ``(D, L0, ..., L{D-1})``, SU(N) links
  ``(D, L0, ..., L{D-1}, N, N)``, scalars ``(L0, ..., L{D-1})``.
* Inside Numba kernels the sites are flattened in C order,
  ``s = ((x0 * L1 + x1) * L2 + x2) ...``, so a link field of shape ``(D, *shape, N, N)`` is viewed
  as ``(D, V, N, N)`` without a copy. ``neighbour_table(shape)`` gives ``fwd[s, mu]`` (the site
  ``x + mu_hat``) and ``bwd[s, mu]`` (``x - mu_hat``): one kernel then serves every dimension D.
* ``shift(f, mu, +1)[x] = f[x + mu_hat]`` (the field seen from the forward neighbour), i.e.
  ``np.roll(f, -1, axis)``. This is the sign every action and loop in the library uses.
* Parity ``p(x) = (x0 + ... + x{D-1}) mod 2``; a checkerboard (even/odd) split needs every
  ``L_mu`` even, otherwise a site and its neighbour across the boundary share a parity.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = [
    "check_shape",
    "volume",
    "coordinates",
    "neighbour_table",
    "shift",
    "parity",
    "checkerboard_sites",
    "checkerboard_array",
    "sweep_order",
    "planes",
]


def check_shape(shape, *, min_extent: int = 1, dims=None) -> tuple[int, ...]:
    """Validate a lattice shape and return it as a tuple of Python ints.

    ``dims`` (an int or a collection of ints) restricts the allowed number of dimensions.
    """
    try:
        shape = tuple(int(L) for L in shape)
    except TypeError:
        raise TypeError(f"lattice shape must be a sequence of ints like (8, 8), got {shape!r}") from None
    if len(shape) == 0:
        raise ValueError("lattice shape is empty: give one extent per dimension, e.g. (16, 16)")
    if any(L < min_extent for L in shape):
        raise ValueError(f"every lattice extent must be >= {min_extent}, got shape {shape}")
    if dims is not None:
        allowed = (dims,) if isinstance(dims, int) else tuple(dims)
        if len(shape) not in allowed:
            raise ValueError(
                f"this function supports D in {allowed} dimensions, got a {len(shape)}-dimensional lattice {shape}"
            )
    return shape


def volume(shape) -> int:
    """Number of sites ``V = prod(L_mu)``."""
    return int(np.prod(check_shape(shape)))


@lru_cache(maxsize=64)
def _coordinates(shape: tuple[int, ...]) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(L) for L in shape], indexing="ij")
    coords = np.stack([g.ravel() for g in grids], axis=1).astype(np.int64)
    coords.setflags(write=False)
    return coords


def coordinates(shape) -> np.ndarray:
    """Integer coordinates of every site in C order, shape ``(V, D)`` (read-only)."""
    return _coordinates(check_shape(shape))


@lru_cache(maxsize=64)
def _neighbour_table(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    V, D = int(np.prod(shape)), len(shape)
    idx = np.arange(V, dtype=np.int64).reshape(shape)
    fwd = np.empty((V, D), dtype=np.int64)
    bwd = np.empty((V, D), dtype=np.int64)
    for mu in range(D):
        fwd[:, mu] = np.roll(idx, -1, axis=mu).ravel()  # site of x + mu_hat
        bwd[:, mu] = np.roll(idx, +1, axis=mu).ravel()  # site of x - mu_hat
    fwd.setflags(write=False)
    bwd.setflags(write=False)
    return fwd, bwd


def neighbour_table(shape) -> tuple[np.ndarray, np.ndarray]:
    """Periodic neighbour tables ``(fwd, bwd)``, each int64 of shape ``(V, D)``.

    ``fwd[s, mu]`` is the flat index of ``x + mu_hat`` and ``bwd[s, mu]`` that of ``x - mu_hat``,
    with sites numbered in C order. The tables are cached per shape and read-only.
    """
    return _neighbour_table(check_shape(shape))


def shift(field: np.ndarray, mu: int, n: int = 1, *, lattice_axes=None) -> np.ndarray:
    """Return ``g`` with ``g[..., x, ...] = field[..., x + n * mu_hat, ...]`` (periodic).

    ``lattice_axes`` are the array axes that hold the lattice (default: all axes, i.e. a plain
    scalar field). For a link field ``U`` of shape ``(D, *shape, N, N)`` pass
    ``lattice_axes=range(1, 1 + D)``; ``mu`` counts lattice directions, not array axes.
    """
    field = np.asarray(field)
    axes = list(range(field.ndim)) if lattice_axes is None else list(lattice_axes)
    if not 0 <= mu < len(axes):
        raise ValueError(f"direction mu={mu} out of range for a {len(axes)}-dimensional lattice")
    return np.roll(field, -n, axis=axes[mu])


@lru_cache(maxsize=64)
def _parity(shape: tuple[int, ...]) -> np.ndarray:
    p = (coordinates(shape).sum(axis=1) % 2).astype(np.int8).reshape(shape)
    p.setflags(write=False)
    return p


def parity(shape) -> np.ndarray:
    """Site parity ``(x0 + ... + x{D-1}) mod 2`` as an int8 array of shape ``shape`` (read-only)."""
    return _parity(check_shape(shape))


@lru_cache(maxsize=64)
def _checkerboard(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    p = parity(shape).ravel()
    even = np.flatnonzero(p == 0).astype(np.int64)
    odd = np.flatnonzero(p == 1).astype(np.int64)
    even.setflags(write=False)
    odd.setflags(write=False)
    return even, odd


def checkerboard_sites(shape) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the even and of the odd sites, ``(even, odd)``, each int64 of length V/2.

    Nearest neighbours of an even site are odd, so all sites of one colour can be updated
    independently (in parallel) by a local algorithm. Requires every extent to be even.
    """
    shape = check_shape(shape)
    if any(L % 2 for L in shape):
        raise ValueError(
            f"a checkerboard (even/odd) decomposition needs even extents in every direction, got {shape}; "
            "use even lattice sizes for local updates"
        )
    return _checkerboard(shape)


def checkerboard_array(shape) -> np.ndarray:
    """The flat site indices of both colours as one read-only int64 array ``(2, V/2)``, even row first.

    The form the local-update kernels take (:func:`checkerboard_sites` stacked, cached per shape).
    """
    return _checkerboard_array(check_shape(shape))


@lru_cache(maxsize=64)
def _checkerboard_array(shape: tuple[int, ...]) -> np.ndarray:
    sites = np.ascontiguousarray(np.stack(checkerboard_sites(shape)))
    sites.setflags(write=False)
    return sites


def sweep_order(D: int, *, reverse: bool = False) -> np.ndarray:
    """The ``(mu, colour)`` sublattices of one sweep over the links, in visiting order, int64 ``(2 D, 2)``.

    ``mu = 0, ..., D-1`` in turn, even sites then odd ones. ``reverse=True`` gives the opposite
    order (an overrelaxation sweep followed by the reversed sweep returns the configuration).
    """
    order = _sweep_order(int(D))
    return np.ascontiguousarray(order[::-1]) if reverse else order


@lru_cache(maxsize=16)
def _sweep_order(D: int) -> np.ndarray:
    order = np.array([(mu, colour) for mu in range(D) for colour in (0, 1)], dtype=np.int64)
    order.setflags(write=False)
    return order


@lru_cache(maxsize=16)
def _planes_array(D: int) -> np.ndarray:
    """planes(D) as a read-only (D (D - 1) / 2, 2) int64 array, for Numba kernels."""
    p = np.array([(mu, nu) for mu in range(D) for nu in range(mu + 1, D)], dtype=np.int64).reshape(-1, 2)
    p.setflags(write=False)
    return p


def planes(D: int) -> tuple[tuple[int, int], ...]:
    """The D (D - 1) / 2 lattice planes ``(mu, nu)``, ``mu < nu``, in the order every plaquette array
    uses: (0, 1), (0, 2), ..., (1, 2), ..."""
    if int(D) != D or D < 2:
        raise ValueError(f"plaquettes need a lattice of dimension D >= 2, got D={D}")
    return tuple((int(mu), int(nu)) for mu, nu in _planes_array(int(D)))
