"""Differentiable compact U(1) gauge operations on link angles, for training (L2HMC, U(1) flows).

Shapes and conventions (those of :mod:`latticeml.theories.u1`, batched):

* ``theta``: float64 link angles of shape ``(B, D, L0, ..., L{D-1})``, ``U_mu(x) = exp(i theta_mu(x))``;
  any D >= 2, periodic boundaries, angles need not be wrapped.
* Planes ``(mu, nu)``, ``mu < nu``, in the order of :func:`latticeml.theories.u1.planes`.
* Plaquette angle ``theta_P(x) = theta_mu(x) + theta_nu(x + mu) - theta_mu(x + nu) - theta_nu(x)``,
  so :func:`u1_plaquette_angles` returns ``(B, n_planes, L0, ...)``; call the linear map
  ``theta -> theta_P`` P and its transpose P^T (the "sum over the plaquettes through a link, with
  the sign of the link in each").
* Wilson action ``S = beta * sum_{x, mu<nu} (1 - cos theta_P(x))`` per configuration: ``(B,)``.
* Force ``F = dS/dtheta = P^T (beta sin theta_P)``, same shape as ``theta`` (the sign of
  :func:`latticeml.theories.u1.force`: molecular dynamics moves ``p -> p - eps F``).

Three operations with hand-written backward passes (:func:`latticeml.autodiff.custom_op`):

=========================  ==========================  ==================================================
op                         forward                     backward (cotangent g)
=========================  ==========================  ==================================================
``u1_plaquette_angles``    ``P theta``                 ``P^T g``
``u1_action``              ``S(theta)``  ``(B,)``      ``g[b] * F(theta)[b]``  (the force)
``u1_force``               ``F(theta)``                ``H g = P^T (beta cos theta_P * P g)`` (Hessian-vector)
=========================  ==========================  ==================================================

The Hessian of S is symmetric, so the vector-Jacobian product of the force is the Hessian-vector
product ``H g``. This is what makes the force differentiable inside a trainable integrator (the
v-update of L2HMC uses ``F(x)`` at positions that depend on the network weights: Foreman, Jin &
Osborn, "Deep learning Hamiltonian Monte Carlo", ICLR 2021 SimDL workshop, arXiv:2105.03418).
``beta`` is a float or an array of shape ``(B,)`` (one coupling per configuration, for annealing);
it is a constant, not differentiated. Checked against central finite differences in
``tests/test_l2hmc_u1ops.py``.
"""

from __future__ import annotations

import numpy as np

from ..lattice import planes
from .tensor import custom_op

__all__ = ["u1_plaquette_angles", "u1_action", "u1_force", "plaquette_map", "plaquette_map_transpose"]


def _check_links(theta) -> np.ndarray:
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    if theta.ndim < 4 or theta.shape[1] != theta.ndim - 2:
        raise ValueError(
            f"U(1) links must have shape (B, D, L0, ..., L{{D-1}}) with D >= 2 lattice axes, got {theta.shape}"
        )
    return theta


def _beta_column(beta, theta) -> np.ndarray:
    """beta as an array broadcasting against (B, n_planes, *L): a float or one value per configuration."""
    beta = np.asarray(beta, dtype=np.float64)
    if beta.ndim == 0:
        return beta
    if beta.shape != (theta.shape[0],):
        raise ValueError(f"beta must be a float or have shape (B,) = ({theta.shape[0]},), got {beta.shape}")
    return beta.reshape((-1,) + (1,) * (theta.ndim - 1))


def plaquette_map(theta: np.ndarray) -> np.ndarray:
    """``P theta``: plaquette angles ``(B, n_planes, *L)`` (unwrapped sums, linear in theta)."""
    D = theta.shape[1]
    out = np.empty((theta.shape[0], D * (D - 1) // 2) + theta.shape[2:])
    for i, (mu, nu) in enumerate(planes(D)):
        tmu, tnu = theta[:, mu], theta[:, nu]
        # lattice axis mu of a (B, *L) slice is array axis 1 + mu; x + mu is roll by -1.
        out[:, i] = tmu + np.roll(tnu, -1, axis=1 + mu) - np.roll(tmu, -1, axis=1 + nu) - tnu
    return out


def plaquette_map_transpose(g: np.ndarray) -> np.ndarray:
    """``P^T g``: for plaquette cotangents ``g`` (B, n_planes, *L), the link array (B, D, *L).

    theta_mu(y) enters theta_P^{mu nu}(y) with +1 and theta_P^{mu nu}(y - nu) with -1;
    theta_nu(y) enters theta_P^{mu nu}(y - mu) with +1 and theta_P^{mu nu}(y) with -1.
    """
    n_planes = g.shape[1]
    D = g.ndim - 2
    if n_planes != D * (D - 1) // 2:
        raise ValueError(f"plaquette array {g.shape} does not match D = {D}")
    out = np.zeros((g.shape[0], D) + g.shape[2:])
    for i, (mu, nu) in enumerate(planes(D)):
        gp = g[:, i]
        out[:, mu] += gp - np.roll(gp, 1, axis=1 + nu)
        out[:, nu] += np.roll(gp, 1, axis=1 + mu) - gp
    return out


# --- plaquette angles ---------------------------------------------------------------------


def _plaq_fwd(theta):
    return plaquette_map(_check_links(theta)), None


def _plaq_bwd(g, _residuals, needs):
    return (plaquette_map_transpose(np.asarray(g, dtype=np.float64)),)


u1_plaquette_angles = custom_op("u1_plaquette_angles", _plaq_fwd, _plaq_bwd)
# u1_plaquette_angles(theta): plaquette angles (B, n_planes, *L) of links (B, D, *L); backward P^T g.


# --- action -------------------------------------------------------------------------------


def _action_fwd(theta, *, beta):
    theta = _check_links(theta)
    plaq = plaquette_map(theta)
    b = _beta_column(beta, plaq)
    S = (b * (1.0 - np.cos(plaq))).reshape(theta.shape[0], -1).sum(axis=1)
    return S, (plaq, b)


def _action_bwd(g, residuals, needs):
    plaq, b = residuals
    force = plaquette_map_transpose(b * np.sin(plaq))
    return (np.asarray(g).reshape((-1,) + (1,) * (force.ndim - 1)) * force,)


u1_action = custom_op("u1_action", _action_fwd, _action_bwd)
# u1_action(theta, beta=...): Wilson action per configuration, (B,); backward: the force.


# --- force --------------------------------------------------------------------------------


def _force_fwd(theta, *, beta):
    theta = _check_links(theta)
    plaq = plaquette_map(theta)
    b = _beta_column(beta, plaq)
    return plaquette_map_transpose(b * np.sin(plaq)), (plaq, b)


def _force_bwd(g, residuals, needs):
    plaq, b = residuals
    return (plaquette_map_transpose(b * np.cos(plaq) * plaquette_map(np.asarray(g, dtype=np.float64))),)


u1_force = custom_op("u1_force", _force_fwd, _force_bwd)
# u1_force(theta, beta=...): dS/dtheta, the shape of theta; backward: the Hessian-vector product.
