"""Local Metropolis updates on a checkerboard, for every theory that offers them (phi^4, U(1), SU(N)).

Algorithm
---------
N. Metropolis, A. W. Rosenbluth, M. N. Rosenbluth, A. H. Teller, E. Teller, J. Chem. Phys. 21
(1953) 1087. One site (or link) at a time, a new value is proposed from a symmetric distribution
around the old one and accepted with probability ``min(1, exp(-dS))``, where ``dS`` is the change
of the action; only the terms that touch the site enter ``dS``. ``hits`` proposals are made in a
row at every site before moving on (the neighbourhood, i.e. the staple, is computed once).

The sweep is the theory's own (``theory.metropolis_sweep``): its proposal, its local action and
the order in which it draws random numbers are documented with its kernels,
:func:`latticeml.theories.phi4.metropolis_sweep`, :func:`latticeml.theories.u1.metropolis_sweep`,
:func:`latticeml.theories.sun_local.metropolis_sweep`. Every sweep visits the even sites, then the
odd ones (every extent must be even; for gauge fields for ``mu = 0, ..., D-1`` in turn), draws
the random numbers of the whole sweep beforehand and updates a colour in parallel, so the chain
is bit-for-bit the same for a given seed whatever the number of threads. A theory without
Metropolis (an improved gauge action, whose rectangles break the checkerboard) is refused.

API (the blackjax pattern of :mod:`latticeml.samplers.chain`)
--------------------------------------------------------------
``init(field, theory) -> State``, ``step(rng, state, theory, *, step_size, hits) -> (State, Info)``
(pure: the input state is never modified), and ``sampler(theory, *, step_size=None, hits=1)``
which binds them into a :class:`latticeml.samplers.chain.Sampler`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from ..checks import check_count, check_rng, positive_float
from .chain import Sampler
from .local import State, check_local, init, working_copy

__all__ = ["State", "Info", "init", "step", "sampler"]


class Info(NamedTuple):
    """What one Metropolis step (one sweep) reports.

    acceptance:  fraction of the ``n_proposals`` proposals that were accepted.
    n_proposals: number of proposals in the sweep, ``hits * V`` (phi^4) or ``hits * D * V`` (links).
    """

    acceptance: float
    n_proposals: int


def _settings(theory, step_size, hits) -> tuple[float, int]:
    check_local(theory, "metropolis", "metropolis")
    step_size = positive_float(theory.metropolis_step_size if step_size is None else step_size, "step_size (the proposal width)")
    hits = check_count(hits, "hits (Metropolis proposals per site and sweep)", minimum=1)
    return step_size, hits


def step(rng: np.random.Generator, state: State, theory, *, step_size: float | None = None, hits: int = 1):
    """One checkerboard Metropolis sweep: returns ``(State, Info)``; ``state`` is left untouched.

    ``step_size`` defaults to ``theory.metropolis_step_size``.
    """
    check_rng(rng)
    step_size, hits = _settings(theory, step_size, hits)
    field = working_copy(state.field, theory)
    acceptance = theory.metropolis_sweep(rng, field, step_size=step_size, hits=hits)
    return State(field), Info(acceptance=float(acceptance), n_proposals=int(hits * theory.local_variables))


def sampler(theory, *, step_size: float | None = None, hits: int = 1) -> Sampler:
    """Checkerboard Metropolis for ``theory`` (see the module docstring).

    step_size: proposal width (phi^4 field units, U(1) radians, SU(N) spread of the algebra
               element); default ``theory.metropolis_step_size``, chosen for acceptances of
               roughly 0.4 - 0.7 at typical couplings. Tune it: the acceptance is in ``Info``.
    hits:      proposals per site (link) and sweep, >= 1.
    One ``step`` is one sweep over all sites (links).
    """
    step_size, hits = _settings(theory, step_size, hits)
    return Sampler(
        name="metropolis",
        theory=theory,
        settings={"step_size": step_size, "hits": hits},
        init=functools.partial(init, theory=theory),
        step=functools.partial(step, theory=theory, step_size=step_size, hits=hits),
    )
