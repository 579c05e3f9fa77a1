"""Scalar-field observables: magnetisation, susceptibility, two-point functions, effective masses.

Batch rule
----------
Every function here takes an ENSEMBLE ``phi`` of shape ``(B, L0, L1, ...)``: axis 0 is always the
configuration index and the remaining axes are the lattice (periodic). Pass one configuration as
``phi[None]``. Functions that return per-configuration values say so; the others return ensemble
means (use the per-configuration values with :mod:`latticeml.stats` for errors).

Normalisations (V = number of sites, M = (1/V) sum_x phi(x), <.> the ensemble mean)
----------------------------------------------------------------------------------
* two-point function ``G(x) = (1/V) sum_y <phi(y) phi(y + x)>``, computed by FFT
  (``sum_y phi(y) phi(y + x) = IFFT |FFT phi|^2``); connected: ``G(x) - <M>^2``.
* susceptibility ``chi = V <M^2> = sum_x G(x)``; ``subtract="mean"`` gives the connected
  ``V (<M^2> - <M>^2) = sum_x G_c(x)`` (the chi_2 of Albergo, Kanwar and Shanahan,
  PRD 100 (2019) 034515), ``subtract="abs"`` gives ``V (<M^2> - <|M|>^2)``, the usual
  finite-volume estimator in the broken phase where <M> = 0 by symmetry on a finite lattice.
* zero-momentum correlator along ``axis`` (called t, extent L_t, spatial volume V_s = V / L_t):
  ``C(t) = sum_{x_s} G(t, x_s) = (1 / V) sum_{t'} <Phi(t') Phi(t' + t)>`` with the time-slice
  sums ``Phi(t) = sum_{x_s} phi(t, x_s)``. For the free field
  ``S = sum_x [1/2 sum_mu (phi(x+mu) - phi(x))^2 + m^2 phi^2 / 2]`` its expectation is
  ``cosh(E (L_t/2 - t)) / (2 sinh E sinh(E L_t / 2))``, ``cosh E = 1 + m^2 / 2`` (the lattice propagator summed over the spatial momentum 0; e.g. Montvay & Muenster, *Quantum Fields on a Lattice*, Sec. 1.3; :mod:`latticeml.exact`);
  connected: ``C(t) - V_s <M>^2``.
* effective mass from a periodic C(t): ``cosh m(t) = (C(t-1) + C(t+1)) / (2 C(t))`` (exact for
  ``C ~ cosh(E (L_t/2 - t))`` at every t >= 1), or ``m(t) = log(C(t) / C(t+1))``.
References: I. Montvay and G. Muenster, *Quantum Fields on a Lattice* (CUP 1994), ch. 1-2;
C. Gattringer and C. B. Lang, *Quantum Chromodynamics on the Lattice* (Springer 2010), ch. 6.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "magnetization",
    "abs_magnetization",
    "susceptibility",
    "two_point_function",
    "zero_momentum_correlator",
    "effective_mass",
]


def _as_ensemble(phi) -> np.ndarray:
    phi = np.asarray(phi)
    if not np.issubdtype(phi.dtype, np.floating) and not np.issubdtype(phi.dtype, np.integer):
        raise TypeError(f"a real scalar field is expected (float64), got dtype {phi.dtype}")
    if phi.ndim < 2:
        raise ValueError(
            f"phi must be an ensemble of shape (B, L0, ..., L{{D-1}}) (axis 0 indexes configurations), "
            f"got shape {phi.shape}; pass a single configuration as phi[None]"
        )
    if phi.shape[0] == 0 or any(L < 1 for L in phi.shape[1:]):
        raise ValueError(f"empty ensemble or lattice: phi has shape {phi.shape}")
    return np.asarray(phi, dtype=np.float64)


def magnetization(phi) -> np.ndarray:
    """Per-configuration mean field ``M = (1/V) sum_x phi(x)``, shape ``(B,)``."""
    phi = _as_ensemble(phi)
    return phi.reshape(phi.shape[0], -1).mean(axis=1)


def abs_magnetization(phi) -> np.ndarray:
    """Per-configuration ``|M|``, shape ``(B,)``."""
    return np.abs(magnetization(phi))


def susceptibility(phi, *, subtract: str | None = None) -> float:
    """Ensemble susceptibility: ``V <M^2>`` (default), ``V(<M^2> - <M>^2)`` (``"mean"``) or ``V(<M^2> - <|M|>^2)`` (``"abs"``)."""
    phi = _as_ensemble(phi)
    V = phi[0].size
    M = magnetization(phi)
    m2 = np.mean(M**2)
    if subtract is None:
        return float(V * m2)
    if subtract == "mean":
        return float(V * (m2 - np.mean(M) ** 2))
    if subtract == "abs":
        return float(V * (m2 - np.mean(np.abs(M)) ** 2))
    raise ValueError(f"subtract must be None, 'mean' or 'abs', got {subtract!r}")


def _autocorrelation(phi, axes):
    """``sum_y phi(y) phi(y + x)`` over the given lattice axes, per configuration (real FFT)."""
    axes = tuple(axes)
    spec = np.fft.rfftn(phi, axes=axes)
    sizes = [phi.shape[a] for a in axes]
    return np.fft.irfftn(np.abs(spec) ** 2, s=sizes, axes=axes)


def two_point_function(phi, *, connected: bool = False) -> np.ndarray:
    """Ensemble-mean ``G(x) = (1/V) sum_y <phi(y) phi(y + x)>`` for every separation x, shape ``(L0, ..., L{D-1})``.

    ``connected=True`` subtracts ``<M>^2``; then ``sum_x G(x) = susceptibility(phi, subtract="mean")``.
    """
    phi = _as_ensemble(phi)
    V = phi[0].size
    G = _autocorrelation(phi, range(1, phi.ndim)).mean(axis=0) / V
    if connected:
        G = G - np.mean(magnetization(phi)) ** 2
    return G


def zero_momentum_correlator(phi, *, axis: int = 0, connected: bool = False, per_config: bool = False) -> np.ndarray:
    """Zero-momentum correlator ``C(t) = (1/V) sum_t' <Phi(t') Phi(t' + t)>`` along lattice ``axis``, shape ``(L_t,)``.

    ``axis`` counts lattice axes (0 = the first lattice axis, i.e. array axis 1). ``C(t) = sum_{x_s} G(t, x_s)``;
    see the module docstring for its free-field value. ``connected=True`` subtracts ``V_s <M>^2``.
    ``per_config=True`` returns the per-configuration estimators ``(B, L_t)`` (not connected), whose
    mean is the default result: feed them to jackknife/Gamma-method error analysis.
    """
    phi = _as_ensemble(phi)
    D = phi.ndim - 1
    if not 0 <= axis < D:
        raise ValueError(f"axis={axis} out of range for a {D}-dimensional lattice (axis counts lattice axes)")
    V = phi[0].size
    slices = phi.sum(axis=tuple(a for a in range(1, D + 1) if a != axis + 1))  # Phi(t), shape (B, L_t)
    C = _autocorrelation(slices, (1,)) / V
    if per_config:
        if connected:
            raise ValueError("connected=True needs the ensemble mean <M>; use per_config=False or subtract it yourself")
        return C
    C = C.mean(axis=0)
    if connected:
        C = C - (V // phi.shape[axis + 1]) * np.mean(magnetization(phi)) ** 2
    return C


def effective_mass(C, *, kind: str = "cosh") -> np.ndarray:
    """Effective mass of a periodic correlator ``C(t)``, t = 0..L_t-1 along the last axis.

    ``kind="cosh"``: ``m(t) = arccosh[(C(t-1) + C(t+1)) / (2 C(t))]``, length L_t with ``C(L_t) = C(0)``
    (periodicity); equal to E at every t >= 1 for ``C ~ cosh(E (L_t/2 - t))``. ``m(0)`` is NaN: at the
    source the propagator equation has a contact term, so ``C(-1) + C(1) != 2 cosh(E) C(0)``.
    ``kind="log"``: ``m(t) = log(C(t)/C(t+1))``, length L_t - 1, equal to E only while
    ``exp(-E (L_t - 2t))`` is negligible. Entries where a formula is undefined (noise: ratio < 1 or of
    the wrong sign) are NaN.
    """
    C = np.asarray(C, dtype=np.float64)
    if C.ndim < 1 or C.shape[-1] < 3:
        raise ValueError(f"C must have at least 3 time slices along its last axis, got shape {C.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "cosh":
            ratio = (np.roll(C, 1, axis=-1) + np.roll(C, -1, axis=-1)) / (2.0 * C)
            ratio[..., 0] = np.nan
            return np.where(ratio >= 1.0, np.arccosh(np.maximum(ratio, 1.0)), np.nan)
        if kind == "log":
            ratio = C[..., :-1] / C[..., 1:]
            return np.where(ratio > 0.0, np.log(np.where(ratio > 0.0, ratio, 1.0)), np.nan)
    raise ValueError(f"kind must be 'cosh' or 'log', got {kind!r}")
