"""Hybrid Monte Carlo for any theory of :mod:`latticeml.theories.models` (phi^4, U(1), SU(N)).

Algorithm
---------
S. Duane, A. D. Kennedy, B. J. Pendleton, D. Roweth, "Hybrid Monte Carlo", PLB 195 (1987) 216.
Each step (one *trajectory*):

1. draw momenta ``p ~ exp(-K(p))`` (:meth:`theory.random_momentum`, the Gaussian of the field's
   tangent space: ``N(0, 1)`` per site or link for phi^4 and U(1), ``P = sum_a p_a T_a`` with
   ``p_a ~ N(0, 1)`` in su(N) for SU(N), ``K = -tr P^2``);
2. integrate Hamilton's equations of ``H = K(p) + S(field)`` for ``n_steps`` steps of size
   ``step_size`` with a reversible, area-preserving integrator (:func:`integrate`);
3. accept the end point with probability ``min(1, exp(-dH))``, ``dH = H(end) - H(start)``,
   otherwise keep the old field.

The equations of motion are the same for every theory, written with the theory's own pieces:
``d field/dt = p`` is :meth:`theory.evolve` (``phi + eps p``; ``theta + eps p`` re-wrapped into
``(-pi, pi]``; ``U -> exp(eps P) U`` for SU(N)) and ``dp/dt = -F`` with ``F =``
:meth:`theory.force`, the gradient of ``S`` (for SU(N) in the inner product ``<X, Y> = -2 tr XY``
of :mod:`latticeml.groups`, so that ``p_a -> p_a - eps f_a`` component by component).

Integrators (``integrator=``), both symmetric (time reversible) and symplectic, error
``dH = O(step_size^2)`` at fixed trajectory length:

* ``"leapfrog"`` (kick-drift-kick, the velocity Verlet form)::

      p <- p - eps/2 F;   [ field <- evolve(field, p, eps);  p <- p - eps F ] x n;   last kick eps/2

  ``n + 1`` force evaluations per trajectory, ``n`` here because the force at the start is cached.
* ``"omelyan"``: the second-order minimum-norm integrator 2MN of I. P. Omelyan, I. M. Mryglod,
  R. Folk, Comput. Phys. Commun. 151 (2003) 272, as used for lattice gauge theory by
  T. Takaishi and Ph. de Forcrand, PRE 73 (2006) 036706. One step of size eps::

      p <- p - lam eps F;  field <- evolve(field, p, eps/2);  p <- p - (1 - 2 lam) eps F;
      field <- evolve(field, p, eps/2);  p <- p - lam eps F,     lam = 0.1931833275037836,

  the value that minimises the norm of the eps^3 error terms. Consecutive ``lam eps`` kicks of
  neighbouring steps are merged, so a trajectory costs ``2 n`` force evaluations (with the cached
  start force). At equal step size its energy violation is about ten times smaller than the
  leapfrog's (the tests measure the ratio), so it wins also at equal cost (2MN at 2 eps).

Trajectory settings
-------------------
``step_size`` (eps), ``n_steps`` (n) and ``trajectory_length`` (tau = n eps): give exactly two of
the three. From ``(trajectory_length, n_steps)`` the step is ``tau / n``; from
``(trajectory_length, step_size)`` the number of steps is ``tau / eps``, which must be an integer
(to a relative 1e-9), else choose ``n_steps`` instead. Step sizes must be positive and finite,
``n_steps`` an integer >= 1, the integrator ``"leapfrog"`` or ``"omelyan"``.

State and cached quantities
---------------------------
:class:`State` carries the field together with its action ``S(field)`` and its force: the action
is ``H``'s potential part at the start of the next trajectory and the force its first kick, so
neither is recomputed (both are deterministic functions of the field, so a chain resumed from a
checkpoint that stores only the field recomputes exactly the same numbers: resumes stay bit
identical). ``step`` never modifies the arrays of its input state.

SU(N) links stay in SU(N): ``exp(eps P)`` is an exact group element and ``theory.evolve``
re-unitarises the product (see :meth:`latticeml.theories.models.SUN.evolve`).

API (the blackjax pattern of :mod:`latticeml.samplers.chain`)
--------------------------------------------------------------
``integrate(theory, field, momentum, *, step_size, n_steps, integrator) -> (field, momentum)``
and ``hamiltonian(theory, field, momentum)`` are plain functions (tests and the self-learning HMC,
which integrates with another action, use them); ``init(field, theory) -> State``;
``step(rng, state, theory, *, step_size, n_steps, integrator) -> (State, Info)``; and
``sampler(theory, *, step_size=None, n_steps=None, trajectory_length=None, integrator="leapfrog")``
binds them into a :class:`latticeml.samplers.chain.Sampler`.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import NamedTuple

import numpy as np

from .accept import metropolis_test
from .chain import Sampler

__all__ = [
    "INTEGRATORS",
    "OMELYAN_LAMBDA",
    "State",
    "Info",
    "hamiltonian",
    "integrate",
    "resolve_trajectory",
    "init",
    "step",
    "sampler",
]

#: Integrator names accepted by ``integrator=``.
INTEGRATORS = ("leapfrog", "omelyan")

#: lambda of Omelyan's minimum-norm 2MN integrator, Omelyan, Mryglod, Folk, CPC 151 (2003) 272:
#: lam = 1/2 - (2 sqrt(326) + 36)^(1/3) / 12 + 1 / (6 (2 sqrt(326) + 36)^(1/3)).
OMELYAN_LAMBDA = 0.1931833275037836

#: What a theory must provide for HMC (see :mod:`latticeml.theories.models`).
_INTERFACE = ("action", "force", "random_momentum", "kinetic_energy", "evolve", "check_field")


class State(NamedTuple):
    """State of an HMC chain.

    field:  the current configuration (shape and dtype of the theory).
    action: ``S(field)``, cached so that a trajectory computes the action once (at its end).
    force:  ``theory.force(field)``, cached for the first kick of the next trajectory.
    """

    field: np.ndarray
    action: float
    force: np.ndarray


class Info(NamedTuple):
    """What one HMC step (one trajectory) reports.

    acceptance:             1.0 if the trajectory was accepted, else 0.0 (its mean is the acceptance rate).
    accepted:               the same as a bool.
    delta_H:                ``H(end) - H(start)`` of the trajectory (``inf`` or ``nan`` if it diverged).
    acceptance_probability: ``min(1, exp(-delta_H))`` (0 for a non-finite ``delta_H``); its mean
                            is a lower-variance estimate of the acceptance rate.
    n_steps:                number of molecular-dynamics steps of the trajectory.
    n_force_evaluations:    force evaluations spent on it (``n_steps`` for leapfrog,
                            ``2 n_steps`` for Omelyan 2MN: the start force is cached).
    trajectory_length:      ``n_steps * step_size``.
    """

    acceptance: float
    accepted: bool
    delta_H: float
    acceptance_probability: float
    n_steps: int
    n_force_evaluations: int
    trajectory_length: float


# ----------------------------------------------------------------------------- settings


def _check_step_size(step_size) -> float:
    if isinstance(step_size, bool) or not isinstance(step_size, numbers.Real):
        raise TypeError(f"step_size must be a positive number, got {step_size!r}")
    step_size = float(step_size)
    if not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be positive and finite, got {step_size}; typical values are 0.05 - 0.5")
    return step_size


def _check_n_steps(n_steps) -> int:
    if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Real) or int(n_steps) != n_steps:
        raise TypeError(f"n_steps must be an integer >= 1, got {n_steps!r}")
    if n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1 (molecular-dynamics steps per trajectory), got {n_steps}")
    return int(n_steps)


def _check_integrator(integrator) -> str:
    if integrator not in INTEGRATORS:
        raise ValueError(f"unknown integrator {integrator!r}; choose one of {', '.join(map(repr, INTEGRATORS))}")
    return integrator


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
        return _check_step_size(step_size), _check_n_steps(n_steps)
    try:
        tau = _check_step_size(trajectory_length)
    except (TypeError, ValueError):
        raise ValueError(f"trajectory_length must be positive and finite, got {trajectory_length!r}") from None
    if step_size is None:
        n_steps = _check_n_steps(n_steps)
        return tau / n_steps, n_steps
    step_size = _check_step_size(step_size)
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
            f"HMC needs a theory with {', '.join(_INTERFACE)} (see latticeml.theories.models.make_theory); "
            f"{type(theory).__name__} lacks {', '.join(missing)}"
        )


# ----------------------------------------------------------------------------- molecular dynamics


def hamiltonian(theory, field, momentum) -> float:
    """``H = K(momentum) + S(field)`` with the theory's kinetic energy and action."""
    return theory.kinetic_energy(momentum) + theory.action(field)


def _integrate(theory, field, momentum, step_size, n_steps, integrator, force):
    """The integrators; ``force`` is ``theory.force(field)`` if known (else None).

    Returns ``(field, momentum, force at the end field, number of force evaluations)``.
    Never modifies its inputs: every update builds new arrays.
    """
    n_force = 0
    if force is None:
        force = theory.force(field)
        n_force += 1
    eps = step_size
    if integrator == "leapfrog":
        p = momentum - 0.5 * eps * force
        for i in range(n_steps):
            field = theory.evolve(field, p, eps)
            force = theory.force(field)
            n_force += 1
            p = p - (0.5 * eps if i == n_steps - 1 else eps) * force
    else:  # Omelyan 2MN, the lam eps end kicks of neighbouring steps merged into 2 lam eps
        lam = OMELYAN_LAMBDA
        p = momentum - lam * eps * force
        for i in range(n_steps):
            field = theory.evolve(field, p, 0.5 * eps)
            force = theory.force(field)
            p = p - (1.0 - 2.0 * lam) * eps * force
            field = theory.evolve(field, p, 0.5 * eps)
            force = theory.force(field)
            n_force += 2
            p = p - (lam * eps if i == n_steps - 1 else 2.0 * lam * eps) * force
    return field, p, force, n_force


def integrate(theory, field, momentum, *, step_size: float, n_steps: int, integrator: str = "leapfrog"):
    """Integrate Hamilton's equations of ``H = K(p) + S(field)``: ``(field, momentum)`` after ``n_steps`` steps.

    ``theory`` needs ``force`` and ``evolve`` (the molecular-dynamics action may differ from the
    one used for the accept/reject step). Pure: the inputs are not modified. Time reversible:
    integrating the result with the momentum negated returns to ``(field, -momentum)`` up to
    rounding.
    """
    step_size = _check_step_size(step_size)
    n_steps = _check_n_steps(n_steps)
    integrator = _check_integrator(integrator)
    field, momentum, _, _ = _integrate(theory, field, momentum, step_size, n_steps, integrator, None)
    return field, momentum


# ----------------------------------------------------------------------------- the Markov chain


def init(field, theory) -> State:
    """The HMC state at ``field`` (validated by ``theory.check_field`` and copied)."""
    _check_theory(theory)
    field = np.array(theory.check_field(field), copy=True)
    return State(field=field, action=float(theory.action(field)), force=theory.force(field))


def step(rng: np.random.Generator, state: State, theory, *, step_size: float, n_steps: int, integrator: str = "leapfrog"):
    """One HMC trajectory from ``state``: ``(new State, Info)``.

    Draws the momenta and then one uniform number for the accept/reject decision, always in
    that order, from ``rng``.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    step_size = _check_step_size(step_size)
    n_steps = _check_n_steps(n_steps)
    integrator = _check_integrator(integrator)

    momentum = theory.random_momentum(rng)
    kinetic_start = theory.kinetic_energy(momentum)
    field, momentum, force, n_force = _integrate(theory, state.field, momentum, step_size, n_steps, integrator, state.force)
    action_end = float(theory.action(field))
    delta_H = (action_end - state.action) + (theory.kinetic_energy(momentum) - kinetic_start)

    accepted, probability = metropolis_test(rng, delta_H)
    info = Info(
        acceptance=float(accepted),
        accepted=accepted,
        delta_H=float(delta_H),
        acceptance_probability=probability,
        n_steps=n_steps,
        n_force_evaluations=n_force,
        trajectory_length=n_steps * step_size,
    )
    if accepted:
        return State(field=field, action=action_end, force=force), info
    return state, info


def sampler(
    theory,
    *,
    step_size: float | None = None,
    n_steps: int | None = None,
    trajectory_length: float | None = None,
    integrator: str = "leapfrog",
) -> Sampler:
    """HMC for ``theory``: give exactly two of ``step_size``, ``n_steps``, ``trajectory_length``.

    ``integrator`` is ``"leapfrog"`` or ``"omelyan"`` (2MN). The settings recorded in the
    :class:`~latticeml.samplers.chain.Sampler` are the resolved ``step_size``, ``n_steps``,
    ``trajectory_length`` and ``integrator``.
    """
    _check_theory(theory)
    step_size, n_steps = resolve_trajectory(step_size=step_size, n_steps=n_steps, trajectory_length=trajectory_length)
    integrator = _check_integrator(integrator)
    settings = {"step_size": step_size, "n_steps": n_steps, "trajectory_length": step_size * n_steps, "integrator": integrator}
    return Sampler(
        name="hmc",
        theory=theory,
        settings=settings,
        init=functools.partial(init, theory=theory),
        step=functools.partial(step, theory=theory, step_size=step_size, n_steps=n_steps, integrator=integrator),
    )
