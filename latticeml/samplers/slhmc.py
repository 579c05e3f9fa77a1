"""Self-learning hybrid Monte Carlo (SLHMC): molecular dynamics with a learned action, exact Metropolis test.

Y. Nagai and A. Tomiya, "Gauge covariant neural network for 4 dimensional non-abelian gauge
theory", arXiv:2103.11965 (the self-learning idea: J. Liu, Y. Qi, Z. Y. Meng, L. Fu, PRB 95 (2017)
041101; Y. Nagai, M. Okumura, A. Tanaka, PRB 101 (2020) 115111 for HMC).

One step (one trajectory), as in HMC (:mod:`latticeml.samplers.hmc`) but with two actions:

1. draw momenta ``p`` with kinetic energy ``K(p)``;
2. integrate Hamilton's equations of ``H_MD = K + S_MD`` (:func:`latticeml.samplers.hmc.integrate`,
   leapfrog or Omelyan; ``S_MD`` is e.g. the covariant net's action, :class:`SmearedSUN`);
3. accept with probability ``min(1, exp(-dH))``, ``dH = H(end) - H(start)`` computed with the
   *target* Hamiltonian ``H = K + S``.

The chain samples ``exp(-S)`` exactly whatever ``S_MD`` is: the integrator is reversible and
area preserving, so the proposal ``(U, p) -> (U', p')`` followed by a momentum flip is a
symmetric, volume-preserving involution, and the Metropolis test with the target ``H`` makes it
satisfy detailed balance for ``exp(-H)`` (the argument of Duane et al., PLB 195 (1987) 216, which
never uses that the flow conserves ``H``). A good ``S_MD`` only buys acceptance: ``dH`` is the
change of ``S - S_MD`` along the trajectory plus the integrator's error.

Theories: :class:`ImprovedSUN` (plaquette + rectangle target, Luscher-Weisz / Iwasaki) and
:class:`SmearedSUN` (the plaquette/rectangle action of stout-smeared links, the molecular-dynamics
action of a :class:`latticeml.nets.covariant.CovariantNet`). Both follow the interface of
:mod:`latticeml.theories.models` (they subclass :class:`~latticeml.theories.models.SUN`).

API (the blackjax pattern of :mod:`latticeml.samplers.chain`): ``init(field, target) -> State``,
``step(rng, state, target, md_theory, *, step_size, n_steps, integrator) -> (State, Info)``,
``sampler(target, md_theory, *, step_size=None, n_steps=None, trajectory_length=None,
integrator="leapfrog")``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from .. import smearing
from ..theories.models import SUN
from . import hmc
from .accept import metropolis_test
from .chain import Sampler

__all__ = ["ImprovedSUN", "SmearedSUN", "State", "Info", "init", "step", "sampler"]


class ImprovedSUN(SUN):
    """SU(N) with the plaquette + rectangle action of :func:`latticeml.smearing.gauge_action`.

    ``S = beta sum_x [(1 - 8 c1) sum_P (1 - Re tr P/N) + c1 sum_R (1 - Re tr R/N)]``; ``c1 = -1/12``
    tree-level Luscher-Weisz, ``-0.331`` Iwasaki, ``0`` Wilson.
    """

    def __init__(self, shape, *, beta: float, N: int, c1: float):
        super().__init__(shape, beta=beta, N=N)
        self.c1 = float(c1)
        if not np.isfinite(self.c1):
            raise ValueError(f"c1 must be finite, got {c1}")
        self.name = f"{self.name}_improved"

    @property
    def params(self):
        return {**super().params, "c1": self.c1}

    def action(self, field):
        return float(smearing.gauge_action(field, beta=self.beta, c1=self.c1))

    def force(self, field):
        return smearing.gauge_force(field, beta=self.beta, c1=self.c1)


class SmearedSUN(SUN):
    """``S_MD[U] = beta * S_g[U^(n)]``: the plaquette (+ rectangle, ``c1``) action of ``n`` stout layers.

    ``rho`` is ``(n_layers, n_terms)`` for the loop ``terms`` (:mod:`latticeml.smearing`); the force is
    :func:`latticeml.smearing.smeared_force`. :meth:`from_net` freezes a covariant net's weights.
    """

    def __init__(self, shape, *, beta: float, N: int, rho, terms=("plaquette",), c1: float = 0.0):
        super().__init__(shape, beta=beta, N=N)
        self.terms = smearing._check_terms(terms)
        self.rho = smearing._layer_weights(rho, self.terms).copy()
        self.rho.setflags(write=False)
        self.c1 = float(c1)
        self.name = f"{self.name}_smeared"

    @classmethod
    def from_net(cls, net, shape, *, N: int) -> "SmearedSUN":
        """The molecular-dynamics theory of a :class:`~latticeml.nets.covariant.CovariantNet` (weights copied)."""
        rho = net.rho if len(net.rho) else np.zeros((1, len(net.terms)))
        return cls(shape, beta=net.beta_value, N=N, rho=rho, terms=net.terms, c1=net.c1)

    @property
    def params(self):
        return {**super().params, "rho": self.rho.tolist(), "terms": list(self.terms), "c1": self.c1}

    def action(self, field):
        return float(smearing.smeared_action(field, rho=self.rho, terms=self.terms, beta=self.beta, c1=self.c1))

    def force(self, field):
        return smearing.smeared_force(field, rho=self.rho, terms=self.terms, beta=self.beta, c1=self.c1)


class State(NamedTuple):
    """State of an SLHMC chain.

    field:  the current configuration.
    action: the *target* action ``S(field)``, cached for the next Metropolis test.
    """

    field: np.ndarray
    action: float


class Info(NamedTuple):
    """What one SLHMC step (one trajectory) reports.

    acceptance:             1.0 if the trajectory was accepted, else 0.0.
    accepted:               the same as a bool.
    delta_H:                ``H(end) - H(start)`` with the target Hamiltonian ``K + S`` (decides acceptance).
    acceptance_probability: ``min(1, exp(-delta_H))`` (0 if ``delta_H`` is not finite).
    delta_H_md:             ``H_MD(end) - H_MD(start)``, ``H_MD = K + S_MD``: the integrator's own
                            energy violation (``delta_H - delta_H_md`` is the change of ``S - S_MD``).
    n_steps:                molecular-dynamics steps of the trajectory.
    trajectory_length:      ``n_steps * step_size``.
    """

    acceptance: float
    accepted: bool
    delta_H: float
    acceptance_probability: float
    delta_H_md: float
    n_steps: int
    trajectory_length: float


def init(field, target) -> State:
    """The SLHMC state at ``field`` (validated by ``target.check_field`` and copied)."""
    field = np.array(target.check_field(field), copy=True)
    return State(field=field, action=float(target.action(field)))


def step(rng: np.random.Generator, state: State, target, md_theory, *, step_size: float, n_steps: int, integrator: str = "leapfrog"):
    """One SLHMC trajectory: MD with ``md_theory``, Metropolis with ``target``. Returns ``(State, Info)``.

    Draws the momenta (``target.random_momentum``) and then one uniform number, in that order.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    momentum = target.random_momentum(rng)
    kinetic_start = target.kinetic_energy(momentum)
    md_start = md_theory.action(state.field)
    field, p = hmc.integrate(md_theory, state.field, momentum, step_size=step_size, n_steps=n_steps, integrator=integrator)
    kinetic_end = target.kinetic_energy(p)
    action_end = float(target.action(field))
    delta_H = (action_end - state.action) + (kinetic_end - kinetic_start)
    delta_H_md = (md_theory.action(field) - md_start) + (kinetic_end - kinetic_start)
    accepted, probability = metropolis_test(rng, delta_H)
    info = Info(
        acceptance=float(accepted),
        accepted=accepted,
        delta_H=float(delta_H),
        acceptance_probability=probability,
        delta_H_md=float(delta_H_md),
        n_steps=int(n_steps),
        trajectory_length=float(n_steps * step_size),
    )
    if accepted:
        return State(field=field, action=action_end), info
    return state, info


def sampler(
    target,
    md_theory,
    *,
    step_size: float | None = None,
    n_steps: int | None = None,
    trajectory_length: float | None = None,
    integrator: str = "leapfrog",
) -> Sampler:
    """SLHMC for ``target`` with molecular dynamics driven by ``md_theory`` (give two of the trajectory settings).

    ``md_theory`` needs ``action``, ``force`` and ``evolve`` on the target's fields (e.g.
    :class:`SmearedSUN`); the settings are resolved as in :func:`latticeml.samplers.hmc.sampler`.
    """
    for name, th in (("target", target), ("md_theory", md_theory)):
        missing = [m for m in ("action", "force", "evolve", "random_momentum", "kinetic_energy") if not callable(getattr(th, m, None))]
        if missing:
            raise TypeError(f"SLHMC needs a {name} with action, force, evolve, random_momentum, kinetic_energy; missing {missing}")
    if getattr(target, "shape", None) != getattr(md_theory, "shape", None):
        raise ValueError(f"target and md_theory must live on the same lattice, got {target.shape} and {md_theory.shape}")
    step_size, n_steps = hmc.resolve_trajectory(step_size=step_size, n_steps=n_steps, trajectory_length=trajectory_length)
    integrator = hmc._check_integrator(integrator)
    settings = {
        "step_size": step_size,
        "n_steps": n_steps,
        "trajectory_length": step_size * n_steps,
        "integrator": integrator,
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
