"""Benchmark of one stout layer (forward and backward) on SU(3) in 4D: Numba kernels vs plain NumPy.

Workload: U -> exp(TA(rho C U^+)) U with the plaquette staples (Morningstar & Peardon, PRD 69 (2004)
054501), rho = 0.1, on a Haar-random SU(3) field of L^4 sites (8^4 and 16^4 by default). Backward:
the gradient with respect to the thin links and to rho of Re sum conj(V) U' for a random V
(latticeml.smearing.stout_backward: per-link Lambda, gather through the staples, rho overlap).

Columns: latticeml's Numba kernels (latticeml.smearing.stout_forward / stout_backward) and a plain
NumPy version written here: np.roll for the shifts, batched matmul (np.matmul on (V, 3, 3) stacks)
for the products, the Cayley-Hamilton exponential and its derivative (the b_ij of Morningstar &
Peardon) vectorised over sites, the backward through the staples as rolls of the six link
gradients of each staple. Both give the same numbers (checked here to 1e-10).

GFLOP/s use a flop model of the algorithm (counted below, one complex multiply = 6 flops, one
complex add = 2): forward 3400 flops per link (12 matrix products for the staples, C U^+, the
exponential, E U), backward 12800 per link (the local Lambda step ~2700, the gather through 18
staple entries per link ~7500, the rho overlap ~2600). The machine's dgemm rate (2000 x 2000
float64 matmul) is the reference.

Run:  NUMBA_CACHE_DIR=.numba_cache .venv/bin/python benchmarks/bench_smearing.py [--sizes 8 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numba import get_num_threads

from _reference import dgemm_gflops

from latticeml import groups, smearing

MATMUL = 198  # flops of one 3x3 complex matrix product: 27 complex multiplies + 18 complex adds
FLOPS_FORWARD = 12 * MATMUL + 5 * 18 + MATMUL + 28 + (MATMUL + 280) + MATMUL  # staples, C U^+, TA, exp, E U
FLOPS_BACKWARD = (
    (280 + MATMUL)  # E = exp(X)
    + MATMUL  # M = G' U^+
    + (MATMUL + 300 + 2 * 72 + 2 * MATMUL + 360 + 28)  # Lambda: Q^2, b_ij, tr(Q^j M), MQ and QM, combine, TA
    + 3 * MATMUL + 18  # GC = Lambda U, E^+ G', Lambda C
    + 18 * (2 * MATMUL + 18)  # gather: 18 (staple, link) entries per link, 2 products and an add each
    + 6 * (2 * MATMUL + 36)  # rho: the 6 staples again and Re tr(GC^+ P)
)


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_per_call(fn, *, repeats: int) -> float:
    """Median over ``repeats`` calls, after one warm-up call (seconds)."""
    fn()
    return float(np.median([_timed(fn) for _ in range(repeats)]))


# ----------------------------------------------------------------------------- plain NumPy


def dag(M):
    return np.conj(np.swapaxes(M, -1, -2))


def shift(U, mu, n):
    """Field at x + n mu; U is (D, L, L, L, L, 3, 3) or (L, L, L, L, 3, 3) (lattice axes before colour)."""
    axis = mu + (1 if U.ndim == 7 else 0)
    return np.roll(U, -n, axis=axis)


def ta(M):
    A = 0.5 * (M - dag(M))
    tr = np.trace(A, axis1=-2, axis2=-1)[..., None, None]
    return A - tr * np.eye(3) / 3.0


def staples(U):
    """C_mu(x) = sum_nu U_nu(x) U_mu(x+nu) U_nu(x+mu)^+ + U_nu(x-nu)^+ U_mu(x-nu) U_nu(x-nu+mu)."""
    C = np.zeros_like(U)
    D = U.shape[0]
    for mu in range(D):
        for nu in range(D):
            if nu != mu:
                C[mu] += U[nu] @ shift(U[mu], nu, 1) @ dag(shift(U[nu], mu, 1))
                Um = shift(U, nu, -1)
                C[mu] += dag(Um[nu]) @ Um[mu] @ shift(Um[nu], mu, 1)
    return C


def su3_coefficients(X):
    """Q = -iX, Q^2, and the Cayley-Hamilton f_j, b1j = df_j/dc1, b2j = df_j/dc0 (closed forms, vectorised)."""
    Q = -1j * X
    Q2 = Q @ Q
    c1 = 0.5 * np.trace(Q2, axis1=-2, axis2=-1).real
    c0 = np.linalg.det(Q).real
    neg = c0 < 0
    c0a = np.abs(c0)
    theta = np.arccos(np.minimum(c0a / (2 * (c1 / 3) ** 1.5), 1.0))
    u = np.sqrt(c1 / 3) * np.cos(theta / 3)
    w = np.sqrt(c1) * np.sin(theta / 3)
    u2, w2 = u * u, w * w
    xi0 = np.sin(w) / w
    xi1 = (w * np.cos(w) - np.sin(w)) / w**3
    cw = np.cos(w)
    e2iu, emiu = np.exp(2j * u), np.exp(-1j * u)
    den = 9 * u2 - w2
    f = np.stack(
        [
            (u2 - w2) * e2iu + emiu * (8 * u2 * cw + 2j * u * (3 * u2 + w2) * xi0),
            2 * u * e2iu - emiu * (2 * u * cw - 1j * (3 * u2 - w2) * xi0),
            e2iu - emiu * (cw + 3j * u * xi0),
        ]
    ) / den
    r1 = np.stack(
        [
            2 * (u + 1j * (u2 - w2)) * e2iu + 2 * emiu * (4 * u * (2 - 1j * u) * cw + 1j * (9 * u2 + w2 - 1j * u * (3 * u2 + w2)) * xi0),
            2 * (1 + 2j * u) * e2iu + emiu * (-2 * (1 - 1j * u) * cw + 1j * (6 * u + 1j * (w2 - 3 * u2)) * xi0),
            2j * e2iu + 1j * emiu * (cw - 3 * (1 - 1j * u) * xi0),
        ]
    )
    r2 = np.stack(
        [
            -2 * e2iu + 2j * u * emiu * (cw + (1 + 4j * u) * xi0 + 3 * u2 * xi1),
            -1j * emiu * (cw + (1 + 2j * u) * xi0 - 3 * u2 * xi1),
            emiu * (xi0 - 3j * u * xi1),
        ]
    )
    b1 = (2 * u * r1 + (3 * u2 - w2) * r2 - 2 * (15 * u2 + w2) * f) / (2 * den**2)
    b2 = (r1 - 3 * u * r2 - 24 * u * f) / (2 * den**2)
    sign = np.array([1, -1, 1])[:, None]
    flat_neg = neg.reshape(-1)
    for arr, sg in ((f, sign), (b1, sign), (b2, -sign)):  # b_ij(-c0) = (-1)^(i+j+1) conj b_ij(c0)
        a = arr.reshape(3, -1)
        a[:, flat_neg] = (sg * np.conj(a))[:, flat_neg]
    return Q, Q2, f, b1, b2


def numpy_forward(U, rho):
    C = rho * staples(U)
    X = ta(C @ dag(U))
    Q, Q2, f, _, _ = su3_coefficients(X)
    E = f[0][..., None, None] * np.eye(3) + f[1][..., None, None] * Q + f[2][..., None, None] * Q2
    return E @ U, (U, C, X, rho)


def numpy_backward(G_out, res):
    U, C, X, rho = res
    Q, Q2, f, b1, b2 = su3_coefficients(X)
    E = f[0][..., None, None] * np.eye(3) + f[1][..., None, None] * Q + f[2][..., None, None] * Q2
    M = G_out @ dag(U)
    s = [np.trace(M, axis1=-2, axis2=-1), np.trace(Q @ M, axis1=-2, axis2=-1), np.trace(Q2 @ M, axis1=-2, axis2=-1)]
    cq = sum(s[j] * np.conj(b1[j]) for j in range(3))[..., None, None]
    cq2 = sum(s[j] * np.conj(b2[j]) for j in range(3))[..., None, None]
    gam = cq * Q + cq2 * Q2 + np.conj(f[1])[..., None, None] * M + np.conj(f[2])[..., None, None] * (M @ Q + Q @ M)
    lam = ta(1j * gam)
    GC = lam @ U  # gradient w.r.t. C = rho * staples
    G = dag(E) @ G_out - lam @ C
    # through the staples: for P = A L B, dL = A^+ GC B^+ (L = U^+: its adjoint), moved to L's site
    D = U.shape[0]
    g_rho = 0.0
    for mu in range(D):
        gc = GC[mu]
        for nu in range(D):
            if nu == mu:
                continue
            Unu_pmu = shift(U[nu], mu, 1)  # U_nu(x+mu)
            Umu_pnu = shift(U[mu], nu, 1)  # U_mu(x+nu)
            up = U[nu] @ Umu_pnu @ dag(Unu_pmu)
            g_rho += np.vdot(gc, up).real
            G[nu] += rho * gc @ dag(Umu_pnu @ dag(Unu_pmu))  # first link U_nu(x)
            G[mu] += rho * shift(dag(U[nu]) @ gc @ Unu_pmu, nu, -1)  # U_mu(x+nu), at x+nu
            G[nu] += rho * shift(dag(gc) @ U[nu] @ Umu_pnu, mu, -1)  # U_nu(x+mu)^+, at x+mu
            Um = shift(U, nu, -1)  # links at x - nu
            Unu_m, Umu_m = Um[nu], Um[mu]
            Unu_m_pmu = shift(Unu_m, mu, 1)  # U_nu(x-nu+mu)
            down = dag(Unu_m) @ Umu_m @ Unu_m_pmu
            g_rho += np.vdot(gc, down).real
            G[nu] += rho * shift(Umu_m @ Unu_m_pmu @ dag(gc), nu, 1)  # U_nu(x-nu)^+, at x-nu
            G[mu] += rho * shift(Unu_m @ gc @ dag(Unu_m_pmu), nu, 1)  # U_mu(x-nu), at x-nu
            G[nu] += rho * shift(shift(dag(Umu_m) @ Unu_m @ gc, nu, 1), mu, -1)  # U_nu(x-nu+mu), at x-nu+mu
    return G, g_rho


# ----------------------------------------------------------------------------- main


def run(L: int, repeats: int, rng):
    shape = (L,) * 4
    U = groups.haar_su(rng, 3, (4,) + shape)
    Gout = rng.standard_normal(U.shape) + 1j * rng.standard_normal(U.shape)
    flat = U.reshape(1, 4, -1, 3, 3)
    Gflat = Gout.reshape(flat.shape)
    rho = 0.1
    out_nb, res_nb = smearing.stout_forward(flat, shape, rho=rho)
    G_nb, g_rho_nb = smearing.stout_backward(Gflat, res_nb)
    out_np, res_np = numpy_forward(U, rho)
    G_np, g_rho_np = numpy_backward(Gout, res_np)
    assert np.allclose(out_nb.reshape(U.shape), out_np, atol=1e-10), "forward: Numba and NumPy disagree"
    assert np.allclose(G_nb.reshape(U.shape), G_np, atol=1e-9), "backward: Numba and NumPy disagree"
    assert np.isclose(g_rho_nb[0], g_rho_np, rtol=1e-10), "rho gradient: Numba and NumPy disagree"
    t = {
        "nb_fwd": time_per_call(lambda: smearing.stout_forward(flat, shape, rho=rho), repeats=repeats),
        "nb_bwd": time_per_call(lambda: smearing.stout_backward(Gflat, res_nb), repeats=repeats),
        "np_fwd": time_per_call(lambda: numpy_forward(U, rho), repeats=max(1, repeats // 2)),
        "np_bwd": time_per_call(lambda: numpy_backward(Gout, res_np), repeats=max(1, repeats // 2)),
    }
    return 4 * L**4, t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(2004)
    gemm = dgemm_gflops()
    print(f"Numba threads: {get_num_threads()}; dgemm 2000x2000: {gemm:.1f} GFLOP/s")
    print(f"flop model per link: forward {FLOPS_FORWARD}, backward {FLOPS_BACKWARD}")
    print()
    print("| lattice | pass | Numba ms | NumPy ms | NumPy/Numba | Numba GFLOP/s (% dgemm) |")
    print("|---|---|---|---|---|---|")
    for L in args.sizes:
        links, t = run(L, args.repeats, rng)
        for name, key, flops in (("forward", "fwd", FLOPS_FORWARD), ("backward", "bwd", FLOPS_BACKWARD)):
            nb, npy = t[f"nb_{key}"], t[f"np_{key}"]
            gf = links * flops / nb / 1e9
            print(f"| SU(3) {L}^4 | {name} | {1e3 * nb:.1f} | {1e3 * npy:.1f} | {npy / nb:.1f} | {gf:.2f} ({100 * gf / gemm:.1f}%) |")


if __name__ == "__main__":
    main()
