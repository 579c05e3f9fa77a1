"""Benchmark of the local updates (latticeml.samplers.metropolis and .heatbath): Numba vs plain NumPy.

Workloads (one sweep = every site or link updated once; Metropolis with one hit per site):
  phi4   2D 64^2, m2 = -4, lam = 8 (Albergo et al.'s point)          Metropolis
  u1     2D 64^2, beta = 2                                            Metropolis, heatbath, overrelaxation
  su2    4D 8^4,  beta = 2.3                                          Metropolis, heatbath, overrelaxation
  su3    4D 8^4,  beta = 6.0                                          Metropolis, heatbath, overrelaxation

Columns: sweeps per second and site (link) updates per second of the library's Numba kernels on
1 thread and on 2 threads (the parallel kernels; the heatbath kernels are sequential, so their
two columns differ only by noise), and of a plain NumPy version of the same sweep written below:
vectorised over one checkerboard colour, staples from np.roll, the same proposals and the same
accept tests (NumPy's own Generator.vonmises for the U(1) heatbath, a masked vectorised
Kennedy-Pendleton/Creutz loop for SU(2) subgroups). ``speed-up`` is the faster Numba column over
NumPy. An SU(3) heatbath "update" is one link (three SU(2) subgroup draws).

``--crossover`` instead times 1 against 2 threads over lattice sizes, which is how
``latticeml._threads.PARALLEL_MIN["local_*"]`` (one thread below it) were chosen.

Run:  NUMBA_CACHE_DIR=.numba_cache .venv/bin/python benchmarks/bench_local_updates.py [--quick] [--crossover]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numba
import numpy as np

from latticeml import groups
from latticeml._threads import PARALLEL_MIN
from latticeml.lattice import checkerboard_sites
from latticeml.samplers import heatbath, metropolis
from latticeml.theories import make_theory, sun_local

# ----------------------------------------------------------------------------- plain NumPy sweeps


def shift(f, axis, n):
    """f(x + n e_axis) over the lattice axes of f (periodic)."""
    return np.roll(f, -n, axis=axis)


def dagger(M):
    return np.conj(np.swapaxes(M, -1, -2))


def u1_staple(theta, mu):
    A = np.zeros(theta.shape[1:], complex)
    for nu in range(theta.shape[0]):
        if nu != mu:
            up = shift(theta[nu], mu, 1) - shift(theta[mu], nu, 1) - theta[nu]
            lo = -shift(shift(theta[nu], mu, 1), nu, -1) - shift(theta[mu], nu, -1) + shift(theta[nu], nu, -1)
            A += np.exp(1j * up) + np.exp(1j * lo)
    return A


def sun_staple(U, mu):
    A = np.zeros(U.shape[1:], complex)
    for nu in range(U.shape[0]):
        if nu != mu:
            A += shift(U[nu], mu, 1) @ dagger(shift(U[mu], nu, 1)) @ dagger(U[nu])
            A += dagger(shift(shift(U[nu], mu, 1), nu, -1)) @ dagger(shift(U[mu], nu, -1)) @ shift(U[nu], nu, -1)
    return A


def np_phi4_metropolis(phi, rng, th, step):
    D = phi.ndim
    for sites in checkerboard_sites(phi.shape):
        n = sum(shift(phi, mu, 1) + shift(phi, mu, -1) for mu in range(D)).ravel()[sites]
        x = phi.ravel()[sites]
        new = x + step * (2 * rng.random(x.size) - 1)
        dS = -2 * n * (new - x) + (2 * D + th.m2) * (new**2 - x**2) + th.lam * (new**4 - x**4)
        accept = (dS <= 0) | (rng.random(x.size) < np.exp(-dS))
        phi.ravel()[sites] = np.where(accept, new, x)


def np_u1_metropolis(theta, rng, th, step):
    for mu in range(theta.shape[0]):
        for sites in checkerboard_sites(theta.shape[1:]):
            A = u1_staple(theta, mu).ravel()[sites]
            t = theta[mu].ravel()[sites]
            new = t + step * (2 * rng.random(t.size) - 1)
            dS = -th.beta * np.real((np.exp(1j * new) - np.exp(1j * t)) * A)
            accept = (dS <= 0) | (rng.random(t.size) < np.exp(-dS))
            theta[mu].ravel()[sites] = groups.wrap_angle(np.where(accept, new, t))


def np_u1_heatbath(theta, rng, th):
    for mu in range(theta.shape[0]):
        for sites in checkerboard_sites(theta.shape[1:]):
            A = u1_staple(theta, mu).ravel()[sites]
            theta[mu].ravel()[sites] = groups.wrap_angle(rng.vonmises(0.0, th.beta * np.abs(A)) - np.angle(A))


def np_u1_overrelax(theta, rng, th):
    for mu in range(theta.shape[0]):
        for sites in checkerboard_sites(theta.shape[1:]):
            A = u1_staple(theta, mu).ravel()[sites]
            theta[mu].ravel()[sites] = groups.wrap_angle(-2 * np.angle(A) - theta[mu].ravel()[sites])


def np_sun_metropolis(U, rng, th, step):
    N = th.N
    for mu in range(U.shape[0]):
        for sites in checkerboard_sites(U.shape[1:-2]):
            A = sun_staple(U, mu).reshape(-1, N, N)[sites]
            link = U[mu].reshape(-1, N, N)[sites]
            trial = groups.random_near_identity(rng, N, len(sites), spread=step) @ link
            dS = -th.beta / N * np.einsum("sij,sji->s", trial - link, A).real
            accept = (dS <= 0) | (rng.random(len(sites)) < np.exp(-dS))
            U[mu].reshape(-1, N, N)[sites] = np.where(accept[:, None, None], trial, link)


def np_su2_a0(rng, alpha):
    """Vectorised x0 ~ sqrt(1 - x0^2) exp(alpha x0): KP for alpha >= 1.7, Creutz below, redraw the rejected."""
    x0 = np.empty_like(alpha)
    todo = np.arange(alpha.size)
    while todo.size:
        a = alpha[todo]
        kp = a >= sun_local.KP_MIN_ALPHA
        r1, r2, r3, r4 = 1 - rng.random(a.size), rng.random(a.size), 1 - rng.random(a.size), rng.random(a.size)
        d = -(np.log(r1) + np.cos(2 * np.pi * r2) ** 2 * np.log(r3)) / a
        creutz = 1 + np.log1p(r2 * np.expm1(-2 * a)) / np.maximum(a, 1e-300)
        x = np.where(kp, 1 - d, creutz)
        ok = np.where(kp, r4**2 <= 1 - d / 2, r4**2 <= 1 - creutz**2)
        x0[todo[ok]] = x[ok]
        todo = todo[~ok]
    return x0


def quaternion_of_block(W, i, j):
    return 0.5 * np.stack(
        [
            (W[:, i, i] + W[:, j, j]).real,
            (W[:, i, j] + W[:, j, i]).imag,
            (W[:, i, j] - W[:, j, i]).real,
            (W[:, i, i] - W[:, j, j]).imag,
        ],
        -1,
    )


def su2_matrix(q):
    q0, q1, q2, q3 = np.moveaxis(q, -1, 0)
    return np.stack([np.stack([q0 + 1j * q3, q2 + 1j * q1], -1), np.stack([-q2 + 1j * q1, q0 - 1j * q3], -1)], -2)


def np_sun_subgroup_sweep(U, rng, th, mode):
    """Cabibbo-Marinari heatbath (mode "heatbath") or Brown-Woch overrelaxation over SU(2) subgroups."""
    N = th.N
    for mu in range(U.shape[0]):
        for sites in checkerboard_sites(U.shape[1:-2]):
            link = U[mu].reshape(-1, N, N)[sites]
            W = link @ sun_staple(U, mu).reshape(-1, N, N)[sites]
            for i in range(N - 1):
                for j in range(i + 1, N):
                    a = quaternion_of_block(W, i, j)
                    k = np.linalg.norm(a, axis=-1)
                    V = su2_matrix(a / k[:, None])
                    if mode == "heatbath":
                        x0 = np_su2_a0(rng, 2 * th.beta * k / N)
                        cos_t, phi = 2 * rng.random(x0.size) - 1, 2 * np.pi * rng.random(x0.size)
                        ln = np.sqrt(1 - x0**2)
                        s = np.sqrt(1 - cos_t**2)
                        x = np.stack([x0, ln * s * np.cos(phi), ln * s * np.sin(phi), ln * cos_t], -1)
                        r = su2_matrix(x) @ dagger(V)
                    else:
                        r = dagger(V) @ dagger(V)
                    link[:, [i, j], :] = r @ link[:, [i, j], :]
                    W[:, [i, j], :] = r @ W[:, [i, j], :]
            U[mu].reshape(-1, N, N)[sites] = link


# ----------------------------------------------------------------------------- timing


def sweeps_per_second(fn, *, min_time: float) -> float:
    fn()  # warm-up (Numba compile / cache load)
    n, elapsed = 0, 0.0
    t0 = time.perf_counter()
    while elapsed < min_time or n < 2:
        fn()
        n += 1
        elapsed = time.perf_counter() - t0
    return n / elapsed


def numba_runner(smp, field, rng):
    state = {"s": smp.init(field)}

    def run():
        state["s"], _ = smp.step(rng, state["s"])

    return run


def workloads(quick: bool):
    L2, L4 = (16, 4) if quick else (64, 8)
    phi4 = make_theory("phi4", (L2, L2), m2=-4.0, lam=8.0)
    u1 = make_theory("u1", (L2, L2), beta=2.0)
    su2 = make_theory("su2", (L4,) * 4, beta=2.3)
    su3 = make_theory("su3", (L4,) * 4, beta=6.0)
    step = {"phi4": 1.0, "u1": 1.0, "su2": 0.5, "su3": 0.3}
    return [
        (phi4, "metropolis", metropolis.sampler(phi4, step_size=step["phi4"]), lambda f, r: np_phi4_metropolis(f, r, phi4, step["phi4"])),
        (u1, "metropolis", metropolis.sampler(u1, step_size=step["u1"]), lambda f, r: np_u1_metropolis(f, r, u1, step["u1"])),
        (u1, "heatbath", heatbath.sampler(u1), lambda f, r: np_u1_heatbath(f, r, u1)),
        (u1, "overrelaxation", heatbath.overrelaxation_sampler(u1), lambda f, r: np_u1_overrelax(f, r, u1)),
        (su2, "metropolis", metropolis.sampler(su2, step_size=step["su2"]), lambda f, r: np_sun_metropolis(f, r, su2, step["su2"])),
        (su2, "heatbath", heatbath.sampler(su2), lambda f, r: np_sun_subgroup_sweep(f, r, su2, "heatbath")),
        (su2, "overrelaxation", heatbath.overrelaxation_sampler(su2), lambda f, r: np_sun_subgroup_sweep(f, r, su2, "or")),
        (su3, "metropolis", metropolis.sampler(su3, step_size=step["su3"]), lambda f, r: np_sun_metropolis(f, r, su3, step["su3"])),
        (su3, "heatbath", heatbath.sampler(su3), lambda f, r: np_sun_subgroup_sweep(f, r, su3, "heatbath")),
        (su3, "overrelaxation", heatbath.overrelaxation_sampler(su3), lambda f, r: np_sun_subgroup_sweep(f, r, su3, "or")),
    ]


def thermalised(th, seed=0):
    """A configuration near equilibrium (a few heatbath / Metropolis sweeps from a hot start), so
    that acceptances and rejection loops run at their equilibrium rates."""
    rng = np.random.default_rng(seed)
    smp = metropolis.sampler(th) if th.name == "phi4" else heatbath.sampler(th, overrelax=1)
    state = smp.init(th.hot_start(rng))
    for _ in range(20):
        state, _ = smp.step(rng, state)
    return state.field


def main_table(quick: bool, min_time: float):
    threads = sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)})
    rows = []
    for th, algorithm, smp, np_sweep in workloads(quick):
        field = thermalised(th)
        n_updates = field.size if th.name == "phi4" else th.dim * th.volume
        rates = {}
        old = numba.get_num_threads()
        for t in threads:
            numba.set_num_threads(t)
            rates[f"numba {t}t"] = sweeps_per_second(numba_runner(smp, field, np.random.default_rng(1)), min_time=min_time)
        numba.set_num_threads(old)
        work, rng = field.copy(), np.random.default_rng(1)
        rates["numpy"] = sweeps_per_second(lambda: np_sweep(work, rng), min_time=min_time)
        lattice = "x".join(map(str, th.shape))
        rows.append((th.name, lattice, algorithm, n_updates, rates))
        print(f"# done {th.name} {lattice} {algorithm}: " + ", ".join(f"{k} {v:.3g}/s" for k, v in rates.items()), flush=True)
    cols = [f"numba {t}t" for t in threads] + ["numpy"]
    head = "| theory | lattice | algorithm | " + " | ".join(f"{c} sweeps/s" for c in cols) + " | " + " | ".join(f"{c} updates/s" for c in cols) + " | speed-up vs NumPy |"
    print()
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for name, lattice, algorithm, n_updates, rates in rows:
        best = max(rates[c] for c in cols[:-1])
        print(
            f"| {name} | {lattice} | {algorithm} | "
            + " | ".join(f"{rates[c]:.3g}" for c in cols)
            + " | "
            + " | ".join(f"{rates[c] * n_updates:.3g}" for c in cols)
            + f" | {best / rates['numpy']:.0f}x |"
        )


def crossover(min_time: float):
    """Sweeps/s on 1 and 2 threads against the number of sites per checkerboard colour."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        print("crossover needs at least 2 Numba threads")
        return
    saved = dict(PARALLEL_MIN)
    PARALLEL_MIN.update({k: 0 for k in saved if k.startswith("local_")})  # let the kernels go parallel at any size
    cases = [("phi4", {"m2": -4.0, "lam": 8.0}, [(16, 16), (32, 32), (64, 64), (128, 128)], "metropolis")]
    cases += [("u1", {"beta": 2.0}, [(16, 16), (32, 32), (64, 64), (128, 128)], "metropolis")]
    cases += [("u1", {"beta": 2.0}, [(16, 16), (32, 32), (64, 64), (128, 128)], "overrelaxation")]
    cases += [("su3", {"beta": 6.0}, [(2, 2, 2, 2), (4, 2, 2, 2), (4, 4, 2, 2), (4, 4, 4, 4), (8, 8, 8, 8)], "overrelaxation")]
    cases += [("su3", {"beta": 6.0}, [(2, 2, 2, 2), (4, 2, 2, 2), (4, 4, 2, 2), (4, 4, 4, 4), (8, 8, 8, 8)], "metropolis")]
    print("| theory | algorithm | lattice | sites per colour | 1 thread sweeps/s | 2 threads sweeps/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    try:
        for name, couplings, shapes, algorithm in cases:
            for shape in shapes:
                th = make_theory(name, shape, **couplings)
                smp = metropolis.sampler(th) if algorithm == "metropolis" else heatbath.overrelaxation_sampler(th)
                field = th.hot_start(np.random.default_rng(0))
                rate = {}
                for t in (1, 2):
                    numba.set_num_threads(t)
                    rate[t] = sweeps_per_second(numba_runner(smp, field, np.random.default_rng(1)), min_time=min_time)
                half = th.volume // 2
                print(f"| {name} | {algorithm} | {'x'.join(map(str, shape))} | {half} | {rate[1]:.4g} | {rate[2]:.4g} | {rate[2] / rate[1]:.2f} |", flush=True)
    finally:
        PARALLEL_MIN.update(saved)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small lattices, short timings (a smoke test)")
    parser.add_argument("--crossover", action="store_true", help="time 1 vs 2 threads over lattice sizes")
    args = parser.parse_args()
    min_time = 0.2 if args.quick else 2.0
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Numba {numba.__version__} "
        f"({numba.config.NUMBA_NUM_THREADS} threads max), NumPy {np.__version__}"
    )
    if args.crossover:
        crossover(min_time / 2)
    else:
        main_table(args.quick, min_time)


if __name__ == "__main__":
    main()
