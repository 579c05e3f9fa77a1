"""The target distribution p(phi) = exp(-S(phi)) / Z of a flow: phi^4 actions on batches.

* :func:`action` -- ``S`` of a batch ``(B, *shape)`` -> ``(B,)`` (the Albergo-Kanwar-Shanahan form
  of :mod:`latticeml.theories.phi4`, with the theory's ``m2`` and ``lam``);
* :func:`action_tensor` -- the same as a differentiable operation of the autodiff engine, whose
  backward is the force ``dS/dphi`` of :func:`latticeml.theories.phi4.force`;
* :func:`observables` -- the measurements of :meth:`latticeml.theories.phi4.Phi4.observables`
  (magnetization, abs_magnetization, susceptibility = V M^2, action_density = S / V), vectorised
  over a batch: arrays ``(B,)``.

The phi^4 kernels are Numba ``parallel=True`` kernels. On a batch of 64 fields of 8x8 sites the work
is far too small to pay for thread synchronisation, and on a loaded machine one parallel region
can stall for milliseconds (measured on 2 busy cores: 2-65 ms per call against 0.4 ms on one
thread), so the calls here run with one Numba thread (:func:`one_numba_thread`).
"""

from __future__ import annotations

import numpy as np

from .._threads import single_threaded
from ..autodiff.tensor import custom_op
from ..theories import phi4
from ..theories.phi4 import Phi4

__all__ = ["check_theory", "action", "action_tensor", "observables", "one_numba_thread"]


one_numba_thread = single_threaded  # run the enclosed Numba kernels on the calling thread only


def check_theory(theory) -> Phi4:
    """The flows here model real scalar fields: a :class:`~latticeml.theories.phi4.Phi4` theory."""
    if not isinstance(theory, Phi4):
        raise TypeError(
            f"normalizing flows in latticeml.flows model phi^4 theories; got {type(theory).__name__}. "
            "Build one with latticeml.theories.phi4.Phi4(shape, m2=..., lam=...)"
        )
    return theory


def _batch(phi, theory):
    phi = np.ascontiguousarray(phi, dtype=np.float64)
    if phi.shape[1:] != theory.shape:
        raise ValueError(f"expected a batch of fields of shape (B, *{theory.shape}), got {phi.shape}")
    return phi


def action(theory: Phi4, phi) -> np.ndarray:
    """``S(phi)`` for a batch ``(B, *shape)``: float64 array ``(B,)``."""
    phi = _batch(phi, check_theory(theory))
    with one_numba_thread():
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


def action_tensor(theory: Phi4, phi):
    """``S(phi)`` ``(B,)`` as a Tensor; gradient ``dS/dphi`` = :func:`latticeml.theories.phi4.force`."""
    check_theory(theory)
    return _action_op(phi, m2=theory.m2, lam=theory.lam)


def observables(theory: Phi4, phi) -> dict[str, np.ndarray]:
    """Per-configuration observables of a batch, keys as in ``latticeml sample`` for phi^4."""
    phi = _batch(phi, check_theory(theory))
    M = phi.reshape(len(phi), -1).mean(axis=1)
    return {
        "magnetization": M,
        "abs_magnetization": np.abs(M),
        "susceptibility": theory.volume * M * M,
        "action_density": action(theory, phi) / theory.volume,
    }
