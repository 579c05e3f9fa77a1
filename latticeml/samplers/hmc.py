"""Hybrid Monte Carlo for any theory of :mod:`latticeml.theories` (phi^4, U(1), SU(N), ...).

Algorithm
---------
S. Duane, A. D. Kennedy, B. J. Pendleton, D. Roweth, "Hybrid Monte Carlo", PLB 195 (1987) 216.
Each step (one *trajectory*):

1. draw momenta ``p ~ exp(-K(p))`` (:meth:`theory.random_momentum`, the Gaussian of the field's
   tangent space: ``N(0, 1)`` per site or link for phi^4 and U(1), ``P = sum_a p_a T_a`` with
   ``p_a ~ N(0, 1)`` in su(N) for SU(N), ``K = -tr P^2``);
2. draw the auxiliary fields ``aux = theory.draw_auxiliary(rng, field)`` from the field at the
   start of the trajectory (``None`` for theories without; see below);
3. integrate Hamilton's equations of ``H = K(p) + S(field[, aux])`` for ``n_steps`` steps of size
   ``step_size`` with a reversible, area-preserving integrator (a value from
   :mod:`latticeml.samplers.integrators`), ``aux`` held fixed;
4. accept the end point with probability ``min(1, exp(log_jacobian - dH))``,
   ``dH = H(end) - H(start)`` (``log_jacobian = 0`` for the symplectic integrators; a learned
   one reports its own), drawing one uniform number; otherwise keep the old field.

The equations of motion are the same for every theory, written with the theory's own pieces:
``d field/dt = p`` is :meth:`theory.evolve` (``phi + eps p``; ``theta + eps p`` re-wrapped into
``(-pi, pi]``; ``U -> exp(eps P) U`` for SU(N)) and ``dp/dt = -F`` with ``F =``
:meth:`theory.force`, the gradient of ``S`` (for SU(N) in the inner product ``<X, Y> = -2 tr XY``
of :mod:`latticeml.groups`, so that ``p_a -> p_a - eps f_a`` component by component).

Integrators (``integrator=``)
-----------------------------
A registered name (``"leapfrog"``: kick-drift-kick velocity Verlet; ``"omelyan"``: Omelyan's
minimum-norm 2MN) or any function with the integrator signature of
:mod:`latticeml.samplers.integrators` (which has the formulas, the registry and how to add one),
e.g. the multi-time-scale ``sexton_weingarten(fast_force_fn, n_inner)`` or a learned integrator,
whose ``log_jacobian`` enters the acceptance. The sampler's settings record the integrator's name
(:func:`latticeml.samplers.integrators.integrator_name`). Both built-in integrators are symmetric
and symplectic with ``dH = O(step_size^2)`` at fixed trajectory length; Omelyan costs two forces
per step and has a ~10x smaller ``dH`` at equal step size.

Auxiliary fields (the pseudofermion hook)
-----------------------------------------
A theory may implement ``draw_auxiliary(rng, field) -> aux`` (the base class returns ``None``
and draws nothing). Pseudofermions are the example: ``phi = D^dagger(U) eta`` with Gaussian
``eta`` gives ``exp(-phi^dagger (D^dagger D)^{-1} phi)`` whose integral over ``phi`` is
``det(D^dagger D)``, so sampling ``(field, phi)`` jointly samples the field with the fermion
determinant (pseudofermions: D. H. Weingarten, D. N. Petcher, PLB 99 (1981) 333; in HMC-type
algorithms: S. Gottlieb, W. Liu, D. Toussaint, R. L. Renken, R. L. Sugar, PRD 35 (1987) 2531). Refreshing ``aux``
at the start of each trajectory is an exact Gibbs update of ``aux`` at fixed field; the trajectory
that follows is an HMC update of ``(field, p)`` at fixed ``aux``, which keeps
``exp(-S(field, aux))`` invariant; together they keep the joint, and hence the field's marginal,
invariant. A theory that returns an aux value accepts it as the second argument of
``action(field, aux)`` and ``force(field, aux)``; HMC calls them with ``aux`` exactly when it is
not ``None``. The order of random draws in a trajectory is: momenta, aux, the accept uniform.

Trajectory settings
-------------------
``step_size`` (eps), ``n_steps`` (n) and ``trajectory_length`` (tau = n eps): give exactly two of
the three. From ``(trajectory_length, n_steps)`` the step is ``tau / n``; from
``(trajectory_length, step_size)`` the number of steps is ``tau / eps``, which must be an integer
(to a relative 1e-9), else choose ``n_steps`` instead. Step sizes must be positive and finite,
``n_steps`` an integer >= 1 (checked by :mod:`latticeml.checks`).

State and cached quantities
---------------------------
:class:`State` carries the field together with its action and force: for a theory without
auxiliary fields the action is ``H``'s potential part at the start of the next trajectory and the
force its first kick, so neither is recomputed (both are deterministic functions of the field,
so a chain resumed from a checkpoint that stores only the field recomputes exactly the same
numbers: resumes stay bit identical). With auxiliary fields the cache cannot be reused: the
next trajectory's ``S(field, aux)`` and ``F(field, aux)`` depend on the aux it draws fresh, so
each trajectory recomputes both at its start (one more force evaluation, counted in
:class:`Info`); ``State.aux`` is then the aux of the trajectory that produced the state and
``State.action``/``State.force`` are those of ``(field, aux)``. Aux lives for one trajectory: a
checkpoint between trajectories need not store it (:mod:`latticeml.samplers.chain` stores only
the field, and a resumed chain draws the same fresh aux from the restored generator).
``step`` never modifies the arrays of its input state.

SU(N) links stay in SU(N): ``exp(eps P)`` is an exact group element and ``theory.evolve``
re-unitarises the product (see the SU(N) theory's ``evolve``).

API (the blackjax pattern of :mod:`latticeml.samplers.chain`)
--------------------------------------------------------------
``integrate(theory, field, momentum, *, step_size, n_steps, integrator="leapfrog", aux=None)
-> (field, momentum)`` and ``hamiltonian(theory, field, momentum, aux=None)`` are plain functions
(the tests use them to replay a trajectory);
``init(field, theory) -> State``; ``step(rng, state, theory, *, step_size, n_steps,
integrator="leapfrog") -> (State, Info)``; ``sampler(theory, *, step_size=None, n_steps=None,
trajectory_length=None, integrator="leapfrog")`` binds them into a
:class:`latticeml.samplers.chain.Sampler`; ``draw_auxiliary(theory, rng, field)`` is the hook's
call (``None`` for a theory without the method).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np

from ..checks import check_count, check_rng, positive_float
from .accept import metropolis_test
from .chain import Sampler
from .integrators import get_integrator, integrator_name

__all__ = [
    "State",
    "Info",
    "draw_auxiliary",
    "hamiltonian",
    "integrate",
    "resolve_trajectory",
    "init",
    "step",
    "sampler",
]

#: What a theory must provide for HMC (see :mod:`latticeml.theories`); ``draw_auxiliary`` is optional.
_INTERFACE = ("action", "force", "random_momentum", "kinetic_energy", "evolve", "check_field")


class State(NamedTuple):
    """State of an HMC chain.

    field:  the current configuration (shape and dtype of the theory).
    action: the action of ``field``, cached so that a trajectory computes the action once (at its
            end): ``S(field)`` for a theory without auxiliary fields; with them ``S(field, aux)``
            (after :func:`init`, which has no generator to draw aux with, ``theory.action(field)``).
    force:  the force of ``field`` to match ``action``, cached for the first kick of the next
            trajectory when the theory has no auxiliary fields.
    aux:    the auxiliary fields (pseudofermions) of the trajectory that produced this state;
            ``None`` after :func:`init` and always for theories without. The next trajectory
            draws fresh ones and recomputes ``action`` and ``force`` with them.
    """

    field: np.ndarray
    action: float
    force: np.ndarray
    aux: Any = None


class Info(NamedTuple):
    """What one HMC step (one trajectory) reports.

    acceptance:             1.0 if the trajectory was accepted, else 0.0 (its mean is the acceptance rate).
    accepted:               the same as a bool.
    delta_H:                ``H(end) - H(start)`` of the trajectory (``inf`` or ``nan`` if it diverged).
    acceptance_probability: ``min(1, exp(log_jacobian - delta_H))`` (0 for a non-finite
                            ``delta_H``); its mean is a lower-variance estimate of the acceptance rate.
    n_steps:                number of molecular-dynamics steps of the trajectory.
    n_force_evaluations:    force evaluations spent on it (``n_steps`` for leapfrog, ``2 n_steps``
                            for Omelyan 2MN: the start force is cached; one more with auxiliary
                            fields, whose start force is recomputed with the fresh aux).
    trajectory_length:      ``n_steps * step_size``.
    log_jacobian:           ``log |det J|`` of the integrator's map (0 for leapfrog and Omelyan).
    """

    acceptance: float
    accepted: bool
    delta_H: float
    acceptance_probability: float
    n_steps: int
    n_force_evaluations: int
    trajectory_length: float
    log_jacobian: float = 0.0


# ----------------------------------------------------------------------------- settings


def resolve_trajectory(*, step_size=None, n_steps=None, trajectory_length=None) -> tuple[float, int]:
    """``(step_size, n_steps)`` from exactly two of ``step_size``, ``n_steps``, ``trajectory_length``.

    See the module docstring for the rule; raises ValueError/TypeError with what to do otherwise.
    """
    given = [name for name, v in (("step_size", step_size), ("n_steps", n_steps), ("trajectory_length", trajectory_length)) if v is not None]
    if len(given) != 2:
        raise ValueError(
            "give exactly two of step_size, n_steps and trajectory_length (= step_size * n_steps); "
            f"got {', '.join(given) if given else 'none'}"
        )
    if trajectory_length is None:
        return positive_float(step_size, "step_size"), check_count(n_steps, "n_steps", minimum=1)
    tau = positive_float(trajectory_length, "trajectory_length")
    if step_size is None:
        n_steps = check_count(n_steps, "n_steps", minimum=1)
        return tau / n_steps, n_steps
    step_size = positive_float(step_size, "step_size")
    ratio = tau / step_size
    n = round(ratio)
    if n < 1 or abs(ratio - n) > 1e-9 * ratio:
        raise ValueError(
            f"trajectory_length / step_size = {ratio:.6g} is not a whole number of steps; "
            "give n_steps with one of them instead"
        )
    return step_size, int(n)


def _check_theory(theory):
    missing = [name for name in _INTERFACE if not callable(getattr(theory, name, None))]
    if missing:
        raise TypeError(
            f"HMC needs a theory with {', '.join(_INTERFACE)} (see latticeml.theories.make_theory); "
            f"{type(theory).__name__} lacks {', '.join(missing)}"
        )


# ----------------------------------------------------------------------------- molecular dynamics


def draw_auxiliary(theory, rng: np.random.Generator, field):
    """``theory.draw_auxiliary(rng, field)``, or ``None`` (drawing nothing) for a theory without the method."""
    draw = getattr(theory, "draw_auxiliary", None)
    return None if draw is None else draw(rng, field)


def _action(theory, field, aux) -> float:
    return float(theory.action(field) if aux is None else theory.action(field, aux))


def _force_fn(theory, aux):
    """The force as a function of the field alone: ``theory.force`` itself, or with ``aux`` bound."""
    if aux is None:
        return theory.force
    return lambda field: theory.force(field, aux)


def hamiltonian(theory, field, momentum, aux=None) -> float:
    """``H = K(momentum) + S(field)`` (``S(field, aux)`` with auxiliary fields) with the theory's pieces."""
    if aux is None:
        return theory.kinetic_energy(momentum) + theory.action(field)
    return theory.kinetic_energy(momentum) + theory.action(field, aux)


def integrate(theory, field, momentum, *, step_size: float, n_steps: int, integrator="leapfrog", aux=None):
    """Integrate Hamilton's equations of ``H = K(p) + S(field[, aux])``: ``(field, momentum)`` after ``n_steps`` steps.

    ``theory`` needs ``force`` and ``evolve`` (the molecular-dynamics action may differ from the
    one used for the accept/reject step); ``integrator`` is a registered name or an integrator
    function (:mod:`latticeml.samplers.integrators`); ``aux`` (if not ``None``) is passed to
    ``theory.force`` and held fixed. Pure: the inputs are not modified. Time reversible:
    integrating the result with the momentum negated returns to ``(field, -momentum)`` up to
    rounding.
    """
    step_size = positive_float(step_size, "step_size")
    n_steps = check_count(n_steps, "n_steps", minimum=1)
    result = get_integrator(integrator)(
        field, momentum, None, force_fn=_force_fn(theory, aux), evolve_fn=theory.evolve, step_size=step_size, n_steps=n_steps
    )
    return result.field, result.momentum


# ----------------------------------------------------------------------------- the Markov chain


def init(field, theory) -> State:
    """The HMC state at ``field`` (validated by ``theory.check_field`` and copied); ``aux`` is ``None``."""
    _check_theory(theory)
    field = np.array(theory.check_field(field), copy=True)
    return State(field=field, action=float(theory.action(field)), force=theory.force(field))


def step(rng: np.random.Generator, state: State, theory, *, step_size: float, n_steps: int, integrator="leapfrog"):
    """One HMC trajectory from ``state``: ``(new State, Info)``.

    Draws the momenta, then the auxiliary fields (if the theory has any), then one uniform
    number for the accept/reject decision, always in that order, from ``rng``.
    """
    check_rng(rng)
    step_size = positive_float(step_size, "step_size")
    n_steps = check_count(n_steps, "n_steps", minimum=1)
    integrate_fn = get_integrator(integrator)

    momentum = theory.random_momentum(rng)
    aux = draw_auxiliary(theory, rng, state.field)
    if aux is None:  # the cache of the last trajectory is this one's start
        action_start, force_start, n_force = state.action, state.force, 0
    else:  # S and F depend on the aux just drawn: the cached ones (other aux) do not apply
        action_start = _action(theory, state.field, aux)
        force_start, n_force = theory.force(state.field, aux), 1
    kinetic_start = theory.kinetic_energy(momentum)
    end = integrate_fn(
        state.field, momentum, force_start,
        force_fn=_force_fn(theory, aux), evolve_fn=theory.evolve, step_size=step_size, n_steps=n_steps,
    )
    action_end = _action(theory, end.field, aux)
    delta_H = (action_end - action_start) + (theory.kinetic_energy(end.momentum) - kinetic_start)
    log_jacobian = float(end.log_jacobian)

    # x - 0.0 == x exactly: a symplectic integrator's test is the plain min(1, exp(-dH))
    accepted, probability = metropolis_test(rng, delta_H - log_jacobian)
    info = Info(
        acceptance=float(accepted),
        accepted=accepted,
        delta_H=float(delta_H),
        acceptance_probability=probability,
        n_steps=n_steps,
        n_force_evaluations=n_force + int(end.n_force_evaluations),
        trajectory_length=n_steps * step_size,
        log_jacobian=log_jacobian,
    )
    if accepted:
        return State(field=end.field, action=action_end, force=end.force, aux=aux), info
    if aux is None:
        return state, info
    return State(field=state.field, action=action_start, force=force_start, aux=aux), info


def sampler(
    theory,
    *,
    step_size: float | None = None,
    n_steps: int | None = None,
    trajectory_length: float | None = None,
    integrator="leapfrog",
) -> Sampler:
    """HMC for ``theory``: give exactly two of ``step_size``, ``n_steps``, ``trajectory_length``.

    ``integrator`` is a registered name (``"leapfrog"``, ``"omelyan"``, or one added with
    :func:`latticeml.samplers.integrators.register_integrator`) or an integrator function. The
    settings recorded in the :class:`~latticeml.samplers.chain.Sampler` are the resolved
    ``step_size``, ``n_steps``, ``trajectory_length`` and the integrator's name.
    """
    _check_theory(theory)
    step_size, n_steps = resolve_trajectory(step_size=step_size, n_steps=n_steps, trajectory_length=trajectory_length)
    integrate_fn = get_integrator(integrator)
    settings = {"step_size": step_size, "n_steps": n_steps, "trajectory_length": step_size * n_steps, "integrator": integrator_name(integrator)}
    return Sampler(
        name="hmc",
        theory=theory,
        settings=settings,
        init=functools.partial(init, theory=theory),
        step=functools.partial(step, theory=theory, step_size=step_size, n_steps=n_steps, integrator=integrate_fn),
    )
