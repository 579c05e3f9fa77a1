"""Free energies from a flow: the reverse-KL lower bound and the importance-sampling estimate of ln Z.

For samples ``phi_i ~ q`` (i = 1..N) of a flow with exact density ``q`` and the target weight
``exp(-S)``, the log importance weights are ``log w_i = -S(phi_i) - log q(phi_i)``, and

* ``E_q[w] = Z``, so ``ln Z_IS = ln( (1/N) sum_i w_i )`` estimates ``ln Z`` (consistent as N grows; its
  bias is ``O(1/(N ESS))``);
* by Jensen's inequality ``E_q[log w] = ln Z - KL(q || p) <= ln Z``: the mean log weight (minus the
  training loss) is a lower bound, tight only for ``q = p``.

C. Jarzynski, "Targeted free energy perturbation", PRE 65 (2002) 046122; P. Wirnsberger, A. J. Ballard,
G. Papamakarios et al., "Targeted free energy estimation via learned mappings", JCP 153 (2020) 144112
(Rezende's talk, seed 003); for lattice flows, K. A. Nicoli, C. J. Anders, L. Funcke et al.,
"Estimation of thermodynamic observables in lattice field theories with deep generative models",
PRL 126 (2021) 032001.

Errors. The estimate of ``Z`` is a sample mean of the ``w_i``: its relative standard error is
``sqrt(Var(w) / N) / E[w]``, and to first order (delta method) that is the error of ``ln Z_IS``:

    sigma(ln Z_IS) = sqrt( (N sum w^2 / (sum w)^2 - 1) / N ) = sqrt( (1 / ESS - 1) / N ),

with ``ESS`` Kish's effective sample size per configuration (:func:`latticeml.flows.metrics.effective_sample_size`).
It is honest only when the weights have a finite variance and the sample has seen the heavy tail:
a small ESS (<~ 10 / N) means the estimate (and its error) cannot be trusted. The bound's error is
the standard error of the mean of ``log w``.

Measures: densities of U(1) flows are with respect to the normalised Haar measure
(``prod dtheta / 2 pi``), so ``ln Z`` compares with :func:`u1_exact_log_partition_function`; phi^4
densities are with respect to ``prod dphi``.

Exact references (for tests and lecture 06):

* :func:`u1_exact_log_partition_function` -- 2D U(1), ``S = beta sum_P (1 - cos theta_P)`` on a torus of
  V plaquettes: ``ln Z = -beta V + ln sum_n I_n(beta)^V`` (:func:`latticeml.exact.u1_2d_log_partition_function`);
* :func:`gaussian_log_partition_function` -- phi^4 at ``lambda = 0`` (a Gaussian, needs m^2 > 0):
  ``S = (1/2) phi.K phi`` with ``K = 2 (-Laplacian + m^2)`` in the Albergo-Kanwar-Shanahan form, so
  ``ln Z = (V/2) ln 2 pi - (1/2) sum_p ln(2 (p_hat^2 + m^2))``, ``p_hat^2 = sum_mu 4 sin^2(p_mu / 2)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

from .. import exact
from ..checks import check_count, check_rng
from ..lattice import check_shape
from .metrics import _as_log_weights, effective_sample_size

__all__ = [
    "FreeEnergy",
    "log_partition_function",
    "reverse_kl_bound",
    "estimate_free_energy",
    "u1_exact_log_partition_function",
    "gaussian_log_partition_function",
    "exact_log_partition_function",
]


class FreeEnergy(NamedTuple):
    """``ln Z`` of a flow's target from ``n`` samples (what :func:`estimate_free_energy` returns).

    log_z, log_z_error: the importance-sampling estimate and its delta-method error.
    bound, bound_error: the reverse-KL lower bound ``<log w>_q`` and its standard error.
    ess:                Kish's ESS per configuration of the ``n`` samples.
    n:                  the sample size.
    """

    log_z: float
    log_z_error: float
    bound: float
    bound_error: float
    ess: float
    n: int


def log_partition_function(log_w) -> tuple[float, float]:
    """``(ln Z_IS, error)`` from log importance weights ``log w_i = -S_i - log q_i`` of samples of q."""
    log_w = _as_log_weights(log_w)
    n = log_w.size
    estimate = float(logsumexp(log_w) - math.log(n))
    ess = effective_sample_size(log_w)
    error = math.sqrt(max(1.0 / ess - 1.0, 0.0) / n)
    return estimate, error


def reverse_kl_bound(log_w) -> tuple[float, float]:
    """``(<log w>_q, standard error)``: the lower bound ``ln Z - KL(q || p)`` on ``ln Z``."""
    log_w = _as_log_weights(log_w)
    error = float(log_w.std(ddof=1) / math.sqrt(log_w.size)) if log_w.size > 1 else math.inf
    return float(log_w.mean()), error


def estimate_free_energy(flow, theory, rng: np.random.Generator, *, n: int, batch_size: int = 1024) -> FreeEnergy:
    """Draw ``n`` samples of ``flow`` and estimate ``ln Z`` of ``theory`` both ways (:class:`FreeEnergy`)."""
    from .target import action, check_theory

    check_theory(theory)
    check_rng(rng)
    n = check_count(n, "n", minimum=2)
    if flow.field_shape != theory.field_shape:
        raise ValueError(f"the flow models fields of shape {flow.field_shape} but the theory's fields have shape {theory.field_shape}")
    phi, log_q = flow.sample(rng, n, batch_size=batch_size)
    log_w = -action(theory, phi) - log_q
    log_z, log_z_error = log_partition_function(log_w)
    bound, bound_error = reverse_kl_bound(log_w)
    return FreeEnergy(log_z, log_z_error, bound, bound_error, effective_sample_size(log_w), n)


def u1_exact_log_partition_function(beta: float, shape) -> float:
    """2D U(1) Wilson action on a torus ``shape``: ``ln Z = -beta V + ln sum_n I_n(beta)^V`` (normalised Haar measure)."""
    shape = check_shape(shape)
    if len(shape) != 2:
        raise ValueError(f"the exact U(1) partition function is the 2D one; got shape {shape}")
    V = int(np.prod(shape))
    return float(exact.u1_2d_log_partition_function(beta, V) - beta * V)


def gaussian_log_partition_function(shape, m2: float) -> float:
    """phi^4 at ``lambda = 0`` in the Albergo-Kanwar-Shanahan form: ``(V/2) ln 2 pi - (1/2) ln det K`` (module docstring)."""
    shape = check_shape(shape)
    m2 = float(m2)
    if not m2 > 0:
        raise ValueError(f"the free field needs m2 > 0 to be normalisable, got {m2}")
    p_hat2 = sum(
        np.meshgrid(*[4.0 * np.sin(np.pi * np.arange(L) / L) ** 2 for L in shape], indexing="ij")
    )
    V = int(np.prod(shape))
    return float(0.5 * V * math.log(2 * math.pi) - 0.5 * np.log(2.0 * (p_hat2 + m2)).sum())


def exact_log_partition_function(theory) -> float:
    """The exact ``ln Z`` where one is known: 2D U(1) (Wilson), or phi^4 at ``lam = 0``; ValueError otherwise."""
    name = getattr(theory, "name", None)
    if name == "u1" and getattr(theory, "dim", None) == 2 and type(theory).__name__ == "U1":
        return u1_exact_log_partition_function(theory.beta, theory.shape)
    if name == "phi4" and theory.lam == 0.0:
        return gaussian_log_partition_function(theory.shape, theory.m2)
    raise ValueError(f"no exact ln Z is known here for {theory!r} (2D U(1) with the Wilson action, or phi^4 at lam = 0)")
