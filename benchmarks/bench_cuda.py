"""The CUDA backend on a GPU: ms per action, force, HMC trajectory and flow step; GB/s; speed-up over the cpu.

For SU(3) on 16^4, 24^4, 32^4 and U(1) on 1024^2 (Wilson action) this times, with the fields on
the device (:mod:`latticeml.backends.cuda`):

* ``action``: the plaquette sum (one kernel and the block-sum reduction, one float to the host);
* ``force``: ``F = (beta/2N) TA(U A)`` for every link (U(1): ``beta Im(e^{i theta} A)``);
* ``trajectory``: one HMC trajectory of ``--nsteps`` leapfrog steps through the sampler of
  :mod:`latticeml.samplers.hmc` (momenta drawn on the host from the Generator and copied over,
  the accept/reject on the host), and separately the host draw + copy of the momenta alone;
* ``flow step``: one RK3 step of the Wilson flow (Luscher 2010, appendix C).

Effective bandwidth: bytes an ideal kernel must move, divided by the time. The action reads every
link once (``D V N^2`` complex128, plus 8 bytes per site of partial sums); the force reads every
link and writes every force (twice that). Compared with the device-to-device copy bandwidth
measured here (``cudaMemcpy`` of a 1 GiB buffer, read + write), the practical ceiling; the goal of
issue 12 is at least 50 % for action and force. The cpu columns time the cpu kernels on this
machine with the same lattices (``--cpu-max-volume`` skips the large ones).

Usage (on a machine with a CUDA GPU and ``pip install 'latticeml[cuda]'``)::

    python benchmarks/bench_cuda.py                         # the issue's table
    python benchmarks/bench_cuda.py --su3 8 16 --u1 256     # other sizes
    python benchmarks/bench_cuda.py --json cuda.json

Under the simulator (``NUMBA_ENABLE_CUDASIM=1``) with tiny lattices it checks that the script runs
(``--su3 2 --u1 4 --repeat 1``); the numbers then mean nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _timed(fn, repeat: int, sync) -> float:
    """Best wall time of ``repeat`` calls in ms, after one warm-up call (compilation)."""
    fn()
    sync()
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best


def copy_bandwidth(cuda, nbytes: int = 1 << 30, repeat: int = 5) -> float:
    """Device-to-device copy bandwidth in GB/s (bytes read + written per second)."""
    a = cuda.device_array(nbytes // 8, dtype=np.float64)
    b = cuda.device_array(nbytes // 8, dtype=np.float64)
    ms = _timed(lambda: b.copy_to_device(a), repeat, cuda.synchronize)
    return 2 * nbytes / (ms * 1e-3) / 1e9


def bench_lattice(name: str, shape: tuple, *, beta: float, nsteps: int, step: float, repeat: int, cpu: bool, cuda) -> dict:
    from latticeml.backends.cuda.arrays import DeviceField, to_device
    from latticeml.samplers import build_sampler
    from latticeml.theories import make_theory

    rng = np.random.default_rng(1)
    gpu = make_theory(name, shape, beta=beta, backend="cuda")
    host_field = gpu.hot_start(rng)
    K = gpu.kernels  # latticeml.backends.cuda.sun or .u1
    U = DeviceField(to_device(host_field, gpu.field_dtype))
    sync = cuda.synchronize
    D, V = len(shape), int(np.prod(shape))
    link_bytes = gpu.field_dtype.itemsize * (gpu.N * gpu.N if name != "u1" else 1)
    row = {"theory": name, "shape": "x".join(map(str, shape)), "links": D * V}
    row["action_ms"] = _timed(lambda: gpu.action(U), repeat, sync)
    row["force_ms"] = _timed(lambda: gpu.force(U), repeat, sync)
    row["action_GBs"] = (D * V * link_bytes + 8 * V) / (row["action_ms"] * 1e-3) / 1e9
    row["force_GBs"] = 2 * D * V * link_bytes / (row["force_ms"] * 1e-3) / 1e9

    sampler = build_sampler(gpu, "hmc", step_size=step, n_steps=nsteps)
    state = sampler.init(host_field)
    row["trajectory_ms"] = _timed(lambda: sampler.step(rng, state), max(1, repeat // 4), sync)
    row["momenta_host_ms"] = _timed(lambda: gpu.random_momentum(rng), max(1, repeat // 4), sync)
    row["flow_step_ms"] = _timed(lambda: K.flow_step(U, step_size=0.01), max(1, repeat // 2), sync)

    if cpu:
        from latticeml.smearing import gradient_flow

        host = make_theory(name, shape, beta=beta)
        one = 1  # the cpu is slow on these lattices: one timed call after the warm-up
        row["cpu_action_ms"] = _timed(lambda: host.action(host_field), one, lambda: None)
        row["cpu_force_ms"] = _timed(lambda: host.force(host_field), one, lambda: None)
        cpu_sampler = build_sampler(host, "hmc", step_size=step, n_steps=nsteps)
        cpu_state = cpu_sampler.init(host_field)
        row["cpu_trajectory_ms"] = _timed(lambda: cpu_sampler.step(rng, cpu_state), one, lambda: None)
        row["cpu_flow_step_ms"] = _timed(lambda: gradient_flow.flow_step(host_field, step_size=0.01), one, lambda: None)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--su3", type=int, nargs="*", default=[16, 24, 32], metavar="L", help="SU(3) L^4 lattices (default 16 24 32)")
    p.add_argument("--u1", type=int, nargs="*", default=[1024], metavar="L", help="U(1) L^2 lattices (default 1024)")
    p.add_argument("--nsteps", type=int, default=10, help="leapfrog steps per trajectory (default 10)")
    p.add_argument("--repeat", type=int, default=10, help="timed repetitions of action and force (best of; default 10)")
    p.add_argument("--no-cpu", action="store_true", help="skip the cpu timings")
    p.add_argument("--cpu-max-volume", type=int, default=32**4, help="time the cpu only up to this many sites (default 32^4)")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = p.parse_args(argv)

    from latticeml.backends.cuda import device_description, unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        print(f"bench_cuda: no CUDA device: {reason}", file=sys.stderr)
        return 2
    from numba import cuda

    from latticeml.backends.cuda._shim import SIMULATOR

    device = device_description()
    bandwidth = float("nan") if SIMULATOR else copy_bandwidth(cuda)
    print(f"device: {device}; device-to-device copy {bandwidth:.0f} GB/s")
    rows = []
    jobs = [("su3", (L,) * 4, 6.0, 0.02) for L in args.su3] + [("u1", (L, L), 2.0, 0.05) for L in args.u1]
    for name, shape, beta, step in jobs:
        cpu = not args.no_cpu and int(np.prod(shape)) <= args.cpu_max_volume
        row = bench_lattice(name, shape, beta=beta, nsteps=args.nsteps, step=step, repeat=args.repeat, cpu=cpu, cuda=cuda)
        for k in ("action", "force"):
            row[f"{k}_fraction_of_copy"] = row[f"{k}_GBs"] / bandwidth
        rows.append(row)
        print(json.dumps(row), flush=True)

    head = ("| theory | lattice | action ms | force ms | trajectory ms (momenta on host) | flow step ms "
            "| action GB/s (% copy) | force GB/s (% copy) | cpu action / force / trajectory / flow ms | speed-up action / force / traj / flow |")
    print("\n" + head + "\n|" + "---|" * 10)
    for r in rows:
        cpu = [r.get(f"cpu_{k}_ms") for k in ("action", "force", "trajectory", "flow_step")]
        gpu = [r[f"{k}_ms"] for k in ("action", "force", "trajectory", "flow_step")]
        cpu_s = " / ".join("-" if c is None else f"{c:.0f}" for c in cpu)
        speed = " / ".join("-" if c is None else f"{c / g:.0f}x" for c, g in zip(cpu, gpu))
        print(f"| {r['theory']} | {r['shape']} | {r['action_ms']:.3f} | {r['force_ms']:.3f} | {r['trajectory_ms']:.1f} ({r['momenta_host_ms']:.1f}) "
              f"| {r['flow_step_ms']:.2f} | {r['action_GBs']:.0f} ({100 * r['action_fraction_of_copy']:.0f} %) "
              f"| {r['force_GBs']:.0f} ({100 * r['force_fraction_of_copy']:.0f} %) | {cpu_s} | {speed} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "copy_GBs": bandwidth, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
