"""The prior of a normalizing flow: independent standard normal variables on every site.

    r(z) = prod_x exp(-z(x)^2 / 2) / sqrt(2 pi),    log r(z) = -1/2 sum_x z(x)^2 - (V/2) log(2 pi)

Samples have shape ``(n, *shape)``; :meth:`NormalPrior.log_prob` takes a batch ``(B, *shape)`` and
returns ``(B,)``. (Albergo, Kanwar & Shanahan, PRD 100 (2019) 034515, Sec. III; the prior of the
tutorial, Albergo et al., arXiv:2101.08176, Sec. 2.)
"""

from __future__ import annotations

import math

import numpy as np

from ..checks import check_count, check_rng
from ..lattice import check_shape

__all__ = ["NormalPrior"]


class NormalPrior:
    """Independent N(0, 1) on each of the V sites of a lattice of shape ``shape``."""

    def __init__(self, shape):
        self.shape = check_shape(shape)
        self.field_shape = self.shape  # one real number per site
        self.volume = int(np.prod(self.shape))

    def __repr__(self):
        return f"NormalPrior(shape={self.shape})"

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` independent draws, shape ``(n, *shape)``."""
        check_rng(rng)
        n = check_count(n, "the number of samples", minimum=1)
        return rng.standard_normal((n,) + self.shape)

    def log_prob(self, z) -> np.ndarray:
        """``log r(z)`` for a batch ``z`` of shape ``(B, *shape)``: an array ``(B,)``."""
        z = np.asarray(z, dtype=np.float64)
        if z.shape[1:] != self.shape:
            raise ValueError(f"expected a batch of shape (B, *{self.shape}), got {z.shape}")
        sq = (z * z).reshape(z.shape[0], -1).sum(axis=1)
        return -0.5 * sq - 0.5 * self.volume * math.log(2.0 * math.pi)
