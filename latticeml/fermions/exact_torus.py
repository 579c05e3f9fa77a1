"""Exact expectation values of the 2D Schwinger model (U(1) + staggered) on the 2 x 2 torus.

The smallest torus has 8 links and 4 sites. ``det M`` and the Wilson action are gauge invariant,
so fixing the links of a maximal tree to 1 (``theta_1(0,0)``, ``theta_0(0,0)``, ``theta_1(1,0)``,
with sites ``(t, x)``) leaves an integral over the other 5 link angles with the same expectation
values (the gauge orbit volume cancels in every ratio). The integrand is smooth and periodic, so
the trapezoidal rule with ``n`` points per angle converges exponentially (its error is the
Fourier coefficient of order ``n`` of ``exp(beta cos theta_P) det M^k``, ~``I_n(beta)``);
:func:`schwinger_2x2` sums ``n^5`` points in chunks::

    <O> = sum_grid O exp(-S_g) det(M)^k / sum_grid exp(-S_g) det(M)^k,

for ``O`` = the mean plaquette ``<cos theta_P>`` and the condensate ``(1/V) Re tr M^-1``, with
``M`` built densely here from the definition in :mod:`latticeml.fermions.staggered`
(antiperiodic in t = axis 0); ``det M > 0`` for ``m > 0``.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["schwinger_2x2", "dense_staggered_u1"]


def dense_staggered_u1(theta, mass: float) -> np.ndarray:
    """Dense ``M = m + D`` for a batch of 2D U(1) links ``theta`` (B, 2, L0, L1): complex (B, V, V), written from the definition."""
    theta = np.asarray(theta, dtype=np.float64)
    B, _, L0, L1 = theta.shape
    V = L0 * L1
    M = np.zeros((B, V, V), dtype=np.complex128)
    M[:, np.arange(V), np.arange(V)] = mass
    for t, x in itertools.product(range(L0), range(L1)):
        s = t * L1 + x
        for mu, (dt, dx) in enumerate(((1, 0), (0, 1))):
            eta = 1.0 if mu == 0 else (-1.0) ** t
            sign = -1.0 if (mu == 0 and t == L0 - 1) else 1.0  # antiperiodic in time
            f = ((t + dt) % L0) * L1 + (x + dx) % L1
            U = np.exp(1j * theta[:, mu, t, x])
            M[:, s, f] += 0.5 * eta * sign * U  # forward hop from s over link (mu, s)
            M[:, f, s] -= 0.5 * eta * sign * np.conj(U)  # backward hop from f over the same link
    return M


def schwinger_2x2(beta: float, mass: float, k: int, *, n: int = 16) -> dict:
    """``{"plaquette": <cos theta_P>, "chiral_condensate": <(1/V) Re tr M^-1>}`` on the 2 x 2 torus, weight ``det(M)^k exp(-S_g)``.

    ``S_g = beta sum_P (1 - cos theta_P)``; ``n`` points per angle (n = 16: converged to ~1e-12 for beta <= 2).
    """
    grid = 2 * np.pi * np.arange(n) / n - np.pi
    free = np.array(np.meshgrid(grid, grid, grid, grid, indexing="ij")).reshape(4, -1)  # 4 angles per chunk
    num_p = num_c = Z = 0.0
    for a in grid:  # chunks over the fifth angle
        B = free.shape[1]
        theta = np.zeros((B, 2, 2, 2))
        theta[:, 0, 0, 1] = a
        theta[:, 0, 1, 0], theta[:, 0, 1, 1], theta[:, 1, 0, 1], theta[:, 1, 1, 1] = free
        plaq = np.zeros(B)
        for t, x in itertools.product(range(2), range(2)):
            # theta_P(t, x) = theta_0(t,x) + theta_1(t+1,x) - theta_0(t,x+1) - theta_1(t,x)
            plaq += np.cos(theta[:, 0, t, x] + theta[:, 1, (t + 1) % 2, x] - theta[:, 0, t, (x + 1) % 2] - theta[:, 1, t, x])
        plaq /= 4
        M = dense_staggered_u1(theta, mass)
        det = np.linalg.det(M).real
        cc = np.trace(np.linalg.inv(M), axis1=1, axis2=2).real / 4
        w = np.exp(-beta * 4 * (1 - plaq)) * det**k
        Z += w.sum()
        num_p += (w * plaq).sum()
        num_c += (w * cc).sum()
    return {"plaquette": num_p / Z, "chiral_condensate": num_c / Z}
