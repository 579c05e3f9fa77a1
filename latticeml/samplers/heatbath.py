"""Heatbath and overrelaxation for U(1) and SU(N) lattice gauge theory in any dimension.

Both update one link at a time with everything else fixed. The link's part of the Wilson action
is ``-beta Re(exp(i theta) A)`` for U(1) and ``-(beta/N) Re tr(U A)`` for SU(N), with the staple
sums ``A`` of :func:`latticeml.theories.u1.staple_at` and :func:`latticeml.theories.sun.staple_into`.

Heatbath: draw the new link from its exact conditional distribution
------------------------------------------------------------------
* U(1): ``P(theta) ~ exp(beta |A| cos(theta + arg A))``, a von Mises distribution of
  concentration ``kappa = beta |A|`` centred at ``-arg A``. Drawn by the rejection method of
  D. J. Best and N. I. Fisher, Appl. Statist. 28 (1979) 152 (written here: Numba's Generator has
  no ``vonmises``); see :func:`sample_von_mises`.
* SU(2): ``U A = k V`` with ``k = sqrt(det A) >= 0`` and ``V`` in SU(2) (a sum of SU(2) matrices is
  a multiple of one), so ``X = U V`` is distributed as ``exp((beta k / 2) tr X) dX`` (Haar dX).
  Writing ``X = x0 + i x.sigma``, ``x0`` has density ``sqrt(1 - x0^2) exp(alpha x0)`` on [-1, 1]
  with ``alpha = beta k`` and ``x/|x|`` is uniform on the sphere (M. Creutz, PRD 21 (1980) 2308).
  ``x0`` is drawn by A. D. Kennedy and B. J. Pendleton, PLB 156 (1985) 393 for ``alpha >=``
  :data:`KP_MIN_ALPHA`; below it KP's acceptance falls towards 0 (it is 0.28 at alpha = 0.5)
  while Creutz's own method (accept-reject of ``exp(alpha x0)`` against ``sqrt(1 - x0^2)``)
  stays above 0.69, so Creutz's method is used there. Both are exact; see :func:`sample_su2_a0`.
* SU(N), N >= 3: N. Cabibbo and E. Marinari, PLB 119 (1982) 387. For each of the N(N-1)/2 SU(2)
  subgroups (rows/columns ``i < j``) in turn the link is multiplied from the left by an SU(2)
  element ``R`` embedded in that subgroup, drawn by the SU(2) heatbath above from
  ``exp((beta/N) Re tr(R U A))``. Only the SU(2)-proportional part of the 2x2 block of ``W = U A``
  enters, ``w = k V`` (quaternion ``a = (Re(w_ii + w_jj), Im(w_ij + w_ji), Re(w_ij - w_ji),
  Im(w_ii - w_jj)) / 2``, ``k = |a|``), so the subgroup heatbath has ``alpha = 2 beta k / N``
  (``= beta k`` for N = 2, where the single subgroup is the whole group and the update is exact).

Overrelaxation: reflect the link, keep the action
-------------------------------------------------
* U(1): ``theta -> -2 arg A - theta``, the reflection about the maximum of the link's weight.
* SU(N): in each SU(2) subgroup ``R = (V^dagger)^2``, so that ``R w = k V^dagger`` and
  ``Re tr(R w) = Re tr(w)`` (M. Creutz, PRD 36 (1987) 515; F. R. Brown and T. J. Woch, PRL 58
  (1987) 2394).
Each reflection is an involution (applied twice with the same staple it returns the link) that
preserves the action and the Haar measure, so it satisfies detailed balance; it changes the
configuration a lot at zero cost in action, which decorrelates the slow modes. It is
*microcanonical*: on its own it never changes the action and is not ergodic. Use it between
heatbath sweeps (``sampler(theory, overrelax=K)``); :func:`overrelaxation_sampler` alone is for
demonstrations and tests.

Ordering, randomness, parallelism
---------------------------------
A sweep runs over ``mu = 0, ..., D-1`` and, for each, the even then the odd sites
(:func:`latticeml.lattice.checkerboard_sites`; every extent must be even). The heatbath kernels
are sequential: rejection sampling needs an unknown number of random numbers per link, so the
numpy Generator is passed into the kernel and consumed in site order (the same seed gives the
same chain bit for bit). Overrelaxation draws no random numbers and runs the links of one colour
in parallel (on one thread for small lattices, see :func:`latticeml.samplers.metropolis.threads_for`).
SU(N) links are re-unitarised after every update (unitary, det 1 to 1e-15).

API (as :mod:`latticeml.samplers.metropolis`)
---------------------------------------------
``init(field, theory) -> State``; ``step(rng, state, theory, *, overrelax=0) -> (State, HeatbathInfo)``
is one heatbath sweep followed by ``overrelax`` overrelaxation sweeps;
``overrelaxation_step(rng, state, theory, *, sweeps=1)``; the builders :func:`sampler` and
:func:`overrelaxation_sampler`. Fields: U(1) ``(D, *shape)`` float64 angles in ``(-pi, pi]``,
SU(N) ``(D, *shape, N, N)`` complex128. phi^4 has no heatbath here (use Metropolis or HMC).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .._linalg import mat_mul
from ..lattice import neighbour_table
from ..theories.sun import staple_into
from ..theories.u1 import staple_at
from .chain import Sampler
from .metropolis import (
    State,
    check_count,
    check_rng,
    chunk_count,
    init,
    restore_special_unitary,
    sublattices,
    theory_kind,
    threads_for,
    working_copy,
    wrap,
)

__all__ = [
    "State",
    "HeatbathInfo",
    "OverrelaxationInfo",
    "KP_MIN_ALPHA",
    "init",
    "step",
    "overrelaxation_step",
    "sampler",
    "overrelaxation_sampler",
    "sample_von_mises",
    "sample_su2_a0",
    "sweep_order",
]

#: Below this alpha the SU(2) heatbath draws x0 by Creutz's method, above by Kennedy-Pendleton.
#: Their acceptances cross near alpha = 1.7 (0.70 each): Creutz's is pi I_1(alpha) / (2 sinh alpha),
#: KP's int_0^2 sqrt(d (1 - d/2)) e^{-alpha d} dd / int_0^inf sqrt(d) e^{-alpha d} dd.
KP_MIN_ALPHA = 1.7

#: Concentrations (couplings) below this are treated as 0: the density then differs from the
#: uniform (Haar) one by a relative O(1e-12), far below any statistical resolution.
_TINY = 1e-12


class HeatbathInfo(NamedTuple):
    """What one heatbath step (one heatbath sweep + ``overrelax`` overrelaxation sweeps) reports.

    acceptance:      always 1.0: every link is replaced by an exact draw from its conditional
                     distribution, and every reflection is accepted.
    overrelax:       number of overrelaxation sweeps in this step.
    trials_per_draw: mean number of trials of the rejection samplers (Best-Fisher for U(1),
                     Kennedy-Pendleton/Creutz for the SU(2) subgroups) per accepted draw (>= 1):
                     the heatbath's efficiency.
    """

    acceptance: float
    overrelax: int
    trials_per_draw: float


class OverrelaxationInfo(NamedTuple):
    """What one pure overrelaxation step reports.

    acceptance: always 1.0 (reflections are always accepted; the action does not change).
    sweeps:     number of overrelaxation sweeps in this step.
    """

    acceptance: float
    sweeps: int


# ----------------------------------------------------------------------------- one-variable samplers


@njit(inline="always", cache=True)
def _von_mises(rng, kappa):
    """One draw from ``exp(kappa cos t)`` on (-pi, pi] (Best & Fisher 1979); returns (t, trials).

    Wrapped-Cauchy envelope with parameter rho. Best & Fisher's ``rho = (tau - sqrt(2 tau)) / (2 kappa)``,
    ``tau = 1 + sqrt(1 + 4 kappa^2)``, is rewritten as ``2 kappa tau / ((s + 1)(tau + sqrt(2 tau)))``,
    ``s = sqrt(1 + 4 kappa^2)`` (multiply by the conjugates), which has no cancellation at small kappa.
    """
    if kappa < _TINY:
        return np.pi * (2.0 * rng.random() - 1.0), 1
    s = np.sqrt(1.0 + 4.0 * kappa * kappa)
    tau = 1.0 + s
    rho = 2.0 * kappa * tau / ((s + 1.0) * (tau + np.sqrt(2.0 * tau)))
    r = (1.0 + rho * rho) / (2.0 * rho)
    trials = 0
    while True:
        trials += 1
        z = np.cos(np.pi * rng.random())
        f = (1.0 + r * z) / (r + z)
        c = kappa * (r - f)
        u2 = rng.random()
        if c * (2.0 - c) - u2 > 0.0 or np.log(c / u2) + 1.0 - c >= 0.0:
            break
    f = min(1.0, max(-1.0, f))  # rounding may leave |f| a hair above 1
    t = np.arccos(f)
    if rng.random() < 0.5:
        t = -t
    return t, trials


@njit(inline="always", cache=True)
def _su2_a0(rng, alpha):
    """One draw of ``x0`` from ``sqrt(1 - x0^2) exp(alpha x0)`` on [-1, 1]; returns (x0, trials).

    alpha >= KP_MIN_ALPHA, Kennedy & Pendleton (1985): ``d = 1 - x0`` has density
    ``sqrt(d) e^{-alpha d} sqrt(1 - d/2)``; draw ``d`` from the Gamma(3/2, 1/alpha) density
    ``sqrt(d) e^{-alpha d}`` as ``-(ln r1 + cos^2(2 pi r2) ln r3) / alpha`` (an exponential plus
    half a squared Box-Muller normal) and accept with probability ``sqrt(1 - d/2)``
    (``r4^2 <= 1 - d/2``; d > 2 is always rejected).
    alpha < KP_MIN_ALPHA, Creutz (1980): draw ``exp(alpha x0)`` uniformly, i.e.
    ``x0 = 1 + log1p(u expm1(-2 alpha)) / alpha``, and accept with probability ``sqrt(1 - x0^2)``.
    """
    trials = 0
    if alpha >= KP_MIN_ALPHA:
        while True:
            trials += 1
            # 1 - random() lies in (0, 1]: the logarithms stay finite
            r1 = 1.0 - rng.random()
            r2 = rng.random()
            r3 = 1.0 - rng.random()
            c = np.cos(2.0 * np.pi * r2)
            d = -(np.log(r1) + c * c * np.log(r3)) / alpha
            r4 = rng.random()
            if r4 * r4 <= 1.0 - 0.5 * d:
                return 1.0 - d, trials
    while True:
        trials += 1
        u = rng.random()
        if alpha < _TINY:
            x0 = 1.0 - 2.0 * u
        else:
            x0 = 1.0 + np.log1p(u * np.expm1(-2.0 * alpha)) / alpha
        v = rng.random()
        if v * v <= 1.0 - x0 * x0:
            return x0, trials


@njit(inline="always", cache=True)
def _su2_heatbath_quaternion(rng, alpha):
    """Unit quaternion x with density ``exp(alpha x0)`` w.r.t. the Haar measure; returns (x0, x1, x2, x3, trials).

    x0 by :func:`_su2_a0`; the vector part has length sqrt(1 - x0^2) and a uniform direction
    (cos(polar angle) uniform in [-1, 1], azimuth uniform in [0, 2 pi)).
    """
    x0, trials = _su2_a0(rng, alpha)
    length = np.sqrt(max(0.0, 1.0 - x0 * x0))
    cos_t = 2.0 * rng.random() - 1.0
    sin_t = np.sqrt(max(0.0, 1.0 - cos_t * cos_t))
    phi = 2.0 * np.pi * rng.random()
    return x0, length * sin_t * np.cos(phi), length * sin_t * np.sin(phi), length * cos_t, trials


@njit(cache=True)
def _von_mises_many(rng, kappa, out):
    trials = 0
    for i in range(out.shape[0]):
        out[i], t = _von_mises(rng, kappa)
        trials += t
    return trials


@njit(cache=True)
def _su2_a0_many(rng, alpha, out):
    trials = 0
    for i in range(out.shape[0]):
        out[i], t = _su2_a0(rng, alpha)
        trials += t
    return trials


def _check_concentration(name, value) -> float:
    value = float(value)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def sample_von_mises(rng: np.random.Generator, kappa: float, size: int) -> np.ndarray:
    """``size`` independent draws from the von Mises density ``exp(kappa cos t) / (2 pi I_0(kappa))`` on (-pi, pi].

    The kernel the U(1) heatbath uses (Best & Fisher 1979), float64 array ``(size,)``.
    """
    check_rng(rng)
    out = np.empty(check_count("size", size, minimum=0))
    _von_mises_many(rng, _check_concentration("kappa", kappa), out)
    return out


def sample_su2_a0(rng: np.random.Generator, alpha: float, size: int) -> np.ndarray:
    """``size`` draws of ``x0`` from ``sqrt(1 - x0^2) exp(alpha x0)`` on [-1, 1] (Kennedy-Pendleton / Creutz).

    The kernel the SU(2) (subgroup) heatbath uses, float64 array ``(size,)``; see :data:`KP_MIN_ALPHA`.
    """
    check_rng(rng)
    out = np.empty(check_count("size", size, minimum=0))
    _su2_a0_many(rng, _check_concentration("alpha", alpha), out)
    return out


# ----------------------------------------------------------------------------- U(1) kernels


@njit(cache=True)
def _u1_heatbath(theta, fwd, bwd, sites, order, beta, rng):
    """Heatbath sweep over the flat links ``theta`` (D, V), in place; returns the number of trials.

    order: (n, 2) int64 list of (mu, colour) sublattices in the order they are visited.
    """
    trials = 0
    for k in range(order.shape[0]):
        mu = order[k, 0]
        colour = order[k, 1]
        for i in range(sites.shape[1]):
            s = sites[colour, i]
            a = staple_at(theta, fwd, bwd, mu, s)
            t, n = _von_mises(rng, beta * abs(a))
            trials += n
            theta[mu, s] = wrap(t - np.arctan2(a.imag, a.real))
    return trials


@njit(parallel=True, cache=True)
def _u1_overrelax(theta, fwd, bwd, sites, order):
    """Overrelaxation sweep over ``theta`` (D, V), in place: theta -> -2 arg A - theta (A = 0 is left alone)."""
    for k in range(order.shape[0]):
        mu = order[k, 0]
        colour = order[k, 1]
        for i in prange(sites.shape[1]):
            s = sites[colour, i]
            a = staple_at(theta, fwd, bwd, mu, s)
            if a.real != 0.0 or a.imag != 0.0:
                theta[mu, s] = wrap(-2.0 * np.arctan2(a.imag, a.real) - theta[mu, s])


# ----------------------------------------------------------------------------- SU(N): SU(2) subgroups


@njit(inline="always", cache=True)
def _subgroup_quaternion(w, i, j):
    """Quaternion (a0, a1, a2, a3) of the SU(2)-proportional part of the (i, j) block of ``w``.

    A 2x2 block ``b0 + i b.sigma`` (complex b) has ``Re tr(r block) = Re tr(r (a0 + i a.sigma))`` for
    every SU(2) ``r``, with ``a = Re b``: the other part does not enter the subgroup's action.
    """
    a0 = 0.5 * (w[i, i].real + w[j, j].real)
    a1 = 0.5 * (w[i, j].imag + w[j, i].imag)
    a2 = 0.5 * (w[i, j].real - w[j, i].real)
    a3 = 0.5 * (w[i, i].imag - w[j, j].imag)
    return a0, a1, a2, a3


@njit(inline="always", cache=True)
def _quaternion_mul(a0, a1, a2, a3, b0, b1, b2, b3):
    """(a0 + i a.sigma)(b0 + i b.sigma) = (a0 b0 - a.b) + i (a0 b + b0 a - a x b).sigma."""
    return (
        a0 * b0 - a1 * b1 - a2 * b2 - a3 * b3,
        a0 * b1 + b0 * a1 - (a2 * b3 - a3 * b2),
        a0 * b2 + b0 * a2 - (a3 * b1 - a1 * b3),
        a0 * b3 + b0 * a3 - (a1 * b2 - a2 * b1),
    )


@njit(inline="always", cache=True)
def _rotate_rows(m, i, j, r0, r1, r2, r3):
    """Rows i, j of ``m`` <- r (rows i, j), r = [[r0 + i r3, r2 + i r1], [-r2 + i r1, r0 - i r3]]."""
    r_ii = complex(r0, r3)
    r_ij = complex(r2, r1)
    r_ji = complex(-r2, r1)
    r_jj = complex(r0, -r3)
    for c in range(m.shape[1]):
        top = m[i, c]
        bottom = m[j, c]
        m[i, c] = r_ii * top + r_ij * bottom
        m[j, c] = r_ji * top + r_jj * bottom


@njit(cache=True)
def _sun_heatbath(U, fwd, bwd, sites, order, beta, rng):
    """Cabibbo-Marinari heatbath sweep over the flat links ``U`` (D, V, N, N), in place; returns the trials.

    For each link: W = U A once; for every subgroup (i, j) the SU(2) heatbath element R = x V^dagger
    multiplies rows i, j of U and of W (so W = U A stays current without recomputing the staple).
    """
    D, V, N, _ = U.shape
    a = np.empty((N, N), dtype=np.complex128)
    w = np.empty((N, N), dtype=np.complex128)
    work = np.empty((2, N, N), dtype=np.complex128)
    trials = 0
    for k in range(order.shape[0]):
        mu = order[k, 0]
        colour = order[k, 1]
        for idx in range(sites.shape[1]):
            s = sites[colour, idx]
            link = U[mu, s]
            staple_into(U, fwd, bwd, mu, s, a, work)
            mat_mul(link, a, w)
            for i in range(N - 1):
                for j in range(i + 1, N):
                    a0, a1, a2, a3 = _subgroup_quaternion(w, i, j)
                    norm = np.sqrt(a0 * a0 + a1 * a1 + a2 * a2 + a3 * a3)
                    x0, x1, x2, x3, n = _su2_heatbath_quaternion(rng, 2.0 * beta * norm / N)
                    trials += n
                    if norm > 0.0:  # R = x V^dagger, V = a / |a|
                        r0, r1, r2, r3 = _quaternion_mul(x0, x1, x2, x3, a0 / norm, -a1 / norm, -a2 / norm, -a3 / norm)
                    else:  # no coupling to this subgroup: R is a Haar-random element
                        r0, r1, r2, r3 = x0, x1, x2, x3
                    _rotate_rows(link, i, j, r0, r1, r2, r3)
                    _rotate_rows(w, i, j, r0, r1, r2, r3)
            restore_special_unitary(link)
    return trials


@njit(parallel=True, cache=True)
def _sun_overrelax(U, fwd, bwd, sites, order, nchunk):
    """Overrelaxation sweep over ``U`` (D, V, N, N), in place: R = (V^dagger)^2 in every SU(2) subgroup.

    The links of one (mu, colour) sublattice are cut into ``nchunk`` chunks run in parallel; the
    result does not depend on nchunk (no random numbers, no shared writes).
    """
    D, V, N, _ = U.shape
    half = sites.shape[1]
    for k in range(order.shape[0]):
        mu = order[k, 0]
        colour = order[k, 1]
        for c in prange(nchunk):
            a = np.empty((N, N), dtype=np.complex128)
            w = np.empty((N, N), dtype=np.complex128)
            work = np.empty((2, N, N), dtype=np.complex128)
            for idx in range(c * half // nchunk, (c + 1) * half // nchunk):
                s = sites[colour, idx]
                link = U[mu, s]
                staple_into(U, fwd, bwd, mu, s, a, work)
                mat_mul(link, a, w)
                for i in range(N - 1):
                    for j in range(i + 1, N):
                        a0, a1, a2, a3 = _subgroup_quaternion(w, i, j)
                        norm = np.sqrt(a0 * a0 + a1 * a1 + a2 * a2 + a3 * a3)
                        if norm == 0.0:
                            continue
                        v0 = a0 / norm
                        # (V^dagger)^2 with V^dagger = (v0, -v): (v0^2 - |v|^2, -2 v0 v)
                        vv = (a1 * a1 + a2 * a2 + a3 * a3) / (norm * norm)
                        r0 = v0 * v0 - vv
                        r1 = -2.0 * v0 * a1 / norm
                        r2 = -2.0 * v0 * a2 / norm
                        r3 = -2.0 * v0 * a3 / norm
                        _rotate_rows(link, i, j, r0, r1, r2, r3)
                        _rotate_rows(w, i, j, r0, r1, r2, r3)
                restore_special_unitary(link)


# ----------------------------------------------------------------------------- public API


@functools.lru_cache(maxsize=16)
def _sweep_order_cached(D: int) -> np.ndarray:
    order = np.array([(mu, colour) for mu in range(D) for colour in (0, 1)], dtype=np.int64)
    order.setflags(write=False)
    return order


def sweep_order(D: int, *, reverse: bool = False) -> np.ndarray:
    """The (mu, colour) sublattices of one sweep in visiting order, int64 ``(2 D, 2)``.

    ``reverse=True`` gives the opposite order: an overrelaxation sweep followed by the reversed
    sweep returns the configuration (each sublattice reflection is an involution).
    """
    order = _sweep_order_cached(int(D))
    return np.ascontiguousarray(order[::-1]) if reverse else order


def _gauge_kind(theory, algorithm: str) -> str:
    kind = theory_kind(theory)
    if kind == "phi4":
        raise ValueError(
            f"{algorithm} is implemented for the gauge theories u1, su2, su3 and sun; "
            "for phi4 use the Metropolis or HMC sampler"
        )
    return kind


def _overrelax_sweeps(field, theory, kind, n_sweeps, order):
    """``n_sweeps`` overrelaxation sweeps of ``field`` in place."""
    if n_sweeps == 0:
        return
    fwd, bwd = neighbour_table(theory.shape)
    sites = sublattices(theory.shape)
    D = theory.dim
    half = sites.shape[1]
    with threads_for(kind, half):
        if kind == "u1":
            flat = field.reshape(D, -1)
            for _ in range(n_sweeps):
                _u1_overrelax(flat, fwd, bwd, sites, order)
        else:
            flat = field.reshape(D, -1, theory.N, theory.N)
            nchunk = chunk_count(half)
            for _ in range(n_sweeps):
                _sun_overrelax(flat, fwd, bwd, sites, order, nchunk)


def step(rng: np.random.Generator, state: State, theory, *, overrelax: int = 0):
    """One heatbath sweep then ``overrelax`` overrelaxation sweeps; returns ``(State, HeatbathInfo)``.

    Pure: ``state`` is left untouched.
    """
    check_rng(rng)
    kind = _gauge_kind(theory, "the heatbath")
    overrelax = check_count("overrelax (overrelaxation sweeps per heatbath sweep)", overrelax, minimum=0)
    field = working_copy(state.field, theory)
    fwd, bwd = neighbour_table(theory.shape)
    sites = sublattices(theory.shape)
    D = theory.dim
    order = sweep_order(D)
    if kind == "u1":
        trials = _u1_heatbath(field.reshape(D, -1), fwd, bwd, sites, order, theory.beta, rng)
        draws = field.size
    else:
        N = theory.N
        trials = _sun_heatbath(field.reshape(D, -1, N, N), fwd, bwd, sites, order, theory.beta, rng)
        draws = D * theory.volume * N * (N - 1) // 2
    _overrelax_sweeps(field, theory, kind, overrelax, order)
    return State(field), HeatbathInfo(acceptance=1.0, overrelax=overrelax, trials_per_draw=trials / draws)


def overrelaxation_step(rng: np.random.Generator, state: State, theory, *, sweeps: int = 1):
    """``sweeps`` overrelaxation sweeps (microcanonical: the action does not change); ``(State, OverrelaxationInfo)``.

    ``rng`` is not used (reflections are deterministic); it is taken so that the function has
    the sampler signature. Not ergodic on its own: combine with a heatbath (:func:`step`).
    """
    check_rng(rng)
    kind = _gauge_kind(theory, "overrelaxation")
    sweeps = check_count("sweeps (overrelaxation sweeps per step)", sweeps, minimum=1)
    field = working_copy(state.field, theory)
    _overrelax_sweeps(field, theory, kind, sweeps, sweep_order(theory.dim))
    return State(field), OverrelaxationInfo(acceptance=1.0, sweeps=sweeps)


def sampler(theory, *, overrelax: int = 0) -> Sampler:
    """Heatbath (+ overrelaxation) for U(1) or SU(N) (see the module docstring).

    One step = one heatbath sweep followed by ``overrelax`` >= 0 overrelaxation sweeps
    (``latticeml sample ... --algorithm heatbath --overrelax K``). phi^4 raises ValueError.
    """
    _gauge_kind(theory, "the heatbath")
    overrelax = check_count("overrelax (overrelaxation sweeps per heatbath sweep)", overrelax, minimum=0)
    sublattices(theory.shape)  # every extent must be even for the checkerboard
    return Sampler(
        name="heatbath",
        theory=theory,
        settings={"overrelax": overrelax},
        init=functools.partial(init, theory=theory),
        step=functools.partial(step, theory=theory, overrelax=overrelax),
    )


def overrelaxation_sampler(theory, *, sweeps: int = 1) -> Sampler:
    """Pure overrelaxation, ``sweeps`` >= 1 sweeps per step, for U(1) or SU(N).

    Microcanonical: it keeps the action fixed and is NOT ergodic on its own; it samples the
    Wilson ensemble only in combination with an ergodic update (:func:`sampler` with ``overrelax``).
    """
    _gauge_kind(theory, "overrelaxation")
    sweeps = check_count("sweeps (overrelaxation sweeps per step)", sweeps, minimum=1)
    sublattices(theory.shape)
    return Sampler(
        name="overrelaxation",
        theory=theory,
        settings={"sweeps": sweeps},
        init=functools.partial(init, theory=theory),
        step=functools.partial(overrelaxation_step, theory=theory, sweeps=sweeps),
    )
