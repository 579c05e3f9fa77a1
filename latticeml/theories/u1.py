"""Compact U(1) lattice gauge theory with the Wilson plaquette action, in any dimension D >= 2.

Fields and conventions
----------------------
* Links are angles ``theta`` (float64) of shape ``(D, L0, ..., L{D-1})``, ``U_mu(x) = exp(i theta_mu(x))``;
  with ``batched=True`` a leading batch axis is added, ``(B, D, L0, ...)``. Angles need not be
  wrapped: every function here depends on them only through ``exp(i theta)`` (except
  :func:`plaquette_angles`, which returns the unwrapped sums).
* Planes are the pairs ``(mu, nu)`` with ``mu < nu`` in the order ``(0,1), (0,2), ..., (1,2), ...``
  (:func:`planes`); there are ``D (D - 1) / 2`` of them.
* Plaquette angle of plane ``(mu, nu)`` at site x:
  ``theta_P(x) = theta_mu(x) + theta_nu(x + mu) - theta_mu(x + nu) - theta_nu(x)``.
* Wilson action (K. G. Wilson, PRD 10 (1974) 2445): ``S = beta * sum_x sum_{mu<nu} (1 - cos theta_P(x))``.
* Force: ``F_mu(x) = dS / dtheta_mu(x) = beta * Im(exp(i theta_mu(x)) A_mu(x))``, with the staple sum
  ``A_mu(x) = sum_{nu != mu} [ exp(i(theta_nu(x+mu) - theta_mu(x+nu) - theta_nu(x)))
  + exp(i(-theta_nu(x+mu-nu) - theta_mu(x-nu) + theta_nu(x-nu))) ]``, so that the part of S that
  depends on ``theta_mu(x)`` is ``-beta * Re(exp(i theta_mu(x)) A_mu(x))`` plus a constant.

Inside the Numba kernels the sites are flattened (see :mod:`latticeml.lattice`): links are viewed
as ``(D, V)`` and ``fwd[s, mu]``, ``bwd[s, mu]`` are the neighbour tables, so one kernel serves
every D.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..groups import wrap_angle
from ..lattice import _planes_array, check_shape, neighbour_table, planes
from .._checks import finite_float
from .._threads import _n_chunks, _threads_for

__all__ = [
    "planes",
    "plaquette_angles",
    "mean_plaquette",
    "action",
    "force",
    "staples",
    "staple_at",
    "hot_start",
    "cold_start",
]


# ----------------------------------------------------------------------------- geometry


PARALLEL_MIN_SITES = 1024  # sites (B * V) below which the kernels run on one thread (measured crossover ~1000)


# ----------------------------------------------------------------------------- input checks


def _as_links(theta, batched: bool):
    """Validate U(1) links; return (float64 view (B, D, V), lattice shape, B)."""
    theta = np.asarray(theta)
    if theta.dtype.kind not in "iuf":
        raise TypeError(
            f"U(1) links must be real angles (float64), got dtype {theta.dtype}; "
            "pass theta = np.angle(U) if you hold complex phases U"
        )
    lead = 1 if batched else 0
    form = "(B, D, L0, ..., L{D-1})" if batched else "(D, L0, ..., L{D-1})"
    if theta.ndim < lead + 3:
        raise ValueError(
            f"U(1) links must have shape {form} with D >= 2, got shape {theta.shape}"
            + ("" if batched else "; for a batch of configurations pass batched=True")
        )
    D = theta.shape[lead]
    if theta.ndim != lead + 1 + D:
        raise ValueError(
            f"U(1) links must have shape {form}: the direction axis has {D} entries but there are "
            f"{theta.ndim - lead - 1} lattice axes in shape {theta.shape}"
            + ("" if batched else "; for a batch of configurations pass batched=True")
        )
    shape = check_shape(theta.shape[lead + 1 :])
    B = theta.shape[0] if batched else 1
    flat = np.ascontiguousarray(theta, dtype=np.float64).reshape(B, D, -1)
    return flat, shape, B


# ----------------------------------------------------------------------------- kernels


@njit(inline="always", cache=True)
def plaquette_angle_at(theta, fwd, mu, nu, s):
    """theta_mu(x) + theta_nu(x + mu) - theta_mu(x + nu) - theta_nu(x) for flat links ``theta`` (D, V)."""
    return theta[mu, s] + theta[nu, fwd[s, mu]] - theta[mu, fwd[s, nu]] - theta[nu, s]


@njit(inline="always", cache=True)
def staple_at(theta, fwd, bwd, mu, s):
    """Staple sum A_mu(x) (complex) of link (mu, s) for flat links ``theta`` (D, V).

    The link's part of the action is ``-beta * Re(exp(i theta[mu, s]) * A)``; a heatbath or
    Metropolis update of that link needs only A.
    """
    D = theta.shape[0]
    xp = fwd[s, mu]
    a = 0j
    for nu in range(D):
        if nu == mu:
            continue
        xm = bwd[s, nu]
        up = theta[nu, xp] - theta[mu, fwd[s, nu]] - theta[nu, s]
        lo = -theta[nu, bwd[xp, nu]] - theta[mu, xm] + theta[nu, xm]
        a += complex(np.cos(up), np.sin(up)) + complex(np.cos(lo), np.sin(lo))
    return a


# Site loops run over sites in parallel and over the batch inside (no index division per site,
# one parallel region for the whole batch).


@njit(parallel=True, cache=True)
def _plaquette_angles_kernel(theta, fwd, plane_list, out):
    B, D, V = theta.shape
    for s in prange(V):
        for b in range(B):
            for p in range(plane_list.shape[0]):
                out[b, p, s] = plaquette_angle_at(theta[b], fwd, plane_list[p, 0], plane_list[p, 1], s)


@njit(parallel=True, cache=True)
def _sum_cos_kernel(theta, fwd, plane_list, nchunk, sums):
    """sums[b] = sum over sites and planes of cos theta_P (sites cut into nchunk chunks)."""
    B, D, V = theta.shape
    partial = np.zeros((nchunk, B))
    for c in prange(nchunk):
        for b in range(B):
            acc = 0.0
            for s in range(c * V // nchunk, (c + 1) * V // nchunk):
                for p in range(plane_list.shape[0]):
                    acc += np.cos(plaquette_angle_at(theta[b], fwd, plane_list[p, 0], plane_list[p, 1], s))
            partial[c, b] = acc
    for b in range(B):
        sums[b] = partial[:, b].sum()


@njit(parallel=True, cache=True)
def _force_kernel(theta, fwd, bwd, plane_list, beta, sin_p, out):
    """out[b, mu, s] = dS/dtheta_mu(s), in two passes so that each sin theta_P is computed once.

    Link theta_mu(x) enters theta_P of plane (mu, nu) at x with sign +1 and at x - nu with sign -1
    (as theta_mu(x' + nu)); for a plane (nu, mu) with nu < mu the signs are reversed.
    """
    B, D, V = theta.shape
    P = plane_list.shape[0]
    for s in prange(V):
        for b in range(B):
            for p in range(P):
                sin_p[b, p, s] = np.sin(plaquette_angle_at(theta[b], fwd, plane_list[p, 0], plane_list[p, 1], s))
    for s in prange(V):
        for b in range(B):
            for mu in range(D):
                out[b, mu, s] = 0.0
            for p in range(P):
                mu = plane_list[p, 0]
                nu = plane_list[p, 1]
                here = sin_p[b, p, s]
                out[b, mu, s] += beta * (here - sin_p[b, p, bwd[s, nu]])
                out[b, nu, s] += beta * (sin_p[b, p, bwd[s, mu]] - here)


@njit(parallel=True, cache=True)
def _staples_kernel(theta, fwd, bwd, out):
    B, D, V = theta.shape
    for s in prange(V):
        for b in range(B):
            for mu in range(D):
                out[b, mu, s] = staple_at(theta[b], fwd, bwd, mu, s)


# ----------------------------------------------------------------------------- public API


def plaquette_angles(theta, *, batched: bool = False) -> np.ndarray:
    """Unwrapped plaquette angles ``theta_P(x)``, shape ``(n_planes, *shape)`` (``(B, n_planes, *shape)`` if batched).

    Plane ``p`` is ``planes(D)[p]``. The sums are not wrapped into (-pi, pi]; the geometric
    topological charge wraps them (:func:`latticeml.groups.wrap_angle`).
    """
    flat, shape, B = _as_links(theta, batched)
    D = len(shape)
    fwd, _ = neighbour_table(shape)
    plane_list = _planes_array(D)
    out = np.empty((B, len(plane_list), flat.shape[2]))
    with _threads_for(B * flat.shape[2], PARALLEL_MIN_SITES):
        _plaquette_angles_kernel(flat, fwd, plane_list, out)
    out = out.reshape((B, len(plane_list)) + shape)
    return out if batched else out[0]


def _sum_cos(theta, batched):
    flat, shape, B = _as_links(theta, batched)
    fwd, _ = neighbour_table(shape)
    sums = np.empty(B)
    plane_list = _planes_array(len(shape))
    with _threads_for(B * flat.shape[2], PARALLEL_MIN_SITES):
        _sum_cos_kernel(flat, fwd, plane_list, _n_chunks(flat.shape[2]), sums)
    return sums, len(plane_list) * flat.shape[2]


def mean_plaquette(theta, *, batched: bool = False):
    """``<cos theta_P>`` averaged over sites and planes: a float (``(B,)`` if batched)."""
    sums, n = _sum_cos(theta, batched)
    mean = sums / n
    return mean if batched else float(mean[0])


def action(theta, *, beta: float, batched: bool = False):
    """Wilson action ``S = beta * sum_{x, mu<nu} (1 - cos theta_P(x))``: a float (``(B,)`` if batched)."""
    beta = finite_float(beta)
    sums, n = _sum_cos(theta, batched)
    S = beta * (n - sums)
    return S if batched else float(S[0])


def force(theta, *, beta: float, batched: bool = False) -> np.ndarray:
    """``dS/dtheta_mu(x) = beta * Im(exp(i theta_mu(x)) A_mu(x))``, same shape as ``theta``.

    Equivalently ``beta * sum`` of ``sin theta_P`` over the 2(D-1) plaquettes through the link,
    each with the sign (+1 or -1) with which ``theta_mu(x)`` enters ``theta_P``.
    """
    beta = finite_float(beta)
    flat, shape, B = _as_links(theta, batched)
    fwd, bwd = neighbour_table(shape)
    plane_list = _planes_array(len(shape))
    sin_p = np.empty((B, len(plane_list), flat.shape[2]))
    out = np.empty_like(flat)
    with _threads_for(B * flat.shape[2], PARALLEL_MIN_SITES):
        _force_kernel(flat, fwd, bwd, plane_list, beta, sin_p, out)
    return out.reshape(np.shape(theta))


def staples(theta, *, batched: bool = False) -> np.ndarray:
    """Complex staple sums ``A_mu(x)``, same shape as ``theta`` (see the module docstring)."""
    flat, shape, B = _as_links(theta, batched)
    fwd, bwd = neighbour_table(shape)
    out = np.empty(flat.shape, dtype=np.complex128)
    with _threads_for(B * flat.shape[2], PARALLEL_MIN_SITES):
        _staples_kernel(flat, fwd, bwd, out)
    return out.reshape(np.shape(theta))


def hot_start(rng: np.random.Generator, shape, *, batch: int | None = None) -> np.ndarray:
    """Uniform (Haar) random links in (-pi, pi], shape ``(D, *shape)`` or ``(batch, D, *shape)``."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    shape = check_shape(shape)
    if len(shape) < 2:
        raise ValueError(f"a U(1) gauge field needs D >= 2 lattice dimensions, got shape {shape}")
    lead = (len(shape),) if batch is None else (int(batch), len(shape))
    return wrap_angle(rng.uniform(-np.pi, np.pi, size=lead + shape))


def cold_start(shape, *, batch: int | None = None) -> np.ndarray:
    """All links zero (``U = 1``, every plaquette angle 0), shape ``(D, *shape)`` or ``(batch, D, *shape)``."""
    shape = check_shape(shape)
    if len(shape) < 2:
        raise ValueError(f"a U(1) gauge field needs D >= 2 lattice dimensions, got shape {shape}")
    lead = (len(shape),) if batch is None else (int(batch), len(shape))
    return np.zeros(lead + shape)
