"""How good is a flow? Effective sample size, reweighting, reverse KL, expected acceptance.

All functions take *log importance weights* of a sample ``phi_i ~ q`` drawn from the flow,

    log w_i = log p(phi_i) - log q(phi_i) = -S(phi_i) - log q(phi_i)    (shape (N,)),

with the target known only up to its normalisation Z; every quantity below is invariant under a
constant shift of ``log w``. Computations are stabilised by subtracting ``max log w``.

* :func:`effective_sample_size` -- Kish's ESS per configuration,
  ``ESS / N = (sum_i w_i)^2 / (N sum_i w_i^2)`` in (0, 1] (L. Kish, *Survey Sampling*, Wiley 1965;
  used for flows by Albergo, Kanwar & Shanahan, PRD 100 (2019) 034515, and the tutorial,
  arXiv:2101.08176). It depends strongly on N for an imperfect flow (a rare large weight
  dominates a big sample): always quote the N it was computed on.
* :func:`reweight` -- self-normalised importance sampling of an observable,
  ``<O>_p ~ sum_i w_i O_i / sum_i w_i``, with the delta-method error
  ``sigma^2 = sum_i w_i^2 (O_i - <O>)^2 / (sum_i w_i)^2`` (A. B. Owen, *Monte Carlo theory,
  methods and examples*, 2013, ch. 9.2).
* :func:`reverse_kl` -- ``mean(log q - log p) = KL(q || p) - log Z``: the training loss; it is
  bounded below by ``-log Z`` and equals it exactly when q = p.
* :func:`acceptance_estimate` -- the acceptance rate the independence Metropolis sampler
  (flow-based MCMC, :mod:`latticeml.flows.mcmc`) will have at equilibrium,
  ``A = E_{x ~ p, x' ~ q} min(1, w(x') / w(x)) = E_{q x q}[min(w(x), w(x'))] / E_q[w]``,
  estimated from one batch by the U-statistic ``sum_{i != j} min(w_i, w_j) / ((N - 1) sum_i w_i)``,
  computed in O(N log N) by sorting. A cheap telemetry value during training.
"""

from __future__ import annotations

import numpy as np

__all__ = ["log_weights", "effective_sample_size", "reweight", "reverse_kl", "acceptance_estimate"]


def _as_log_weights(log_w) -> np.ndarray:
    log_w = np.asarray(log_w, dtype=np.float64)
    if log_w.ndim != 1 or log_w.size < 1:
        raise ValueError(f"log weights must be a non-empty 1-d array (one per sample), got shape {log_w.shape}")
    if not np.all(np.isfinite(log_w)):
        raise ValueError("log weights must be finite; a NaN or inf means the flow or the action overflowed")
    return log_w


def _normalised_weights(log_w) -> np.ndarray:
    """``w_i / max_j w_j``, in (0, 1]."""
    log_w = _as_log_weights(log_w)
    return np.exp(log_w - log_w.max())


def log_weights(log_p, log_q) -> np.ndarray:
    """``log p - log q`` as a float64 array (``log p = -S`` up to a constant)."""
    return np.asarray(log_p, dtype=np.float64) - np.asarray(log_q, dtype=np.float64)


def effective_sample_size(log_w) -> float:
    """Kish's effective sample size per configuration, ``(sum w)^2 / (N sum w^2)`` in (0, 1]."""
    w = _normalised_weights(log_w)
    return float(w.sum() ** 2 / (w.size * np.dot(w, w)))


def reweight(values, log_w) -> tuple[float, float]:
    """Self-normalised importance-sampling estimate of ``<O>_p`` and its delta-method error.

    ``values`` ``(N,)`` are ``O(phi_i)`` on samples ``phi_i ~ q`` with log weights ``log_w`` ``(N,)``.
    """
    w = _normalised_weights(log_w)
    values = np.asarray(values, dtype=np.float64)
    if values.shape != w.shape:
        raise ValueError(f"values {values.shape} and log weights {w.shape} must have the same shape (N,)")
    total = w.sum()
    mean = float(np.dot(w, values) / total)
    error = float(np.sqrt(np.dot(w * w, (values - mean) ** 2)) / total)
    return mean, error


def reverse_kl(log_p, log_q) -> float:
    """``mean(log q - log p)``: the reverse Kullback-Leibler divergence up to ``-log Z``."""
    return float(np.mean(np.asarray(log_q, dtype=np.float64) - np.asarray(log_p, dtype=np.float64)))


def acceptance_estimate(log_w) -> float:
    """Expected independence-Metropolis acceptance from one sample of the flow (see the module docstring).

    Needs at least two samples; exactly 1 when all weights are equal (q = p).
    """
    w = np.sort(_normalised_weights(log_w))
    n = w.size
    if n < 2:
        raise ValueError("the acceptance estimate needs at least 2 samples")
    # sum_{i != j} min(w_i, w_j) = 2 sum_k w_(k) (n - 1 - k) for ascending w_(0) <= ... <= w_(n-1)
    pairs = 2.0 * np.dot(w, np.arange(n - 1, -1, -1, dtype=np.float64))
    return float(pairs / ((n - 1) * w.sum()))
