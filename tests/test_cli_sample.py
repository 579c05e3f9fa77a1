"""`latticeml sample` and `latticeml measure`: JSON output, ensembles, resume, and clean errors."""

import json

import numpy as np
import pytest

from latticeml import exact, io
from latticeml.cli import main

KEYS = {
    "phi4": {"magnetization", "abs_magnetization", "susceptibility", "action_density"},
    "u1": {"plaquette", "wilson_loop_1x2", "wilson_loop_2x2", "topological_charge", "topological_susceptibility"},
    "su2": {"plaquette", "polyakov_loop", "wilson_loop_2x2"},
}


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    "argv",
    [
        ["phi4", "--shape", "4,4", "--m2", "-1", "--lam", "1", "--algorithm", "metropolis"],
        ["u1", "--shape", "4,4", "--beta", "1", "--algorithm", "heatbath", "--overrelax", "1"],
        ["su2", "--shape", "4,4", "--beta", "2", "--algorithm", "hmc", "--step", "0.2", "--nsteps", "5", "--integrator", "omelyan"],
    ],
    ids=["phi4-metropolis", "u1-heatbath", "su2-hmc"],
)
def test_sample_json(capsys, argv):
    out = _json(capsys, ["sample", *argv, "--n", "20", "--therm", "5", "--seed", "1", "--quiet", "--json"])
    assert out["theory"] == argv[0]
    assert set(out["observables"]) == KEYS[argv[0]]
    for o in out["observables"].values():
        assert set(o) == {"mean", "error", "tau_int", "tau_int_error"}
        assert np.isfinite(o["mean"])
    assert 0.0 <= out["acceptance"] <= 1.0
    assert out["params"]["seed"] == 1 and out["params"]["n"] == 20
    # the same seed gives the same numbers
    again = _json(capsys, ["sample", *argv, "--n", "20", "--therm", "5", "--seed", "1", "--quiet", "--json"])
    assert again == out


@pytest.mark.parametrize(
    "theory, flag, values, extra, observable, exact_value",
    [
        # 2D U(1) on 8x8 by heatbath: the torus plaquette of the character expansion (latticeml.exact)
        ("u1", "--beta", ("1", "3"), ["--algorithm", "heatbath", "--overrelax", "1"], "plaquette",
         lambda v: exact.u1_2d_plaquette(v, 64)),
        # free field (lam = 0, Albergo form) on 4x4 by HMC: chi = V <M^2> = sum_x G(x) = 1 / (2 m^2)
        ("phi4", "--m2", ("1", "4"), ["--lam", "0", "--algorithm", "hmc", "--step", "0.2", "--nsteps", "5"], "susceptibility",
         lambda v: float(exact.free_scalar_propagator((4, 4), v, form="albergo").sum())),
    ],
    ids=["u1-beta", "phi4-m2"],
)
def test_couplings_reach_the_theory(capsys, theory, flag, values, extra, observable, exact_value):
    """The command line's numbers are physics: at two couplings the --json mean agrees with the exact
    value within 4 Gamma-method sigma, and the two couplings are resolved from each other."""
    shape, n = ("8,8", "400") if theory == "u1" else ("4,4", "2000")  # chi of one Gaussian mode: large variance
    results = []
    for v in values:
        out = _json(capsys, ["sample", theory, "--shape", shape, flag, v, *extra, "--n", n, "--therm", "50", "--seed", "3",
                             "--quiet", "--json"])
        o = out["observables"][observable]
        expected = exact_value(float(v))
        assert abs(o["mean"] - expected) < 4 * o["error"], (flag, v, o, expected)
        results.append(o)
    a, b = results
    assert abs(a["mean"] - b["mean"]) > 6 * np.hypot(a["error"], b["error"])


def test_out_measure_and_resume(tmp_path, capsys):
    ens = tmp_path / "ens.npz"
    base = ["sample", "u1", "--shape", "4,4", "--beta", "1.5", "--algorithm", "hmc", "--n", "30", "--therm", "3", "--seed", "7", "--quiet", "--json"]
    out = _json(capsys, base + ["--out", str(ens)])
    e = io.load_ensemble(ens)
    assert e.configs.shape == (30, 2, 4, 4) and e.theory == "u1"
    # re-measuring the saved configurations reproduces the chain's measurements
    re = _json(capsys, ["measure", str(ens), "--json"])
    for k, o in out["observables"].items():
        assert re["observables"][k]["mean"] == pytest.approx(o["mean"], rel=1e-12, abs=1e-15)
    # a finished chain's checkpoint resumes to the same result
    ck = tmp_path / "ens.ckpt.npz"
    assert ck.exists()
    resumed = _json(capsys, base + ["--resume", str(ck)])
    assert resumed["observables"] == out["observables"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sample", "qcd", "--shape", "4,4"], "unknown theory"),
        (["sample", "u1", "--shape", "4,4"], "--beta"),
        (["sample", "u1", "--shape", "4,4", "--beta", "1", "--algorithm", "gibbs"], "unknown algorithm"),
        (["sample", "phi4", "--shape", "4,4", "--m2", "1", "--lam", "0", "--algorithm", "heatbath"], "heatbath"),
        (["sample", "su3", "--shape", "4,4,4,4,4", "--beta", "1"], "D = 2, 3 or 4"),
        (["sample", "u1", "--shape", "4,x", "--beta", "1"], "--shape"),
        (["sample", "u1", "--shape", "4,4", "--beta", "1", "--nsteps", "0"], "--nsteps"),
        (["sample", "u1", "--shape", "4,4", "--beta", "1", "--n", "0"], "--n"),
        (["sample", "su2", "--shape", "4,4", "--beta", "1", "--instanton-every", "2"], "instanton"),
        (["measure", "no_such_file.npz"], "no such file"),
        # the defects and their relatives
        (["sample", "u1", "--shape", "8,8", "--beta", "nan"], "--beta must be a finite number"),
        (["sample", "u1", "--shape", "8,8", "--beta", "-inf"], "--beta=-1e5"),
        (["sample", "su3", "--shape", "4,4", "--beta", "1e400"], "--beta must be a finite number"),
        (["sample", "u1", "--shape", "8,8", "--beta", "two"], "--beta must be a number, got 'two'"),
        (["sample", "phi4", "--shape", "8,8", "--m2", "1", "--lam", "-8"], "lam must be >= 0"),
        (["sample", "u1", "--shape", "8,8,x", "--beta", "1"], "'x' is not an integer"),
        (["sample", "u1", "--shape", "8,,8", "--beta", "1"], "--shape"),
        (["sample", "u1", "--shape", "8,1", "--beta", "1"], "extent >= 2"),
        (["sample", "u1", "--shape", "5,5", "--beta", "1", "--algorithm", "heatbath"], "even"),
        (["sample", "u1", "--shape", "4,4", "--beta", "1", "--integrator", "verlet"], "verlet"),
        (["sample", "u1", "--shape", "4,4", "--beta", "1", "--lam", "1"], "takes no --lam"),
        (["sample", "sun", "--shape", "4,4", "--beta", "1"], "--N"),
        (["sample", "su2", "--shape", "4,4", "--beta", "1", "--action", "iwasaki", "--c1=-0.2"], "not allowed with"),
        (["sample", "su2", "--shape", "4,4", "--beta", "1", "--action", "symanzik"], "--action must be one of"),
        (["sample", "su2", "--shape", "4,4", "--beta", "1", "--action", "iwasaki", "--algorithm", "heatbath"], "hmc"),
        (["sample", "u1", "--shape", "4,4", "--beta", "1", "--seed", "-1"], "--seed"),
        (["sample", "u1", "--shape", "4,4", "--beta", "1", "--step", "1e-300"], "--nsteps"),
        (["sample", "u1", "--shape", "100000,100000", "--beta", "1"], "GiB"),
        (["sample", "su3", "--shape", "64,64,64,64", "--beta", "6", "--n", "100000", "--out", "x.npz"], "or --n"),
        (["sample", "u1", "--shape", "4,4", "--beta", "1", "--out", "no_such_folder/ens.npz"], "does not exist"),
        (["sample", "u1", "--shape", "4,4", "--beta", "1", "--resume", "no_such_checkpoint.npz"], "no such file"),
        (["sample", "u1", "--shape", "4,4", "--beta", "1", "--bogus"], "unrecognized arguments: --bogus"),
        (["samp"], "invalid choice"),
    ],
)
def test_user_errors_are_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert err.startswith("latticeml: error: ")


def test_out_into_a_missing_folder_creates_nothing_and_runs_nothing(tmp_path, capsys):
    out = tmp_path / "missing" / "ens.npz"
    assert main(["sample", "u1", "--shape", "4,4", "--beta", "1", "--n", "5", "--quiet", "--out", str(out)]) == 2
    assert "create it first" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()
    (tmp_path / "folder").mkdir()
    assert main(["sample", "u1", "--shape", "4,4", "--beta", "1", "--quiet", "--out", str(tmp_path / "folder")]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_memory_estimate_counts_field_momenta_force_and_kept_configurations():
    from latticeml.cli.sample import estimated_bytes
    from latticeml.theories import make_theory

    V = 8**4
    assert estimated_bytes(make_theory("su3", (8, 8, 8, 8), beta=6.0), 0) == 3 * 4 * V * 9 * 16
    assert estimated_bytes(make_theory("sun", (8, 8, 8, 8), beta=6.0, N=4), 10) == 13 * 4 * V * 16 * 16
    assert estimated_bytes(make_theory("u1", (16, 16), beta=1.0), 0) == 3 * 2 * 256 * 8
    assert estimated_bytes(make_theory("phi4", (16, 16), m2=1.0, lam=0.0), 2) == 5 * 256 * 8
    # the u1 field itself is what numpy would allocate
    theory = make_theory("u1", (6, 4), beta=1.0)
    assert estimated_bytes(theory, 0) == 3 * theory.cold_start().nbytes


@pytest.mark.parametrize("name", ["measure", "resume"])
@pytest.mark.parametrize("kind", ["text", "plain_npz", "truncated", "folder", "ensemble_as_checkpoint"])
def test_broken_files_are_one_line(tmp_path, capsys, name, kind):
    ens = tmp_path / "ens.npz"
    assert main(["sample", "u1", "--shape", "4,4", "--beta", "1", "--n", "3", "--therm", "0", "--quiet", "--json", "--out", str(ens)]) == 0
    capsys.readouterr()
    path = tmp_path / "bad.npz"
    if kind == "text":
        path.write_text("hello\n")
    elif kind == "plain_npz":
        np.savez(path, configs=np.zeros((2, 2, 4, 4)))
    elif kind == "truncated":
        path.write_bytes(ens.read_bytes()[:300])
    elif kind == "folder":
        path.mkdir()
    else:  # an ensemble where a checkpoint is expected, and a checkpoint where an ensemble is
        path = ens if name == "resume" else tmp_path / "ens.ckpt.npz"
    argv = ["measure", str(path)] if name == "measure" else ["sample", "u1", "--shape", "4,4", "--beta", "1", "--quiet", "--resume", str(path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("latticeml: error: ") and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, c1",
    [
        (["su2", "--shape", "4,4", "--beta", "2", "--action", "iwasaki"], -0.331),
        (["su2", "--shape", "4,4", "--beta", "2", "--action", "luscher-weisz"], -1 / 12),
        (["u1", "--shape", "4,4", "--beta", "2", "--c1=-0.2"], -0.2),
    ],
    ids=["su2-iwasaki", "su2-luscher-weisz", "u1-c1"],
)
def test_improved_actions_from_the_command_line(capsys, argv, c1):
    """--action / --c1 reach make_theory: the chain samples the improved action it reports."""
    from latticeml.theories import make_theory

    out = _json(capsys, ["sample", *argv, "--n", "4", "--therm", "2", "--seed", "3", "--quiet", "--json"])
    assert out["params"]["c1"] == pytest.approx(c1, rel=1e-12)
    couplings = {k: v for k, v in out["params"].items() if k in ("beta", "action", "c1")}
    theory = make_theory(out["theory"], out["params"]["shape"], **couplings)
    assert theory.params["c1"] == pytest.approx(c1, rel=1e-12)
    wilson = _json(capsys, ["sample", *argv[:5], "--n", "4", "--therm", "2", "--seed", "3", "--quiet", "--json"])
    assert wilson["observables"] != out["observables"]  # a different action gives a different chain


def test_resume_checkpoint_of_another_theory(tmp_path, capsys):
    ck = tmp_path / "c.npz"
    assert main(["sample", "u1", "--shape", "4,4", "--beta", "1", "--n", "10", "--therm", "0", "--quiet", "--checkpoint", str(ck), "--json"]) == 0
    capsys.readouterr()
    assert main(["sample", "phi4", "--shape", "4,4", "--m2", "1", "--lam", "0", "--quiet", "--resume", str(ck)]) == 2
    assert "different chain" in capsys.readouterr().err


def test_ctrl_c_exits_130_with_one_line_and_the_checkpoint(tmp_path, capsys, ctrl_c_raises):
    """Ctrl-C mid-chain: the checkpoint is written, the last stderr line says so, status 130, no traceback."""
    import os
    import signal
    import threading

    ck = tmp_path / "c.npz"
    stop = threading.Event()

    def interrupt_once_running():  # the first checkpoint (step 50) says the chain runs: compiling is over
        if any(stop.wait(0.05) or ck.exists() for _ in range(2400)):
            if not stop.is_set():
                os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt_once_running)
    thread.start()
    try:
        code = main(["sample", "u1", "--shape", "4,4", "--beta", "1", "--n", "100000000", "--therm", "0", "--quiet",
                     "--checkpoint", str(ck), "--checkpoint-every", "50"])
    finally:
        stop.set()
        thread.join()
    assert code == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.splitlines()[-1].startswith("latticeml: interrupted")
    assert io.load_checkpoint(ck).step > 0
