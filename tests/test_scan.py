"""Scans (latticeml.scan, latticeml scan): the grid, task streams, skip and resume, a real Dask cluster with a worker killed.

One local cluster of two worker processes serves the whole module (starting one takes seconds).
The reference for every comparison is the same scan run in this process (``workers=0``): the
numbers must not depend on which worker ran a task, in what order, or whether it was interrupted.
"""

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from latticeml import scan
from latticeml.cli import main

SEED = 18
TINY = dict(shapes=[(4, 4)], couplings={"beta": [1.0, 2.0]}, algorithms={"heatbath": [{}]}, seeds=2, n=60, therm=10,
            seed=SEED)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def _runs(directory):
    return json.loads((directory / "results.json").read_text())["runs"]


def test_grid_and_task_streams():
    tasks = scan.grid("u1", shapes=[(4, 4), (6, 6)], couplings={"beta": [1, 2, 3]}, algorithms="heatbath", seeds=4,
                      n=[10, 20], seed=SEED)
    assert len(tasks) == 2 * 3 * 4 * 2 and len({t.id for t in tasks}) == len(tasks)
    a, b = tasks[0], tasks[1]  # seed index 0 and 1 of the same point
    assert (a.seed_index, b.seed_index) == (0, 1) and a.couplings == b.couplings
    draw = lambda task: scan.task_rng(task).random(4)  # noqa: E731
    np.testing.assert_array_equal(draw(a), draw(scan.Task.from_spec(a.spec())))  # from its parameters only
    assert not np.array_equal(draw(a), draw(b))
    longer = scan.Task.from_spec({**a.spec(), "n": 999})
    np.testing.assert_array_equal(draw(a), draw(longer))  # a longer chain extends the shorter one
    assert longer.id != a.id
    other_scan = scan.Task.from_spec({**a.spec(), "seed": SEED + 1})
    assert not np.array_equal(draw(a), draw(other_scan))


def test_in_process_scan_tables_skip_and_resume(tmp_path, monkeypatch):
    tasks = scan.grid("u1", **TINY)
    result = scan.run_scan(tasks, tmp_path / "A", workers=0, progress=False)
    assert len(result.runs) == 4 and result["scan"]["scanned"] == "beta"
    run = result.runs[0]
    assert set(run) >= {"theory", "params", "acceptance", "observables", "id"}
    assert run["params"]["beta"] == 1.0 and run["params"]["shape"] == [4, 4] and run["params"]["seed"] == 0
    assert set(run["observables"]["plaquette"]) == {"mean", "error", "tau_int", "tau_int_error"}
    rows = list(csv.DictReader((tmp_path / "A" / "results.csv").open()))
    assert len(rows) == 4 and float(rows[0]["plaquette_mean"]) == run["observables"]["plaquette"]["mean"]
    assert (tmp_path / "A" / "plaquette.png").stat().st_size > 1000
    assert _runs(tmp_path / "A") == result.runs

    # running the same scan again runs no chain
    import latticeml.samplers as samplers

    def refuse(*args, **kwargs):
        raise AssertionError("a finished task ran again")

    monkeypatch.setattr(samplers, "run_chain", refuse)
    monkeypatch.setattr(samplers, "resume_chain", refuse)
    assert scan.run_scan(tasks, tmp_path / "A", workers=0, progress=False).runs == result.runs
    monkeypatch.undo()

    # a task interrupted after 25 measurements resumes from its checkpoint to the same numbers
    from latticeml.samplers import build_sampler, run_chain
    from latticeml.theories.base import make_theory

    task = tasks[0]
    theory = make_theory(task.theory, task.shape, **task.couplings)
    calls = []

    def measure(field):
        if len(calls) == 25:
            raise KeyboardInterrupt
        calls.append(1)
        return theory.observables(field)

    rng = scan.task_rng(task)
    checkpoint = tmp_path / "B" / "tasks" / f"{task.id}.ckpt.npz"
    checkpoint.parent.mkdir(parents=True)
    with pytest.raises(KeyboardInterrupt):
        run_chain(build_sampler(theory, task.algorithm), theory.hot_start(rng), rng, n_measure=task.n,
                  n_therm=task.therm, measure=measure, checkpoint=checkpoint, checkpoint_every=7, progress=False)
    resumed = scan.run_task(task, tmp_path / "B")
    reference = json.loads((tmp_path / "A" / "tasks" / f"{task.id}.json").read_text())
    assert resumed["records"] == reference["records"] and resumed["payload"] == reference["payload"]


def test_cluster_scan_survives_a_killed_worker(tmp_path, client):
    """Two tasks on two worker processes; the worker running one of them is killed (SIGKILL) after that
    task wrote a checkpoint. Dask gives the task to a worker again, which resumes it: same numbers."""
    tasks = scan.grid("u1", shapes=[(4, 4)], couplings={"beta": [1.0, 1.5]}, algorithms="heatbath", n=1000, therm=0,
                      seed=SEED)
    reference = scan.run_scan(tasks, tmp_path / "ref", workers=0, progress=False, checkpoint_every=50)
    folder = tmp_path / "run" / "tasks"
    killed = {}

    def kill_a_worker_mid_task():
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            for task in tasks:
                ckpt, done = folder / f"{task.id}.ckpt.npz", folder / f"{task.id}.json"
                if not ckpt.exists() or done.exists():
                    continue
                for address, keys in client.processing().items():
                    if any(task.id in str(key) for key in keys):
                        pid = client.run(os.getpid, workers=[address])[address]
                        os.kill(pid, signal.SIGKILL)
                        from latticeml.io import load_checkpoint

                        killed.update(task=task.id, step=load_checkpoint(ckpt).step)
                        return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker_mid_task)
    killer.start()
    result = scan.run_scan(tasks, tmp_path / "run", client=client, progress=False, checkpoint_every=50)
    killer.join()
    assert killed, "no worker was killed: the tasks finished before the killer found one running"
    assert 0 < killed["step"] < 1000  # killed mid-task, after a checkpoint
    assert result.runs == reference.runs


def test_cli_scan_on_a_scheduler_and_in_process(tmp_path, client, capsys):
    args = ["scan", "u1", "--shape", "4,4", "6,6", "--beta", "1,2", "--algorithm", "heatbath", "--n", "30",
            "--therm", "5", "--seed", str(SEED), "--json", "--quiet"]
    assert main(args + ["--dir", str(tmp_path / "dask"), "--scheduler", client.scheduler.address]) == 0
    on_cluster = json.loads(capsys.readouterr().out)
    assert main(args + ["--dir", str(tmp_path / "here"), "--workers", "0"]) == 0
    here = json.loads(capsys.readouterr().out)
    assert len(here["runs"]) == 4 and here["runs"] == on_cluster["runs"]
    assert {(tuple(r["params"]["shape"]), r["params"]["beta"]) for r in here["runs"]} == {
        ((4, 4), 1.0), ((4, 4), 2.0), ((6, 6), 1.0), ((6, 6), 2.0)}
    assert main(args + ["--dir", str(tmp_path / "here"), "--workers", "0", "--observable", "wilson_loop_1x2"]) == 0
    assert (tmp_path / "here" / "wilson_loop_1x2.png").exists()


@pytest.mark.parametrize("mistake", [
    ["--beta", "1,x"], ["--shape", "4,4", "4,x"], ["--algorithm", "heatbath,nope"], ["--n", "10,0"],
    ["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], ["--dir", "FILE"], ["--dir", "missing/RUN"],
    ["--lam", "1"], ["--step", "0.1,-1"],
])
def test_cli_scan_mistakes_are_one_line(tmp_path, capsys, mistake, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("x")
    args = {"--shape": ["4,4"], "--beta": ["1"], "--dir": ["RUN"], "--workers": ["0"], "--algorithm": ["heatbath"]}
    i = 0
    while i < len(mistake):
        j = i + 1
        while j < len(mistake) and not mistake[j].startswith("--"):
            j += 1
        args[mistake[i]] = mistake[i + 1:j]
        i = j
    if "--scheduler" in args:
        args.pop("--workers") if args["--workers"] == ["0"] else None
    argv = ["scan", "u1"] + [x for k, v in args.items() for x in (k, *v)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("latticeml: error:"), err
    assert not (tmp_path / "RUN").exists()


def test_latticeml_and_sample_import_no_dask():
    code = ("import sys, latticeml, latticeml.scan, latticeml.formats\n"
            "from latticeml.cli import main\n"
            "assert main(['sample', 'u1', '--shape', '4,4', '--beta', '1', '--algorithm', 'heatbath', '--n', '10',"
            " '--therm', '0', '--quiet']) == 0\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
