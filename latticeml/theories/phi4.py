"""Real scalar phi^4 theory on a periodic lattice in any dimension D.

Fields and conventions
----------------------
* A field ``phi`` is a float64 array of the lattice shape ``(L0, ..., L{D-1})``; with
  ``batched=True`` the leading axis is a batch axis, ``(B, L0, ..., L{D-1})``, and every lattice
  function acts on each configuration separately (actions then return shape ``(B,)``).
* Primary form, as in M. S. Albergo, G. Kanwar, P. E. Shanahan, PRD 100 (2019) 034515
  [arXiv:1904.12072]::

      S(phi) = sum_x [ -2 sum_{mu=0}^{D-1} phi(x) phi(x + mu) + (2D + m2) phi(x)^2 + lam phi(x)^4 ]

  which equals ``sum_x [ sum_mu (phi(x + mu) - phi(x))^2 + m2 phi^2 + lam phi^4 ]``.
  Their production point is ``m2 = -4, lam = 8`` (2D); ``m2`` may be negative.
* Standard form (:func:`standard_action`)::

      S_std(phi) = sum_x [ 1/2 sum_mu (phi(x + mu) - phi(x))^2 + 1/2 m2 phi^2 + lam phi^4 ]

  so ``S(phi; m2, lam) = S_std(sqrt(2) phi; m2, lam / 4)`` and, at ``lam = 0``, ``S = 2 S_std``
  (two-point functions of the primary form are half those of the standard form).
* Hopping-parameter form (e.g. M. Luescher, P. Weisz, NPB 290 (1987) 25)::

      S_h(phih) = sum_x [ -2 kappa sum_mu phih(x) phih(x + mu) + phih^2 + lambda_h (phih^2 - 1)^2 ]

  With ``phi = sqrt(kappa) phih``: ``lambda_h = lam kappa^2``, ``m2 = (1 - 2 lambda_h) / kappa - 2D``,
  and ``S_h(phih) = S(phi) + V lambda_h`` (a constant). Inverting,
  ``kappa = [-(2D + m2) + sqrt((2D + m2)^2 + 8 lam)] / (4 lam)`` (``1 / (2D + m2)`` at ``lam = 0``);
  see :func:`to_hopping` and :func:`from_hopping`.

Inside the Numba kernels a configuration is flattened to ``(V,)`` and the neighbour tables
``fwd[s, mu]``, ``bwd[s, mu]`` of :func:`latticeml.lattice.neighbour_table` give ``x +- mu``,
so one kernel serves every D.

The theory as one unit
----------------------
:class:`Phi4` (registered as ``"phi4"``, :mod:`latticeml.theories.base`) binds the couplings to
these functions: action, force, starts, the observables it owns (magnetisation, susceptibility,
action density) and its local update, :func:`metropolis_sweep` (N. Metropolis et al., J. Chem.
Phys. 21 (1953) 1087): at every site in turn, ``hits`` proposals
``phi(x) -> phi(x) + step_size * u``, ``u`` uniform in ``[-1, 1)`` (symmetric), each accepted with
probability ``min(1, exp(-dS))``, ``dS`` from :func:`local_delta_action`. The sites of one
checkerboard colour do not interact, so they are updated in parallel; the random numbers of the
sweep are drawn beforehand in a fixed order and each site reads its own, so a chain does not
depend on the number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._threads import n_chunks, parallel_threads
from ..checks import check_count, check_rng, finite_float, positive_float
from ..lattice import check_shape, checkerboard_array, neighbour_table
from .base import Parameter, Theory, check_in_place, register_theory

__all__ = [
    "Phi4",
    "action",
    "action_density",
    "standard_action",
    "hopping_action",
    "force",
    "neighbour_sum",
    "local_delta_action",
    "metropolis_sweep",
    "evolve",
    "to_hopping",
    "from_hopping",
    "hot_start",
    "cold_start",
]


# ----------------------------------------------------------------------------- input checks


def _as_field(phi, batched: bool):
    """Validate a scalar field; return (float64 view (B, V), lattice shape, B)."""
    phi = np.asarray(phi)
    if phi.dtype.kind not in "iuf":
        raise TypeError(f"a phi^4 field must be real (float64), got dtype {phi.dtype}")
    lead = 1 if batched else 0
    if phi.ndim < lead + 1:
        raise ValueError(
            f"a phi^4 field must have shape {'(B, L0, ...)' if batched else '(L0, ...)'}, got shape {phi.shape}"
        )
    shape = check_shape(phi.shape[lead:])
    B = phi.shape[0] if batched else 1
    flat = np.ascontiguousarray(phi, dtype=np.float64).reshape(B, -1)
    return flat, shape, B


def _couplings(m2, lam) -> tuple[float, float]:
    m2, lam = finite_float(m2, "m2"), finite_float(lam, "lam")
    if lam < 0:
        raise ValueError(f"lam must be >= 0 (the action is unbounded below otherwise), got lam={lam}")
    return m2, lam


# ----------------------------------------------------------------------------- kernels


@njit(inline="always", cache=True)
def _neighbour_sum_at(phi, fwd, bwd, s):
    acc = 0.0
    for mu in range(fwd.shape[1]):
        acc += phi[fwd[s, mu]] + phi[bwd[s, mu]]
    return acc


@njit(inline="always", cache=True)
def local_delta_action(phi, fwd, bwd, s, new_value, m2, lam):
    """S(phi with phi[s] = new_value) - S(phi) for a flat field ``phi`` (V,), in the primary form.

    Only site s changes, so with n = sum_mu [phi(s + mu) + phi(s - mu)] (the hopping term couples
    s to both neighbours in every direction):
    dS = -2 n (new - old) + (2D + m2) (new^2 - old^2) + lam (new^4 - old^4).
    """
    old = phi[s]
    n = _neighbour_sum_at(phi, fwd, bwd, s)
    o2 = old * old
    n2 = new_value * new_value
    mass = 2.0 * fwd.shape[1] + m2
    return -2.0 * n * (new_value - old) + mass * (n2 - o2) + lam * (n2 * n2 - o2 * o2)


# Site loops run over sites in parallel and over the batch inside (no index division per site,
# one parallel region for the whole batch).


@njit(parallel=True, cache=True)
def _neighbour_sum_kernel(phi, fwd, bwd, out):
    B, V = phi.shape
    for s in prange(V):
        for b in range(B):
            out[b, s] = _neighbour_sum_at(phi[b], fwd, bwd, s)


@njit(inline="always", cache=True)
def _density_at(phi, fwd, s, hop, mass, quartic, const):
    """hop * phi(x) sum_mu phi(x + mu) + mass * phi^2 + quartic * phi^4 + const."""
    f = phi[s]
    fwd_sum = 0.0
    for mu in range(fwd.shape[1]):
        fwd_sum += phi[fwd[s, mu]]
    f2 = f * f
    return hop * f * fwd_sum + mass * f2 + quartic * f2 * f2 + const


@njit(parallel=True, cache=True)
def _action_kernel(phi, fwd, hop, mass, quartic, const, nchunk, sums):
    """sums[b] = sum_x density(x): every form of the action (primary, standard, hopping) is one of these.

    The sites are cut into nchunk chunks; each chunk sums its sites for every configuration.
    """
    B, V = phi.shape
    partial = np.zeros((nchunk, B))
    for c in prange(nchunk):
        for b in range(B):
            acc = 0.0
            for s in range(c * V // nchunk, (c + 1) * V // nchunk):
                acc += _density_at(phi[b], fwd, s, hop, mass, quartic, const)
            partial[c, b] = acc
    for b in range(B):
        sums[b] = partial[:, b].sum()


@njit(parallel=True, cache=True)
def _density_kernel(phi, fwd, hop, mass, quartic, const, out):
    B, V = phi.shape
    for s in prange(V):
        for b in range(B):
            out[b, s] = _density_at(phi[b], fwd, s, hop, mass, quartic, const)


@njit(parallel=True, cache=True)
def _force_kernel(phi, fwd, bwd, m2, lam, out):
    """dS/dphi(x) = -2 sum_mu [phi(x+mu) + phi(x-mu)] + 2 (2D + m2) phi(x) + 4 lam phi(x)^3."""
    B, V = phi.shape
    mass2 = 2.0 * (2.0 * fwd.shape[1] + m2)
    for s in prange(V):
        for b in range(B):
            f = phi[b, s]
            out[b, s] = -2.0 * _neighbour_sum_at(phi[b], fwd, bwd, s) + mass2 * f + 4.0 * lam * f * f * f


# ----------------------------------------------------------------------------- public API


def _finish_sum(sums, batched):
    return sums if batched else float(sums[0])


def action(phi, *, m2: float, lam: float, batched: bool = False):
    """Primary-form action ``S = sum_x [-2 sum_mu phi(x) phi(x+mu) + (2D + m2) phi^2 + lam phi^4]``.

    Returns a float, or an array ``(B,)`` if ``batched``.
    """
    m2, lam = _couplings(m2, lam)
    flat, shape, B = _as_field(phi, batched)
    fwd, _ = neighbour_table(shape)
    sums = np.empty(B)
    with parallel_threads("phi4", flat.size):
        _action_kernel(flat, fwd, -2.0, 2.0 * len(shape) + m2, lam, 0.0, n_chunks(flat.shape[1]), sums)
    return _finish_sum(sums, batched)


def action_density(phi, *, m2: float, lam: float, batched: bool = False) -> np.ndarray:
    """Per-site terms of :func:`action`, ``s(x) = -2 phi(x) sum_mu phi(x+mu) + (2D + m2) phi^2 + lam phi^4``.

    Same shape as ``phi``; ``action = action_density.sum()`` (per configuration).
    """
    m2, lam = _couplings(m2, lam)
    flat, shape, B = _as_field(phi, batched)
    fwd, _ = neighbour_table(shape)
    out = np.empty_like(flat)
    with parallel_threads("phi4", flat.size):
        _density_kernel(flat, fwd, -2.0, 2.0 * len(shape) + m2, lam, 0.0, out)
    return out.reshape(np.shape(phi))


def standard_action(phi, *, m2: float, lam: float = 0.0, batched: bool = False):
    """``S_std = sum_x [1/2 sum_mu (phi(x+mu) - phi(x))^2 + 1/2 m2 phi^2 + lam phi^4]`` (see the module docstring).

    Expanding the square, ``S_std = sum_x [-sum_mu phi(x) phi(x+mu) + (D + m2/2) phi^2 + lam phi^4]``.
    """
    m2, lam = _couplings(m2, lam)
    flat, shape, B = _as_field(phi, batched)
    fwd, _ = neighbour_table(shape)
    sums = np.empty(B)
    with parallel_threads("phi4", flat.size):
        _action_kernel(flat, fwd, -1.0, len(shape) + 0.5 * m2, lam, 0.0, n_chunks(flat.shape[1]), sums)
    return _finish_sum(sums, batched)


def hopping_action(phih, *, kappa: float, lambda_h: float, batched: bool = False):
    """Hopping-parameter form ``S_h = sum_x [-2 kappa sum_mu phih(x) phih(x+mu) + phih^2 + lambda_h (phih^2 - 1)^2]``.

    ``S_h(phih) = action(sqrt(kappa) phih; m2, lam) + V lambda_h`` with ``(m2, lam) = from_hopping(kappa, lambda_h, D)``.
    """
    kappa, lambda_h = _hopping_couplings(kappa, lambda_h)
    flat, shape, B = _as_field(phih, batched)
    fwd, _ = neighbour_table(shape)
    sums = np.empty(B)
    # (phih^2 - 1)^2 = phih^4 - 2 phih^2 + 1
    with parallel_threads("phi4", flat.size):
        _action_kernel(flat, fwd, -2.0 * kappa, 1.0 - 2.0 * lambda_h, lambda_h, lambda_h, n_chunks(flat.shape[1]), sums)
    return _finish_sum(sums, batched)


def force(phi, *, m2: float, lam: float, batched: bool = False) -> np.ndarray:
    """``dS/dphi(x) = -2 sum_mu [phi(x+mu) + phi(x-mu)] + 2 (2D + m2) phi(x) + 4 lam phi(x)^3`` (primary form).

    Same shape as ``phi``. (HMC uses ``dpi/dt = -force``.)
    """
    m2, lam = _couplings(m2, lam)
    flat, shape, B = _as_field(phi, batched)
    fwd, bwd = neighbour_table(shape)
    out = np.empty_like(flat)
    with parallel_threads("phi4", flat.size):
        _force_kernel(flat, fwd, bwd, m2, lam, out)
    return out.reshape(np.shape(phi))


def neighbour_sum(phi, *, batched: bool = False) -> np.ndarray:
    """``sum_mu [phi(x + mu) + phi(x - mu)]`` at every site, same shape as ``phi``."""
    flat, shape, B = _as_field(phi, batched)
    fwd, bwd = neighbour_table(shape)
    out = np.empty_like(flat)
    with parallel_threads("phi4", flat.size):
        _neighbour_sum_kernel(flat, fwd, bwd, out)
    return out.reshape(np.shape(phi))


def _check_dimension(D) -> int:
    if int(D) != D or D < 1:
        raise ValueError(f"the lattice dimension D must be a positive integer, got D={D}")
    return int(D)


def _hopping_couplings(kappa, lambda_h) -> tuple[float, float]:
    kappa = positive_float(kappa, "kappa")
    lambda_h = finite_float(lambda_h, "lambda_h")
    if lambda_h < 0:
        raise ValueError(f"lambda_h must be >= 0, got lambda_h={lambda_h}")
    return kappa, lambda_h


def to_hopping(m2: float, lam: float, D: int) -> tuple[float, float]:
    """``(kappa, lambda_h)`` of the hopping form equivalent to the primary form ``(m2, lam)`` in D dimensions.

    kappa is the positive root of ``2 lam kappa^2 + (2D + m2) kappa - 1 = 0``, computed as
    ``2 / (b + sqrt(b^2 + 8 lam))`` with ``b = 2D + m2`` (the same number as
    ``(-b + sqrt(b^2 + 8 lam)) / (4 lam)``, without the cancellation at small lam).
    """
    m2, lam = _couplings(m2, lam)
    D = _check_dimension(D)
    b = 2.0 * D + m2
    den = b + np.sqrt(b * b + 8.0 * lam)
    if not den > 0:
        raise ValueError(
            f"no hopping form exists for m2={m2}, lam={lam} in D={D}: at lam = 0 it needs 2D + m2 > 0 "
            "(the free theory is unstable otherwise)"
        )
    kappa = 2.0 / den
    return float(kappa), float(lam * kappa * kappa)


def from_hopping(kappa: float, lambda_h: float, D: int) -> tuple[float, float]:
    """``(m2, lam)`` of the primary form equivalent to the hopping form ``(kappa, lambda_h)``:
    ``lam = lambda_h / kappa^2``, ``m2 = (1 - 2 lambda_h) / kappa - 2D``."""
    kappa, lambda_h = _hopping_couplings(kappa, lambda_h)
    D = _check_dimension(D)
    return float((1.0 - 2.0 * lambda_h) / kappa - 2.0 * D), float(lambda_h / kappa**2)


def hot_start(rng: np.random.Generator, shape, *, batch: int | None = None) -> np.ndarray:
    """Independent standard-normal field values, shape ``shape`` (or ``(batch, *shape)``)."""
    check_rng(rng)
    shape = check_shape(shape)
    return rng.standard_normal(shape if batch is None else (int(batch),) + shape)


def cold_start(shape, value: float = 0.0, *, batch: int | None = None) -> np.ndarray:
    """A constant field ``phi(x) = value``, shape ``shape`` (or ``(batch, *shape)``)."""
    shape = check_shape(shape)
    return np.full(shape if batch is None else (int(batch),) + shape, float(value))


# ----------------------------------------------------------------------------- local update: Metropolis


@njit(parallel=True, cache=True)
def _metropolis_kernel(phi, fwd, bwd, sites, m2, lam, step_size, shifts, uniforms, accepted):
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


def metropolis_sweep(rng: np.random.Generator, phi: np.ndarray, *, m2: float, lam: float, step_size: float, hits: int) -> float:
    """One checkerboard Metropolis sweep of ``phi`` in place; returns the fraction of accepted proposals.

    ``phi``: C-contiguous float64 of the lattice shape (every extent even); it is updated in place.
    Random numbers, drawn first in this order (``half = V/2``; site ``i`` of colour ``p`` is
    ``lattice.checkerboard_array(shape)[p, i]``): proposal uniforms ``rng.random((2, half, hits))``,
    then accept uniforms of the same shape.
    """
    m2, lam = _couplings(m2, lam)
    hits = check_count(hits, "hits (Metropolis proposals per site and sweep)", minimum=1)
    check_in_place(phi, np.float64, "the phi^4 field")
    sites = checkerboard_array(phi.shape)
    fwd, bwd = neighbour_table(phi.shape)
    half = sites.shape[1]
    shifts = rng.random((2, half, hits))
    uniforms = rng.random((2, half, hits))
    accepted = np.empty((2, half), dtype=np.int64)
    with parallel_threads("local_phi4", half):
        _metropolis_kernel(phi.reshape(-1), fwd, bwd, sites, m2, lam, float(step_size), shifts, uniforms, accepted)
    return float(accepted.sum()) / (accepted.size * hits)


def evolve(phi, p, eps: float) -> np.ndarray:
    """The molecular-dynamics drift ``phi + eps p`` (a new array)."""
    return phi + eps * p


# ----------------------------------------------------------------------------- the theory


@register_theory("phi4")
class Phi4(Theory):
    """Real scalar phi^4 in the Albergo-Kanwar-Shanahan form (module docstring), couplings ``m2``, ``lam >= 0``.

    Fields: float64 of the lattice shape. Local updates: Metropolis (:func:`metropolis_sweep`).
    """

    family = "phi4"
    local_family = "phi4"
    parameters = (
        Parameter("m2", "float", "mass term m^2 of the Albergo-Kanwar-Shanahan form (may be negative)"),
        Parameter("lam", "float", "quartic coupling lambda >= 0"),
    )
    local_updates = frozenset({"metropolis"})
    #: default Metropolis proposal width (acceptance ~0.4-0.7 near the Albergo et al. point m2 = -4, lam = 8)
    metropolis_step_size = 1.0

    def __init__(self, shape, *, m2: float, lam: float, backend: str = "cpu"):
        super().__init__(shape, backend=backend)
        self.m2, self.lam = _couplings(m2, lam)

    @property
    def couplings(self):
        return {"m2": self.m2, "lam": self.lam}

    field_dtype = np.dtype(np.float64)

    @property
    def field_shape(self) -> tuple:
        return self.shape

    @property
    def local_variables(self) -> int:
        """Sites a local sweep visits."""
        return self.volume

    def check_field(self, field):
        field = np.asarray(field)
        if field.shape != self.shape:
            raise ValueError(f"phi^4 field must have the lattice shape {self.shape}, got {field.shape}")
        if not np.issubdtype(field.dtype, np.floating):
            raise TypeError(f"phi^4 field must be real (float64), got dtype {field.dtype}")
        return np.ascontiguousarray(field, dtype=np.float64)

    def hot_start(self, rng):
        return hot_start(rng, self.shape)

    def cold_start(self):
        return cold_start(self.shape)

    def action(self, field):
        return float(self.kernels.action(field, m2=self.m2, lam=self.lam))

    def force(self, field):
        return self.kernels.force(field, m2=self.m2, lam=self.lam)

    def random_momentum(self, rng):
        return rng.standard_normal(self.shape)

    def evolve(self, field, p, eps):
        return self.kernels.evolve(field, p, eps)

    def observables(self, field):
        M = float(field.mean())
        return {
            "magnetization": M,
            "abs_magnetization": abs(M),
            "susceptibility": self.volume * M * M,
            "action_density": self.action(field) / self.volume,
        }

    def metropolis_sweep(self, rng, field, *, step_size: float, hits: int) -> float:
        return self.local_kernels.metropolis_sweep(rng, field, m2=self.m2, lam=self.lam, step_size=step_size, hits=hits)
