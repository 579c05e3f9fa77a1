"""Exact and asymptotic results to test samplers against.

Conventions (as in the rest of latticeml)
-----------------------------------------
* 2D compact U(1), ``S = beta sum_P (1 - cos theta_P)`` on an ``L0 x L1`` torus with
  ``volume = L0 * L1`` plaquettes; ``volume=None`` (or ``np.inf``) means the infinite lattice.
* SU(N), ``S = beta sum_P (1 - Re tr U_P / N)``; the plaquette is ``<P> = <Re tr U_P / N>``.
* Free scalar field, standard form ``S = sum_x [1/2 sum_mu (phi(x+mu) - phi(x))^2 + 1/2 m^2 phi^2]``
  or the form of Albergo, Kanwar, Shanahan, PRD 100 (2019) 034515 [arXiv:1904.12072] at
  lambda = 0, ``S_A = sum_x [-2 sum_mu phi(x) phi(x+mu) + (2d + m^2) phi^2] = 2 S``: every
  two-point function of the Albergo form is half the standard one. Lattice axis 0 is time.
* Functions of ``beta`` accept a scalar (-> float) or an array (-> array of the same shape).

Methods and sources
-------------------
* Character expansion ``exp(beta cos t) = sum_n I_n(beta) e^{int}``; on the torus every plaquette
  carries the same character, ``Z = sum_n I_n(beta)^V`` (e.g. J.-M. Drouffe and J.-B. Zuber,
  Phys. Rep. 102 (1983) 1; finite-volume topology: C. Bonati and P. Rossi, PRD 99 (2019) 054503
  [arXiv:1901.09830]). Large beta and V are handled with exponentially scaled Bessel functions
  (``scipy.special.ive``) and log-sum-exp, so nothing overflows.
* The geometric charge ``Q = sum_P wrap(theta_P) / 2 pi``: the wrapped plaquette angles are
  independent with weight ``e^{beta cos phi}`` on ``(-pi, pi]`` except for ``sum phi_P = 2 pi Q``.
  Its distribution follows from ``Z(theta) = sum_n f(n + theta/2pi)^V`` with
  ``f(nu) = (1/2pi) int_{-pi}^{pi} e^{beta cos phi} cos(nu phi) dphi``.
* 2D SU(N): one-plaquette integral ``Z_1 = sum_q det[I_{q+i-j}(beta/N)]`` (I. Bars and F. Green,
  PRD 20 (1979) 3311; R. Brower, P. Rossi, C.-I. Tan, PRD 23 (1981) 942); on the torus the
  Migdal-Rusakov heat-kernel sum (A. A. Migdal, JETP 42 (1975) 413; B. Rusakov, Mod. Phys. Lett.
  A5 (1990) 693).
* 4D strong coupling: <P> = u + 16 u^5 u' (SU(2)), u + 72 u^5 u' (SU(3)) with u the one-plaquette
  average (e.g. J.-M. Drouffe and J.-B. Zuber, Phys. Rep. 102 (1983) 1; I. Montvay and G. Muenster,
  "Quantum Fields on a Lattice", CUP 1994). Weak coupling: equipartition of the quadratic action.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.polynomial import chebyshev as _cheb
from scipy.special import ive, logsumexp, xlogy

from .checks import check_count

__all__ = [
    "u1_2d_log_partition_function",
    "u1_2d_partition_function",
    "u1_2d_plaquette",
    "u1_2d_wilson_loop",
    "u1_2d_polyakov_correlator",
    "u1_2d_topological_susceptibility",
    "u1_2d_charge_distribution",
    "sun_2d_plaquette",
    "sun_2d_wilson_loop",
    "su2_2d_plaquette_torus",
    "sun_one_plaquette_derivative",
    "su2_4d_plaquette_strong_coupling",
    "su3_4d_plaquette_strong_coupling",
    "plaquette_weak_coupling",
    "free_scalar_energy",
    "free_scalar_propagator",
    "free_scalar_phi2",
    "free_scalar_zero_momentum_correlator",
]

_TWO_PI = 2 * np.pi


# ----------------------------------------------------------------------------- argument helpers


def _elementwise_in_beta(func):
    """Let ``func(beta, ...)`` written for a scalar beta accept arrays of beta too."""

    @functools.wraps(func)
    def wrapper(beta, *args, **kwargs):
        if np.ndim(beta) == 0:
            return func(_check_beta(beta), *args, **kwargs)
        betas = np.asarray(beta, dtype=np.float64)
        out = [func(_check_beta(b), *args, **kwargs) for b in betas.ravel()]
        return np.asarray(out, dtype=np.float64).reshape(betas.shape)

    return wrapper


def _check_beta(beta) -> float:
    beta = float(beta)
    if not (np.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a finite number >= 0, got {beta}")
    return beta


def _check_volume(volume, *, allow_infinite: bool = True) -> int | None:
    """Number of plaquettes as int, or None for the infinite lattice."""
    if volume is None or (isinstance(volume, float) and math.isinf(volume) and volume > 0):
        if not allow_infinite:
            raise ValueError("this quantity needs a finite volume (number of plaquettes L0 * L1)")
        return None
    if isinstance(volume, bool) or not isinstance(volume, (int, np.integer)) or volume < 1:
        raise ValueError(
            f"volume must be the number of plaquettes L0 * L1 (a positive int) or None / np.inf"
            f" for the infinite lattice, got {volume!r}"
        )
    return int(volume)


def _check_count(value, name: str, *, minimum: int = 0) -> int:
    return check_count(value, name, minimum=minimum)


def _max_bessel_order(x: float) -> int:
    """Order beyond which I_n(x) / I_0(x) < 1e-40 (orders up to ~x are O(1), then fast decay)."""
    return int(math.ceil(x + 20.0 * math.sqrt(x) + 40.0))


def _scaled_bessel(x: float, n_max: int) -> np.ndarray:
    """``ive(n, x) = I_n(x) e^{-x}`` for n = -n_max .. n_max (index n + n_max)."""
    return ive(np.abs(np.arange(-n_max, n_max + 1)), x)


def _log(values):
    with np.errstate(divide="ignore"):
        return np.log(values)


def _ratio_of_sums(log_numerator: np.ndarray, log_denominator: np.ndarray) -> float:
    """exp(logsumexp(num) - logsumexp(den)); an all -inf numerator gives 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        top = logsumexp(log_numerator)
        bottom = logsumexp(log_denominator)
    return float(np.exp(top - bottom)) if np.isfinite(top) else 0.0


# ----------------------------------------------------------------------------- 2D U(1)


def _u1_log_weights(beta: float, volume: int):
    """Bessel ratios ``I_n / I_0`` for n = -n_max..n_max (``inner``) and -n_max-1..n_max+1
    (``ratios``), and the log torus weights ``V ln(I_n / I_0)`` of Z (Z / I_0^V).

    Dividing by I_0 before taking powers keeps the n = 0 weight exactly 1, so no precision
    is lost to ``V ln I_0`` at large V.
    """
    n_max = _max_bessel_order(beta)
    ratios = _scaled_bessel(beta, n_max + 1) / ive(0, beta)  # orders -n_max-1 .. n_max+1
    inner = ratios[1:-1]
    return inner, ratios, volume * _log(inner)


@_elementwise_in_beta
def u1_2d_log_partition_function(beta, volume) -> float:
    """``ln Z = ln sum_n I_n(beta)^V`` with ``Z = int prod_links dtheta/2pi exp(beta sum_P cos theta_P)``.

    (The action ``beta sum_P (1 - cos theta_P)`` gives ``ln Z - beta V``.)
    """
    volume = _check_volume(volume, allow_infinite=False)
    _, _, log_weights = _u1_log_weights(beta, volume)
    return float(volume * (beta + np.log(ive(0, beta))) + logsumexp(log_weights))


def u1_2d_partition_function(beta, volume):
    """``Z = sum_n I_n(beta)^V`` (overflows to inf for large beta V: use the log version)."""
    with np.errstate(over="ignore"):
        return np.exp(u1_2d_log_partition_function(beta, volume))


@_elementwise_in_beta
def u1_2d_plaquette(beta, volume=None) -> float:
    """``<cos theta_P>`` on a torus of ``volume`` plaquettes (infinite lattice: I_1/I_0).

    ``<cos theta_P>_V = sum_n I_n^(V-1) (I_(n-1) + I_(n+1))/2 / sum_n I_n^V``.
    """
    volume = _check_volume(volume)
    if volume is None:
        return float(ive(1, beta) / ive(0, beta))
    inner, ratios, log_weights = _u1_log_weights(beta, volume)
    derivative = 0.5 * (ratios[:-2] + ratios[2:])  # I_n' = (I_{n-1} + I_{n+1}) / 2, over I_0
    return _ratio_of_sums(xlogy(volume - 1, inner) + _log(derivative), log_weights)


def _u1_charged_area(beta: float, area: int, volume: int | None) -> float:
    """``sum_n I_(n+1)^A I_n^(V-A) / Z``: a charge-1 line enclosing ``area`` plaquettes."""
    if volume is None:
        return float((ive(1, beta) / ive(0, beta)) ** area)
    if area > volume:
        raise ValueError(f"the enclosed area {area} exceeds the volume {volume}")
    inner, ratios, log_weights = _u1_log_weights(beta, volume)
    shifted = ratios[2:]  # I_(n+1) / I_0
    return _ratio_of_sums(xlogy(area, shifted) + xlogy(volume - area, inner), log_weights)


@_elementwise_in_beta
def u1_2d_wilson_loop(beta, R, T, volume=None) -> float:
    """Contractible ``R x T`` Wilson loop ``<W> = sum_n I_(n+1)^(RT) I_n^(V-RT) / Z``; -> (I_1/I_0)^(RT)."""
    area = _check_count(R, "R", minimum=1) * _check_count(T, "T", minimum=1)
    return _u1_charged_area(beta, area, _check_volume(volume))


@_elementwise_in_beta
def u1_2d_polyakov_correlator(beta, r, L_t, volume=None) -> float:
    """``<P(0) P*(r)>`` of Polyakov loops along t (extent ``L_t``) at distance ``r``.

    ``= sum_n I_(n+1)^(r L_t) I_n^(V - r L_t) / Z`` (the loops bound the ``r L_t`` plaquettes between
    them); ``volume = L_x L_t`` or None for ``L_x -> inf`` (then ``(I_1/I_0)^(r L_t)``). ``<P> = 0``.
    """
    area = _check_count(r, "r") * _check_count(L_t, "L_t", minimum=1)
    return _u1_charged_area(beta, area, _check_volume(volume))


@functools.lru_cache(maxsize=64)
def _legendre_rule(n: int):
    """Gauss-Legendre nodes and weights on [-1, 1] (cached: building a rule is an eigenvalue solve)."""
    x, w = np.polynomial.legendre.leggauss(n)
    x.setflags(write=False)
    w.setflags(write=False)
    return x, w


def _leggauss(n: int, a: float, b: float):
    x, w = _legendre_rule(n)
    return 0.5 * (b - a) * x + 0.5 * (b + a), 0.5 * (b - a) * w


def _f_derivatives(beta: float, orders: np.ndarray):
    """Scaled e^{-beta} f_n', f_n'' at integer n (f_n = I_n), by Gauss-Legendre in phi.

    f_n' = -(1/pi) int_0^pi phi sin(n phi) e^{beta cos phi}, f_n'' = -(1/pi) int_0^pi phi^2 cos(n phi) ...
    The integrands are entire; the node count covers the oscillation and the peak width.
    """
    n_nodes = 64 + int(2 * np.max(np.abs(orders), initial=0) + 4 * beta)
    phi, w = _leggauss(n_nodes, 0.0, np.pi)
    weight = w * np.exp(beta * (np.cos(phi) - 1)) / np.pi
    angle = np.outer(orders, phi)
    first = -(np.sin(angle) * phi) @ weight
    second = -(np.cos(angle) * phi**2) @ weight
    return first, second


@_elementwise_in_beta
def u1_2d_topological_susceptibility(beta, volume=None) -> float:
    """``chi_t = <Q^2> / V`` of the geometric charge on a torus of ``volume`` plaquettes.

    ``chi_t = -sum_n [(V-1) f_n^(V-2) f_n'^2 + f_n^(V-1) f_n''] / (4 pi^2 sum_n f_n^V)``, the second
    theta-derivative of ``Z(theta) = sum_n f(n + theta/2pi)^V``; infinite volume:
    ``<phi^2>_1 / 4 pi^2`` with the one-plaquette average (-> 1/(4 pi^2 beta) at large beta).
    For V <= 2, ``|Q| < V/2 <= 1`` forces Q = 0 and chi_t = 0.
    """
    volume = _check_volume(volume)
    if volume is not None and volume <= 2:
        return 0.0
    n_max = _max_bessel_order(beta) if volume is not None else 0
    orders = np.arange(-n_max, n_max + 1)
    f0 = ive(0, beta)
    ratio = ive(np.abs(orders), beta) / f0  # f_n / f_0 <= 1: powers never overflow
    first, second = _f_derivatives(beta, orders)
    first, second = first / f0, second / f0
    if volume is None:
        return float(-second[0] / (4 * np.pi**2))
    numerator = (volume - 1) * ratio ** (volume - 2) * first**2 + ratio ** (volume - 1) * second
    return float(-np.sum(numerator) / (4 * np.pi**2 * np.sum(ratio**volume)))


def _charge_tail_cutoff(beta: float, volume: int, tol: float = 1e-16) -> int | None:
    """K with ``int_K^inf |f(k)/f(0)|^V dk < tol``, or None if K would exceed 60 (then the
    real-space convolution is cheaper).

    For real k > 0 (DLMF 10.32.4), ``f(k) = I_k(beta) + (sin k pi / pi) int_0^inf e^{-beta cosh t - kt} dt``,
    so ``|f(k)| e^{-beta} <= B(k) = ive(k, beta) + e^{-2 beta} / (pi k)``. Where ``k B(k)`` decreases
    (k > sqrt(beta)), ``int_K^inf (B/f0)^V <= K (B(K)/f0)^V / (V - 1)``.
    """
    f0 = ive(0, beta)
    k = np.arange(int(math.ceil(math.sqrt(beta))) + 1, 61, dtype=np.float64)
    bound = (ive(k, beta) + np.exp(-2 * beta) / (np.pi * k)) / f0
    with np.errstate(divide="ignore"):
        log_tail = np.log(k) + volume * np.log(bound) - np.log(volume - 1)
    ok = np.flatnonzero(log_tail < np.log(tol))
    return int(k[ok[0]]) if ok.size else None


def _charge_distribution_fourier(beta: float, volume: int, charges: np.ndarray, cutoff: int):
    """``P(Q) = 2 int_0^K cos(2 pi Q k) (f(k)/f(0))^V dk / sum_n (I_n/I_0)^V`` by Gauss-Legendre."""
    q_max = float(np.max(np.abs(charges), initial=0))
    # panels resolve cos(2 pi Q k) and the peak (f(k)/f(0))^V ~ exp(-V <phi^2>_1 k^2 / 2)
    phi2 = -_f_derivatives(beta, np.zeros(1))[1][0] / ive(0, beta)
    width = min(0.25, 0.5 / (q_max + 1), 2.0 / math.sqrt(volume * phi2))
    n_panels = int(math.ceil(cutoff / width))
    x, w = _legendre_rule(24)
    left = np.arange(n_panels) * width
    k = (left[:, None] + 0.5 * width * (x + 1)).ravel()
    wk = np.tile(0.5 * width * w, n_panels)
    # f(k)/f(0) = 1 - delta(k), delta = (2 / (pi f(0))) int_0^pi e^{beta cos phi} sin^2(k phi/2) dphi
    # (no cancellation near the peak k ~ 0, where (1 - delta)^V = exp(V log1p(-delta)) matters
    # most); the integrand is entire in phi, so Gauss-Legendre converges exponentially.
    phi, wphi = _leggauss(64 + int(2 * cutoff + 4 * beta), 0.0, np.pi)
    weight = wphi * np.exp(beta * (np.cos(phi) - 1)) / (np.pi * ive(0, beta))
    delta = 2 * np.sin(0.5 * np.outer(k, phi)) ** 2 @ weight
    near_peak = delta < 0.5
    ratio_power = np.where(
        near_peak,
        np.exp(volume * np.log1p(-np.where(near_peak, delta, 0.0))),
        (1 - delta) ** volume,
    )
    integrals = 2 * (np.cos(_TWO_PI * np.outer(charges, k)) * ratio_power) @ wk
    return integrals / _bessel_normalisation(beta, volume)


def _bessel_normalisation(beta: float, volume: int) -> float:
    """``sum_n (I_n/I_0)^V`` = 2 pi sum_Q p^{*V}(2 pi Q) by Poisson summation."""
    n_max = _max_bessel_order(beta)
    return float(np.sum((ive(np.abs(np.arange(-n_max, n_max + 1)), beta) / ive(0, beta)) ** volume))


def _charge_distribution_convolution(beta: float, volume: int, charges: np.ndarray):
    """``P(Q) = 2 pi p_V(2 pi Q) / sum_n (I_n/I_0)^V`` with p_V the V-fold convolution of
    ``p(phi) = e^{beta cos phi} / (2 pi I_0)`` on ``[-pi, pi]``, computed exactly in real space.

    ``p_k`` is analytic on each interval ``[-k pi + 2 pi i, -k pi + 2 pi (i+1)]``, i = 0..k-1, and is
    stored there as a Chebyshev series. ``p_(k+1)(y) = int p(phi) p_k(y - phi) dphi``; on interval i
    of ``p_(k+1)``, ``y = b + pi t`` with b the left end of interval i of ``p_k``, and the phi range
    splits at ``phi = pi t`` into a part seeing interval i and one seeing interval i-1 of ``p_k``;
    each is integrated by Gauss-Legendre. Used for small V, where the Fourier integral converges slowly.
    """
    degree = 40 + int(8 * beta)
    x, w = _legendre_rule(degree + 1)
    norm = _TWO_PI * ive(0, beta)

    def density(phi):
        return np.exp(beta * (np.cos(phi) - 1)) / norm

    pieces = [_cheb.chebinterpolate(lambda t: density(np.pi * t), degree)]  # p_1 on [-pi, pi]
    for k in range(1, volume):
        new_pieces = []
        for i in range(k + 1):

            def convolved(t, i=i, k=k):
                t = t[:, None]
                total = np.zeros(t.shape[0])
                if i <= k - 1:  # phi in [-pi, pi t]: y - phi in interval i of p_k
                    half = 0.5 * np.pi * (t + 1)
                    phi = -np.pi + half * (x + 1)
                    values = _cheb.chebval(t - phi / np.pi - 1, pieces[i])
                    total += (half * density(phi) * values) @ w
                if i >= 1:  # phi in [pi t, pi]: y - phi in interval i-1 of p_k
                    half = 0.5 * np.pi * (1 - t)
                    phi = np.pi * t + half * (x + 1)
                    values = _cheb.chebval(t - phi / np.pi + 1, pieces[i - 1])
                    total += (half * density(phi) * values) @ w
                return total

            new_pieces.append(_cheb.chebinterpolate(convolved, degree))
        pieces = new_pieces
    y = _TWO_PI * charges
    index = np.clip(np.floor((y + volume * np.pi) / _TWO_PI).astype(int), 0, volume - 1)
    local = (y + volume * np.pi - _TWO_PI * index) / np.pi - 1
    values = np.array([_cheb.chebval(s, pieces[i]) for s, i in zip(local, index)])
    return _TWO_PI * values / _bessel_normalisation(beta, volume)


def u1_2d_charge_distribution(beta, volume, Q, *, method: str = "auto"):
    """``P(Q)``, the probability of geometric charge Q on a torus of ``volume`` plaquettes.

    ``P(Q) = int_R dk cos(2 pi Q k) f(k)^V / sum_n I_n^V`` (``method="fourier"``: used when the
    integral converges quickly, i.e. unless V and beta are both small), or equivalently the V-fold
    convolution of the one-plaquette angle density at ``2 pi Q`` (``method="convolution"``).
    ``Q`` is an int or int array; ``|Q| >= V/2`` has probability 0. Accurate to ~1e-13 absolute.
    """
    beta = _check_beta(beta)
    volume = _check_volume(volume, allow_infinite=False)
    charges = np.asarray(Q)
    if not np.issubdtype(charges.dtype, np.integer):
        raise ValueError(f"Q must be an int or an array of ints, got dtype {charges.dtype}")
    flat = charges.ravel().astype(np.float64)
    result = np.zeros(flat.shape)
    inside = np.abs(flat) < volume / 2  # |sum of V angles in (-pi, pi]| < V pi (edge: measure 0)
    if volume <= 2:  # |Q| < V/2 <= 1
        result[flat == 0] = 1.0
    if volume <= 2 or not np.any(inside):
        return result.reshape(charges.shape) if charges.ndim else float(result[0])
    cutoff = _charge_tail_cutoff(beta, volume)
    if method == "auto":
        method = "fourier" if cutoff is not None else "convolution"
    if method == "fourier":
        if cutoff is None:
            raise ValueError(
                f"the Fourier integral converges too slowly at V = {volume}, beta = {beta};"
                " use method='convolution' (or 'auto')"
            )
        result[inside] = _charge_distribution_fourier(beta, volume, flat[inside], cutoff)
    elif method == "convolution":
        result[inside] = _charge_distribution_convolution(beta, volume, flat[inside])
    else:
        raise ValueError(f"method must be 'auto', 'fourier' or 'convolution', got {method!r}")
    return result.reshape(charges.shape) if charges.ndim else float(result[0])


# ----------------------------------------------------------------------------- 2D SU(N)


def _one_plaquette_matrices(x: float, N: int):
    """Scaled Bessel matrices for q = -q_max..q_max: M_q[i, j] = I_{q+i-j}(x) e^{-x}, and the
    first and second x-derivatives (I' = (I_{n-1} + I_{n+1})/2, I'' = (I_{n-2} + 2 I_n + I_{n+2})/4)."""
    q_max = _max_bessel_order(x) + N
    offset = q_max + N + 2
    table = _scaled_bessel(x, offset)  # orders -offset .. offset
    q = np.arange(-q_max, q_max + 1)
    order = q[:, None, None] + np.arange(N)[None, :, None] - np.arange(N)[None, None, :]
    idx = order + offset

    def entries(shift):
        return table[idx + shift]

    m0 = entries(0)
    m1 = 0.5 * (entries(-1) + entries(1))
    m2 = 0.25 * (entries(-2) + 2 * entries(0) + entries(2))
    return m0, m1, m2


def _replace_columns(base: np.ndarray, replacements: dict) -> np.ndarray:
    out = base.copy()
    for column, source in replacements.items():
        out[..., :, column] = source[..., :, column]
    return out


def _sun_one_plaquette(beta: float, N: int):
    """u = d ln Z_1/d beta and du/d beta = Z_1''/Z_1 - u^2 for ``Z_1 = sum_q det[I_{q+i-j}(beta/N)]``.

    Derivatives of the determinants by multilinearity in the columns; the common factor e^{beta}
    of the scaled Bessel functions cancels in the ratios.
    """
    m0, m1, m2 = _one_plaquette_matrices(beta / N, N)
    z0 = np.sum(np.linalg.det(m0))
    z1 = sum(np.sum(np.linalg.det(_replace_columns(m0, {j: m1}))) for j in range(N))
    z2 = sum(np.sum(np.linalg.det(_replace_columns(m0, {j: m2}))) for j in range(N))
    z2 += sum(
        np.sum(np.linalg.det(_replace_columns(m0, {j: m1, l: m1})))
        for j in range(N)
        for l in range(N)
        if j != l
    )
    u = z1 / (N * z0)
    return float(u), float(z2 / (N**2 * z0) - u**2)


def _check_n(N) -> int:
    return _check_count(N, "N (the SU(N) rank)", minimum=2)


@_elementwise_in_beta
def sun_2d_plaquette(beta, N) -> float:
    """Infinite-volume 2D SU(N) plaquette ``<Re tr U_P / N> = d ln Z_1 / d beta``.

    SU(2): equals I_2(beta)/I_1(beta).
    """
    return _sun_one_plaquette(beta, _check_n(N))[0]


@_elementwise_in_beta
def sun_one_plaquette_derivative(beta, N) -> float:
    """``du/d beta`` of the one-plaquette average u = sun_2d_plaquette (the plaquette variance)."""
    return _sun_one_plaquette(beta, _check_n(N))[1]


def sun_2d_wilson_loop(beta, R, T, N):
    """Infinite-volume 2D SU(N) ``<tr W(R x T) / N> = u^(R T)``."""
    area = _check_count(R, "R", minimum=1) * _check_count(T, "T", minimum=1)
    return sun_2d_plaquette(beta, N) ** area


@_elementwise_in_beta
def su2_2d_plaquette_torus(beta, volume=None) -> float:
    """2D SU(2) plaquette on a torus of ``volume`` plaquettes (Migdal-Rusakov).

    ``Z = sum_d F_d^V`` with ``F_d = 2 I_d(beta)/beta`` (d = 2j + 1 = 1, 2, ...), so
    ``<P>_V = sum_d F_d^(V-1) F_d' / sum_d F_d^V`` and ``F_d'/F_d = I_(d+1)/I_d + (d-1)/beta``.
    Infinite volume: I_2/I_1.
    """
    volume = _check_volume(volume)
    if beta == 0.0:
        return 0.0
    if volume is None:
        return float(ive(2, beta) / ive(1, beta))
    d_max = _max_bessel_order(beta)
    d = np.arange(1, d_max + 1)
    scaled = ive(np.arange(1, d_max + 2), beta) / ive(1, beta)  # I_d / I_1: the d = 1 weight is 1
    with np.errstate(divide="ignore", invalid="ignore"):
        log_weights = volume * np.log(scaled[:-1])
        ratio = scaled[1:] / scaled[:-1] + (d - 1) / beta
    keep = np.isfinite(log_weights)
    return _ratio_of_sums(log_weights[keep] + np.log(ratio[keep]), log_weights[keep])


# ----------------------------------------------------------------------------- 4D SU(N)


@_elementwise_in_beta
def su2_4d_plaquette_strong_coupling(beta) -> float:
    """4D SU(2) strong coupling ``<P> = u + 16 u^5 du/dbeta + O(u^9)``, ``u = I_2/I_1``.

    ``du/dbeta = 1 - u^2 - 3 u / beta`` from the Bessel recurrences.
    """
    if beta == 0.0:
        return 0.0
    u = ive(2, beta) / ive(1, beta)
    return float(u + 16 * u**5 * (1 - u**2 - 3 * u / beta))


@_elementwise_in_beta
def su3_4d_plaquette_strong_coupling(beta) -> float:
    """4D SU(3) strong coupling ``<P> = u + 72 u^5 du/dbeta + ...``, u the SU(3) one-plaquette average."""
    u, du = _sun_one_plaquette(beta, 3)
    return float(u + 72 * u**5 * du)


def plaquette_weak_coupling(beta, N, d):
    """Leading weak-coupling plaquette ``1 - n_gen / (d beta)``.

    ``n_gen = N^2 - 1`` for SU(N) (N >= 2) and 1 for U(1) (pass ``N=1``), from equipartition of
    the quadratic action: ``<1 - P> = (N^2 - 1)/(d beta) + O(1/beta^2)``.
    """
    N = _check_count(N, "N (1 for U(1))", minimum=1)
    d = _check_count(d, "d (the dimension)", minimum=2)
    generators = 1 if N == 1 else N * N - 1
    beta = np.asarray(beta, dtype=np.float64)
    if np.any(beta <= 0):
        raise ValueError("the weak-coupling expansion needs beta > 0 (large beta)")
    result = 1.0 - generators / (d * beta)
    return float(result) if result.ndim == 0 else result


# ----------------------------------------------------------------------------- free scalar field


def _check_free_field(shape, m2, form):
    shape = tuple(int(s) for s in np.atleast_1d(shape))
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"shape must be a tuple of positive lattice extents, got {shape}")
    m2 = float(m2)
    if not m2 > 0:
        raise ValueError(
            f"m2 must be > 0, got {m2}: the free field needs a positive mass term (Albergo et al.'s"
            " m^2 = -4 point is an interacting theory with no closed form)"
        )
    if form not in ("standard", "albergo"):
        raise ValueError(f"form must be 'standard' or 'albergo', got {form!r}")
    return shape, m2, (1.0 if form == "standard" else 0.5)


def _lattice_momentum_squared(shape) -> np.ndarray:
    """``phat^2 = sum_mu 4 sin^2(p_mu/2)`` on the grid of momenta ``p_mu = 2 pi k_mu / L_mu``."""
    grids = np.meshgrid(*[2 * np.pi * np.arange(L) / L for L in shape], indexing="ij")
    return sum(4 * np.sin(p / 2) ** 2 for p in grids)


def free_scalar_energy(m2) -> float:
    """Single-particle lattice energy ``E = arccosh(1 + m^2/2)`` (same in both forms)."""
    m2 = np.asarray(m2, dtype=np.float64)
    if np.any(m2 <= 0):
        raise ValueError("m2 must be > 0")
    energy = np.arccosh(1 + m2 / 2)
    return float(energy) if energy.ndim == 0 else energy


def free_scalar_propagator(shape, m2, *, form: str = "standard") -> np.ndarray:
    """``G(x) = <phi(x) phi(0)> = (1/V) sum_p cos(p.x) / (phat^2 + m^2)`` for all x, shape ``shape``.

    Computed by an inverse FFT; halved for ``form="albergo"``.
    """
    shape, m2, factor = _check_free_field(shape, m2, form)
    return factor * np.fft.ifftn(1.0 / (_lattice_momentum_squared(shape) + m2)).real


def free_scalar_phi2(shape, m2, *, form: str = "standard") -> float:
    """``<phi^2> = G(0) = (1/V) sum_p 1 / (phat^2 + m^2)`` (halved in the Albergo form)."""
    shape, m2, factor = _check_free_field(shape, m2, form)
    return float(factor * np.mean(1.0 / (_lattice_momentum_squared(shape) + m2)))


def free_scalar_zero_momentum_correlator(shape, m2, *, form: str = "standard") -> np.ndarray:
    """``C(t) = sum_{x_s} <phi(t, x_s) phi(0, 0)>`` for t = 0 .. L_t - 1 (``L_t = shape[0]``).

    Equivalently ``C(t) = (1/V_s) <Phi(t) Phi(0)>`` with the time-slice sum
    ``Phi(t) = sum_{x_s} phi(t, x_s)`` over the ``V_s`` spatial sites. Only the zero spatial
    momentum survives, so for any spatial size
    ``C(t) = cosh(E (L_t/2 - t)) / (2 sinh E sinh(E L_t / 2))``, ``cosh E = 1 + m^2/2``
    (standard form; halved in the Albergo form).
    """
    shape, m2, factor = _check_free_field(shape, m2, form)
    L_t = shape[0]
    energy = np.arccosh(1 + m2 / 2)
    t = np.arange(L_t)
    # cosh(E(L/2 - t)) / sinh(E L/2), written with decaying exponentials so large E L cannot overflow
    ratio = (np.exp(-energy * t) + np.exp(-energy * (L_t - t))) / (1 - np.exp(-energy * L_t))
    return factor * ratio / (2 * np.sinh(energy))
