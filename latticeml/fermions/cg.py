"""Conjugate gradient for the staggered normal operator ``M^dagger M = m^2 - D^2`` (full or even-odd).

M. R. Hestenes, E. Stiefel, J. Res. Nat. Bur. Standards 49 (1952) 409. ``A = M^dagger M`` is
Hermitian and positive definite for ``m > 0`` (its eigenvalues are ``m^2 + lambda^2``), so CG
converges; its condition number ``(m^2 + lambda_max^2) / m^2 <= (m^2 + D) / m^2`` in D
dimensions bounds the iterations. Two forms (the ``mid``/``out`` sites of
:func:`latticeml.fermions.staggered.normal_into`):

* ``"all"``:  ``A = M^dagger M`` on every site (solves for a pseudofermion of ``det M^2``);
* ``"even"``: ``A = m^2 - D_eo D_oe`` on the even sites only (half the work per iteration, and the
  even block is all ``det M`` needs).

Stopping rule: the *relative* residual ``|b - A x| / |b| <= tol`` of the recursively updated
residual; :class:`CGResult` reports the iterations and the true residual ``|b - A x| / |b|``
recomputed at the end. A solve whose true residual exceeds ``10 tol`` (no convergence in
``max_iter`` iterations) raises ``RuntimeError``: an HMC that silently used an unconverged solve
would break reversibility, not just accuracy.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from .staggered import StaggeredLinks, normal_into

__all__ = ["CGResult", "solve_normal", "cg_kernel"]

#: Default relative residual: the acceptance test needs the action to ~1e-10 relative at least.
DEFAULT_TOL = 1e-12


class CGResult(NamedTuple):
    """x: the solution, same shape as b (zero off the solved sites); iterations: CG iterations;
    residual: ``|b - A x| / |b|`` recomputed from x at the end."""

    x: np.ndarray
    iterations: int
    residual: float


@njit(cache=True)
def _dot_re(a, b, sites):
    acc = 0.0
    N = a.shape[1]
    for k in range(sites.shape[0]):
        s = sites[k]
        for c in range(N):
            acc += (a[s, c].conjugate() * b[s, c]).real
    return acc


@njit(cache=True)
def cg_kernel(hops, nb, mass2, b, mid_sites, out_sites, tol, max_iter, x):
    """Solve ``A x = b`` on ``out_sites`` (A of :func:`normal_into`) from ``x = 0``; returns (iterations, ``|r| / |b|``).

    hops, nb: ``links.hops``, ``links.neighbours`` (:mod:`latticeml.fermions.staggered`);
    b, x: (V, N) complex128; x is overwritten (zero off ``out_sites``). Serial.
    """
    V, N = b.shape
    r = b.copy()
    p = b.copy()
    Ap = np.zeros_like(b)
    tmp = np.zeros_like(b)
    for k in range(out_sites.shape[0]):
        s = out_sites[k]
        for c in range(N):
            x[s, c] = 0.0
    bb = _dot_re(b, b, out_sites)
    if bb == 0.0:
        return 0, 0.0
    rr = bb
    stop = tol * tol * bb
    it = 0
    while rr > stop and it < max_iter:
        normal_into(hops, nb, mass2, p, mid_sites, out_sites, tmp, Ap)
        alpha = rr / _dot_re(p, Ap, out_sites)
        for k in range(out_sites.shape[0]):
            s = out_sites[k]
            for c in range(N):
                x[s, c] += alpha * p[s, c]
                r[s, c] -= alpha * Ap[s, c]
        rr_new = _dot_re(r, r, out_sites)
        beta = rr_new / rr
        rr = rr_new
        for k in range(out_sites.shape[0]):
            s = out_sites[k]
            for c in range(N):
                p[s, c] = r[s, c] + beta * p[s, c]
        it += 1
    # the true residual of the x returned
    normal_into(hops, nb, mass2, x, mid_sites, out_sites, tmp, Ap)
    res = 0.0
    for k in range(out_sites.shape[0]):
        s = out_sites[k]
        for c in range(N):
            d = b[s, c] - Ap[s, c]
            res += (d.conjugate() * d).real
    return it, np.sqrt(res / bb)


def solve_normal(links: StaggeredLinks, b, mass: float, *, sites: str = "all", tol: float = DEFAULT_TOL, max_iter: int = 10_000) -> CGResult:
    """Solve ``M^dagger M x = b`` (``sites="all"``) or ``(m^2 - D_eo D_oe) x_e = b_e`` (``sites="even"``) by CG.

    ``b`` has the fermion shape ``(*L, N)``; for ``"even"`` only its even sites are read and ``x``
    is zero on the odd ones. Raises RuntimeError when ``tol`` is not reached in ``max_iter`` iterations.
    """
    if sites not in ("all", "even"):
        raise ValueError(f"sites must be 'all' or 'even', got {sites!r}")
    if not mass > 0:
        raise ValueError(f"the staggered mass must be > 0 for M^dagger M to be invertible, got {mass}")
    b = np.asarray(b)
    want = links.shape + (links.N,)
    if b.shape != want:
        raise ValueError(f"b must have the fermion shape {want}, got {b.shape}")
    flat = np.ascontiguousarray(b, dtype=np.complex128).reshape(-1, links.N)
    mid, out = (links.all_sites, links.all_sites) if sites == "all" else (links.odd, links.even)
    x = np.zeros_like(flat)
    it, res = cg_kernel(links.hops, links.neighbours, float(mass) ** 2, flat, mid, out, float(tol), int(max_iter), x)
    if not res <= 10 * tol + 1e-14:
        raise RuntimeError(f"CG did not converge: relative residual {res:.3g} after {it} iterations (tol {tol:g}, max_iter {max_iter})")
    return CGResult(x.reshape(want), int(it), float(res))
