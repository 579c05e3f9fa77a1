"""Self-learning HMC with dynamical staggered fermions (Nagai and Tomiya, arXiv:2103.11965).

Target (Metropolis test): ``S[U, phi] = S_g[U] + phi^dagger (M^dagger M)^-1[U; m] phi`` (the
pseudofermion theory :class:`latticeml.fermions.StaggeredFermions` at the target mass ``m``).
Molecular dynamics: ``S_theta[U, phi] = S_g[U] + phi^dagger (M^dagger M)^-1[U^NN_theta[U]; m_h] phi``:
the same gauge action, and the fermion action at a heavier mass ``m_h`` (cheaper CG) of the links
smeared by a trainable stout net ``U^NN_theta`` -- :class:`latticeml.nets.covariant.CovariantNet`
with two layers of plaquette, temporal and spatial Polyakov-loop terms (six weights,
:data:`NET_TERMS`), acting inside the fermion action only. The pseudofermions are drawn by the
target's heatbath at the start of each trajectory and shared by both actions
(:mod:`latticeml.samplers.slhmc`). The chain is exact for any weights: the integrator is
reversible and area preserving whatever ``S_theta`` is, and the Metropolis test uses the target
``H`` (tests: Schwinger model on the 2 x 2 torus against direct integration, ``<exp(-dH)> = 1``).

Training (:func:`train_online`): during a prior HMC run of the target, after every trajectory
draw a pseudofermion at the current field and take one Adam step on the loss
``L = 1/2 (S_theta[U, phi] - S[U, phi] - c)^2``, whose gradient is ``(S_theta - S - c) dS_theta/drho``;
``dS_theta/drho`` is the stout backward pass of the fermion force
(:meth:`StaggeredFermions.rho_gradient`, Morningstar-Peardon's Lambda recursion). The paper's loss
has ``c = 0``; here ``c`` is the running mean of ``S_theta - S`` (``offset=True``, the default). A
constant never changes the molecular dynamics (only differences of ``S_theta`` along a trajectory
enter ``dH``), but with ``c = 0`` the weights are spent on closing the O(V) gap between the fermion
actions at ``m_h`` and ``m``: measured on SU(2) 4^4 at beta = 2.7, m = 0.3, m_h = 0.4, 60 training
trajectories with ``c = 0`` cut the loss from ~100 to ~5 and the SLHMC acceptance from 0.6 to 0.2.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..autodiff.optim import Adam
from ..checks import check_count, check_rng, positive_float
from ..nets.covariant import CovariantNet
from .pseudofermion import StaggeredFermions

__all__ = ["NET_TERMS", "make_net", "md_theory", "TrainingLog", "train_online", "slhmc_sampler", "save_net", "load_net"]

#: The paper's loop terms: plaquette, Polyakov loop in time, Polyakov loops in space (per layer).
NET_TERMS = ("plaquette", "polyakov_time", "polyakov_space")


def make_net(n_layers: int = 2, *, terms=NET_TERMS, rho=0.0) -> CovariantNet:
    """The trainable stout net of the fermion action: ``n_layers`` x ``len(terms)`` weights (beta is not used)."""
    return CovariantNet(n_layers, terms=terms, rho=rho, beta=1.0, train_beta=False)


def md_theory(target: StaggeredFermions, net: CovariantNet, *, md_mass: float) -> StaggeredFermions:
    """``S_g + S_f[phi, U^NN; m_h]``: the molecular-dynamics theory of SLHMC for ``target`` (weights copied)."""
    return StaggeredFermions(target.gauge, mass=md_mass, n_staggered=target.n_staggered, tol=target.tol,
                             rho=net.rho, terms=net.terms)


class TrainingLog(NamedTuple):
    """loss: ``1/2 (S_theta - S - c)^2`` per training step; rho: weights after each step ``(steps, n_layers, n_terms)``;
    acceptance: the prior HMC's acceptance per trajectory; field: the last configuration."""

    loss: np.ndarray
    rho: np.ndarray
    acceptance: np.ndarray
    field: np.ndarray


def train_online(target: StaggeredFermions, net: CovariantNet, rng, field, *, md_mass: float, n_trajectories: int,
                 step_size: float, n_steps: int, integrator="omelyan", lr: float = 1e-3, n_therm: int = 0,
                 offset: bool = True) -> TrainingLog:
    """Train ``net`` (in place) during ``n_therm + n_trajectories`` HMC trajectories of ``target`` (module docstring)."""
    from ..samplers import hmc

    check_rng(rng)
    md_mass = positive_float(md_mass, "md_mass")
    n_trajectories = check_count(n_trajectories, "n_trajectories", minimum=1)
    md = md_theory(target, net, md_mass=md_mass)
    sampler = hmc.sampler(target, step_size=step_size, n_steps=n_steps, integrator=integrator)
    state = sampler.init(field)
    opt = Adam(net.parameters(), lr=lr)
    losses, rhos, acc, diffs = [], [], [], []
    for t in range(check_count(n_therm, "n_therm") + n_trajectories):
        state, info = sampler.step(rng, state)
        acc.append(info.acceptance)
        if t < n_therm:
            continue
        aux = target.draw_auxiliary(rng, state.field)
        S = target.fermion_action(state.field, aux)  # the gauge actions of S and S_theta cancel
        md.set_rho(net.rho)
        S_theta, g_rho = md.rho_gradient(state.field, aux)
        diffs.append(S_theta - S)
        diff = diffs[-1] - (np.mean(diffs) if offset else 0.0)
        opt.zero_grad()
        for layer, g in zip(net.layers, g_rho):
            layer.rho.grad = diff * g
        opt.step()
        losses.append(0.5 * diff * diff)
        rhos.append(net.rho)
    return TrainingLog(np.array(losses), np.array(rhos), np.array(acc), state.field)


def slhmc_sampler(target: StaggeredFermions, net: CovariantNet, *, md_mass: float, step_size: float, n_steps: int,
                  integrator="omelyan"):
    """The SLHMC sampler (:func:`latticeml.samplers.slhmc.sampler`) of ``target`` with ``S_theta`` in the molecular dynamics."""
    from ..samplers import slhmc

    return slhmc.sampler(target, md_theory(target, net, md_mass=md_mass), step_size=step_size, n_steps=n_steps,
                         integrator=integrator)


def save_net(path, net: CovariantNet, *, metadata: dict | None = None):
    """Write the net's weights and its loop terms (and ``metadata``: what it was trained for) to an ``.npz``."""
    from .. import io

    meta = {"kind": "staggered_slhmc_net", "terms": list(net.terms), **(metadata or {})}
    return io.save_npz(path, {"rho": net.rho}, meta)


def load_net(path) -> tuple[CovariantNet, dict]:
    """``(net, metadata)`` from a file of :func:`save_net`; ValueError if it is not one."""
    from .. import io

    arrays, meta = io.load_npz(path)
    if meta.get("kind") != "staggered_slhmc_net" or "rho" not in arrays:
        raise ValueError("it is not a net written by `latticeml slhmc train` (latticeml.fermions.selflearning.save_net)")
    rho = np.asarray(arrays["rho"], dtype=np.float64)
    terms = tuple(meta["terms"])
    if rho.ndim != 2 or rho.shape[1] != len(terms):
        raise ValueError(f"its weights have shape {rho.shape}, not (n_layers, {len(terms)})")
    net = make_net(len(rho), terms=terms)
    for layer, r in zip(net.layers, rho):
        layer.rho.value[:] = r
    return net, meta
