"""The gradient flow of gauge fields (the Wilson flow), its energy density and the scale t0.

M. Luscher, "Properties and uses of the Wilson flow in lattice QCD", JHEP 08 (2010) 071
[arXiv:1006.4518]. (A flow of gauge *fields* in a fictitious time t, not a normalizing flow: those
are in :mod:`latticeml.flows`.)

Shapes: links as in :mod:`latticeml.smearing.paths` (SU(N) complex128 ``(D, *L, N, N)``, U(1) angles
``(D, *L)``, ``batched=True`` adds ``(B, ...)``).

The flow
--------
``dV/dt = Z(V) V`` with ``Z = -g0^2 dS_W`` = ``TA(C^(plaquette) U^+)`` here (``= -TA(U A)`` with
the staple sum ``A`` of :mod:`latticeml.theories.sun`; with ``c1 != 0`` the Luscher-Weisz
"Symanzik" flow ``Z = TA((c0 C^(plaq) + c1 C^(rect)) U^+)``, ``c0 = 1 - 8 c1``). So an Euler step of
size eps *is* a stout step with rho = eps (:mod:`latticeml.smearing.stout_smearing`). Integrated with
Luscher's third-order Runge-Kutta scheme (his appendix C)::

    W1 = exp(Z0/4) V,   W2 = exp(8/9 Z1 - 17/36 Z0) W1,   V(t+eps) = exp(3/4 Z2 - 8/9 Z1 + 17/36 Z0) W2,

``Z_i = eps Z(W_i)``, ``W0 = V(t)``.

Energy density and t0
---------------------
In lattice units, per site: plaquette ``E = 2 sum_{mu<nu} Re tr(1 - U_P)`` and clover
``E = -sum_{mu<nu} tr(G_{mu nu}^2)`` with the clover field strength of
:func:`latticeml.observables.topology.clover_field_strength` (both are ``(1/4) G^a G^a`` in the
continuum; for U(1) ``E = sum_{mu<nu} (1 - cos theta_P)``). ``t0`` solves ``t^2 E(t) = 0.3`` (the
SU(3) reference value of Luscher's paper), :func:`scale_t0`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..checks import check_count, positive_float
from ..observables.topology import clover_field_strength
from .paths import LinkMatrices, improved_terms, link_matrices, project_algebra_flat, re_trace_overlap, staple_sums_flat
from .stout_smearing import exp_multiply

__all__ = ["INTEGRATORS", "flow_generator", "flow_step", "wilson_flow", "FlowResult", "energy_density", "scale_t0"]

#: The flow integrators: Luscher's third-order Runge-Kutta scheme (his appendix C) and Euler.
INTEGRATORS = ("rk3", "euler")


def _flow_Z(flat, shape, c1):
    terms, coef = improved_terms(c1)
    return project_algebra_flat(staple_sums_flat(flat, shape, terms, coef), flat, 1.0)


def flow_generator(U, *, c1: float = 0.0, batched: bool = False) -> np.ndarray:
    """``Z(U) = -g0^2 dS`` of the flow: ``TA(C^(plaq) U^+)`` (Wilson), with rectangles for ``c1 != 0``.

    su(N)-valued (U(1): the real angle velocity).
    ``Z = -(2N/beta) * latticeml.theories.improved.gauge_force(U, beta=beta, c1=c1)``.
    """
    links = link_matrices(U, batched=batched)
    return links.restore_algebra(_flow_Z(links.flat, links.shape, c1))


def _flow_step_flat(flat, shape, eps, integrator, c1):
    if integrator == "euler":
        return exp_multiply(eps * _flow_Z(flat, shape, c1), flat)
    # Luscher (2010), appendix C: the 3-stage Runge-Kutta-Munthe-Kaas scheme of Williamson type
    Z0 = eps * _flow_Z(flat, shape, c1)
    W1 = exp_multiply(0.25 * Z0, flat)
    Z1 = eps * _flow_Z(W1, shape, c1)
    W2 = exp_multiply((8.0 / 9.0) * Z1 - (17.0 / 36.0) * Z0, W1)
    Z2 = eps * _flow_Z(W2, shape, c1)
    return exp_multiply(0.75 * Z2 - (8.0 / 9.0) * Z1 + (17.0 / 36.0) * Z0, W2)


def _check_flow_args(step_size, integrator):
    try:
        step_size = positive_float(step_size, "step_size")
    except (TypeError, ValueError) as err:
        raise ValueError(f"{err}; 0.01 - 0.05 is typical") from None
    if integrator not in INTEGRATORS:
        raise ValueError(f"unknown flow integrator {integrator!r}; choose one of {INTEGRATORS}")
    return step_size


def flow_step(U, *, step_size: float, integrator: str = "rk3", c1: float = 0.0, batched: bool = False) -> np.ndarray:
    """One step of the Wilson flow ``dV/dt = Z(V) V`` (Luscher 2010): ``"rk3"`` (his appendix C) or ``"euler"``.

    An Euler step of size eps is a stout step with ``rho = eps`` (``c1 = 0``).
    """
    step_size = _check_flow_args(step_size, integrator)
    links = link_matrices(U, batched=batched)
    return links.restore_links(_flow_step_flat(links.flat, links.shape, step_size, integrator, c1))


class FlowResult(NamedTuple):
    """What :func:`wilson_flow` returns.

    t:                flow times of the measurements, ``(n,)`` (``t = 0`` first).
    energy_plaquette: ``E(t)`` with the plaquette definition, ``(n,)`` (``(n, B)`` if batched).
    energy_clover:    ``E(t)`` with the clover definition (NaN for U(1)), same shape.
    links:            the flowed links at the last time.
    """

    t: np.ndarray
    energy_plaquette: np.ndarray
    energy_clover: np.ndarray
    links: np.ndarray


def _energies(links: LinkMatrices, flat):
    """(E_plaquette, E_clover) per configuration, ``(B,)`` each (clover NaN for U(1))."""
    D = len(links.shape)
    n_planes = D * (D - 1) // 2
    N = flat.shape[-1]
    V = int(np.prod(links.shape))
    C = staple_sums_flat(flat, links.shape, ("plaquette",), np.ones(1))
    mean_re_tr = re_trace_overlap(flat, C) / (4.0 * V * n_planes)  # <Re tr U_P> over planes and sites
    if links.u1:
        # U(1): E = sum_{mu<nu} (1 - cos theta_P) = (1/4) F^2 in the continuum (no trace normalisation)
        return n_planes * (1.0 - mean_re_tr), np.full(flat.shape[0], np.nan)
    e_plaq = 2.0 * n_planes * (N - mean_re_tr)
    F = clover_field_strength(flat.reshape((flat.shape[0], D) + links.shape + (N, N)), batched=True)
    # E = -sum_{mu<nu} tr G^2 per site; F has shape (B, n_planes, *shape, N, N)
    tr = np.einsum("...ij,...ji->...", F, F).real
    e_clov = -tr.reshape(flat.shape[0], -1).sum(axis=1) / V
    return e_plaq, e_clov


def energy_density(U, *, definition: str = "plaquette", batched: bool = False):
    """Energy density ``E`` in lattice units (``a^4 E``), averaged over sites (module docstring).

    ``definition`` is ``"plaquette"`` (``2 sum_{mu<nu} Re tr(1 - U_P)``) or ``"clover"``
    (``-sum_{mu<nu} tr G^2``; SU(N) only). A float (``(B,)`` if batched).
    """
    if definition not in ("plaquette", "clover"):
        raise ValueError(f"definition must be 'plaquette' or 'clover', got {definition!r}")
    links = link_matrices(U, batched=batched)
    if links.u1 and definition == "clover":
        raise ValueError("the clover energy density is implemented for SU(N) links; use definition='plaquette' for U(1)")
    e_plaq, e_clov = _energies(links, links.flat)
    E = e_plaq if definition == "plaquette" else e_clov
    return E if batched else float(E[0])


def wilson_flow(
    U,
    *,
    t_max: float,
    step_size: float,
    integrator: str = "rk3",
    c1: float = 0.0,
    measure_every: int = 1,
    batched: bool = False,
) -> FlowResult:
    """Integrate the Wilson flow to ``t_max`` and measure ``E(t)`` every ``measure_every`` steps.

    ``t_max / step_size`` is rounded to the nearest whole number of steps (at least one). Luscher's
    RK3 by default; ``c1 = -1/12`` gives the Symanzik (Luscher-Weisz) flow.
    """
    step_size = _check_flow_args(step_size, integrator)
    t_max = positive_float(t_max, "t_max")
    measure_every = check_count(measure_every, "measure_every", minimum=1)
    n = max(1, int(round(t_max / step_size)))
    links = link_matrices(U, batched=batched)
    flat = links.flat
    ts, ep, ec = [], [], []

    def record(t, f):
        a, b = _energies(links, f)
        ts.append(t)
        ep.append(a)
        ec.append(b)

    record(0.0, flat)
    for i in range(1, n + 1):
        flat = _flow_step_flat(flat, links.shape, step_size, integrator, c1)
        if i % measure_every == 0 or i == n:
            record(i * step_size, flat)
    ep, ec = np.array(ep), np.array(ec)
    if not batched:
        ep, ec = ep[:, 0], ec[:, 0]
    return FlowResult(np.array(ts), ep, ec, links.restore_links(flat))


def scale_t0(t, E, *, reference: float = 0.3) -> float:
    """``t0`` with ``t0^2 E(t0) = reference``, by linear interpolation of ``t^2 E(t)`` (Luscher 2010).

    ``t`` ascending, ``E`` the energy density at those times (one configuration or an ensemble
    average). Raises ValueError if ``t^2 E`` never crosses the reference (flow further).
    """
    t = np.asarray(t, dtype=np.float64)
    E = np.asarray(E, dtype=np.float64)
    if t.ndim != 1 or t.shape != E.shape or len(t) < 2:
        raise ValueError(f"t and E must be 1-D arrays of the same length >= 2, got {t.shape} and {E.shape}")
    y = t * t * E - reference
    idx = np.flatnonzero((y[:-1] < 0) & (y[1:] >= 0))
    if len(idx) == 0:
        raise ValueError(
            f"t^2 E(t) does not cross {reference} on [{t[0]}, {t[-1]}] (max {np.max(y + reference):.3g}); "
            "flow to a larger t_max, or use a larger lattice / smaller beta"
        )
    i = idx[0]
    return float(t[i] + (t[i + 1] - t[i]) * (-y[i]) / (y[i + 1] - y[i]))
