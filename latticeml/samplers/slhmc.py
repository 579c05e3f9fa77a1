"""Self-learning hybrid Monte Carlo (SLHMC): molecular dynamics with a learned action, exact Metropolis test.

Y. Nagai and A. Tomiya, "Gauge covariant neural network for 4 dimensional non-abelian gauge
theory", arXiv:2103.11965 (the self-learning idea: J. Liu, Y. Qi, Z. Y. Meng, L. Fu, PRB 95 (2017)
041101; Y. Nagai, M. Okumura, A. Tanaka, PRB 101 (2020) 115111 for HMC).

One step (one trajectory), as in HMC (:mod:`latticeml.samplers.hmc`) but with two actions:

1. draw momenta ``p`` with kinetic energy ``K(p)``;
2. draw the target's auxiliary fields ``aux = target.draw_auxiliary(rng, field)`` if it has any
   (the hook of :mod:`latticeml.samplers.hmc`; ``None`` draws nothing);
3. integrate Hamilton's equations of ``H_MD = K + S_MD`` with an integrator of
   :mod:`latticeml.samplers.integrators` (a registered name or a function; ``S_MD``
   is e.g. the covariant net's action, :class:`SmearedSUN`); the MD theory gets the same ``aux``
   if its ``force`` and ``action`` take a second argument, else it integrates without;
4. accept with probability ``min(1, exp(log_jacobian - dH))``, ``dH = H(end) - H(start)``
   computed with the *target* Hamiltonian ``H = K + S(field[, aux])`` (``log_jacobian`` is 0
   for the symplectic integrators; a learned one reports its own).

The chain samples ``exp(-S)`` exactly whatever ``S_MD`` is: the integrator is reversible and
area preserving, so the proposal ``(U, p) -> (U', p')`` followed by a momentum flip is a
symmetric, volume-preserving involution, and the Metropolis test with the target ``H`` makes it
satisfy detailed balance for ``exp(-H)`` (the argument of Duane et al., PLB 195 (1987) 216, which
never uses that the flow conserves ``H``). A good ``S_MD`` only buys acceptance: ``dH`` is the
change of ``S - S_MD`` along the trajectory plus the integrator's error.

Theories: :class:`ImprovedSUN` (plaquette + rectangle target, Luscher-Weisz / Iwasaki) and
:class:`SmearedSUN` (the plaquette/rectangle action of stout-smeared links, the molecular-dynamics
action of a :class:`latticeml.nets.covariant.CovariantNet`). Both live in
:mod:`latticeml.theories.improved` (re-exported here) and follow the theory protocol of
:mod:`latticeml.theories.base`.

API (the blackjax pattern of :mod:`latticeml.samplers.chain`): ``init(field, target) -> State``,
``step(rng, state, target, md_theory, *, step_size, n_steps, integrator) -> (State, Info)``,
``sampler(target, md_theory, *, step_size=None, n_steps=None, trajectory_length=None,
integrator="leapfrog")``. As in HMC, the state's cached target action is only reused when the
target has no auxiliary fields; aux lives for one trajectory, so checkpoints store only the field.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, NamedTuple

import numpy as np

from ..checks import check_count, check_rng, positive_float
from ..theories.improved import ImprovedSUN, SmearedSUN
from . import hmc
from .accept import metropolis_test
from .chain import Sampler
from .integrators import get_integrator, integrator_name

__all__ = ["ImprovedSUN", "SmearedSUN", "State", "Info", "init", "step", "sampler"]


class State(NamedTuple):
    """State of an SLHMC chain.

    field:  the current configuration.
    action: the *target* action ``S(field)`` (``S(field, aux)`` with auxiliary fields), cached for
            the next Metropolis test when the target has no auxiliary fields (with them the next
            trajectory recomputes it with its fresh aux).
    aux:    the target's auxiliary fields of the trajectory that produced this state (``None``
            after :func:`init` and for targets without).
    """

    field: np.ndarray
    action: float
    aux: Any = None


class Info(NamedTuple):
    """What one SLHMC step (one trajectory) reports.

    acceptance:             1.0 if the trajectory was accepted, else 0.0.
    accepted:               the same as a bool.
    delta_H:                ``H(end) - H(start)`` with the target Hamiltonian ``K + S`` (decides acceptance).
    acceptance_probability: ``min(1, exp(log_jacobian - delta_H))`` (0 if ``delta_H`` is not finite).
    delta_H_md:             ``H_MD(end) - H_MD(start)``, ``H_MD = K + S_MD``: the integrator's own
                            energy violation (``delta_H - delta_H_md`` is the change of ``S - S_MD``).
    n_steps:                molecular-dynamics steps of the trajectory.
    trajectory_length:      ``n_steps * step_size``.
    log_jacobian:           ``log |det J|`` of the integrator's map (0 for leapfrog and Omelyan;
                            the acceptance probability is ``min(1, exp(log_jacobian - delta_H))``).
    """

    acceptance: float
    accepted: bool
    delta_H: float
    acceptance_probability: float
    delta_H_md: float
    n_steps: int
    trajectory_length: float
    log_jacobian: float = 0.0


def init(field, target) -> State:
    """The SLHMC state at ``field`` (validated by ``target.check_field`` and copied); ``aux`` is ``None``."""
    field = np.array(target.check_field(field), copy=True)
    return State(field=field, action=float(target.action(field)))


def step(rng: np.random.Generator, state: State, target, md_theory, *, step_size: float, n_steps: int, integrator="leapfrog"):
    """One SLHMC trajectory: MD with ``md_theory``, Metropolis with ``target``. Returns ``(State, Info)``.

    Draws the momenta (``target.random_momentum``), then the target's auxiliary fields (if it
    has any), then one uniform number, in that order.
    """
    check_rng(rng)
    momentum = target.random_momentum(rng)
    aux = hmc.draw_auxiliary(target, rng, state.field)
    md_aux = aux if aux is not None and _takes_aux(md_theory) else None
    # the cached target action is the start's unless a fresh aux changed the action itself
    action_start = state.action if aux is None else float(_action(target, state.field, aux))
    kinetic_start = target.kinetic_energy(momentum)
    md_start = _action(md_theory, state.field, md_aux)
    md_force = md_theory.force if md_aux is None else (lambda f: md_theory.force(f, md_aux))
    end = get_integrator(integrator)(
        state.field, momentum, None, force_fn=md_force, evolve_fn=md_theory.evolve,
        step_size=positive_float(step_size, "step_size"), n_steps=check_count(n_steps, "n_steps", minimum=1),
    )
    field, p = end.field, end.momentum
    kinetic_end = target.kinetic_energy(p)
    action_end = float(_action(target, field, aux))
    delta_H = (action_end - action_start) + (kinetic_end - kinetic_start)
    delta_H_md = (_action(md_theory, field, md_aux) - md_start) + (kinetic_end - kinetic_start)
    log_jacobian = float(end.log_jacobian)
    accepted, probability = metropolis_test(rng, delta_H - log_jacobian)  # x - 0.0 == x: symplectic case unchanged
    info = Info(
        acceptance=float(accepted),
        accepted=accepted,
        delta_H=float(delta_H),
        acceptance_probability=probability,
        delta_H_md=float(delta_H_md),
        n_steps=int(n_steps),
        trajectory_length=float(n_steps * step_size),
        log_jacobian=log_jacobian,
    )
    if accepted:
        return State(field=field, action=action_end, aux=aux), info
    if aux is None:
        return state, info
    return State(field=state.field, action=action_start, aux=aux), info


def _action(theory, field, aux):
    """``theory.action(field)``, or ``theory.action(field, aux)`` with auxiliary fields."""
    return theory.action(field) if aux is None else theory.action(field, aux)


def _takes_aux(theory) -> bool:
    """Whether ``theory.action`` and ``theory.force`` accept an aux value as a second argument."""
    for method in (theory.action, theory.force):
        try:
            inspect.signature(method).bind(None, None)
        except (TypeError, ValueError):
            return False
    return True


def sampler(
    target,
    md_theory,
    *,
    step_size: float | None = None,
    n_steps: int | None = None,
    trajectory_length: float | None = None,
    integrator="leapfrog",
) -> Sampler:
    """SLHMC for ``target`` with molecular dynamics driven by ``md_theory`` (give two of the trajectory settings).

    ``md_theory`` needs ``action``, ``force`` and ``evolve`` on the target's fields (e.g.
    :class:`SmearedSUN`); the settings are resolved as in :func:`latticeml.samplers.hmc.sampler`
    (``integrator``: a registered name or an integrator function; the settings record its name).
    """
    for name, th in (("target", target), ("md_theory", md_theory)):
        missing = [m for m in ("action", "force", "evolve", "random_momentum", "kinetic_energy") if not callable(getattr(th, m, None))]
        if missing:
            raise TypeError(f"SLHMC needs a {name} with action, force, evolve, random_momentum, kinetic_energy; missing {missing}")
    if getattr(target, "shape", None) != getattr(md_theory, "shape", None):
        raise ValueError(f"target and md_theory must live on the same lattice, got {target.shape} and {md_theory.shape}")
    step_size, n_steps = hmc.resolve_trajectory(step_size=step_size, n_steps=n_steps, trajectory_length=trajectory_length)
    name = integrator_name(integrator)
    integrator = get_integrator(integrator)
    settings = {
        "step_size": step_size,
        "n_steps": n_steps,
        "trajectory_length": step_size * n_steps,
        "integrator": name,
        "md_theory": md_theory.name,
        "md_params": md_theory.params,
    }
    return Sampler(
        name="slhmc",
        theory=target,
        settings=settings,
        init=functools.partial(init, target=target),
        step=functools.partial(step, target=target, md_theory=md_theory, step_size=step_size, n_steps=n_steps, integrator=integrator),
    )
