"""Cold start of `latticeml sample`: the wait before the first number, with an empty and a warm Numba cache.

For each theory and algorithm (phi4, u1, su2, su3 x metropolis, heatbath (gauge theories only),
hmc) this runs the command-line sampler in a fresh subprocess, twice: first with an empty
temporary ``NUMBA_CACHE_DIR`` (every kernel the run needs is compiled), then with that cache warm
(every kernel is loaded from disk). It prints

* a table of wall-clock seconds and CPU seconds (user + system) of each subprocess: on a shared
  machine the CPU seconds are the fairer number, the wall-clock ones what a student waits;
* for each cold run, which Numba kernels compiled (module.function and argument types) and how
  long each took, its own time (excluding the kernels it compiled on the way, which are listed
  on their own) and its time including them. Recorded with Numba's ``numba:compile`` events,
  which fire on cache misses only.

Usage::

    python benchmarks/bench_coldstart.py                      # every pair, 4^4 gauge / 8^2 phi4
    python benchmarks/bench_coldstart.py --only su3:hmc u1    # some pairs (theory or theory:algorithm)
    python benchmarks/bench_coldstart.py --top 15 --json out.json

The sampled chain is short (``--n 20 --therm 0``-style settings, see ``COMMANDS``): the point is
the time before the chain's first number, which is almost all compilation when the cache is empty.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

# The sample command of each theory: the couplings of the measurements (su3 4^4 at
# beta = 5.7, the others small lattices that run in well under a second once compiled).
COMMANDS = {
    "phi4": ["--shape", "8,8", "--m2", "-4", "--lam", "8"],
    "u1": ["--shape", "8,8", "--beta", "2"],
    "su2": ["--shape", "4,4,4,4", "--beta", "2.3"],
    "su3": ["--shape", "4,4,4,4", "--beta", "5.7"],
}
ALGORITHMS = {
    "phi4": ("metropolis", "hmc"),
    "u1": ("metropolis", "heatbath", "hmc"),
    "su2": ("metropolis", "heatbath", "hmc"),
    "su3": ("metropolis", "heatbath", "hmc"),
}
CHAIN = ["--n", "20", "--therm", "5", "--quiet"]


# ----------------------------------------------------------------------------- the child process


def _child(out_path: str, argv: list[str]) -> int:
    """Run ``latticeml <argv>`` recording every Numba compilation; write the record to out_path."""
    t_start = time.perf_counter()
    from numba.core import event

    stack: list[list] = []  # [dispatcher, args, t0, time spent in nested compiles]
    records: list[dict] = []

    class Recorder(event.Listener):
        def on_start(self, ev):
            stack.append([ev.data["dispatcher"], ev.data["args"], time.perf_counter(), 0.0])

        def on_end(self, ev):
            disp, args, t0, nested = stack.pop()
            total = time.perf_counter() - t0
            if stack:
                stack[-1][3] += total
            fn = disp.py_func
            records.append(
                {
                    "kernel": f"{fn.__module__}.{fn.__qualname__}",
                    "args": ", ".join(str(a) for a in args),
                    "total_s": total,
                    "self_s": total - nested,
                    "depth": len(stack),
                }
            )

    event.register("numba:compile", Recorder())
    t0 = time.perf_counter()
    from latticeml.cli import main

    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse errors
        rc = exc.code if isinstance(exc.code, int) else 1
    t_main = time.perf_counter() - t0
    # cache hits (warm runs): dispatchers of latticeml modules with signatures loaded from disk
    loaded = []
    from numba.core.registry import CPUDispatcher

    for name, mod in list(sys.modules.items()):
        if not name.startswith("latticeml"):
            continue
        for attr in vars(mod).values():
            if isinstance(attr, CPUDispatcher) and attr.__module__ == name:
                hits = sum(attr._cache_hits.values())
                if hits:
                    loaded.append(f"{name}.{attr.__name__}")
    with open(out_path, "w") as f:
        json.dump(
            {
                "rc": rc,
                "import_s": t_import,
                "main_s": t_main,
                "process_s": time.perf_counter() - t_start,
                "compiles": records,
                "loaded": sorted(set(loaded)),
            },
            f,
        )
    return 0


# ----------------------------------------------------------------------------- the parent


def _run(theory: str, algorithm: str, cache_dir: str, extra_env: dict) -> dict:
    argv = ["sample", theory] + COMMANDS[theory] + ["--algorithm", algorithm] + CHAIN
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        out_path = tmp.name
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, MPLBACKEND="Agg", **extra_env)
    env.pop("LATTICEML_FAST", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--child", out_path, "--"] + argv,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stderr = proc.stderr.read()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    try:
        with open(out_path) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        rec = {"rc": proc.returncode, "compiles": [], "loaded": []}
    os.unlink(out_path)
    rec.update(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        command="latticeml " + " ".join(argv),
        ok=proc.returncode == 0 and rec.get("rc") == 0,
        stderr_tail=stderr.strip().splitlines()[-1:] if stderr.strip() else [],
    )
    return rec


def _pairs(only: list[str] | None):
    for theory, algs in ALGORITHMS.items():
        for alg in algs:
            if not only or theory in only or f"{theory}:{alg}" in only:
                yield theory, alg


def _breakdown(rec: dict, top: int) -> list[str]:
    """Lines of the per-kernel compile times of one cold run, largest own time first."""
    comps = rec["compiles"]
    total_top = sum(c["total_s"] for c in comps if c["depth"] == 0)
    lines = [f"    {len(comps)} compilations, {total_top:.1f} s in top-level compiles (main {rec.get('main_s', 0):.1f} s, import {rec.get('import_s', 0):.2f} s)"]
    for c in sorted(comps, key=lambda c: -c["self_s"])[:top]:
        args = c["args"] if len(c["args"]) < 90 else c["args"][:87] + "..."
        lines.append(f"    {c['self_s']:6.2f} s own {c['total_s']:6.2f} s incl.  {c['kernel']}({args})")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", help="theories or theory:algorithm pairs (default: all)")
    ap.add_argument("--top", type=int, default=12, help="kernels listed per cold run (default 12)")
    ap.add_argument("--json", help="also write every record to this file")
    ap.add_argument("--no-warm", action="store_true", help="cold runs only")
    args = ap.parse_args(argv)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at start")
    print(f"python {platform.python_version()}, chain settings: {' '.join(CHAIN)}")
    rows, details = [], []
    for theory, alg in _pairs(args.only):
        cache = tempfile.mkdtemp(prefix="numba_cold_")
        try:
            cold = _run(theory, alg, cache, {})
            warm = None if args.no_warm else _run(theory, alg, cache, {})
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        rows.append((theory, alg, cold, warm))
        details.append((theory, alg, cold))
        w = f"{warm['wall_s']:6.1f} {warm['cpu_s']:6.1f}" if warm else "     -      -"
        flag = "" if cold["ok"] and (warm is None or warm["ok"]) else "  FAILED: " + " ".join(cold["stderr_tail"] or (warm or {}).get("stderr_tail", []))
        print(f"  {theory:5s} {alg:10s} cold {cold['wall_s']:6.1f} s wall {cold['cpu_s']:6.1f} s CPU | warm {w}{flag}", flush=True)
        if args.json:  # after every pair, so an interrupted run keeps what it measured
            with open(args.json, "w") as f:
                json.dump([{"theory": t, "algorithm": a, "cold": c, "warm": w} for t, a, c, w in rows], f, indent=1)

    print(f"\nload average {os.getloadavg()[0]:.1f} at end\n")
    print("| theory | algorithm | empty cache: wall s | CPU s | kernels compiled | warm cache: wall s | CPU s |")
    print("|---|---|---|---|---|---|---|")
    for theory, alg, cold, warm in rows:
        w = f"{warm['wall_s']:.1f} | {warm['cpu_s']:.1f}" if warm else "- | -"
        print(f"| {theory} | {alg} | {cold['wall_s']:.1f} | {cold['cpu_s']:.1f} | {len(cold['compiles'])} | {w} |")
    print("\nWhat compiled in each cold run (own time excludes the kernels compiled on the way):")
    for theory, alg, cold in details:
        print(f"  {theory} {alg}: {cold['command']}")
        print("\n".join(_breakdown(cold, args.top)))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        sys.exit(_child(sys.argv[2], sys.argv[4:]))
    sys.exit(main())
