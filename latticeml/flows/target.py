"""The target distribution p = exp(-S) / Z of a flow, for every theory a flow can model.

A theory qualifies when it has a differentiable action on batches; today:

* phi^4 (:class:`~latticeml.theories.phi4.Phi4`): fields ``(B, *shape)``, the Albergo-Kanwar-Shanahan
  action of :mod:`latticeml.theories.phi4`; the differentiable op's backward is
  :func:`latticeml.theories.phi4.force`;
* U(1) with the Wilson action (:class:`~latticeml.theories.u1.U1`): links ``(B, D, *shape)``,
  ``S = beta sum_P (1 - cos theta_P)``; the differentiable op is :func:`latticeml.autodiff.u1.u1_action`
  (backward = the force).

Functions (each dispatches on the theory):

* :func:`action` -- ``S`` of a batch -> float64 ``(B,)``;
* :func:`action_tensor` -- the same as an operation of the autodiff engine (for training);
* :func:`observables` -- the measurements of ``theory.observables`` under the keys of
  ``latticeml sample``, vectorised over a batch: arrays ``(B,)``. phi^4: magnetization,
  abs_magnetization, susceptibility = V M^2, action_density = S / V. U(1): plaquette,
  wilson_loop_1x2, wilson_loop_2x2 (extents > 2), and in 2D topological_charge (geometric) and
  topological_susceptibility = Q^2 / V.

The phi^4 kernels are Numba ``parallel=True`` kernels. On a batch of 64 fields of 8x8 sites the work
is far too small to pay for thread synchronisation, and on a loaded machine one parallel region
can stall for milliseconds (measured on 2 busy cores: 2-65 ms per call against 0.4 ms on one
thread), so the calls here run with one Numba thread (:func:`one_numba_thread`).
"""

from __future__ import annotations

import numpy as np

from .._threads import single_threaded
from ..autodiff.tensor import custom_op
from ..autodiff.u1 import u1_action
from ..observables import loops, topology
from ..theories import phi4, u1
from ..theories.phi4 import Phi4
from ..theories.u1 import U1

__all__ = ["FLOW_THEORIES", "check_theory", "action", "action_tensor", "observables", "one_numba_thread"]


one_numba_thread = single_threaded  # run the enclosed Numba kernels on the calling thread only

#: The theories flows model (exact classes: an improved U(1) action is not the Wilson action).
FLOW_THEORIES = (Phi4, U1)


def check_theory(theory):
    """A theory a flow can model (:data:`FLOW_THEORIES`): phi^4, or U(1) with the Wilson action."""
    if type(theory) not in FLOW_THEORIES:
        raise TypeError(
            f"normalizing flows in latticeml.flows model phi^4 and U(1) (Wilson action) theories; got "
            f"{type(theory).__name__}. Build one with latticeml.theories.make_theory('phi4', shape, m2=..., lam=...) "
            "or make_theory('u1', shape, beta=...)"
        )
    return theory


def _batch(phi, theory):
    phi = np.ascontiguousarray(phi, dtype=np.float64)
    if phi.shape[1:] != theory.field_shape:
        raise ValueError(f"expected a batch of fields of shape (B, *{theory.field_shape}), got {phi.shape}")
    return phi


def action(theory, phi) -> np.ndarray:
    """``S`` for a batch ``(B, *field_shape)``: float64 array ``(B,)``."""
    phi = _batch(phi, check_theory(theory))
    with one_numba_thread():
        if isinstance(theory, U1):
            return np.asarray(u1.action(phi, beta=theory.beta, batched=True), dtype=np.float64)
        return phi4.action(phi, m2=theory.m2, lam=theory.lam, batched=True)


def _action_fwd(phi, *, m2, lam):
    with one_numba_thread():
        return phi4.action(phi, m2=m2, lam=lam, batched=True), (phi, m2, lam)


def _action_bwd(g, residuals, needs):
    phi, m2, lam = residuals
    with one_numba_thread():
        force = phi4.force(phi, m2=m2, lam=lam, batched=True)
    return (np.asarray(g).reshape((-1,) + (1,) * (phi.ndim - 1)) * force,)


_action_op = custom_op("phi4_action", _action_fwd, _action_bwd)


def action_tensor(theory, phi):
    """``S`` ``(B,)`` as a Tensor; its gradient is the theory's force (phi^4 or U(1), module docstring)."""
    check_theory(theory)
    if isinstance(theory, U1):
        return u1_action(phi, beta=theory.beta)
    return _action_op(phi, m2=theory.m2, lam=theory.lam)


def observables(theory, phi) -> dict[str, np.ndarray]:
    """Per-configuration observables of a batch ``(B, *field_shape)``, keys as in ``latticeml sample``."""
    phi = _batch(phi, check_theory(theory))
    if isinstance(theory, U1):
        return _u1_observables(theory, phi)
    M = phi.reshape(len(phi), -1).mean(axis=1)
    return {
        "magnetization": M,
        "abs_magnetization": np.abs(M),
        "susceptibility": theory.volume * M * M,
        "action_density": action(theory, phi) / theory.volume,
    }


def _u1_observables(theory: U1, theta) -> dict[str, np.ndarray]:
    """The keys and definitions of :meth:`latticeml.theories.u1.U1Fields.observables`, batched."""
    with one_numba_thread():
        obs = {"plaquette": np.asarray(u1.mean_plaquette(theta, batched=True), dtype=np.float64)}
        if all(L > 2 for L in theory.shape):
            obs["wilson_loop_1x2"] = loops.wilson_loop(theta, 1, 2, batched=True)
            obs["wilson_loop_2x2"] = loops.wilson_loop(theta, 2, 2, batched=True)
        if theory.dim == 2:
            Q = topology.topological_charge_u1(theta, batched=True).astype(np.float64)
            obs["topological_charge"] = Q
            obs["topological_susceptibility"] = Q * Q / theory.volume
    return obs
