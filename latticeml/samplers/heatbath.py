"""Heatbath and overrelaxation, for every theory that offers them (the Wilson actions of U(1) and SU(N)).

Both update one link at a time with everything else fixed; the sweeps are the theory's own
(``theory.heatbath_sweep``, ``theory.overrelax_sweep``), with their algorithms and citations beside
their kernels:

* U(1) (:mod:`latticeml.theories.u1`): heatbath from the link's von Mises conditional
  distribution (Best & Fisher 1979); overrelaxation ``theta -> -2 arg A - theta``.
* SU(N) (:mod:`latticeml.theories.sun_local`): SU(2) heatbath of Creutz (1980) with
  Kennedy-Pendleton (1985) for large couplings, in the SU(2) subgroups of Cabibbo and Marinari
  (1982) for N >= 3; overrelaxation by the Brown-Woch/Creutz reflection in every subgroup.

Heatbath: the new link is an exact draw from its conditional distribution, so every update is
accepted. Overrelaxation: a reflection that keeps the action and the Haar measure (an involution,
so it satisfies detailed balance) and moves the configuration far, which decorrelates the slow
modes; it is *microcanonical* and not ergodic on its own. Use it between heatbath sweeps
(``sampler(theory, overrelax=K)``); :func:`overrelaxation_sampler` alone is for demonstrations and
tests. A theory without these updates (phi^4; an improved gauge action, whose rectangles break the
checkerboard) is refused with one line naming the algorithms that do support it.

Randomness: the heatbath's rejection samplers need an unknown number of random numbers per link,
so the Generator is consumed inside the theory's kernel in site order (the same seed gives the
same chain bit for bit); overrelaxation draws none.

API (as :mod:`latticeml.samplers.metropolis`)
---------------------------------------------
``init(field, theory) -> State``; ``step(rng, state, theory, *, overrelax=0) -> (State, HeatbathInfo)``
is one heatbath sweep followed by ``overrelax`` overrelaxation sweeps;
``overrelaxation_step(rng, state, theory, *, sweeps=1)``; the builders :func:`sampler` and
:func:`overrelaxation_sampler`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from ..checks import check_count, check_rng
from .chain import Sampler
from .local import State, check_local, init, working_copy

__all__ = ["State", "HeatbathInfo", "OverrelaxationInfo", "init", "step", "overrelaxation_step", "sampler", "overrelaxation_sampler"]


class HeatbathInfo(NamedTuple):
    """What one heatbath step (one heatbath sweep + ``overrelax`` overrelaxation sweeps) reports.

    acceptance:      always 1.0: every link is replaced by an exact draw from its conditional
                     distribution, and every reflection is accepted.
    overrelax:       number of overrelaxation sweeps in this step.
    trials_per_draw: mean number of trials of the rejection samplers (Best-Fisher for U(1),
                     Kennedy-Pendleton/Creutz for the SU(2) subgroups) per accepted draw (>= 1):
                     the heatbath's efficiency.
    """

    acceptance: float
    overrelax: int
    trials_per_draw: float


class OverrelaxationInfo(NamedTuple):
    """What one pure overrelaxation step reports.

    acceptance: always 1.0 (reflections are always accepted; the action does not change).
    sweeps:     number of overrelaxation sweeps in this step.
    """

    acceptance: float
    sweeps: int


def _check_overrelax(theory, overrelax) -> int:
    check_local(theory, "heatbath", "heatbath")
    overrelax = check_count(overrelax, "overrelax (overrelaxation sweeps per heatbath sweep)", minimum=0)
    if overrelax:
        check_local(theory, "heatbath with overrelax > 0", "overrelax")
    return overrelax


def _check_sweeps(theory, sweeps) -> int:
    check_local(theory, "overrelaxation", "overrelax")
    return check_count(sweeps, "sweeps (overrelaxation sweeps per step)", minimum=1)


def step(rng: np.random.Generator, state: State, theory, *, overrelax: int = 0):
    """One heatbath sweep then ``overrelax`` overrelaxation sweeps; returns ``(State, HeatbathInfo)``.

    Pure: ``state`` is left untouched.
    """
    check_rng(rng)
    overrelax = _check_overrelax(theory, overrelax)
    field = working_copy(state.field, theory)
    trials_per_draw = theory.heatbath_sweep(rng, field)
    for _ in range(overrelax):
        theory.overrelax_sweep(field)
    return State(field), HeatbathInfo(acceptance=1.0, overrelax=overrelax, trials_per_draw=float(trials_per_draw))


def overrelaxation_step(rng: np.random.Generator, state: State, theory, *, sweeps: int = 1):
    """``sweeps`` overrelaxation sweeps (microcanonical: the action does not change); ``(State, OverrelaxationInfo)``.

    ``rng`` is not used (reflections are deterministic); it is taken so that the function has
    the sampler signature. Not ergodic on its own: combine with a heatbath (:func:`step`).
    """
    check_rng(rng)
    sweeps = _check_sweeps(theory, sweeps)
    field = working_copy(state.field, theory)
    for _ in range(sweeps):
        theory.overrelax_sweep(field)
    return State(field), OverrelaxationInfo(acceptance=1.0, sweeps=sweeps)


def sampler(theory, *, overrelax: int = 0) -> Sampler:
    """Heatbath (+ overrelaxation) for a theory that offers it (see the module docstring).

    One step = one heatbath sweep followed by ``overrelax`` >= 0 overrelaxation sweeps
    (``latticeml sample ... --algorithm heatbath --overrelax K``).
    """
    overrelax = _check_overrelax(theory, overrelax)
    return Sampler(
        name="heatbath",
        theory=theory,
        settings={"overrelax": overrelax},
        init=functools.partial(init, theory=theory),
        step=functools.partial(step, theory=theory, overrelax=overrelax),
    )


def overrelaxation_sampler(theory, *, sweeps: int = 1) -> Sampler:
    """Pure overrelaxation, ``sweeps`` >= 1 sweeps per step.

    Microcanonical: it keeps the action fixed and is NOT ergodic on its own; it samples the
    Wilson ensemble only in combination with an ergodic update (:func:`sampler` with ``overrelax``).
    """
    sweeps = _check_sweeps(theory, sweeps)
    return Sampler(
        name="overrelaxation",
        theory=theory,
        settings={"sweeps": sweeps},
        init=functools.partial(init, theory=theory),
        step=functools.partial(overrelaxation_step, theory=theory, sweeps=sweeps),
    )
