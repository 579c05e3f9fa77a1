"""SU(N) lattice gauge theory with the Wilson plaquette action, in any dimension D >= 2 (D = 2, 3, 4 in practice).

Fields and conventions
----------------------
* Links ``U`` are complex128 arrays ``(D, L0, ..., L{D-1}, N, N)`` of SU(N) matrices (row-major
  colour matrices); with ``batched=True`` a leading batch axis is added, ``(B, D, ...)``.
* Plaquette of plane ``(mu, nu)``, ``mu < nu`` (order of :func:`latticeml.lattice.planes`):
  ``U_P(x) = U_mu(x) U_nu(x+mu) U_mu(x+nu)^dagger U_nu(x)^dagger``.
* Wilson action (K. G. Wilson, PRD 10 (1974) 2445): ``S = beta * sum_x sum_{mu<nu} (1 - Re tr U_P(x) / N)``.
* Staple sum ``A_mu(x) = sum_{nu != mu} [ U_nu(x+mu) U_mu(x+nu)^dagger U_nu(x)^dagger
  + U_nu(x+mu-nu)^dagger U_mu(x-nu)^dagger U_nu(x-nu) ]``: ``U_mu(x) A_mu(x)`` is the sum of the
  2(D-1) plaquettes through the link (each a cyclic permutation of a U_P or of its adjoint), so
  the part of S that depends on ``U_mu(x)`` is ``-(beta/N) Re tr(U_mu(x) A_mu(x))`` plus a constant.
* Force, in the conventions of :mod:`latticeml.groups` (inner product ``<X, Y> = -2 tr XY`` on
  su(N), generators ``tr T_a T_b = -delta_ab / 2``): ``F_mu(x) = sum_a T_a d/dt S(exp(t T_a) U_mu(x))|_0``.
  With ``M = U_mu(x) A_mu(x)``, ``d/dt S = -(beta/N) Re tr(T_a M)``; only the traceless
  anti-Hermitian part TA(M) contributes, ``Re tr(T_a M) = tr(T_a TA(M))``, and
  ``sum_a tr(T_a X) T_a = -X/2`` for X in su(N), so

      F_mu(x) = (beta / 2N) TA(U_mu(x) A_mu(x)),   TA(M) = (M - M^dagger)/2 - tr(M - M^dagger)/(2N).

  HMC with momenta ``P`` (kinetic energy ``-tr P^2``) integrates ``dU/dt = P U``, ``dP/dt = -F``.

Kernels
-------
Inside the kernels the links are viewed as ``(B, D, V, N, N)`` with the sites flattened in C order
and the neighbour tables of :mod:`latticeml.lattice`, so one kernel serves every D. The kernels
here work one site at a time for any N, built on the small matrix routines of
:mod:`latticeml._linalg` (the per-link staple :func:`staple_into` is what local updates use).
For N = 3 on lattices large enough for it to pay (``su3_fast.applies``: 2048 sites or more),
where the time goes, the public functions call :mod:`latticeml.theories.su3_fast` instead: the
same numbers (to rounding) from kernels vectorised over many sites in structure-of-arrays form,
which take ~25 s more to compile with an empty Numba cache than a small run saves.

The theory as one unit
----------------------
:class:`SUNFields` holds what every SU(N) gauge theory shares (links, Haar and cold starts, su(N)
momenta with ``K = -tr P^2``, the molecular-dynamics drift :func:`evolve`, the observables:
plaquette, Polyakov loop, 2x2 Wilson loop). :class:`SUN` (registered as ``"sun"``, with
:class:`SU2` and :class:`SU3` as ``"su2"`` and ``"su3"``; :mod:`latticeml.theories.base`) adds the
Wilson action and its local updates, whose kernels (Metropolis, Creutz/Kennedy-Pendleton and
Cabibbo-Marinari heatbath, overrelaxation) are in :mod:`latticeml.theories.sun_local`. The
improved (plaquette + rectangle) actions are theories of their own,
:class:`latticeml.theories.improved.ImprovedSUN`.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit

from .. import groups
from .._linalg import add_into, adj_mul, copy_into, mat_mul, mat_mul_adj, re_trace_mul_adj, traceless_antihermitian_into
from .._threads import run_chunks
from ..checks import check_rng, finite_float, gauge_links
from ..lattice import _planes_array, check_shape, neighbour_table, planes
from ..observables import loops
from . import su3_fast
from .base import ACTION_PARAMETERS, Parameter, Theory, register_theory

__all__ = [
    "SUNFields",
    "SUN",
    "SU2",
    "SU3",
    "evolve",
    "planes",
    "plaquette_field",
    "mean_plaquette",
    "action",
    "staples",
    "force",
    "staple_into",
    "hot_start",
    "cold_start",
]


# ----------------------------------------------------------------------------- input checks


def _links(U, batched: bool, check: bool):
    """Validated SU(N) links (:func:`latticeml.checks.gauge_links`), tested for SU(N) if ``check``."""
    links = gauge_links(U, batched=batched, group="su")
    if check:
        groups.check_special_unitary(links.flat, name="links")
    return links


# ----------------------------------------------------------------------------- any N, one site at a time


@njit(inline="always", cache=True)
def staple_into(U, fwd, bwd, mu, s, out, work):
    """out = A_mu(x), the staple sum of link (mu, s) (module docstring), for flat links ``U`` (D, V, N, N).

    ``out`` is (N, N) complex128 and ``work`` a (2, N, N) complex128 scratch array; neither may
    alias U. Cost: 4 (D - 1) matrix products.
    """
    D = U.shape[0]
    n = out.shape[0]
    for i in range(n):
        for j in range(n):
            out[i, j] = 0.0
    xp = fwd[s, mu]
    for nu in range(D):
        if nu == mu:
            continue
        xm = bwd[s, nu]
        # upper: U_nu(x+mu) U_mu(x+nu)^+ U_nu(x)^+
        mat_mul_adj(U[nu, xp], U[mu, fwd[s, nu]], work[0])
        mat_mul_adj(work[0], U[nu, s], work[1])
        add_into(work[1], out)
        # lower: U_nu(x+mu-nu)^+ U_mu(x-nu)^+ U_nu(x-nu) = (U_mu(x-nu) U_nu(x+mu-nu))^+ U_nu(x-nu)
        mat_mul(U[mu, xm], U[nu, bwd[xp, nu]], work[0])
        adj_mul(work[0], U[nu, xm], work[1])
        add_into(work[1], out)


# The chunk kernels below (serial, nogil: latticeml._threads.run_chunks runs their chunks on
# threads) stay small and call plain @njit functions for the work of one site or link: each such
# function is compiled and cached once, whichever kernels call it, and a call costs nothing next
# to the work of a site.


@njit(cache=True)
def _plaquettes_at(U, fwd, plane_list, s, field, store, w0, w1):
    """Sum over planes of Re tr U_P(x) / N at site s of one configuration U (D, V, N, N); field (P, V) if store."""
    N = U.shape[-1]
    acc = 0.0
    for p in range(plane_list.shape[0]):
        mu = plane_list[p, 0]
        nu = plane_list[p, 1]
        # Re tr(U_mu(x) U_nu(x+mu) [U_nu(x) U_mu(x+nu)]^+)
        mat_mul(U[mu, s], U[nu, fwd[s, mu]], w0)
        mat_mul(U[nu, s], U[mu, fwd[s, nu]], w1)
        val = re_trace_mul_adj(w0, w1) / N
        acc += val
        if store:
            field[p, s] = val
    return acc


@njit(nogil=True, cache=True)
def _plaquette_chunk(U, fwd, plane_list, field, store, start, stop):
    """Per-configuration sums (B,) of Re tr U_P / N over sites ``start <= idx < stop`` of the B * V.

    ``field[b, p, s] = Re tr U_P / N`` as well if ``store``. A chunk of
    :func:`latticeml._threads.run_chunks`.
    """
    B, D, V, N, _ = U.shape
    partial = np.zeros(B)
    w0 = np.empty((N, N), dtype=np.complex128)
    w1 = np.empty((N, N), dtype=np.complex128)
    for idx in range(start, stop):
        b = idx // V
        partial[b] += _plaquettes_at(U[b], fwd, plane_list, idx - b * V, field[b], store, w0, w1)
    return partial


@njit(cache=True)
def _staple_or_force_at(U, fwd, bwd, mu, s, scale, want_force, out, a, m, work):
    """out = A_mu(s), or scale * TA(U_mu(s) A_mu(s)) if want_force, for one configuration U (D, V, N, N).

    One call site of the inlined staple_into, not one per branch: it is most of the code, and
    two copies of it doubled this kernel's compile time.
    """
    staple_into(U, fwd, bwd, mu, s, a, work)
    if want_force:
        mat_mul(U[mu, s], a, m)
        traceless_antihermitian_into(m, scale, out)
    else:
        copy_into(a, out)


@njit(nogil=True, cache=True)
def _staples_chunk(U, fwd, bwd, scale, want_force, out, start, stop):
    """out[b, mu, s] = A_mu(s), or scale * TA(U_mu(s) A_mu(s)) if want_force, for links ``start <= idx < stop``."""
    B, D, V, N, _ = U.shape
    work = np.empty((2, N, N), dtype=np.complex128)
    a = np.empty((N, N), dtype=np.complex128)
    m = np.empty((N, N), dtype=np.complex128)
    for idx in range(start, stop):
        b = idx // (D * V)
        mu = (idx // V) % D
        s = idx % V
        _staple_or_force_at(U[b], fwd, bwd, mu, s, scale, want_force, out[b, mu, s], a, m, work)


# ----------------------------------------------------------------------------- public API


def _plaquette_sums(U, batched, check, store):
    """(field (B, n_planes, V) if store, sums (B,) of Re tr U_P / N, lattice shape, plaquettes per configuration)."""
    links = _links(U, batched, check)
    B, V = links.B, links.V
    plane_list = _planes_array(links.D)
    field = np.empty((B, len(plane_list), V) if store else (B, 0, 0))
    sums = np.empty(B)
    if su3_fast.applies(links.N, B * V):
        su3_fast.plaquette_sums(links.flat, links.shape, field, store, sums)
    else:
        fwd, _ = neighbour_table(links.shape)
        sums[:] = np.sum(run_chunks("sun", B * V, _plaquette_chunk, links.flat, fwd, plane_list, field, store), axis=0)
    return field, sums, links.shape, len(plane_list) * V


def plaquette_field(U, *, batched: bool = False, check: bool = True) -> np.ndarray:
    """``Re tr U_P(x) / N`` for every plane and site: shape ``(n_planes, *shape)`` (``(B, n_planes, *shape)`` if batched).

    Plane ``p`` is ``planes(D)[p]``. ``check=False`` skips the SU(N) test of the links (it costs
    more than the plaquettes themselves on large lattices; use it inside samplers).
    """
    field, _, shape, _ = _plaquette_sums(U, batched, check, True)
    field = field.reshape(field.shape[:2] + shape)
    return field if batched else field[0]


def mean_plaquette(U, *, batched: bool = False, check: bool = True):
    """``<Re tr U_P / N>`` over sites and planes: a float (``(B,)`` if batched)."""
    _, sums, _, n = _plaquette_sums(U, batched, check, False)
    mean = sums / n
    return mean if batched else float(mean[0])


def action(U, *, beta: float, batched: bool = False, check: bool = True):
    """Wilson action ``S = beta * sum_{x, mu<nu} (1 - Re tr U_P(x) / N)``: a float (``(B,)`` if batched)."""
    beta = finite_float(beta)
    _, sums, _, n = _plaquette_sums(U, batched, check, False)
    S = beta * (n - sums)
    return S if batched else float(S[0])


def _staples_or_force(U, batched, check, beta, want_force):
    links = _links(U, batched, check)
    scale = beta / (2.0 * links.N)
    out = np.empty_like(links.flat)
    if su3_fast.applies(links.N, links.B * links.V):
        su3_fast.staples_or_force(links.flat, links.shape, scale, want_force, out)
    else:
        fwd, bwd = neighbour_table(links.shape)
        n_links = links.B * links.D * links.V
        run_chunks("sun", n_links, _staples_chunk, links.flat, fwd, bwd, scale, want_force, out, size=links.B * links.V)
    return links.restore(out)


def staples(U, *, batched: bool = False, check: bool = True) -> np.ndarray:
    """Staple sums ``A_mu(x)`` (module docstring), same shape as ``U``.

    ``-(beta/N) Re tr(U_mu(x) A_mu(x))`` is the part of the action that depends on ``U_mu(x)``.
    """
    return _staples_or_force(U, batched, check, 1.0, False)


def force(U, *, beta: float, batched: bool = False, check: bool = True) -> np.ndarray:
    """``F_mu(x) = (beta / 2N) TA(U_mu(x) A_mu(x))``, the su(N)-valued gradient of the action (module docstring).

    Same shape as ``U``. Its components ``f_a = -2 tr(T_a F)`` are ``d/dt S(exp(t T_a) U_mu(x))`` at t = 0.
    """
    return _staples_or_force(U, batched, check, finite_float(beta), True)


def hot_start(rng: np.random.Generator, shape, N: int, *, batch: int | None = None) -> np.ndarray:
    """Haar-random SU(N) links, shape ``(D, *shape, N, N)`` (or ``(batch, D, *shape, N, N)``)."""
    check_rng(rng)
    shape = _gauge_shape(shape)
    lead = (len(shape),) if batch is None else (int(batch), len(shape))
    return groups.haar_su(rng, N, lead + shape)


def cold_start(shape, N: int, *, batch: int | None = None) -> np.ndarray:
    """All links the identity, shape ``(D, *shape, N, N)`` (or ``(batch, D, *shape, N, N)``)."""
    shape = _gauge_shape(shape)
    if int(N) != N or N < 2:
        raise ValueError(f"SU(N) needs an integer N >= 2, got N={N}")
    N = int(N)
    lead = (len(shape),) if batch is None else (int(batch), len(shape))
    out = np.zeros(lead + shape + (N, N), dtype=np.complex128)
    out[..., np.arange(N), np.arange(N)] = 1.0
    return out


def _gauge_shape(shape):
    shape = check_shape(shape)
    if len(shape) < 2:
        raise ValueError(f"an SU(N) gauge field needs D >= 2 lattice dimensions, got shape {shape}")
    return shape


# ----------------------------------------------------------------------------- molecular dynamics


@functools.cache
def _evolve_chunk(N: int):
    """The drift kernel for SU(N) with N a compile-time constant (:func:`latticeml.groups.expm_algebra_into`).

    ``kernel(U, P, eps, out, start, stop)``: ``out_m = exp(eps P_m) U_m``, re-unitarised, for links
    ``start <= m < stop`` of U, P, out (M, N, N). One pass over the links fuses the exponential
    (:func:`latticeml.groups.expm_algebra_into`), the product and a re-unitarisation
    (:func:`latticeml.groups.restore_special_unitary_into`). Without the last, rounding drift grows
    with the number of MD steps (measured: |U U^dagger - 1| reaches 4e-14 after 300 SU(3)
    trajectories of 10 steps); with it links stay in SU(N) to ~1e-15 forever. Every link is
    computed independently, so the result does not depend on the chunks.
    """

    @njit(nogil=True, cache=True)
    def evolve_chunk(U, P, eps, out, start, stop):
        X = np.empty((N, N), dtype=np.complex128)
        E = np.empty((N, N), dtype=np.complex128)
        work1 = np.empty((N, N), dtype=np.complex128)
        work2 = np.empty((N, N), dtype=np.complex128)
        for m in range(start, stop):
            _drift_link(U[m], P[m], eps, out[m], X, E, work1, work2, N)

    return evolve_chunk


@njit(inline="always", cache=True)
def _drift_link(U, P, eps, out, X, E, work1, work2, n):
    """``out = exp(eps P) U``, re-unitarised, for one link (X, E, work1, work2: (N, N) scratch)."""
    for i in range(n):
        for j in range(n):
            X[i, j] = eps * P[i, j]
    groups.expm_algebra_into(X, E, work1, work2, n)
    mat_mul(E, U, out)
    groups.restore_special_unitary_into(out, n)


def evolve(U, P, eps: float) -> np.ndarray:
    """The molecular-dynamics drift ``exp(eps P) U`` link by link, re-unitarised (a new array, shape of U).

    ``U`` SU(N) links and ``P`` su(N) momenta of the same shape ``(..., N, N)``; HMC's ``dU/dt = P U``.
    """
    U = np.ascontiguousarray(U, dtype=np.complex128)
    P = np.ascontiguousarray(P, dtype=np.complex128)
    if P.shape != U.shape:
        raise ValueError(f"momenta must have the shape of the links {U.shape}, got {P.shape}")
    N = U.shape[-1]
    links, momenta = U.reshape(-1, N, N), P.reshape(-1, N, N)
    out = np.empty_like(links)
    run_chunks("matrices", links.shape[0], _evolve_chunk(N), links, momenta, float(eps), out)
    return out.reshape(U.shape)


# ----------------------------------------------------------------------------- the theories


class SUNFields(Theory):
    """What every SU(N) gauge theory shares: links, starts, momenta, the drift, observables.

    Links complex128 ``(D, *shape, N, N)``, D >= 2; momenta su(N)-valued, ``K = -tr P^2``.
    Subclasses give the action (``beta`` and ``N`` are set here). The name is ``"su2"``,
    ``"su3"`` or ``"sun"`` by N, as :func:`latticeml.theories.make_theory` spells it.
    """

    family = "sun"

    def __init__(self, shape, *, beta: float, N: int, backend: str = "cpu"):
        super().__init__(shape, backend=backend)
        if self.dim < 2:
            raise ValueError(f"a gauge theory needs D >= 2 dimensions, got shape {self.shape}")
        if isinstance(N, bool) or int(N) != N or N < 2:
            raise ValueError(f"SU(N) needs an integer N >= 2, got N={N}")
        self.beta, self.N = finite_float(beta, "beta"), int(N)
        self.name = {2: "su2", 3: "su3"}.get(self.N, "sun")

    @property
    def couplings(self):
        return {"beta": self.beta} if self.name != "sun" else {"beta": self.beta, "N": self.N}

    field_dtype = np.dtype(np.complex128)

    @property
    def field_shape(self) -> tuple:
        return (self.dim,) + self.shape + (self.N, self.N)

    @property
    def local_variables(self) -> int:
        """Links a local sweep visits."""
        return self.dim * self.volume

    def check_field(self, field):
        field = np.asarray(field)
        want = (self.dim,) + self.shape + (self.N, self.N)
        if field.shape != want:
            raise ValueError(f"SU({self.N}) links must have shape (D, *shape, N, N) = {want}, got {field.shape}")
        if field.dtype != np.complex128:
            raise TypeError(f"SU(N) links must be complex128, got dtype {field.dtype}")
        groups.check_special_unitary(field)
        return np.ascontiguousarray(field)

    def hot_start(self, rng):
        return hot_start(rng, self.shape, self.N)

    def cold_start(self):
        return cold_start(self.shape, self.N)

    def random_momentum(self, rng):
        return groups.random_algebra(rng, self.N, (self.dim,) + self.shape)

    def kinetic_energy(self, p) -> float:
        # K = -tr P^2 = sum_ij |P_ij|^2 = 1/2 sum_a p_a^2 for anti-Hermitian P (groups.py conventions)
        return float(np.vdot(p, p).real)

    def evolve(self, field, p, eps):
        return self.kernels.evolve(field, p, eps)

    # Samplers call these on fields that check_field validated and that every update keeps in
    # SU(N), so the unitarity test (which costs more than the kernels themselves) is skipped.
    def observables(self, field):
        obs = {"plaquette": float(self.kernels.mean_plaquette(field, check=False))}
        obs["polyakov_loop"] = float(abs(loops.polyakov_loop_mean(field)))
        if all(L > 2 for L in self.shape):
            obs["wilson_loop_2x2"] = float(loops.wilson_loop(field, 2, 2))
        return obs


@register_theory("sun")
class SUN(SUNFields):
    """SU(N) with the Wilson action ``beta sum_P (1 - Re tr U_P / N)`` (module docstring).

    Local updates (:mod:`latticeml.theories.sun_local`): Metropolis, heatbath (Creutz /
    Kennedy-Pendleton, Cabibbo-Marinari), overrelaxation. ``make_theory(..., action="iwasaki")``
    (or ``c1=...``) builds the improved-action theory instead
    (:class:`latticeml.theories.improved.ImprovedSUN`, sampled by HMC).
    """

    local_family = "sun_local"
    parameters = (
        Parameter("beta", "float", "gauge coupling beta (finite)"),
        Parameter("N", "int", "number of colours N >= 2"),
        *ACTION_PARAMETERS,
    )
    local_updates = frozenset({"metropolis", "heatbath", "overrelax"})
    #: default Metropolis spread of the algebra element (acceptance ~0.5 for SU(3) at beta ~ 6)
    metropolis_step_size = 0.3
    #: N fixed by the registry name (su2, su3), or None (sun: N is a coupling)
    colours: int | None = None

    @classmethod
    def from_couplings(cls, name, shape, *, backend="cpu", action="wilson", c1=0.0, **couplings):
        from .improved import ImprovedSUN, rectangle_coefficient

        c1 = rectangle_coefficient(action, c1)
        if c1 == 0.0:
            return cls(shape, backend=backend, **couplings)
        N = couplings.pop("N", cls.colours)
        return ImprovedSUN(shape, backend=backend, N=N, c1=c1, **couplings)

    def describe(self):
        return f"{self.name} (Wilson action)"

    def action(self, field):
        return float(self.kernels.action(field, beta=self.beta, check=False))

    def force(self, field):
        return self.kernels.force(field, beta=self.beta, check=False)

    def metropolis_sweep(self, rng, field, *, step_size: float, hits: int) -> float:
        return self.local_kernels.metropolis_sweep(rng, field, beta=self.beta, step_size=step_size, hits=hits)

    def heatbath_sweep(self, rng, field) -> float:
        return self.local_kernels.heatbath_sweep(rng, field, beta=self.beta)

    def overrelax_sweep(self, field) -> None:
        self.local_kernels.overrelax_sweep(field)


@register_theory("su2")
class SU2(SUN):
    """SU(2) with the Wilson action: :class:`SUN` with N = 2 (the registry entry ``"su2"``)."""

    parameters = (Parameter("beta", "float", "gauge coupling beta (finite)"), *ACTION_PARAMETERS)
    colours = 2

    def __init__(self, shape, *, beta: float, backend: str = "cpu"):
        super().__init__(shape, beta=beta, N=2, backend=backend)


@register_theory("su3")
class SU3(SUN):
    """SU(3) with the Wilson action: :class:`SUN` with N = 3 (the registry entry ``"su3"``)."""

    parameters = SU2.parameters
    colours = 3

    def __init__(self, shape, *, beta: float, backend: str = "cpu"):
        super().__init__(shape, beta=beta, N=3, backend=backend)
