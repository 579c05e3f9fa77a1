"""The Metropolis accept/reject test shared by the samplers with global proposals.

HMC and SLHMC trajectories, instanton moves and the flow-based independence sampler all end the
same way: a proposal that changes the "energy" (the Hamiltonian, the action, or minus the log of
the importance weight) by ``delta`` is accepted with probability ``min(1, exp(-delta))``
(N. Metropolis, A. W. Rosenbluth, M. N. Rosenbluth, A. H. Teller and E. Teller, J. Chem. Phys. 21
(1953) 1087; W. K. Hastings, Biometrika 57 (1970) 97). One function does it, so the samplers agree
on the corner cases and on the random numbers they draw.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["metropolis_test"]


def metropolis_test(rng: np.random.Generator, delta: float) -> tuple[bool, float]:
    """Accept a proposal that changes the energy by ``delta`` with probability ``min(1, exp(-delta))``.

    Returns ``(accepted, probability)``. Draws exactly one uniform number from ``rng``, also when
    the probability is 1 (so a chain's random stream does not depend on the proposals' values).
    ``exp(-delta)`` is only evaluated for ``delta > 0``, so it cannot overflow; a diverged proposal
    (``delta`` = inf or nan) has probability 0 and is rejected.
    """
    if not math.isfinite(delta):
        probability = 0.0
    else:
        probability = 1.0 if delta <= 0.0 else math.exp(-delta)
    return bool(rng.random() < probability), probability
