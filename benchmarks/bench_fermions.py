"""Benchmark of the staggered operator, CG and one pseudofermion HMC trajectory (issue 16).

1. ``D psi`` on SU(3) 8^4 and 16^4 and U(1) 64^2, for each thread count of ``--threads``:

   * ``numba``: :func:`latticeml.fermions.staggered.hop_into` (the ``hops`` layout: the 2 D
     hopping terms of each output site stored contiguously, phases and adjoints folded in), on one
     thread, or its chunk kernel on :func:`latticeml._threads.run_chunks` with t threads (every
     lattice, whatever ``PARALLEL_MIN["staggered"]`` says, so that the crossover can be read off);
   * ``gather``: the kernel before issue 16 (:func:`gather_hop`, kept here: links ``(D, V, N, N)``,
     ``U_mu(x - mu)`` and the phases gathered through the neighbour table, complex arithmetic),
     one thread;
   * ``numpy``: :func:`numpy_D`, np.roll of psi and of the links, batched einsum (one thread:
     NumPy's einsum does not thread); checked equal to the kernel to 1e-12.

   GB/s use the *minimal* traffic of one application: every link read once (``D V N^2`` complex
   numbers), psi read once and out written once (``2 V N``), 16 bytes each; "GB/s streamed" is
   what the hops layout reads at least (``2 D V N^2`` link terms, ``2 V N`` fields, the int64
   neighbour table ``2 D V``). The reference is the copy bandwidth measured with the same thread
   count (:func:`copy_bandwidth`: np.copyto of 256 MB per thread, read + write). GFLOP/s use
   ``2 D (8 N^2 - 2 N) + (2 D - 1) 2 N`` flop per site (570 for SU(3) in 4D; 30 for U(1) in 2D)
   against NumPy's dgemm (2000 x 2000, OpenBLAS on the same number of threads, in a subprocess).
   Floors: "read GB/s" is the rate at which the same threads read the hops array once in order
   (:func:`read_rate`); "floor ms" is the time to read what the hops layout must read (hops, the
   neighbour table, psi, out) at that rate, and "single" the same for links stored once (``U``,
   psi, out), each with its % of the copy bandwidth at the minimal traffic. No kernel of that
   layout beats its floor (psi's neighbours from cache assumed), so a "% copy" column below the
   goal rules the layout out on the machine whatever the arithmetic; a kernel far above its floor
   is bound by something else (arithmetic, latency).
2. CG for ``m^2 - D_eo D_oe`` (even-odd) and ``M^dagger M`` at the table's point (SU(2) 4^4,
   beta = 2.7, m = 0.3) on a thermalised-like configuration: iterations and time per solve.
3. One HMC trajectory at the table's point (Omelyan, 5 steps of 0.2, one even-odd pseudofermion).

Run:  NUMBA_CACHE_DIR=.numba_cache .venv/bin/python benchmarks/bench_fermions.py [--repeats 5] [--threads 1 2]
(a thread count above ``NUMBA_NUM_THREADS`` is skipped; ``--no-hmc`` skips parts 2 and 3).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np
from numba import njit

from latticeml._threads import PARALLEL_MIN, run_chunks
from latticeml.cli.common import count
from latticeml.fermions import StaggeredFermions, apply_D, prepare, solve_normal
from latticeml.fermions.staggered import _hop_chunk, hop_into
from latticeml.samplers import hmc
from latticeml.theories import make_theory


def numpy_D(U, psi, *, antiperiodic: bool = True):
    """D psi with np.roll, written from the definition (module docstring of staggered.py), not from the kernels.

    U: link matrices ``(D, *L, N, N)`` (U(1): ``exp(i theta)[..., None, None]``); psi ``(*L, N)``.
    The phases ``eta_mu(x) = (-1)^(x_0 + ... + x_{mu-1})`` come from the coordinates here, the
    antiperiodic time boundary as a sign on the links ``U_0(x)`` with ``x_0 = L_0 - 1``.
    Also the tests' independent reference (tests/test_fermions.py loads this file).
    """
    Dim = U.shape[0]
    shape = U.shape[1 : 1 + Dim]
    x = np.indices(shape)
    out = np.zeros(psi.shape, dtype=complex)
    for mu in range(Dim):
        eta = (-1.0) ** x[:mu].sum(axis=0)
        if mu == 0 and antiperiodic:
            eta = np.where(x[0] == shape[0] - 1, -eta, eta)
        fwd = np.roll(psi, -1, axis=mu)  # psi(x + mu)
        bwd = np.roll(psi, 1, axis=mu)  # psi(x - mu)
        Ub = np.roll(U[mu], 1, axis=mu)  # U_mu(x - mu)
        eb = np.roll(eta, 1, axis=mu)  # eta_mu(x - mu), boundary sign included
        out += 0.5 * eta[..., None] * np.einsum("...ab,...b->...a", U[mu], fwd)
        out -= 0.5 * eb[..., None] * np.einsum("...ba,...b->...a", Ub.conj(), bwd)
    return out


@njit(cache=True)
def gather_hop(U, phases, fwd, bwd, psi, sites, scale, out):
    """The hopping kernel before issue 16, verbatim: links (D, V, N, N), backward terms gathered."""
    D = U.shape[0]
    N = U.shape[2]
    for k in range(sites.shape[0]):
        s = sites[k]
        for a in range(N):
            out[s, a] = 0.0
        for mu in range(D):
            f = fwd[s, mu]
            b = bwd[s, mu]
            cf = 0.5 * scale * phases[mu, s]
            cb = 0.5 * scale * phases[mu, b]
            for a in range(N):
                acc = 0.0j
                for c in range(N):
                    acc += cf * U[mu, s, a, c] * psi[f, c] - cb * np.conj(U[mu, b, c, a]) * psi[b, c]
                out[s, a] += acc


@njit(cache=True, fastmath=True, nogil=True)
def read_sum(a, start, stop):
    """Sum of ``a[start:stop]`` (float64, 1D): a sequential read, vectorised (``fastmath`` lets LLVM
    keep several partial sums). The chunk kernel of :func:`read_rate`."""
    part = a[start:stop]  # a slice, so the index is 0-based: a[i] with i from a runtime start keeps
    acc = 0.0             # Numba's negative-index select, which stops LLVM vectorising (about 2.5x here)
    for i in range(part.shape[0]):
        acc += part[i]
    return acc


def read_rate(a, repeats):
    """GB/s at which the current threads (``run_chunks``) read the float64 array ``a`` once, in order.
    ``size`` = the threshold, as for the threaded D below: chunks on every lattice (one call on one thread)."""
    t = best(lambda: run_chunks("staggered", a.size, read_sum, a, size=PARALLEL_MIN["staggered"]), repeats)
    return a.nbytes / t / 1e9


def best(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def copy_bandwidth(repeats, threads):
    """GB/s (read + write) of ``threads`` threads each copying its own 256 MB with np.copyto (which
    releases the GIL). 256 MB per copy, not a share of one array: a 64 or 128 MB np.copyto measured
    about half the rate of a 256 MB one on the issue-16 machine (presumably memcpy switching to
    non-temporal stores above a size threshold), so shares would understate the bandwidth."""
    from concurrent.futures import ThreadPoolExecutor

    pairs = [(np.ones(2**25), np.empty(2**25)) for _ in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        t = best(lambda: list(pool.map(lambda p: np.copyto(p[1], p[0]), pairs)), repeats)
    return threads * 2 * pairs[0][0].nbytes / t / 1e9


def dgemm_rate(threads):
    """GFLOP/s of benchmarks/_reference.dgemm_gflops with OpenBLAS on ``threads`` threads (a subprocess:
    the BLAS thread count is read when NumPy loads)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    code = "from _reference import dgemm_gflops; print(dgemm_gflops(5))"
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=Path(__file__).parent, capture_output=True, text=True, check=True)
    return float(res.stdout.split()[-1])


def flops_per_site(Dim, N):
    return 2 * Dim * (8 * N * N - 2 * N) + (2 * Dim - 1) * 2 * N


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=count(1), default=5)
    ap.add_argument("--threads", type=count(1), nargs="+", default=[1])
    ap.add_argument("--no-hmc", action="store_true", help="only the D table")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    cases = []
    for name, shape in (("su3", (8, 8, 8, 8)), ("su3", (16, 16, 16, 16)), ("u1", (64, 64))):
        theory = make_theory(name, shape, beta=1.0)
        field = theory.hot_start(rng)
        links = prepare(field, "u1" if name == "u1" else "su")
        N = links.N
        psi = rng.standard_normal(shape + (N, 2)) @ np.array([1, 1j])
        Ulat = np.exp(1j * field)[..., None, None] if name == "u1" else field
        ref = numpy_D(Ulat, psi)
        assert np.allclose(apply_D(links, psi), ref, atol=1e-12)
        t_np = best(lambda: numpy_D(Ulat, psi), max(1, args.repeats // 2))
        flat = psi.reshape(-1, N)
        out = np.zeros_like(flat)
        t_gather = best(lambda: gather_hop(links.U, links.phases, links.fwd, links.bwd, flat, links.all_sites, 1.0, out), args.repeats)
        assert np.allclose(out.reshape(ref.shape), ref, atol=1e-12)
        cases.append((f"{name} {'x'.join(map(str, shape))}", links, flat, t_np, t_gather))

    print(f"numpy {np.__version__}, numba {numba.__version__}, NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}")
    for threads in args.threads:
        if threads > numba.config.NUMBA_NUM_THREADS:
            print(f"\n{threads} threads: skipped (NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS})")
            continue
        numba.set_num_threads(threads)
        bw = copy_bandwidth(args.repeats, threads)
        gemm = dgemm_rate(threads)
        print(f"\n{threads} thread(s): copy bandwidth (read + write) {bw:.1f} GB/s, dgemm {gemm:.1f} GFLOP/s")
        print(f"{'lattice':>15} {'numba ms':>9} {'GB/s':>6} {'% copy':>7} {'streamed':>9} {'GFLOP/s':>8} {'% dgemm':>8} "
              f"{'gather ms':>10} {'numpy ms':>9} {'vs gather':>10} {'vs numpy':>9} "
              f"{'read GB/s':>7} {'floor ms':>8} {'%copy':>6} {'single':>8} {'%copy':>6}")
        for label, links, flat, t_np, t_gather in cases:
            out = np.zeros_like(flat)
            V, N = flat.shape
            Dim = len(links.shape)
            if threads == 1:
                t = best(lambda: hop_into(links.hops, links.neighbours, flat, links.all_sites, 1.0, out), args.repeats)
            else:
                # size = the threshold: threaded on every lattice, so the crossover can be read off
                t = best(lambda: run_chunks("staggered", V, _hop_chunk, links.hops, links.neighbours, flat, links.all_sites, 1.0, out,
                                            size=PARALLEL_MIN["staggered"]), args.repeats)
            assert np.allclose(out, apply_D(links, flat.reshape(links.shape + (N,))).reshape(V, N), atol=1e-13)
            # floors: each layout's bytes read once in order at the rate measured on the hops array
            minimal_bytes = (Dim * V * N * N + 2 * V * N) * 16
            rate = read_rate(links.hops.view(np.float64).ravel(), args.repeats)
            floor_hops = (links.hops.nbytes + links.neighbours.nbytes + 2 * flat.nbytes) / rate / 1e9
            floor_single = (links.U.nbytes + 2 * flat.nbytes) / rate / 1e9
            gbs = minimal_bytes / t / 1e9
            streamed = ((2 * Dim * V * N * N + 2 * V * N) * 16 + 2 * Dim * V * 8) / t / 1e9
            gf = flops_per_site(Dim, N) * V / t / 1e9
            print(f"{label:>15} {1e3 * t:9.3f} {gbs:6.2f} {100 * gbs / bw:6.1f}% {streamed:8.2f} {gf:8.2f} {100 * gf / gemm:7.1f}% "
                  f"{1e3 * t_gather:10.3f} {1e3 * t_np:9.3f} {t_gather / t:9.2f}x {t_np / t:8.1f}x "
                  f"{rate:7.1f} {1e3 * floor_hops:8.3f} {100 * minimal_bytes / floor_hops / 1e9 / bw:5.0f}% "
                  f"{1e3 * floor_single:8.3f} {100 * minimal_bytes / floor_single / 1e9 / bw:5.0f}%")
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    if args.no_hmc:
        return

    # CG and one trajectory at the table's point (serial kernels)
    gauge = make_theory("su2", (4, 4, 4, 4), beta=2.7)
    theory = StaggeredFermions(gauge, mass=0.3, n_staggered=1)
    sampler = hmc.sampler(theory, step_size=0.2, n_steps=5, integrator="omelyan")
    state = sampler.init(gauge.cold_start())
    for _ in range(30):  # move off the cold start
        state, _ = sampler.step(rng, state)
    links = prepare(state.field, "su")
    b = rng.standard_normal((4, 4, 4, 4, 2, 2)) @ np.array([1, 1j])
    print()
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
