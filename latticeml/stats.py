"""Statistical error analysis of Monte Carlo time series.

Shapes and conventions
----------------------
* ``data`` is a Monte Carlo history in simulation-time order: shape ``(n,)`` for one primary
  observable, or ``(n, k)`` for ``k`` primary observables measured on the same configurations.
* A *derived* quantity is a function of the primary means, ``F = func(abar)``. ``func`` receives
  a Python float when ``data`` has shape ``(n,)`` and a float64 array of shape ``(k,)`` when it
  has shape ``(n, k)``, and returns a float. Examples: the susceptibility
  ``V * (<M^2> - <M>^2)`` is ``func = lambda m: V * (m[1] - m[0]**2)`` on columns ``(M, M^2)``;
  a ratio is ``lambda m: m[0] / m[1]``.
* The autocorrelation function is ``Gamma(t) = (n - t)^-1 sum_i (a_i - abar)(a_{i+t} - abar)``;
  ``rho(t) = Gamma(t) / Gamma(0)``; ``tau_int(W) = 1/2 + sum_{t=1}^W rho(t)``, so that
  uncorrelated data have ``tau_int = 1/2`` and ``error^2 = 2 tau_int Gamma(0) / n``.

Methods
-------
* :func:`gamma_method` -- U. Wolff, "Monte Carlo errors with less errors",
  Comput. Phys. Commun. 156 (2004) 143 [hep-lat/0306017]: sum the autocorrelation function
  of the (linearised) observable up to an automatically chosen window, with Wolff's bias
  correction. Derived quantities by linearisation (Wolff, Sec. 3).
* :func:`jackknife`, :func:`bootstrap` on binned data -- B. Efron, "The Jackknife, the Bootstrap
  and Other Resampling Plans", SIAM (1982); for binning of correlated data see e.g.
  H. Flyvbjerg and H. G. Petersen, J. Chem. Phys. 91 (1989) 461.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
from scipy import fft as _fft

from .checks import check_count, check_rng

__all__ = [
    "summarise",
    "GammaResult",
    "ResamplingResult",
    "gamma_method",
    "autocorrelation",
    "integrated_autocorrelation_time",
    "bin_series",
    "jackknife",
    "bootstrap",
]

#: Fewest measurements the Gamma method accepts: the window search needs W = 1 .. n//2 - 1.
MIN_SAMPLES = 8


class GammaResult(NamedTuple):
    """Result of :func:`gamma_method`.

    value:         F evaluated at the sample means (the mean itself for a primary observable).
    error:         statistical error sigma_F = sqrt(C_F(W) / n), bias-corrected.
    tau_int:       integrated autocorrelation time at the window (1/2 for uncorrelated data).
    tau_int_error: its statistical error 2 tau_int sqrt((W - tau_int + 1/2) / n) (Wolff eq. 42).
    window:        the summation window W chosen automatically (0 for constant data).
    n:             number of measurements.
    gamma:         bias-corrected normalised autocorrelation function rho(t), t = 0 .. W.
    """

    value: float
    error: float
    tau_int: float
    tau_int_error: float
    window: int
    n: int
    gamma: np.ndarray


class ResamplingResult(NamedTuple):
    """Result of :func:`jackknife` / :func:`bootstrap`.

    value:   F evaluated at the sample means (not bias-corrected).
    error:   the resampling estimate of the statistical error of ``value``.
    samples: F on each jackknife / bootstrap sample, shape ``(n_samples,)``.
    """

    value: float
    error: float
    samples: np.ndarray


# ----------------------------------------------------------------------------- input handling


def _as_series(data, *, name: str = "data") -> tuple[np.ndarray, bool]:
    """Return ``(a, was_1d)`` with ``a`` float64 of shape ``(n, k)``; validate."""
    a = np.asarray(data)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise TypeError(f"{name} must be a numeric array, got dtype {a.dtype}")
    if np.iscomplexobj(a):
        raise TypeError(f"{name} must be real; analyse real and imaginary parts separately")
    if a.ndim not in (1, 2):
        raise ValueError(
            f"{name} must have shape (n,) or (n, k) with time along axis 0, got shape {a.shape}"
        )
    a = np.ascontiguousarray(a, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf; remove or fix those measurements first")
    was_1d = a.ndim == 1
    return (a[:, None] if was_1d else a), was_1d


def _evaluate(func: Callable | None, means: np.ndarray, was_1d: bool) -> float:
    """F(means) for the func convention of this module (identity for a single primary)."""
    if func is None:
        if means.shape[-1] != 1:
            raise ValueError(
                "data with k > 1 columns need func(means) -> float saying which quantity to analyse"
            )
        return float(means[..., 0])
    out = func(float(means[0]) if was_1d else means)
    out = np.asarray(out, dtype=np.float64)
    if out.shape != ():
        raise ValueError(f"func must return a scalar, got shape {out.shape}")
    return float(out)


def _gradient(func: Callable, means: np.ndarray, steps: np.ndarray, was_1d: bool) -> np.ndarray:
    """Gradient dF/dabar_a by central differences with one Richardson step (error O(h^4)).

    ``steps[a]`` is the error scale of component a (zero-step components have no fluctuation
    and get gradient 0, because they do not contribute to the projected series anyway).
    """
    grad = np.zeros_like(means)
    for a, h in enumerate(steps):
        if h == 0.0:
            continue

        def central(step):
            up = means.copy()
            down = means.copy()
            up[a] += step
            down[a] -= step
            return (_evaluate(func, up, was_1d) - _evaluate(func, down, was_1d)) / (2 * step)

        # D(h/2) + (D(h/2) - D(h)) / 3 cancels the h^2 term of the central difference.
        grad[a] = (4 * central(h / 2) - central(h)) / 3
    return grad


# ----------------------------------------------------------------------------- autocorrelation


def _autocovariance(deltas: np.ndarray, max_lag: int) -> np.ndarray:
    """Gamma(t) = (n-t)^-1 sum_i d_i d_{i+t}, t = 0..max_lag, by FFT (zero padding >= 2n)."""
    n = deltas.shape[0]
    nfft = _fft.next_fast_len(2 * n, real=True)
    spectrum = _fft.rfft(deltas, nfft)
    acov = _fft.irfft(spectrum.real**2 + spectrum.imag**2, nfft)[: max_lag + 1]
    return acov / (n - np.arange(max_lag + 1))


def autocorrelation(x, *, max_lag: int | None = None) -> np.ndarray:
    """Normalised autocorrelation function rho(t) = Gamma(t) / Gamma(0), t = 0 .. max_lag.

    ``x`` has shape ``(n,)``; ``max_lag`` defaults to ``n // 2`` (larger lags are averaged over
    fewer than n/2 pairs). Computed by FFT in O(n log n). Raises ValueError for a constant
    series (for instance a frozen topological charge), whose rho is undefined.
    """
    a, was_1d = _as_series(x, name="x")
    if not was_1d:
        raise ValueError("autocorrelation expects one series of shape (n,)")
    n = a.shape[0]
    if n < 2:
        raise ValueError("autocorrelation needs at least 2 measurements")
    if max_lag is None:
        max_lag = n // 2
    if not 0 <= int(max_lag) < n:
        raise ValueError(f"max_lag must lie in [0, n-1] = [0, {n - 1}], got {max_lag}")
    if np.ptp(a) == 0.0:
        raise ValueError(
            "the series is constant (e.g. a frozen topological charge): its autocorrelation is"
            " undefined; check the sampler or use gamma_method, which reports error 0"
        )
    gamma = _autocovariance(a[:, 0] - a[:, 0].mean(), int(max_lag))
    return gamma / gamma[0]


def _automatic_window(rho: np.ndarray, n: int, S: float) -> int:
    """Wolff's automatic window (Sec. 3.3): the first W with g(W) < 0.

    tau(W) = S / ln[(2 tau_int(W) + 1) / (2 tau_int(W) - 1)],
    g(W) = exp(-W / tau) - tau / sqrt(W n): the first term estimates the truncation bias, the
    second the statistical error of the sum. tau_int(W) <= 1/2 means the signal is lost in noise:
    stop there (tau -> 0 makes g negative). At W ~ n/2, exp(-W/tau) < tau/sqrt(W n) for every
    tau > 0, so a window is always found; returning the last lag is only a safeguard.
    """
    w_max = len(rho) - 1
    windows = np.arange(1, w_max + 1)
    tau_int = 0.5 + np.cumsum(rho[1:])
    with np.errstate(all="ignore"):  # tau_int <= 1/2 gives nonsense here; masked just below
        tau = S / np.log((2 * tau_int + 1) / (2 * tau_int - 1))
        g = np.exp(-windows / tau) - tau / np.sqrt(windows * n)
    g = np.where(tau_int <= 0.5, -1.0, g)
    negative = np.flatnonzero(g < 0)
    if negative.size == 0:
        return w_max
    return int(windows[negative[0]])


def gamma_method(
    data,
    *,
    func: Callable | None = None,
    grad: Callable | None = None,
    S: float = 1.5,
) -> GammaResult:
    """Wolff's Gamma method: value, error and tau_int of a primary or derived observable.

    Wolff, Comput. Phys. Commun. 156 (2004) 143 [hep-lat/0306017]. Steps:

    1. Linearise: the projected series ``a_i = sum_a f_a (x_i^a - xbar^a)`` with the gradient
       ``f_a = dF/dxbar^a`` (by default central differences of ``func`` with step the error
       scale ``std_a / sqrt(n)`` and one Richardson step; pass ``grad(means) -> (k,)`` for an
       analytic one). For a primary observable ``a_i = x_i - xbar``.
    2. ``Gamma(t)`` by FFT for t <= n//2; the window W = first W with g(W) < 0
       (:func:`_automatic_window`, ``S = 1.5`` is Wolff's default; pyerrors' is 2.0).
    3. ``C_F = Gamma(0) + 2 sum_{t=1}^W Gamma(t)``, bias correction ``Gamma -> Gamma + C_F/n``,
       ``error = sqrt(C_F/n)``, ``tau_int = C_F / (2 Gamma(0))`` from the corrected Gamma,
       ``tau_int_error = 2 tau_int sqrt((W - tau_int + 1/2)/n)``.

    Anticorrelation is not credited: tau_int(W) is floored at 1/2 before the bias correction,
    so the error never falls below the naive one (as pyerrors does). With this, ``value`` and
    ``error`` agree with pyerrors' ``gamma_method(S=S)`` to rounding; pyerrors' ``e_tauint``
    uses ``Gamma(0)(1 + 1/n)`` in place of the corrected ``Gamma(0)(1 + 2 tau_raw/n)`` and so
    differs from ``tau_int`` here at O(tau/n).

    Constant data give error 0, tau_int 1/2, window 0. Raises ValueError for fewer than
    ``MIN_SAMPLES`` measurements or S <= 0.
    """
    a, was_1d = _as_series(data)
    n, k = a.shape
    if n < MIN_SAMPLES:
        raise ValueError(
            f"gamma_method needs at least {MIN_SAMPLES} measurements to choose a window, got"
            f" {n}; in practice use n >> tau_int (hundreds of tau_int)"
        )
    if not S > 0:
        raise ValueError(f"S must be positive (Wolff's default 1.5), got {S}")
    if grad is not None and func is None:
        raise ValueError("grad is the gradient of func: pass func as well")

    means = a.mean(axis=0)
    value = _evaluate(func, means, was_1d)
    deltas = a - means
    constant = np.ptp(a, axis=0) == 0.0
    deltas[:, constant] = 0.0  # exact zeros, not rounding noise of the mean

    if func is None:
        projected = deltas[:, 0]
    else:
        if grad is not None:
            f_a = np.asarray(grad(float(means[0]) if was_1d else means), dtype=np.float64)
            f_a = f_a.reshape(k)
        else:
            steps = np.where(constant, 0.0, a.std(axis=0) / np.sqrt(n))
            f_a = _gradient(func, means, steps, was_1d)
        projected = deltas @ f_a

    if not np.any(projected):
        return GammaResult(value, 0.0, 0.5, 0.0, 0, n, np.ones(1))

    gamma = _autocovariance(projected, n // 2 - 1)
    rho = gamma / gamma[0]
    window = _automatic_window(rho, n, S)

    tau_raw = max(0.5, 0.5 + float(np.sum(rho[1 : window + 1])))
    c_f = 2 * tau_raw * gamma[0]
    gamma_corrected = gamma[: window + 1] + c_f / n
    c_f_corrected = c_f * (1 + (2 * window + 1) / n)
    tau_int = c_f_corrected / (2 * gamma_corrected[0])
    tau_int_error = 2 * tau_int * np.sqrt(max(window - tau_int + 0.5, 0.0) / n)
    return GammaResult(
        value=value,
        error=float(np.sqrt(c_f_corrected / n)),
        tau_int=float(tau_int),
        tau_int_error=float(tau_int_error),
        window=window,
        n=n,
        gamma=gamma_corrected / gamma_corrected[0],
    )


def integrated_autocorrelation_time(x, *, S: float = 1.5) -> float:
    """tau_int of the series ``x`` (shape ``(n,)``) from :func:`gamma_method`."""
    return gamma_method(x, S=S).tau_int


# ----------------------------------------------------------------------------- resampling


def bin_series(data, bin_size: int) -> np.ndarray:
    """Means over consecutive non-overlapping bins of ``bin_size`` measurements.

    ``data`` shape ``(n,)`` or ``(n, k)`` -> ``(n // bin_size,)`` or ``(n // bin_size, k)``.
    The last ``n % bin_size`` measurements (an incomplete bin) are dropped.
    """
    a, was_1d = _as_series(data)
    n = a.shape[0]
    if isinstance(bin_size, bool) or not isinstance(bin_size, (int, np.integer)):
        raise TypeError(f"bin_size must be an int, got {type(bin_size).__name__}")
    if not 1 <= bin_size <= n:
        raise ValueError(f"bin_size must lie in [1, n] = [1, {n}], got {bin_size}")
    n_bins = n // bin_size
    binned = a[: n_bins * bin_size].reshape(n_bins, bin_size, -1).mean(axis=1)
    return binned[:, 0] if was_1d else binned


def _binned(data, bin_size: int, *, minimum: int) -> tuple[np.ndarray, bool]:
    """Binned data as (m, k) plus the 1-D flag; at least ``minimum`` bins."""
    a, was_1d = _as_series(data)
    binned = bin_series(a, bin_size)  # shape (m, k) also for was_1d
    if binned.shape[0] < minimum:
        raise ValueError(
            f"only {binned.shape[0]} bins of size {bin_size} from {a.shape[0]} measurements;"
            f" need at least {minimum}: use a smaller bin_size or more data"
        )
    return binned, was_1d


def jackknife(data, func: Callable | None = None, *, bin_size: int = 1) -> ResamplingResult:
    """Jackknife error of a primary (``func=None``, data ``(n,)``) or derived quantity.

    With ``m`` bins ``b_j``: leave-one-out means ``abar_(j) = (m abar - b_j) / (m - 1)``,
    ``F_j = func(abar_(j))``, ``error^2 = (m - 1)/m sum_j (F_j - mean F)^2``. For the mean itself
    this equals the standard error ``std(b, ddof=1) / sqrt(m)`` exactly. Bin correlated data with
    ``bin_size`` >> tau_int first.
    """
    b, was_1d = _binned(data, bin_size, minimum=2)
    m = b.shape[0]
    means = b.mean(axis=0)
    value = _evaluate(func, means, was_1d)
    leave_one_out = (b.sum(axis=0) - b) / (m - 1)
    samples = np.array([_evaluate(func, row, was_1d) for row in leave_one_out])
    error = np.sqrt((m - 1) / m * np.sum((samples - samples.mean()) ** 2))
    return ResamplingResult(value, float(error), samples)


def bootstrap(
    data,
    func: Callable | None = None,
    *,
    rng: np.random.Generator,
    n_boot: int = 1000,
    bin_size: int = 1,
) -> ResamplingResult:
    """Bootstrap error of a primary or derived quantity (Efron 1982).

    Each of ``n_boot`` samples draws ``m`` bins with replacement (``rng.integers``), and
    ``F_b = func(mean of the drawn bins)``; ``error = std(F_b, ddof=1)``. The same ``rng`` state
    gives the same samples bit for bit. Bin correlated data with ``bin_size`` >> tau_int.
    """
    check_rng(rng)
    n_boot = check_count(n_boot, "n_boot", minimum=2)
    b, was_1d = _binned(data, bin_size, minimum=2)
    m = b.shape[0]
    value = _evaluate(func, b.mean(axis=0), was_1d)
    samples = np.empty(n_boot)
    chunk = max(1, 2**20 // m)  # bound the (chunk, m) index array to ~8 MB
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, m, size=(stop - start, m))
        resampled_means = b[idx].mean(axis=1)
        samples[start:stop] = [_evaluate(func, row, was_1d) for row in resampled_means]
    return ResamplingResult(value, float(samples.std(ddof=1)), samples)


def summarise(records: dict, *, S: float = 1.5) -> dict:
    """Per observable: mean, Gamma-method error (Wolff 2004, ``S``), tau_int and its error.

    Fewer than 8 measurements give the mean and NaN errors (no honest error bar exists).
    """
    out = {}
    for name, values in records.items():
        values = np.asarray(values, dtype=float)
        if len(values) < MIN_SAMPLES:
            mean = float(values.mean()) if len(values) else float("nan")
            out[name] = {"mean": mean, "error": float("nan"), "tau_int": float("nan"), "tau_int_error": float("nan")}
            continue
        r = gamma_method(values, S=S)
        out[name] = {"mean": float(r.value), "error": float(r.error), "tau_int": float(r.tau_int), "tau_int_error": float(r.tau_int_error)}
    return out
