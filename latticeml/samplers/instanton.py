"""Instanton (winding) updates for 2D U(1) gauge theory, alone and mixed with HMC.

Why
---
Near the continuum limit HMC and local updates change the topological charge Q only when one
plaquette angle passes through pi, which costs an action ~ 2 beta: the tunnelling rate falls like
exp(-2 beta) and tau_int(Q) grows exponentially (*topological freezing*). In 2D U(1) the field of
a charge-1 instanton is known in closed form, so one can simply *propose* adding it.

The move (an exact Metropolis step)
-----------------------------------
Links ``theta`` float64 ``(2, L0, L1)``, ``V = L0 L1`` plaquettes,
``theta_P(x) = theta_0(x) + theta_1(x+0) - theta_0(x+1) - theta_1(x)``, Wilson action
``S = beta sum_P (1 - cos theta_P)``. The smooth instanton ``I`` (:func:`instanton_field`) has
the same plaquette angle ``delta = 2 pi / V`` on every plaquette (mod 2 pi): ``I_1(x) = delta x_0``
and, to close the torus, the twisted links ``I_0(x) = -delta L0 x_1`` on the slice
``x_0 = L0 - 1``. Its geometric charge is 1 and its action ``beta V (1 - cos delta)
~ 2 pi^2 beta / V`` is the continuum instanton action: at fixed physical volume (``beta / V``
fixed) it stays finite as ``a -> 0``, unlike the barrier ``~ 2 beta`` that HMC must climb.

One step:

1. draw the direction ``s = +1`` or ``-1`` with probability 1/2 each;
2. propose ``theta' = wrap(theta + s I)``; the plaquettes shift uniformly,
   ``theta'_P = theta_P + s delta`` (U(1) is abelian), so ``Q' = Q + s`` unless a plaquette angle
   crosses pi (rare at large beta);
3. accept with probability ``min(1, exp(-dS))``,
   ``dS = beta sum_P [cos theta_P - cos(theta_P + s delta)]
        = 2 beta sin(s delta / 2) sum_P sin(theta_P + s delta / 2)``
   (the second form has no cancellation), computed in one pass over the plaquettes.

Why it is exact: the proposal is a translation of the torus of link angles by ``+I`` or ``-I``
chosen with equal probability, so ``q(theta -> theta') = q(theta' -> theta) = 1/2`` (the reverse
move adds ``-s I``) and the Haar measure ``prod dtheta`` is invariant under it. The Metropolis
acceptance ``min(1, exp(-dS))`` then gives detailed balance with respect to ``exp(-S)``
(N. Metropolis et al., J. Chem. Phys. 21 (1953) 1087; W. K. Hastings, Biometrika 57 (1970) 97).
On its own the move only visits ``theta + n I`` (not ergodic); mixed with an ergodic update
(HMC, heatbath), each of which keeps ``exp(-S)`` invariant, the composite chain is ergodic and
exact.

This is the global, smooth form of the *winding step* of D. Albandea, P. Hernandez, A. Ramos,
F. Romero-Lopez, "Topological sampling through windings", EPJC 81 (2021) 873 [arXiv:2106.14234]
(who insert a localised winding and call HMC + windings "wHMC"; they trace the idea back to
earlier "instanton hit" updates). Flow-based samplers attack the same freezing by learning the
map instead (G. Kanwar et al., PRL 125 (2020) 121601 [arXiv:2003.06413]).

API
---
``instanton_field(shape, *, charge=1)``; ``action_change(theta, *, beta, charge)`` (``dS`` of
adding ``charge`` instantons); ``init(field, theory) -> State``;
``step(rng, state, theory) -> (State, Info)`` (draws ``s`` then one uniform, in that order);
``sampler(theory)`` (instanton moves only); and the composite
``hmc_sampler(theory, *, instanton_every=K, **hmc_settings)``: one step is K HMC trajectories
of :func:`latticeml.samplers.hmc.sampler` followed by one instanton move.
``latticeml.samplers.build_sampler(theory, "hmc", instanton_every=K, ...)`` and
``latticeml sample u1 --algorithm hmc --instanton-every K`` build the composite.
"""

from __future__ import annotations

import functools
import numbers
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from numba import njit

from ..checks import finite_float
from ..groups import wrap_angle
from ..lattice import check_shape, neighbour_table
from ..theories.u1 import U1
from ..theories.u1 import plaquette_angle_at
from . import hmc
from .accept import metropolis_test
from .chain import Sampler

__all__ = [
    "State",
    "Info",
    "HMCInstantonInfo",
    "instanton_field",
    "action_change",
    "propose",
    "init",
    "step",
    "sampler",
    "hmc_sampler",
]


class State(NamedTuple):
    """State of an instanton-move chain.

    field: U(1) links ``(2, L0, L1)``, float64 angles in ``(-pi, pi]``.
    """

    field: np.ndarray


class Info(NamedTuple):
    """What one instanton move reports.

    acceptance:             1.0 if the move was accepted, else 0.0.
    accepted:               the same as a bool.
    charge_shift:           the proposed direction ``s`` (+1: add an instanton, -1: an anti-instanton).
    delta_S:                ``S(theta + s I) - S(theta)``.
    acceptance_probability: ``min(1, exp(-delta_S))``.
    """

    acceptance: float
    accepted: bool
    charge_shift: int
    delta_S: float
    acceptance_probability: float


class HMCInstantonInfo(NamedTuple):
    """What one step of :func:`hmc_sampler` (K HMC trajectories, then one instanton move) reports.

    acceptance:                       mean acceptance of the K HMC trajectories (the number to tune
                                      the step size by; the instanton move is reported apart).
    instanton_accepted:               whether the instanton move was accepted.
    instanton_acceptance_probability: its ``min(1, exp(-dS))``.
    instanton_delta_S:                its ``dS``.
    charge_shift:                     its proposed direction, +1 or -1.
    n_trajectories:                   K.
    n_force_evaluations:              force evaluations of the K trajectories, plus one when the
                                      instanton was accepted (the next trajectory's start force).
    """

    acceptance: float
    instanton_accepted: bool
    instanton_acceptance_probability: float
    instanton_delta_S: float
    charge_shift: int
    n_trajectories: int
    n_force_evaluations: int


# ----------------------------------------------------------------------------- the instanton field


@lru_cache(maxsize=32)
def _unit_instanton(shape: tuple) -> np.ndarray:
    L0, L1 = shape
    delta = 2.0 * np.pi / (L0 * L1)
    x0, x1 = np.meshgrid(np.arange(L0), np.arange(L1), indexing="ij")
    field = np.zeros((2, L0, L1))
    field[1] = delta * x0  # theta_1(x+0) - theta_1(x) = delta inside the slab
    # the jump -delta (L0 - 1) of theta_1 across x0 = L0 - 1 -> 0 is repaired by the twisted
    # links theta_0 on that slice: theta_0(x) - theta_0(x+1) = delta L0 (mod 2 pi at x1 = L1 - 1)
    field[0] = np.where(x0 == L0 - 1, -delta * L0 * x1, 0.0)
    field = wrap_angle(field)
    field.setflags(write=False)
    return field


def _check_2d_shape(shape) -> tuple:
    shape = check_shape(shape)
    if len(shape) != 2:
        raise ValueError(f"the instanton update is written for 2D U(1); got a {len(shape)}-dimensional lattice {shape}")
    if shape[0] * shape[1] < 3:
        raise ValueError(f"a torus of {shape[0] * shape[1]} plaquettes carries no charge (|Q| < V/2 <= 1); use V >= 3")
    return shape


def _check_charge(charge) -> int:
    if isinstance(charge, bool) or not isinstance(charge, numbers.Integral):
        raise TypeError(f"charge must be an integer, got {charge!r}")
    return int(charge)


def instanton_field(shape, *, charge: int = 1) -> np.ndarray:
    """Links ``(2, L0, L1)`` with every plaquette angle ``2 pi charge / V`` (mod 2 pi): geometric charge ``charge`` if ``|charge| < V/2``.

    The smooth instanton of the module docstring times ``charge``, wrapped into ``(-pi, pi]``.
    """
    shape = _check_2d_shape(shape)
    return wrap_angle(_check_charge(charge) * _unit_instanton(shape))


# ----------------------------------------------------------------------------- the action change


@njit(cache=True)
def _action_change_kernel(theta, fwd, beta, shift):
    """``beta sum_P [cos theta_P - cos(theta_P + shift)] = 2 beta sin(shift/2) sum_P sin(theta_P + shift/2)``."""
    half = 0.5 * shift
    acc = 0.0
    for s in range(theta.shape[1]):
        acc += np.sin(plaquette_angle_at(theta, fwd, 0, 1, s) + half)
    return 2.0 * beta * np.sin(half) * acc


def _as_links_2d(theta) -> tuple[np.ndarray, tuple]:
    theta = np.asarray(theta)
    if not np.issubdtype(theta.dtype, np.floating):
        raise TypeError(f"U(1) links are real angles (float64), got dtype {theta.dtype}")
    if theta.ndim != 3 or theta.shape[0] != 2:
        raise ValueError(f"the instanton update needs 2D U(1) links of shape (2, L0, L1), got shape {theta.shape}")
    shape = _check_2d_shape(theta.shape[1:])
    return np.ascontiguousarray(theta, dtype=np.float64), shape


def _delta_action(flat, shape, beta, charge) -> float:
    fwd, _ = neighbour_table(shape)
    return float(_action_change_kernel(flat, fwd, float(beta), 2.0 * np.pi * charge / (shape[0] * shape[1])))


def action_change(theta, *, beta: float, charge: int = 1) -> float:
    """``S(theta + charge I) - S(theta)`` for 2D U(1) links ``theta (2, L0, L1)``, in one pass over the plaquettes."""
    beta = finite_float(beta)
    flat, shape = _as_links_2d(theta)
    return _delta_action(flat.reshape(2, -1), shape, beta, _check_charge(charge))


def propose(theta, *, charge: int = 1) -> np.ndarray:
    """``wrap(theta + charge I)``: a new array (the input is not modified)."""
    flat, shape = _as_links_2d(theta)
    return wrap_angle(flat + _check_charge(charge) * _unit_instanton(shape))


# ----------------------------------------------------------------------------- the Markov chain


def _check_theory(theory) -> None:
    if not isinstance(theory, U1) or theory.dim != 2:
        got = f"{theory.name} on a lattice of shape {theory.shape}" if hasattr(theory, "shape") else type(theory).__name__
        raise ValueError(f"the instanton update exists for 2D U(1) only (make_theory('u1', (L0, L1), beta=...)); got {got}")
    _check_2d_shape(theory.shape)


def _check_rng(rng) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")


def _metropolis(rng, field, theory):
    """One instanton move of ``field`` (C-contiguous float64): ``(new field or the same object, Info)``."""
    shift = 1 if rng.random() < 0.5 else -1
    delta_S = _delta_action(field.reshape(2, -1), theory.shape, theory.beta, shift)
    accepted, probability = metropolis_test(rng, delta_S)
    info = Info(acceptance=float(accepted), accepted=accepted, charge_shift=shift, delta_S=delta_S, acceptance_probability=probability)
    if accepted:
        return wrap_angle(field + shift * _unit_instanton(theory.shape)), info
    return field, info


def init(field, theory) -> State:
    """The instanton-move state at ``field`` (validated and copied)."""
    _check_theory(theory)
    return State(field=np.array(theory.check_field(field), copy=True))


def step(rng: np.random.Generator, state: State, theory) -> tuple[State, Info]:
    """One instanton Metropolis move (see the module docstring): ``(new State, Info)``.

    Draws two uniforms from ``rng``: the direction (``< 1/2``: +1), then the accept/reject
    number. Pure: ``state.field`` is never modified.
    """
    _check_rng(rng)
    _check_theory(theory)
    field, info = _metropolis(rng, theory.check_field(state.field), theory)
    return (State(field) if info.accepted else state), info


def sampler(theory) -> Sampler:
    """Instanton moves only (exact but not ergodic: it visits ``theta + n I``). Mix it with HMC: :func:`hmc_sampler`."""
    _check_theory(theory)
    return Sampler(
        name="instanton",
        theory=theory,
        settings={},
        init=functools.partial(init, theory=theory),
        step=functools.partial(step, theory=theory),
    )


# ----------------------------------------------------------------------------- HMC + instantons


def _check_every(instanton_every) -> int:
    if isinstance(instanton_every, bool) or not isinstance(instanton_every, numbers.Integral):
        raise TypeError(f"instanton_every must be an integer >= 1 (HMC trajectories per instanton move), got {instanton_every!r}")
    if instanton_every < 1:
        raise ValueError(f"instanton_every must be >= 1 (HMC trajectories per instanton move), got {instanton_every}")
    return int(instanton_every)


def _composite_step(rng, state, *, hmc_chain: Sampler, theory, instanton_every: int):
    """K trajectories of ``hmc_chain`` from the HMC ``state``, then one instanton move."""
    _check_rng(rng)
    accepted = 0.0
    n_force = 0
    for _ in range(instanton_every):
        state, info = hmc_chain.step(rng, state)
        accepted += info.acceptance
        n_force += info.n_force_evaluations
    field, move = _metropolis(rng, state.field, theory)
    if move.accepted:
        state = hmc_chain.init(field)  # new cached action and force for the next trajectory
        n_force += 1
    return state, HMCInstantonInfo(
        acceptance=accepted / instanton_every,
        instanton_accepted=move.accepted,
        instanton_acceptance_probability=move.acceptance_probability,
        instanton_delta_S=move.delta_S,
        charge_shift=move.charge_shift,
        n_trajectories=instanton_every,
        n_force_evaluations=n_force,
    )


def hmc_sampler(theory, *, instanton_every: int, **hmc_settings) -> Sampler:
    """HMC with an instanton move after every ``instanton_every`` trajectories (2D U(1) only).

    ``hmc_settings`` go to :func:`latticeml.samplers.hmc.sampler` (two of ``step_size``,
    ``n_steps``, ``trajectory_length``; ``integrator``). One step of the returned sampler is
    ``instanton_every`` HMC trajectories followed by one instanton move; its state is the HMC
    state (field, cached action and force) and its info a :class:`HMCInstantonInfo`. Each part
    keeps ``exp(-S)`` invariant, so the composite does too (the module docstring has the argument).
    """
    _check_theory(theory)
    every = _check_every(instanton_every)
    hmc_chain = hmc.sampler(theory, **hmc_settings)
    settings = dict(hmc_chain.settings, instanton_every=every)
    return Sampler(
        name="hmc+instanton",
        theory=theory,
        settings=settings,
        init=hmc_chain.init,
        step=functools.partial(_composite_step, hmc_chain=hmc_chain, theory=theory, instanton_every=every),
    )
