"""Topological charge: 2D U(1) (geometric and sin definitions) and 4D SU(N) (clover definition).

Shapes and conventions
----------------------
* Every function takes ``batched=False``; ``batched=True`` adds a leading batch axis B to the
  links and to the result (the convention of :mod:`latticeml.theories`).
* 2D U(1): angles ``theta`` float64 ``(2, L0, L1)``. The plaquette
  angle at x is ``theta_P(x) = theta_0(x) + theta_1(x+0) - theta_0(x+1) - theta_1(x)``.
  - geometric (integer) charge ``Q = (1/2pi) sum_x wrap(theta_P(x))`` with ``wrap`` into
    ``(-pi, pi]``; since the unwrapped angles sum to zero on the torus, Q is an integer exactly
    (the sum of the lattice field's "winding" through each plaquette). This is the U(1) analogue of
    Luescher's geometric definition, M. Luescher, CMP 85 (1982) 39; see also B. Berg and
    M. Luescher, NPB 190 (1981) 412, and C. Bonati and P. Rossi, PRD 99 (2019) 054503.
  - sin ("field-theoretic") charge ``Q = (1/2pi) sum_x sin theta_P(x)``: not an integer; it
    approaches the geometric charge for smooth fields and renormalises multiplicatively.
* 4D SU(N): links ``U`` complex128 ``(4, L0, L1, L2, L3, N, N)``. The clover field strength is
  ``F_{mu nu}(x) = [(C - C^dagger)/8]_traceless`` with C the sum of the four plaquettes in the
  (mu, nu) plane that touch x, all traversed in the same sense (P. Di Vecchia, K. Fabricius,
  G. C. Rossi and G. Veneziano, NPB 192 (1981) 392; J. E. Mandula, G. Zweig and J. Govaerts,
  NPB 228 (1983) 91). It is anti-Hermitian: ``F = i a^2 g F^cont`` with Hermitian
  ``F^cont``, to leading order in a. The charge density is
  ``q(x) = (1/32 pi^2) eps_{mu nu rho sigma} tr(F^cont_{mu nu} F^cont_{rho sigma})
        = -(1/4 pi^2) Re[tr(F_01 F_23) - tr(F_02 F_13) + tr(F_03 F_12)]``, eps_{0123} = +1.
  Normalisation check (tests): an abelian constant field ``diag(e^{i a}, e^{-i a})`` with n_01
  and n_23 flux quanta through the (0,1) and (2,3) planes has continuum charge Q = 2 n_01 n_23
  (the bundle L + L^{-1} has c_2 = -c_1(L)^2), and the clover value
  ``(V / 4 pi^2) 2 sin(phi_01) sin(phi_23)`` with ``phi_ij = 2 pi n_ij / (L_i L_j)`` -> 2 n_01 n_23.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .. import _linalg as la
from ..lattice import check_shape, neighbour_table
from .loops import _as_links, _unbatch, planes

__all__ = [
    "topological_charge_density_u1",
    "topological_charge_u1",
    "clover_field_strength",
    "topological_charge_density",
    "topological_charge",
]

_TWO_PI = 2.0 * np.pi


# ----------------------------------------------------------------------------- 2D U(1)


@njit(cache=True)
def _u1_wrapped_plaquettes(theta, fwd, out):
    """out[b, s] = wrap(theta_P(s)) into (-pi, pi] for a batch of 2D U(1) fields ``theta (B, 2, V)``."""
    for b in range(theta.shape[0]):
        for s in range(theta.shape[2]):
            a = theta[b, 0, s] + theta[b, 1, fwd[s, 0]] - theta[b, 0, fwd[s, 1]] - theta[b, 1, s]
            w = a - _TWO_PI * np.floor((a + np.pi) / _TWO_PI)  # in [-pi, pi)
            if w == -np.pi:
                w = np.pi
            out[b, s] = w


def _wrapped_plaquettes(theta, batched):
    """Wrapped plaquette angles ``(B, V)`` of 2D U(1) links ``(2, L0, L1)`` (or ``(B, 2, L0, L1)`` if batched)."""
    theta = np.asarray(theta)
    if not np.issubdtype(theta.dtype, np.floating):
        raise TypeError(f"2D U(1) links are real angles (float64); got dtype {theta.dtype}")
    lead = 1 if batched else 0
    if theta.ndim != lead + 3 or theta.shape[lead] != 2:
        raise ValueError(
            f"the U(1) topological charge is defined here in 2D: theta must be "
            f"{'(B, 2, L0, L1)' if batched else '(2, L0, L1)'}, got shape {theta.shape}"
            + ("" if batched or theta.ndim != 4 else "; for a batch of configurations pass batched=True")
        )
    shape = check_shape(theta.shape[lead + 1 :])
    flat = np.ascontiguousarray(theta, dtype=np.float64).reshape(-1, 2, shape[0] * shape[1])
    fwd, _ = neighbour_table(shape)
    out = np.empty((flat.shape[0], flat.shape[2]))
    _u1_wrapped_plaquettes(flat, fwd, out)
    return out, shape


def topological_charge_density_u1(theta, *, batched: bool = False) -> np.ndarray:
    """Geometric charge density ``wrap(theta_P(x)) / 2 pi``, shape ``(L0, L1)`` (``(B, L0, L1)`` if batched)."""
    w, shape = _wrapped_plaquettes(theta, batched)
    return _unbatch((w / _TWO_PI).reshape((-1,) + shape), batched)


def topological_charge_u1(theta, *, definition: str = "geometric", batched: bool = False):
    """Topological charge of a 2D U(1) configuration: an int (geometric) or a float (sin); ``(B,)`` if batched.

    ``definition="geometric"``: ``(1/2pi) sum wrap(theta_P)``, an exact integer (int64 when batched);
    ``definition="sin"``: ``(1/2pi) sum sin(theta_P)``.
    """
    if definition not in ("geometric", "sin"):
        raise ValueError(f"definition must be 'geometric' or 'sin', got {definition!r}")
    w, _ = _wrapped_plaquettes(theta, batched)
    if definition == "sin":
        return _unbatch(np.sin(w).sum(axis=1) / _TWO_PI, batched)
    Q = w.sum(axis=1) / _TWO_PI
    Qi = np.rint(Q)
    if not np.all(np.abs(Q - Qi) < 1e-6):  # only non-finite or absurdly large angles get here
        raise ValueError(
            f"the geometric charge is not an integer (got {Q[~(np.abs(Q - Qi) < 1e-6)][:3]}): the links "
            "contain non-finite or huge angles; wrap them with latticeml.groups.wrap_angle"
        )
    return _unbatch(Qi.astype(np.int64), batched)


# ----------------------------------------------------------------------------- SU(N) clover


@njit(cache=True)
def _clover_kernel(U, fwd, bwd, mus, nus, out):
    """out[p, s] = traceless anti-Hermitian part of (C - C^dagger)/8, C the clover of plane (mus[p], nus[p]) at s."""
    n = U.shape[2]
    C = np.empty((n, n), dtype=np.complex128)
    t1 = np.empty((n, n), dtype=np.complex128)
    t2 = np.empty((n, n), dtype=np.complex128)
    leaf = np.empty((n, n), dtype=np.complex128)
    for p in range(mus.shape[0]):
        mu = mus[p]
        nu = nus[p]
        for s in range(U.shape[1]):
            x_pm = fwd[s, mu]
            x_pn = fwd[s, nu]
            x_mm = bwd[s, mu]
            x_mn = bwd[s, nu]
            x_mm_pn = fwd[x_mm, nu]
            x_mm_mn = bwd[x_mm, nu]
            x_mn_pm = fwd[x_mn, mu]
            # leaf 1: U_mu(x) U_nu(x+mu) U_mu(x+nu)^+ U_nu(x)^+
            la.mat_mul(U[mu, s], U[nu, x_pm], t1)
            la.mat_mul(U[nu, s], U[mu, x_pn], t2)
            la.mat_mul_adj(t1, t2, C)
            # leaf 2: U_nu(x) U_mu(x-mu+nu)^+ U_nu(x-mu)^+ U_mu(x-mu)
            la.mat_mul(U[nu, x_mm], U[mu, x_mm_pn], t1)
            la.mat_mul_adj(U[nu, s], t1, t2)
            la.mat_mul(t2, U[mu, x_mm], leaf)
            la.add_into(leaf, C)
            # leaf 3: U_mu(x-mu)^+ U_nu(x-mu-nu)^+ U_mu(x-mu-nu) U_nu(x-nu)
            la.mat_mul(U[nu, x_mm_mn], U[mu, x_mm], t1)
            la.mat_mul(U[mu, x_mm_mn], U[nu, x_mn], t2)
            la.adj_mul(t1, t2, leaf)
            la.add_into(leaf, C)
            # leaf 4: U_nu(x-nu)^+ U_mu(x-nu) U_nu(x-nu+mu) U_mu(x)^+
            la.mat_mul(U[mu, x_mn], U[nu, x_mn_pm], t1)
            la.adj_mul(U[nu, x_mn], t1, t2)
            la.mat_mul_adj(t2, U[mu, s], leaf)
            la.add_into(leaf, C)
            # (C - C^+)/8 minus its trace: scale 1/4 times the projection (C - C^+)/2 - tr/N
            la.traceless_antihermitian_into(C, 0.25, out[p, s])


@njit(cache=True)
def _charge_density_kernel(F, out):
    """q(s) = -(1/4 pi^2) Re[tr F01 F23 - tr F02 F13 + tr F03 F12] for planes ordered 01,02,03,12,13,23."""
    norm = -1.0 / (4.0 * np.pi * np.pi)
    for s in range(F.shape[1]):
        out[s] = norm * (
            la.re_trace_mul(F[0, s], F[5, s]) - la.re_trace_mul(F[1, s], F[4, s]) + la.re_trace_mul(F[2, s], F[3, s])
        )


def _as_su_links(U, what, batched):
    group, flat, shape = _as_links(U, batched)
    if group != "su":
        raise TypeError(f"{what} needs SU(N) links (complex128); for 2D U(1) use topological_charge_u1")
    return flat, shape


def _clover_flat(flat, shape):
    """Clover field strength ``(n_planes, V, N, N)`` of one configuration ``flat`` (D, V, N, N)."""
    fwd, bwd = neighbour_table(shape)
    pl = np.array(planes(len(shape)), dtype=np.int64).reshape(-1, 2)
    out = np.empty((len(pl),) + flat.shape[1:], dtype=np.complex128)
    _clover_kernel(flat, fwd, bwd, np.ascontiguousarray(pl[:, 0]), np.ascontiguousarray(pl[:, 1]), out)
    return out


def clover_field_strength(U, *, batched: bool = False) -> np.ndarray:
    """Clover field strength ``F_{mu nu}(x)``, shape ``(n_planes, *shape, N, N)``, planes as :func:`~.loops.planes`.

    Traceless anti-Hermitian, ``F = i a^2 g F^cont (1 + O(a^2))``; covariant,
    ``F -> Omega F Omega^dagger``. Any D >= 2. ``batched=True``: links ``(B, D, ...)``, result ``(B, n_planes, ...)``.
    """
    flat, shape = _as_su_links(U, "the clover field strength", batched)
    if len(shape) < 2:
        raise ValueError(f"the field strength needs D >= 2, got shape {shape}")
    F = np.stack([_clover_flat(f, shape) for f in flat])
    return _unbatch(F.reshape(F.shape[:2] + shape + F.shape[-2:]), batched)


def _charge_densities(U, batched):
    flat, shape = _as_su_links(U, "the clover topological charge", batched)
    if len(shape) != 4:
        raise ValueError(
            f"the clover topological charge density is defined in D = 4, got a {len(shape)}-dimensional lattice "
            f"{shape}; for 2D U(1) use topological_charge_u1"
        )
    q = np.empty((len(flat), flat.shape[2]))
    for b, f in enumerate(flat):
        _charge_density_kernel(_clover_flat(f, shape), q[b])
    return q, shape


def topological_charge_density(U, *, batched: bool = False) -> np.ndarray:
    """Clover topological charge density ``q(x)`` of 4D SU(N) links, shape ``(L0, L1, L2, L3)`` (``(B, ...)`` if batched)."""
    q, shape = _charge_densities(U, batched)
    return _unbatch(q.reshape((-1,) + shape), batched)


def topological_charge(U, *, batched: bool = False):
    """Clover topological charge ``Q = sum_x q(x)`` of 4D SU(N) links: a float (``(B,)`` if batched); not an integer on rough fields."""
    q, _ = _charge_densities(U, batched)
    return _unbatch(q.sum(axis=1), batched)
