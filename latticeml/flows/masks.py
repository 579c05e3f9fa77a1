"""Checkerboard masks for coupling layers.

A coupling layer splits the sites of the lattice into *frozen* sites, which pass through unchanged
and feed the neural net, and *active* sites, which the layer transforms. With a checkerboard split
every active site has all its nearest neighbours frozen, so the net sees the whole local
environment of the sites it updates (M. S. Albergo, G. Kanwar, P. E. Shanahan, PRD 100 (2019)
034515, Fig. 2). Consecutive layers alternate the parity so that every site is transformed.

Convention: ``mask[x] = 1.0`` on frozen sites and ``0.0`` on active sites, float64, the lattice shape;
``checkerboard_mask(shape, parity)`` freezes the sites with ``(x0 + ... + x{D-1}) mod 2 == parity``.
"""

from __future__ import annotations

import numpy as np

from ..lattice import check_shape
from ..lattice import parity as site_parity

__all__ = ["checkerboard_mask"]


def checkerboard_mask(shape, parity: int) -> np.ndarray:
    """1.0 on the sites of parity ``parity`` (frozen), 0.0 on the others (active); shape ``shape``.

    Every extent must be even, otherwise a site and its periodic neighbour across the boundary
    have the same parity and the split is no longer a checkerboard.
    """
    shape = check_shape(shape)
    if parity not in (0, 1):
        raise ValueError(f"parity must be 0 or 1, got {parity!r}")
    if any(L % 2 for L in shape):
        raise ValueError(
            f"a checkerboard mask needs even extents in every direction, got {shape}; use an even lattice size"
        )
    return (site_parity(shape) == parity).astype(np.float64)
