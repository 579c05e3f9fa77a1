"""Benchmark of the staggered operator, CG and one pseudofermion HMC trajectory.

1. ``D psi`` (:func:`latticeml.fermions.staggered.hop_into`, one serial Numba kernel) on SU(3)
   8^4 and 16^4 and U(1) 64^2, against a plain NumPy version written here (np.roll of psi and of
   the backward links, batched matmul), checked equal to 1e-12. GB/s use the minimal traffic of one
   application: every link read once (``D V N^2`` complex numbers; the backward hop reuses them),
   psi read once and written once (``2 V N``), 16 bytes each; the reference is the measured copy
   bandwidth of a large array (``np.copyto``, read + write).
2. CG for ``m^2 - D_eo D_oe`` (even-odd) and ``M^dagger M`` at the table's point (SU(2) 4^4,
   beta = 2.7, m = 0.3) on a thermalised-like configuration: iterations and time per solve.
3. One HMC trajectory at the table's point (Omelyan, 5 steps of 0.2, one even-odd pseudofermion).

Run:  NUMBA_CACHE_DIR=.numba_cache .venv/bin/python benchmarks/bench_fermions.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from latticeml.fermions import StaggeredFermions, apply_D, prepare, solve_normal
from latticeml.fermions.staggered import hop_into
from latticeml.samplers import hmc
from latticeml.theories import make_theory


def numpy_D(links, psi):
    """D psi with np.roll: the reference (fields (*L, N), links (D, V, N, N) in kernel form)."""
    shape, N = links.shape, links.N
    U = links.U.reshape((len(shape),) + shape + (N, N))
    eta = links.phases.reshape((len(shape),) + shape)
    out = np.zeros_like(psi)
    for mu in range(len(shape)):
        fwd = np.roll(psi, -1, axis=mu)
        bwd = np.roll(psi, 1, axis=mu)
        Ub = np.roll(U[mu], 1, axis=mu)
        eb = np.roll(eta[mu], 1, axis=mu)
        out += 0.5 * eta[mu][..., None] * np.einsum("...ab,...b->...a", U[mu], fwd)
        out -= 0.5 * eb[..., None] * np.einsum("...ba,...b->...a", Ub.conj(), bwd)
    return out


def best(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def copy_bandwidth(repeats):
    a = np.ones(2**25)  # 256 MB
    b = np.empty_like(a)
    t = best(lambda: np.copyto(b, a), repeats)
    return 2 * a.nbytes / t / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    bw = copy_bandwidth(args.repeats)
    print(f"copy bandwidth (np.copyto, read + write): {bw:.1f} GB/s")
    print(f"{'lattice':>14} {'numba ms':>9} {'GB/s':>6} {'% copy':>7} {'numpy ms':>9} {'speedup':>8}")
    for name, shape in (("su3", (8, 8, 8, 8)), ("su3", (16, 16, 16, 16)), ("u1", (64, 64))):
        theory = make_theory(name, shape, beta=1.0)
        U = theory.hot_start(rng)
        links = prepare(U, "u1" if name == "u1" else "su")
        N = links.N
        psi = rng.standard_normal(shape + (N, 2)) @ np.array([1, 1j])
        flat = psi.reshape(-1, N)
        out = np.zeros_like(flat)
        t_nb = best(lambda: hop_into(links.U, links.phases, links.fwd, links.bwd, flat, links.all_sites, 1.0, out), args.repeats)
        t_np = best(lambda: numpy_D(links, psi), max(1, args.repeats // 2))
        assert np.allclose(apply_D(links, psi), numpy_D(links, psi), atol=1e-12)
        V = flat.shape[0]
        gbs = (len(shape) * V * N * N + 2 * V * N) * 16 / t_nb / 1e9
        label = f"{name} {'x'.join(map(str, shape))}"
        print(f"{label:>14} {1e3 * t_nb:9.2f} {gbs:6.2f} {100 * gbs / bw:6.1f}% {1e3 * t_np:9.2f} {t_np / t_nb:7.1f}x")

    # CG and one trajectory at the table's point
    gauge = make_theory("su2", (4, 4, 4, 4), beta=2.7)
    theory = StaggeredFermions(gauge, mass=0.3, n_staggered=1)
    sampler = hmc.sampler(theory, step_size=0.2, n_steps=5, integrator="omelyan")
    state = sampler.init(gauge.cold_start())
    for _ in range(30):  # move off the cold start
        state, _ = sampler.step(rng, state)
    links = prepare(state.field, "su")
    b = rng.standard_normal((4, 4, 4, 4, 2, 2)) @ np.array([1, 1j])
    for sites in ("even", "all"):
        res = solve_normal(links, b, 0.3, sites=sites)
        t = best(lambda: solve_normal(links, b, 0.3, sites=sites), args.repeats)
        print(f"CG {sites:>4} (SU(2) 4^4, m = 0.3, tol 1e-12): {res.iterations} iterations, {1e3 * t:.2f} ms per solve")
    theory.reset_cg_counts()
    t = best(lambda: sampler.step(rng, state), args.repeats)
    print(f"one HMC trajectory (SU(2) 4^4, beta 2.7, m 0.3, Omelyan 5 x 0.2): {1e3 * t:.0f} ms, "
          f"{theory.mean_cg_iterations:.0f} CG iterations per solve")


if __name__ == "__main__":
    main()
