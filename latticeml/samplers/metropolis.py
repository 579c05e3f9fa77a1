"""Local Metropolis updates on a checkerboard: phi^4, U(1) and SU(N) in any dimension.

Algorithm
---------
N. Metropolis, A. W. Rosenbluth, M. N. Rosenbluth, A. H. Teller, E. Teller, J. Chem. Phys. 21
(1953) 1087. One site (or link) at a time, a new value is proposed from a symmetric distribution
around the old one and accepted with probability ``min(1, exp(-dS))``, where ``dS`` is the change
of the action; only the terms that touch the site enter ``dS``. ``hits`` proposals are made in a
row at every site before moving on (the neighbourhood, i.e. the staple, is computed once).

Proposals (all symmetric, as detailed balance with a plain ``min(1, exp(-dS))`` needs):

* phi^4:  ``phi(x) -> phi(x) + step_size * u``, ``u`` uniform in ``[-1, 1)``;
* U(1):   ``theta -> theta + step_size * u``, ``u`` uniform in ``[-1, 1)``, re-wrapped into ``(-pi, pi]``;
* SU(N):  ``U -> R U`` with ``R = exp(step_size * sum_a p_a T_a)``, ``p_a ~ N(0, 1)``, the law of
  :func:`latticeml.groups.random_near_identity` (``R`` and ``R^dagger`` are equally likely).
  The link is re-unitarised after its update, so links stay in SU(N) to 1e-15.

The local action terms are those of :mod:`latticeml.theories`: phi^4 in the Albergo-Kanwar-
Shanahan form (:func:`latticeml.theories.phi4.local_delta_action`), the U(1) link part
``-beta Re(exp(i theta) A)`` and the SU(N) link part ``-(beta/N) Re tr(U A)`` with the staple
sums ``A`` of :func:`latticeml.theories.u1.staple_at` and :func:`latticeml.theories.sun.staple_into`.

Ordering and parallelism
------------------------
A sweep visits the even sites, then the odd ones (:func:`latticeml.lattice.checkerboard_sites`,
every extent must be even); for gauge fields it does so for ``mu = 0, ..., D-1`` in turn. The
sites (links ``U_mu(x)`` at fixed ``mu``) of one colour do not interact, so they are updated in
parallel (``prange``). The random numbers of the whole sweep are drawn beforehand from the one
``rng``, in a fixed order, and each site reads its own: the chain is bit-for-bit the same for a
given seed whatever the number of threads.

Shapes
------
Fields as in :mod:`latticeml.theories.models`: phi^4 ``shape``; U(1) ``(D, *shape)`` float64
angles in ``(-pi, pi]``; SU(N) ``(D, *shape, N, N)`` complex128. Inside the kernels the sites are
flattened (``(V,)``, ``(D, V)``, ``(D, V, N, N)``) and the neighbour tables of
:func:`latticeml.lattice.neighbour_table` give ``x +- mu``.

API (the blackjax pattern of :mod:`latticeml.samplers.chain`)
--------------------------------------------------------------
``init(field, theory) -> State``, ``step(rng, state, theory, *, step_size, hits) -> (State, Info)``
(pure: the input state is never modified), and ``sampler(theory, *, step_size=None, hits=1)``
which binds them into a :class:`latticeml.samplers.chain.Sampler`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .. import groups
from .._linalg import copy_into, mat_mul, re_trace_mul
from .._threads import _n_chunks, _threads_for
from ..lattice import checkerboard_sites, neighbour_table
from ..theories.models import SUN, U1, Phi4
from ..theories.phi4 import local_delta_action
from ..theories.sun import staple_into
from ..theories.u1 import staple_at
from .chain import Sampler

__all__ = ["State", "Info", "DEFAULT_STEP_SIZE", "init", "step", "sampler"]

#: Proposal widths used when ``step_size`` is not given, chosen for acceptances of roughly
#: 0.4 - 0.7 at typical couplings (phi^4 near the Albergo et al. point, U(1) at beta ~ 1 - 4,
#: SU(3) at beta ~ 6). Tune ``step_size`` for your coupling: the acceptance is in ``Info``.
DEFAULT_STEP_SIZE = {"phi4": 1.0, "u1": 1.0, "sun": 0.3}


class State(NamedTuple):
    """State of a local-update chain: just the configuration.

    field: the current field (shape and dtype of the theory, see the module docstring).
    """

    field: np.ndarray


class Info(NamedTuple):
    """What one Metropolis step (one sweep) reports.

    acceptance:  fraction of the ``n_proposals`` proposals that were accepted.
    n_proposals: number of proposals in the sweep, ``hits * V`` (phi^4) or ``hits * D * V`` (links).
    """

    acceptance: float
    n_proposals: int


# ----------------------------------------------------------------------------- shared helpers


@functools.lru_cache(maxsize=32)
def _sublattices_cached(shape: tuple) -> np.ndarray:
    even, odd = checkerboard_sites(shape)
    sites = np.ascontiguousarray(np.stack([even, odd]))
    sites.setflags(write=False)
    return sites


def sublattices(shape) -> np.ndarray:
    """Flat site indices of the two checkerboard colours, int64 ``(2, V/2)`` (even row first).

    Raises ValueError (from :func:`latticeml.lattice.checkerboard_sites`) unless every extent is even.
    """
    return _sublattices_cached(tuple(int(L) for L in shape))


def theory_kind(theory) -> str:
    """``"phi4"``, ``"u1"`` or ``"sun"`` for the theory objects of :mod:`latticeml.theories.models`."""
    if isinstance(theory, Phi4):
        return "phi4"
    if isinstance(theory, U1):
        return "u1"
    if isinstance(theory, SUN):
        return "sun"
    raise TypeError(
        f"expected a theory from latticeml.theories.models (Phi4, U1, SUN; see make_theory), got {type(theory).__name__}"
    )


def check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    return rng


def check_count(name: str, value, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


#: Sites (links) per checkerboard colour below which the parallel kernels run on one thread.
#: On an idle 2-core machine two threads gain 1.3-1.4x on small lattices (phi^4 16^2 to 64^2,
#: SU(3) 4^4) and 1.8-2x from 64^2 (U(1)) or 8^4 (SU(3)) up (``bench_local_updates.py
#: --crossover``); on an oversubscribed machine every parallel region waits for a descheduled
#: thread and small lattices run 10-100x slower. So only lattices where the gain is large go parallel.
PARALLEL_MIN_SITES = {"phi4": 2048, "u1": 2048, "sun": 256}


def threads_for(kind: str, n_sites: int):
    """Run the enclosed kernels on one thread if a colour has fewer than ``PARALLEL_MIN_SITES[kind]`` sites.

    Results do not depend on the number of threads (each site reads its own random numbers), only
    the speed does.
    """
    return _threads_for(n_sites, PARALLEL_MIN_SITES[kind])


def chunk_count(n_sites: int) -> int:
    """Work chunks for a prange over ``n_sites`` sites: 8 per thread."""
    return _n_chunks(n_sites, per_thread=8)


@njit(inline="always", cache=True)
def wrap(t):
    """Map an angle into (-pi, pi] (the convention of :func:`latticeml.groups.wrap_angle`)."""
    w = t - 2.0 * np.pi * np.floor((t + np.pi) / (2.0 * np.pi))  # in [-pi, pi)
    if w <= -np.pi:
        w = np.pi
    return w


def working_copy(field, theory) -> np.ndarray:
    """A C-contiguous copy of ``field`` that a kernel may update in place (the input stays untouched).

    phi^4 and U(1) fields go through ``theory.check_field``; SU(N) links are checked for shape and
    dtype only (the unitarity test of ``check_field`` costs as much as a sweep: ``init`` does it once).
    """
    if theory_kind(theory) == "sun":
        field = np.asarray(field)
        if field.shape != (theory.dim,) + theory.shape + (theory.N, theory.N) or field.dtype != np.complex128:
            theory.check_field(field)  # raises the theory's own, explanatory error
        return np.array(field, order="C", copy=True)
    return np.array(theory.check_field(field), order="C", copy=True)


@njit(inline="always", cache=True)
def restore_special_unitary(u):
    """Remove rounding drift: for SU(2) rebuild row 1 from row 0 as (-conj u01, conj u00); else Gram-Schmidt."""
    if u.shape[0] == 2:
        nrm = np.sqrt(u[0, 0].real ** 2 + u[0, 0].imag ** 2 + u[0, 1].real ** 2 + u[0, 1].imag ** 2)
        u[0, 0] /= nrm
        u[0, 1] /= nrm
        u[1, 0] = -u[0, 1].conjugate()
        u[1, 1] = u[0, 0].conjugate()
    else:
        groups.reunitarize_into(u)


def init(field, theory) -> State:
    """Validate ``field`` for ``theory`` and wrap it in a :class:`State` (a private copy)."""
    theory_kind(theory)
    return State(np.array(theory.check_field(field), order="C", copy=True))


# ----------------------------------------------------------------------------- kernels


@njit(parallel=True, cache=True)
def _phi4_sweep(phi, fwd, bwd, sites, m2, lam, step_size, shifts, uniforms, accepted):
    """One checkerboard sweep over the flat field ``phi`` (V,), in place.

    shifts, uniforms: (2, V/2, hits) uniforms in [0, 1) for the proposals and the accept tests;
    accepted: (2, V/2) int64 output, accepted proposals per site.
    """
    hits = shifts.shape[2]
    for p in range(2):
        for i in prange(sites.shape[1]):
            s = sites[p, i]
            n_acc = 0
            for h in range(hits):
                new = phi[s] + step_size * (2.0 * shifts[p, i, h] - 1.0)
                dS = local_delta_action(phi, fwd, bwd, s, new, m2, lam)
                if dS <= 0.0 or uniforms[p, i, h] < np.exp(-dS):
                    phi[s] = new
                    n_acc += 1
            accepted[p, i] = n_acc


@njit(parallel=True, cache=True)
def _u1_sweep(theta, fwd, bwd, sites, beta, step_size, shifts, uniforms, accepted):
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
                theta[mu, s] = wrap(old)
                accepted[mu, p, i] = n_acc


@njit(cache=True)
def _near_identity(p, generators, spread, out):
    """out[k] = exp(spread * sum_a p[k, a] T_a): the matrices of :func:`latticeml.groups.random_near_identity`
    for the normals ``p`` (K, N^2 - 1), built without NumPy temporaries (``from_components``' complex
    tensordot is slow for these thin products, and BLAS threads stall on a busy machine)."""
    K, n_gen = p.shape
    N = generators.shape[1]
    x = np.empty((N, N), dtype=np.complex128)
    work1 = np.empty((N, N), dtype=np.complex128)
    work2 = np.empty((N, N), dtype=np.complex128)
    for k in range(K):
        for i in range(N):
            for j in range(N):
                x[i, j] = 0.0
        for a in range(n_gen):
            c = spread * p[k, a]
            for i in range(N):
                for j in range(N):
                    x[i, j] += c * generators[a, i, j]
        if N == 2:
            groups.expm_su2_into(x, out[k])
        elif N == 3:
            groups.expm_su3_into(x, out[k])
        else:
            groups.expm_taylor_into(x, out[k], work1, work2)


def near_identity_proposals(rng, N: int, size: tuple, spread: float) -> np.ndarray:
    """SU(N) proposals ``exp(spread * sum_a p_a T_a)``, ``p_a ~ N(0, 1)``, shape ``(*size, N, N)``.

    The same draws, and to rounding the same matrices, as ``groups.random_near_identity(rng, N, size, spread=spread)``.
    """
    p = rng.standard_normal(tuple(size) + (N * N - 1,))
    out = np.empty(tuple(size) + (N, N), dtype=np.complex128)
    _near_identity(p.reshape(-1, N * N - 1), np.ascontiguousarray(groups.su_generators(N)), spread, out.reshape(-1, N, N))
    return out


@njit(parallel=True, cache=True)
def _sun_sweep(U, fwd, bwd, sites, beta, proposals, uniforms, nchunk, accepted):
    """One sweep over the flat links ``U`` (D, V, N, N), in place.

    Proposal ``U' = R U`` with ``R = proposals[mu, p, i, h]`` (N, N), near-identity SU(N) matrices
    (:func:`near_identity_proposals`); ``dS = -(beta/N) [Re tr(U' A) - Re tr(U A)]``.
    uniforms: (D, 2, V/2, hits); accepted: (D, 2, V/2) int64. The sites of a colour are cut into
    ``nchunk`` chunks (a few per thread) so that each thread allocates its work space once per
    chunk; the result does not depend on nchunk.
    """
    D, V, N, _ = U.shape
    half = sites.shape[1]
    hits = uniforms.shape[3]
    scale = beta / N
    for mu in range(D):
        for p in range(2):
            for c in prange(nchunk):
                # per-thread work space, allocated once per chunk of sites
                a = np.empty((N, N), dtype=np.complex128)
                trial = np.empty((N, N), dtype=np.complex128)
                work = np.empty((2, N, N), dtype=np.complex128)
                for i in range(c * half // nchunk, (c + 1) * half // nchunk):
                    s = sites[p, i]
                    link = U[mu, s]
                    staple_into(U, fwd, bwd, mu, s, a, work)
                    old = re_trace_mul(link, a)
                    n_acc = 0
                    for h in range(hits):
                        mat_mul(proposals[mu, p, i, h], link, trial)
                        new = re_trace_mul(trial, a)
                        dS = -scale * (new - old)
                        if dS <= 0.0 or uniforms[mu, p, i, h] < np.exp(-dS):
                            copy_into(trial, link)
                            old = new
                            n_acc += 1
                    if n_acc > 0:
                        restore_special_unitary(link)
                    accepted[mu, p, i] = n_acc


# ----------------------------------------------------------------------------- public API


def _check_settings(theory, step_size, hits) -> tuple[float, int]:
    kind = theory_kind(theory)
    if step_size is None:
        step_size = DEFAULT_STEP_SIZE[kind]
    if isinstance(step_size, bool) or not isinstance(step_size, (int, float, np.integer, np.floating)):
        raise TypeError(f"step_size must be a positive number, got {step_size!r}")
    step_size = float(step_size)
    if not (np.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be a positive finite number (the proposal width), got {step_size}")
    hits = check_count("hits (Metropolis proposals per site and sweep)", hits, minimum=1)
    return step_size, hits


def step(rng: np.random.Generator, state: State, theory, *, step_size: float | None = None, hits: int = 1):
    """One checkerboard Metropolis sweep: returns ``(State, Info)``; ``state`` is left untouched.

    The random numbers of the sweep are drawn first, in this order (``half = V/2``; site ``i`` of
    colour ``p`` is ``sublattices(shape)[p, i]``):

    * phi^4: proposal uniforms ``rng.random((2, half, hits))``, then accept uniforms of the same shape;
    * U(1):  proposal uniforms ``rng.random((D, 2, half, hits))``, then accept uniforms (same shape);
    * SU(N): proposals as ``groups.random_near_identity(rng, N, (D, 2, half, hits), spread=step_size)``
      (the normals ``rng.standard_normal((D, 2, half, hits, N^2 - 1))``), then accept uniforms
      ``rng.random((D, 2, half, hits))``.
    """
    check_rng(rng)
    step_size, hits = _check_settings(theory, step_size, hits)
    kind = theory_kind(theory)
    field = working_copy(state.field, theory)
    sites = sublattices(theory.shape)
    fwd, bwd = neighbour_table(theory.shape)
    half = sites.shape[1]
    if kind == "phi4":
        shifts = rng.random((2, half, hits))
        uniforms = rng.random((2, half, hits))
        accepted = np.empty((2, half), dtype=np.int64)
        with threads_for(kind, half):
            _phi4_sweep(field.reshape(-1), fwd, bwd, sites, theory.m2, theory.lam, step_size, shifts, uniforms, accepted)
    elif kind == "u1":
        D = theory.dim
        shifts = rng.random((D, 2, half, hits))
        uniforms = rng.random((D, 2, half, hits))
        accepted = np.empty((D, 2, half), dtype=np.int64)
        with threads_for(kind, half):
            _u1_sweep(field.reshape(D, -1), fwd, bwd, sites, theory.beta, step_size, shifts, uniforms, accepted)
    else:
        D, N = theory.dim, theory.N
        proposals = near_identity_proposals(rng, N, (D, 2, half, hits), step_size)
        uniforms = rng.random((D, 2, half, hits))
        accepted = np.empty((D, 2, half), dtype=np.int64)
        with threads_for(kind, half):
            _sun_sweep(field.reshape(D, -1, N, N), fwd, bwd, sites, theory.beta, proposals, uniforms, chunk_count(half), accepted)
    n_proposals = accepted.size * hits
    return State(field), Info(acceptance=float(accepted.sum()) / n_proposals, n_proposals=int(n_proposals))


def sampler(theory, *, step_size: float | None = None, hits: int = 1) -> Sampler:
    """Checkerboard Metropolis for ``theory`` (phi^4, U(1) or SU(N); see the module docstring).

    step_size: proposal width (phi^4 field units, U(1) radians, SU(N) spread of the algebra
               element); default :data:`DEFAULT_STEP_SIZE` for the theory.
    hits:      proposals per site (link) and sweep, >= 1.
    One ``step`` is one sweep over all sites (links).
    """
    step_size, hits = _check_settings(theory, step_size, hits)
    sublattices(theory.shape)  # every extent must be even for the checkerboard
    return Sampler(
        name="metropolis",
        theory=theory,
        settings={"step_size": step_size, "hits": hits},
        init=functools.partial(init, theory=theory),
        step=functools.partial(step, theory=theory, step_size=step_size, hits=hits),
    )
