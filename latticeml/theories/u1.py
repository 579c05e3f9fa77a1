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

The theory as one unit
----------------------
:class:`U1Fields` holds what every U(1) gauge theory shares (links, starts, momenta, the
molecular-dynamics drift, the observables: plaquette, Wilson loops and, in 2D, the topological
charge); :class:`U1` (registered as ``"u1"``, :mod:`latticeml.theories.base`) adds the Wilson
action and its local updates, one link at a time with everything else fixed (the link's part of
the action is ``-beta Re(exp(i theta) A)``):

* Metropolis (:func:`metropolis_sweep`; N. Metropolis et al., J. Chem. Phys. 21 (1953) 1087):
  ``hits`` proposals ``theta -> theta + step_size * u``, ``u`` uniform in ``[-1, 1)``, each
  accepted with probability ``min(1, exp(-dS))``;
* heatbath (:func:`heatbath_sweep`): ``P(theta) ~ exp(beta |A| cos(theta + arg A))``, a von Mises
  distribution of concentration ``kappa = beta |A|`` centred at ``-arg A``, drawn by the rejection
  method of D. J. Best and N. I. Fisher, Appl. Statist. 28 (1979) 152 (written here: Numba's
  Generator has no ``vonmises``; :func:`sample_von_mises`);
* overrelaxation (:func:`overrelax_sweep`): ``theta -> -2 arg A - theta``, the reflection about the
  maximum of the link's weight: an involution that keeps the action (microcanonical, not ergodic
  alone; M. Creutz, PRD 36 (1987) 515).

A sweep runs over ``mu = 0, ..., D-1`` and for each the even, then the odd sites
(:func:`latticeml.lattice.sweep_order`; every extent even). Metropolis draws the random numbers
of a sweep beforehand and updates the links of one colour in parallel; the heatbath needs an
unknown number of random numbers per link (rejection sampling), so its kernel consumes the
Generator in site order on one thread. Overrelaxation draws none and runs in parallel. Either
way the same seed gives the same chain bit for bit, whatever the number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._threads import n_chunks, parallel_threads
from ..checks import check_count, check_rng, finite_float, gauge_links
from ..groups import wrap_angle
from ..lattice import _planes_array, check_shape, checkerboard_array, neighbour_table, planes, sweep_order
from ..observables import loops, topology
from .base import ACTION_PARAMETERS, Parameter, Theory, check_in_place, register_theory

__all__ = [
    "U1Fields",
    "U1",
    "planes",
    "plaquette_angles",
    "mean_plaquette",
    "action",
    "force",
    "staples",
    "staple_at",
    "hot_start",
    "cold_start",
    "evolve",
    "metropolis_sweep",
    "heatbath_sweep",
    "overrelax_sweep",
    "sample_von_mises",
]


# ----------------------------------------------------------------------------- input checks


def _as_links(theta, batched: bool):
    """Validate U(1) links (:func:`latticeml.checks.gauge_links`); return (float64 view (B, D, V), lattice shape, B)."""
    links = gauge_links(theta, batched=batched, group="u1")
    return links.flat, links.shape, links.B


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
    with parallel_threads("u1", B * flat.shape[2]):
        _plaquette_angles_kernel(flat, fwd, plane_list, out)
    out = out.reshape((B, len(plane_list)) + shape)
    return out if batched else out[0]


def _sum_cos(theta, batched):
    flat, shape, B = _as_links(theta, batched)
    fwd, _ = neighbour_table(shape)
    sums = np.empty(B)
    plane_list = _planes_array(len(shape))
    with parallel_threads("u1", B * flat.shape[2]):
        _sum_cos_kernel(flat, fwd, plane_list, n_chunks(flat.shape[2]), sums)
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
    with parallel_threads("u1", B * flat.shape[2]):
        _force_kernel(flat, fwd, bwd, plane_list, beta, sin_p, out)
    return out.reshape(np.shape(theta))


def staples(theta, *, batched: bool = False) -> np.ndarray:
    """Complex staple sums ``A_mu(x)``, same shape as ``theta`` (see the module docstring)."""
    flat, shape, B = _as_links(theta, batched)
    fwd, bwd = neighbour_table(shape)
    out = np.empty(flat.shape, dtype=np.complex128)
    with parallel_threads("u1", B * flat.shape[2]):
        _staples_kernel(flat, fwd, bwd, out)
    return out.reshape(np.shape(theta))


def hot_start(rng: np.random.Generator, shape, *, batch: int | None = None) -> np.ndarray:
    """Uniform (Haar) random links in (-pi, pi], shape ``(D, *shape)`` or ``(batch, D, *shape)``."""
    check_rng(rng)
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


def evolve(theta, p, eps: float) -> np.ndarray:
    """The molecular-dynamics drift ``theta + eps p``, wrapped into ``(-pi, pi]`` (a new array)."""
    return wrap_angle(theta + eps * p)


# ----------------------------------------------------------------------------- local updates


@njit(inline="always", cache=True)
def _wrap(t):
    """Map an angle into (-pi, pi] (the convention of :func:`latticeml.groups.wrap_angle`)."""
    w = t - 2.0 * np.pi * np.floor((t + np.pi) / (2.0 * np.pi))  # in [-pi, pi)
    if w <= -np.pi:
        w = np.pi
    return w


@njit(parallel=True, cache=True)
def _metropolis_kernel(theta, fwd, bwd, sites, beta, step_size, shifts, uniforms, accepted):
    """One sweep over the flat links ``theta`` (D, V), in place.

    The link part of the action is ``-beta Re(exp(i theta) A)``, so
    ``dS = -beta [(cos t' - cos t) Re A - (sin t' - sin t) Im A]``.
    shifts, uniforms: (D, 2, V/2, hits); accepted: (D, 2, V/2) int64.
    """
    D = theta.shape[0]
    hits = shifts.shape[3]
    for mu in range(D):
        for p in range(2):
            for i in prange(sites.shape[1]):
                s = sites[p, i]
                a = staple_at(theta, fwd, bwd, mu, s)
                old = theta[mu, s]
                c_old = np.cos(old)
                s_old = np.sin(old)
                n_acc = 0
                for h in range(hits):
                    new = old + step_size * (2.0 * shifts[mu, p, i, h] - 1.0)
                    c_new = np.cos(new)
                    s_new = np.sin(new)
                    dS = -beta * ((c_new - c_old) * a.real - (s_new - s_old) * a.imag)
                    if dS <= 0.0 or uniforms[mu, p, i, h] < np.exp(-dS):
                        old, c_old, s_old = new, c_new, s_new
                        n_acc += 1
                theta[mu, s] = _wrap(old)
                accepted[mu, p, i] = n_acc


#: Concentrations below this are treated as 0: the von Mises density then differs from the
#: uniform one by a relative O(1e-12), far below any statistical resolution.
_TINY = 1e-12


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


@njit(cache=True)
def _von_mises_many(rng, kappa, out):
    trials = 0
    for i in range(out.shape[0]):
        out[i], t = _von_mises(rng, kappa)
        trials += t
    return trials


@njit(cache=True)
def _heatbath_kernel(theta, fwd, bwd, sites, order, beta, rng):
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
            theta[mu, s] = _wrap(t - np.arctan2(a.imag, a.real))
    return trials


@njit(parallel=True, cache=True)
def _overrelax_kernel(theta, fwd, bwd, sites, order):
    """Overrelaxation sweep over ``theta`` (D, V), in place: theta -> -2 arg A - theta (A = 0 is left alone)."""
    for k in range(order.shape[0]):
        mu = order[k, 0]
        colour = order[k, 1]
        for i in prange(sites.shape[1]):
            s = sites[colour, i]
            a = staple_at(theta, fwd, bwd, mu, s)
            if a.real != 0.0 or a.imag != 0.0:
                theta[mu, s] = _wrap(-2.0 * np.arctan2(a.imag, a.real) - theta[mu, s])


def _flat_links(theta):
    """The in-place (D, V) view of a working copy of links, its neighbour tables and sublattices."""
    check_in_place(theta, np.float64, "U(1) links")
    shape = theta.shape[1:]
    fwd, bwd = neighbour_table(shape)
    return theta.reshape(theta.shape[0], -1), fwd, bwd, checkerboard_array(shape)


def metropolis_sweep(rng: np.random.Generator, theta: np.ndarray, *, beta: float, step_size: float, hits: int) -> float:
    """One checkerboard Metropolis sweep of the links ``theta`` (D, *shape) in place; returns the acceptance.

    ``theta``: C-contiguous float64 (every extent even). Random numbers, drawn first in this order
    (``half = V/2``): proposal uniforms ``rng.random((D, 2, half, hits))``, then accept uniforms of
    the same shape; link ``(mu, i)`` of colour ``p`` reads entry ``[mu, p, i]``.
    """
    beta = finite_float(beta)
    hits = check_count(hits, "hits (Metropolis proposals per site and sweep)", minimum=1)
    flat, fwd, bwd, sites = _flat_links(theta)
    D, half = flat.shape[0], sites.shape[1]
    shifts = rng.random((D, 2, half, hits))
    uniforms = rng.random((D, 2, half, hits))
    accepted = np.empty((D, 2, half), dtype=np.int64)
    with parallel_threads("local_u1", half):
        _metropolis_kernel(flat, fwd, bwd, sites, beta, float(step_size), shifts, uniforms, accepted)
    return float(accepted.sum()) / (accepted.size * hits)


def heatbath_sweep(rng: np.random.Generator, theta: np.ndarray, *, beta: float, order=None) -> float:
    """One heatbath sweep of the links ``theta`` (D, *shape) in place; returns the mean Best-Fisher trials per link.

    The Generator is consumed inside the kernel, link by link in sweep order. ``order``: the
    (mu, colour) sublattices to visit (default :func:`latticeml.lattice.sweep_order`, all of them).
    """
    beta = finite_float(beta)
    flat, fwd, bwd, sites = _flat_links(theta)
    order = sweep_order(flat.shape[0]) if order is None else np.ascontiguousarray(order, dtype=np.int64)
    trials = _heatbath_kernel(flat, fwd, bwd, sites, order, beta, rng)
    return trials / (order.shape[0] * sites.shape[1])


def overrelax_sweep(theta: np.ndarray, *, order=None) -> None:
    """One overrelaxation sweep of the links ``theta`` (D, *shape) in place (no random numbers).

    ``order``: the (mu, colour) sublattices to visit (default :func:`latticeml.lattice.sweep_order`;
    the reversed order undoes a sweep).
    """
    flat, fwd, bwd, sites = _flat_links(theta)
    order = sweep_order(flat.shape[0]) if order is None else np.ascontiguousarray(order, dtype=np.int64)
    with parallel_threads("local_u1", sites.shape[1]):
        _overrelax_kernel(flat, fwd, bwd, sites, order)


def sample_von_mises(rng: np.random.Generator, kappa: float, size: int) -> np.ndarray:
    """``size`` independent draws from the von Mises density ``exp(kappa cos t) / (2 pi I_0(kappa))`` on (-pi, pi].

    The kernel the U(1) heatbath uses (Best & Fisher 1979), float64 array ``(size,)``.
    """
    check_rng(rng)
    kappa = finite_float(kappa, "kappa")
    if kappa < 0:
        raise ValueError(f"kappa must be a finite number >= 0, got {kappa}")
    out = np.empty(check_count(size, "size", minimum=0))
    _von_mises_many(rng, kappa, out)
    return out


# ----------------------------------------------------------------------------- the theories


class U1Fields(Theory):
    """What every U(1) gauge theory shares: links, starts, momenta, the drift, observables.

    Links are float64 angles ``(D, *shape)``, D >= 2. Subclasses give the action (``beta`` is
    set here: every U(1) gauge action in latticeml is ``beta`` times a sum over loops).
    """

    family = "u1"

    def __init__(self, shape, *, beta: float, backend: str = "cpu"):
        super().__init__(shape, backend=backend)
        if self.dim < 2:
            raise ValueError(f"a gauge theory needs D >= 2 dimensions, got shape {self.shape}")
        self.beta = finite_float(beta, "beta")

    field_dtype = np.dtype(np.float64)

    @property
    def field_shape(self) -> tuple:
        return (self.dim,) + self.shape

    @property
    def local_variables(self) -> int:
        """Links a local sweep visits."""
        return self.dim * self.volume

    def check_field(self, field):
        field = np.asarray(field)
        if field.shape != (self.dim,) + self.shape:
            raise ValueError(f"U(1) links must have shape (D, *shape) = {(self.dim,) + self.shape}, got {field.shape}")
        if not np.issubdtype(field.dtype, np.floating):
            raise TypeError(f"U(1) links are real angles (float64), got dtype {field.dtype}")
        return np.ascontiguousarray(field, dtype=np.float64)

    def hot_start(self, rng):
        return hot_start(rng, self.shape)

    def cold_start(self):
        return cold_start(self.shape)

    def random_momentum(self, rng):
        return rng.standard_normal((self.dim,) + self.shape)

    def evolve(self, field, p, eps):
        return self.kernels.evolve(field, p, eps)

    def observables(self, field):
        obs = {"plaquette": float(self.kernels.mean_plaquette(field))}
        if all(L > 2 for L in self.shape):
            obs["wilson_loop_1x2"] = float(loops.wilson_loop(field, 1, 2))
            obs["wilson_loop_2x2"] = float(loops.wilson_loop(field, 2, 2))
        if self.dim == 2:
            Q = float(topology.topological_charge_u1(field))
            obs["topological_charge"] = Q
            obs["topological_susceptibility"] = Q * Q / self.volume
        return obs


@register_theory("u1")
class U1(U1Fields):
    """Compact U(1) with the Wilson action ``beta sum_P (1 - cos theta_P)`` in D >= 2 dimensions (module docstring).

    Local updates: Metropolis, heatbath (von Mises), overrelaxation. ``make_theory("u1", shape,
    beta=..., action="iwasaki")`` (or ``c1=...``) builds the improved-action theory instead
    (:class:`latticeml.theories.improved.ImprovedU1`, sampled by HMC).
    """

    local_family = "u1"
    parameters = (Parameter("beta", "float", "gauge coupling beta (finite)"), *ACTION_PARAMETERS)
    local_updates = frozenset({"metropolis", "heatbath", "overrelax"})
    #: default Metropolis proposal width in radians (acceptance ~0.4-0.7 at beta ~ 1-4)
    metropolis_step_size = 1.0

    @classmethod
    def from_couplings(cls, name, shape, *, backend="cpu", action="wilson", c1=0.0, **couplings):
        from .improved import ImprovedU1, rectangle_coefficient

        c1 = rectangle_coefficient(action, c1)
        if c1 == 0.0:
            return cls(shape, backend=backend, **couplings)
        return ImprovedU1(shape, backend=backend, c1=c1, **couplings)

    @property
    def couplings(self):
        return {"beta": self.beta}

    def describe(self):
        return "u1 (Wilson action)"

    def action(self, field):
        return float(self.kernels.action(field, beta=self.beta))

    def force(self, field):
        return self.kernels.force(field, beta=self.beta)

    def metropolis_sweep(self, rng, field, *, step_size: float, hits: int) -> float:
        return self.local_kernels.metropolis_sweep(rng, field, beta=self.beta, step_size=step_size, hits=hits)

    def heatbath_sweep(self, rng, field) -> float:
        return self.local_kernels.heatbath_sweep(rng, field, beta=self.beta)

    def overrelax_sweep(self, field) -> None:
        self.local_kernels.overrelax_sweep(field)
