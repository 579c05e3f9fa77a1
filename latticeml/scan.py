"""Scans: a grid of Markov chains (couplings x shapes x algorithm settings x seeds) run as Dask tasks.

    from latticeml import scan
    tasks = scan.grid("u1", shapes=[(8, 8), (16, 16)], couplings={"beta": [1, 2, 3]},
                      algorithms={"heatbath": [{"overrelax": 0}]}, seeds=4, n=2000, seed=0)
    result = scan.run_scan(tasks, "RUN")              # local Dask cluster, one worker per core
    result = scan.run_scan(tasks, "RUN", scheduler="tcp://host:8786")   # an existing cluster
    result.runs[0]["observables"]["plaquette"]       # {"mean", "error", "tau_int", "tau_int_error"}

The same from the command line: ``latticeml scan u1 --shape 8,8 16,16 --beta 1,2,3 --seeds 4
--algorithm heatbath --n 2000 --dir RUN`` (:mod:`latticeml.cli.scan`).

A task (:class:`Task`) is one chain: a theory, a lattice shape, its couplings, an algorithm with
its settings, the chain lengths ``n`` / ``therm`` / ``every`` and a seed index ``0 .. seeds-1``.
Executed by :func:`run_task` (in a Dask worker or in this process), it writes into the run
directory::

    RUN/scan.json                the tasks of the last scan run here (their specs and ids)
    RUN/tasks/<id>.ckpt.npz      the chain's checkpoint (latticeml.io, every ``checkpoint_every`` steps)
    RUN/tasks/<id>.json          its result: the task, the payload of ``latticeml sample --json``, the records
    RUN/results.json, .csv       one row per task: parameters, seed, acceptance, observables (Gamma method)
    RUN/<observable>.png         the observable against the scanned coupling, seeds combined

``<id>`` is a hash of the task's spec, so the same scan run again finds its files: a task with a
result is skipped, a task with only a checkpoint resumes from it (bit-identically:
``latticeml._runs`` pairs every checkpoint with the generator's state), and a task with neither
starts. A worker killed mid-task loses only the steps since that task's last checkpoint: Dask
(``distributed``) hands the task to another worker, which resumes it.

Reproducibility: a task's generator is ``numpy.random.default_rng(SeedSequence(seed, spawn_key=K))``
with ``seed`` the scan seed and ``K`` eight 32-bit words of the SHA-256 of the task's physics and
algorithm (theory, shape, couplings, algorithm, settings, start, ``therm``, ``every``, seed index):
nothing about which worker ran it or in what order, and not ``n`` (a longer scan extends each
chain: its first ``n`` measurements are the shorter scan's). See M. E. O'Neill's PCG paper and the
NumPy ``SeedSequence`` documentation for why hashed spawn keys give independent streams.

Workers must see the run directory (same machine, or a shared file system on a cluster). Each
task runs single-threaded (``latticeml._threads.single_threaded``; the kernels' results do not
depend on the thread count): the parallelism is across tasks. Dask is imported only by
:func:`run_scan` with ``workers != 0`` (``pip install latticeml[scale]``). A script that starts a
local cluster must guard its entry point with ``if __name__ == "__main__":`` (the worker processes
are spawned and import the script's main module).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import os
import uuid
from dataclasses import asdict, dataclass, field
from io import StringIO
from pathlib import Path

import numpy as np

__all__ = ["Task", "ScanResult", "grid", "task_rng", "run_task", "run_scan", "collect", "plot_scan"]

SCAN_FORMAT = "latticeml-scan"


@dataclass(frozen=True)
class Task:
    """One chain of a scan (all values JSON-able; ``shape`` a tuple, ``couplings``/``settings`` dicts)."""

    theory: str
    shape: tuple
    couplings: dict = field(default_factory=dict)
    algorithm: str = "hmc"
    settings: dict = field(default_factory=dict)
    n: int = 1000
    therm: int = 100
    every: int = 1
    seed_index: int = 0
    seed: int = 0  # the scan seed
    start: str = "hot"

    def spec(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return json.loads(json.dumps(d, sort_keys=True))

    @property
    def id(self) -> str:
        """16 hex digits of the SHA-256 of the whole spec: the task's file names."""
        return hashlib.sha256(json.dumps(self.spec(), sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_spec(cls, spec: dict) -> "Task":
        return cls(**{**spec, "shape": tuple(spec["shape"])})


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def grid(theory: str, *, shapes, couplings: dict | None = None, algorithms="hmc", seeds: int = 1, n=1000,
         therm=100, every=1, seed: int = 0, start: str = "hot") -> list[Task]:
    """The tasks of a scan: the product of shapes, couplings, algorithm settings, n, therm, every and seeds.

    ``shapes``: a list of shapes (tuples); ``couplings``: name -> value or list of values;
    ``algorithms``: a name, a list of names, or a dict name -> list of settings dicts (e.g.
    ``{"hmc": [{"step_size": 0.1, "n_steps": 10}], "heatbath": [{"overrelax": 0}, {"overrelax": 2}]}``);
    ``n``, ``therm``, ``every``: an int or a list; ``seeds``: seed indices ``0 .. seeds-1``; ``seed``: the scan seed.
    """
    if isinstance(algorithms, str):
        algorithms = [algorithms]
    if not isinstance(algorithms, dict):
        algorithms = {name: [{}] for name in algorithms}
    shapes = [tuple(int(L) for L in s) for s in shapes]
    couplings = {k: _as_list(v) for k, v in (couplings or {}).items()}
    names = sorted(couplings)
    tasks = []
    for shape, values, (algorithm, settings_list), n_, therm_, every_ in itertools.product(
            shapes, itertools.product(*(couplings[k] for k in names)), algorithms.items(), _as_list(n),
            _as_list(therm), _as_list(every)):
        for settings in settings_list:
            for index in range(int(seeds)):
                tasks.append(Task(theory, shape, dict(zip(names, values)), algorithm, dict(settings), int(n_),
                                  int(therm_), int(every_), index, int(seed), start))
    return tasks


def task_rng(task: Task) -> np.random.Generator:
    """The task's generator: from the scan seed and the task's parameters only (module docstring)."""
    physics = task.spec()
    for key in ("n", "seed"):  # n: a longer chain extends a shorter one; seed: the entropy itself
        physics.pop(key)
    digest = hashlib.sha256(json.dumps(physics, sort_keys=True).encode()).digest()
    spawn_key = tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 32, 4))
    return np.random.default_rng(np.random.SeedSequence(task.seed, spawn_key=spawn_key))


def _paths(directory, task: Task) -> tuple[Path, Path]:
    folder = Path(directory) / "tasks"
    return folder / f"{task.id}.json", folder / f"{task.id}.ckpt.npz"


def _write_json(path: Path, obj) -> None:
    from .io import atomic_write

    with atomic_write(path) as handle:
        handle.write(json.dumps(obj, indent=1, allow_nan=True).encode())


def run_task(task: Task, directory, *, checkpoint_every: int = 500) -> dict:
    """Run (or resume, or just read) one task; return its result ``{"id", "task", "payload", "records"}``.

    ``payload`` is what ``latticeml sample --json`` prints for this chain (its ``params`` carry
    ``seed`` = the seed index and ``scan_seed``); ``records`` the measurements, name -> list.
    """
    from ._threads import single_threaded
    from .samplers.chain import chain_summary  # the one definition of a chain's summary (Gamma method)
    from .samplers import build_sampler, resume_chain, run_chain
    from .theories.base import make_theory

    result_path, checkpoint = _paths(directory, task)
    if result_path.exists():
        return json.loads(result_path.read_text())
    result_path.parent.mkdir(parents=True, exist_ok=True)
    theory = make_theory(task.theory, task.shape, **task.couplings)
    sampler = build_sampler(theory, task.algorithm, **task.settings)
    with single_threaded():
        if checkpoint.exists():
            chain = resume_chain(checkpoint, sampler, checkpoint_every=checkpoint_every, progress=False)
        else:
            rng = task_rng(task)
            start = theory.cold_start() if task.start == "cold" else theory.hot_start(rng)
            chain = run_chain(sampler, start, rng, n_measure=task.n, n_therm=task.therm, every=task.every,
                              checkpoint=checkpoint, checkpoint_every=checkpoint_every, progress=False)
    payload = chain_summary(theory, sampler, chain, n=task.n, therm=task.therm, every=task.every, seed=task.seed_index)
    payload["params"]["scan_seed"] = task.seed
    result = {"id": task.id, "task": task.spec(), "payload": payload,
              "records": {k: np.asarray(v, dtype=float).tolist() for k, v in chain.records.items()}}
    _write_json(result_path, result)
    return result


class ScanResult(dict):
    """``{"scan": {...}, "runs": [payload, ...]}`` (what ``latticeml scan --json`` prints) plus ``.directory``."""

    @property
    def runs(self) -> list:
        return self["runs"]


def _open_client(workers, scheduler):
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ImportError("scans on Dask need dask.distributed: pip install 'latticeml[scale]' "
                          "(or run in this process with workers=0)") from None
    if scheduler:
        return Client(scheduler, timeout="30s"), None
    import logging

    cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster), cluster


def run_scan(tasks, directory, *, workers: int | None = None, scheduler: str | None = None, client=None,
             checkpoint_every: int = 500, progress: bool = True, observable: str | None = None) -> ScanResult:
    """Run every unfinished task of ``tasks`` and gather the results in ``directory``.

    Where the tasks run: ``client`` (a ``distributed.Client`` you hold), else ``scheduler`` (the
    address of a running Dask scheduler), else a local cluster of ``workers`` processes (default:
    one per core); ``workers=0`` runs the tasks one after another in this process, without Dask.
    Finished tasks are skipped, interrupted ones resume from their checkpoints. Writes
    ``results.json``, ``results.csv`` and ``<observable>.png`` (:func:`collect`) and returns the table.
    """
    tasks = list(tasks)
    directory = Path(directory)
    (directory / "tasks").mkdir(parents=True, exist_ok=True)
    _write_json(directory / "scan.json", {"format": SCAN_FORMAT, "version": 1,
                                          "tasks": [dict(t.spec(), id=t.id) for t in tasks]})
    pending = [t for t in tasks if not _paths(directory, t)[0].exists()]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tasks), initial=len(tasks) - len(pending), desc="scan", unit="task")
    try:
        if pending and workers == 0 and client is None and scheduler is None:
            for task in pending:
                run_task(task, directory, checkpoint_every=checkpoint_every)
                if bar is not None:
                    bar.update(1)
        elif pending:
            ours = client is None  # a client (and local cluster) opened here is closed here
            cluster = None
            if ours:
                client, cluster = _open_client(workers, scheduler)
            try:
                from dask.distributed import as_completed

                token = uuid.uuid4().hex[:8]  # fresh keys: a rerun never collides with an old run's futures
                futures = [client.submit(run_task, task, str(directory.resolve()), checkpoint_every=checkpoint_every,
                                         key=f"latticeml-scan-{task.id}-{token}", pure=False) for task in pending]
                for future in as_completed(futures):
                    future.result()  # a task's exception (or KilledWorker after repeated deaths) surfaces here
                    if bar is not None:
                        bar.update(1)
            finally:
                if ours:
                    client.close()
                    if cluster is not None:
                        cluster.close()
    finally:
        if bar is not None:
            bar.close()
    return collect(directory, tasks, observable=observable)


# ----------------------------------------------------------------------------- the table and the plot


def _scanned(tasks) -> str | None:
    """The coupling that takes several values (the plot's x axis), else None."""
    names = sorted({k for t in tasks for k in t.couplings})
    for name in names:
        if len({json.dumps(t.couplings.get(name)) for t in tasks}) > 1:
            return name
    return None


def collect(directory, tasks=None, *, observable: str | None = None, plot: bool = True) -> ScanResult:
    """Gather the task results in ``directory`` (default: the tasks of its ``scan.json``) into
    ``results.json`` and ``results.csv``, and plot ``observable`` (default: the first one) against the
    scanned coupling. Tasks without a result are listed under ``"missing"``."""
    directory = Path(directory)
    if tasks is None:
        plan = json.loads((directory / "scan.json").read_text())
        tasks = [Task.from_spec({k: v for k, v in spec.items() if k != "id"}) for spec in plan["tasks"]]
    runs, missing = [], []
    for task in tasks:
        path = _paths(directory, task)[0]
        if not path.exists():
            missing.append(task.id)
            continue
        result = json.loads(path.read_text())
        runs.append(dict(result["payload"], id=task.id))
    scanned = _scanned(tasks)
    table = ScanResult(scan={"directory": str(directory), "tasks": len(tasks), "finished": len(runs),
                             "scanned": scanned}, runs=runs)
    if missing:
        table["missing"] = missing
    _write_json(directory / "results.json", dict(table))
    _write_csv(directory / "results.csv", runs)
    if plot and runs:
        names = list(runs[0]["observables"])
        chosen = observable or names[0]
        if chosen in names:
            table["scan"]["plot"] = str(plot_scan(runs, chosen, scanned, directory / f"{chosen}.png"))
    table.directory = directory
    return table


def _write_csv(path: Path, runs: list) -> None:
    params = sorted({k for r in runs for k in r["params"]})
    observables = sorted({k for r in runs for k in r["observables"]})
    buffer = StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "theory", *params, "acceptance",
                     *(f"{o}_{q}" for o in observables for q in ("mean", "error", "tau_int"))])
    for r in runs:
        p = r["params"]
        cells = ["x".join(map(str, p[k])) if k == "shape" else p.get(k, "") for k in params]
        obs = [r["observables"].get(o, {}).get(q, "") for o in observables for q in ("mean", "error", "tau_int")]
        writer.writerow([r["id"], r["theory"], *cells, r["acceptance"], *obs])
    from .io import atomic_write

    with atomic_write(path) as handle:
        handle.write(buffer.getvalue().encode())


def plot_scan(runs: list, observable: str, x: str | None, path) -> Path:
    """``observable`` against the coupling ``x``, one line per shape and algorithm setting; the seeds
    of a point combined by the inverse-variance weighted mean of their Gamma-method values."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    lines: dict = {}
    for r in runs:
        p = r["params"]
        label = ", ".join(f"{k}={'x'.join(map(str, v)) if k == 'shape' else v}" for k, v in p.items()
                          if k not in (x, "seed", "scan_seed", "n", "therm", "every"))
        xv = p.get(x, 0.0) if x else 0.0
        o = r["observables"][observable]
        lines.setdefault(label, {}).setdefault(xv, []).append((o["mean"], o["error"]))
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=110)
    for label, points in lines.items():
        xs, ys, es = [], [], []
        for xv in sorted(points):
            values = np.array(points[xv], dtype=float)
            means, errors = values[:, 0], values[:, 1]
            if np.all(np.isfinite(errors)) and np.all(errors > 0):
                w = errors ** -2
                ys.append(float(np.sum(w * means) / np.sum(w)))
                es.append(float(np.sum(w) ** -0.5))
            else:
                ys.append(float(np.mean(means)))
                es.append(float("nan"))
            xs.append(xv)
        ax.errorbar(xs, ys, yerr=[0 if math.isnan(e) else e for e in es], marker="o", ms=3, capsize=2, label=label)
    ax.set_xlabel(x or "task")
    ax.set_ylabel(observable)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
