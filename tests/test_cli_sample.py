"""`latticeml sample` and `latticeml measure`: JSON output, ensembles, resume, and clean errors."""

import json

import numpy as np
import pytest

from latticeml import io
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
    ],
)
def test_user_errors_are_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_resume_checkpoint_of_another_theory(tmp_path, capsys):
    ck = tmp_path / "c.npz"
    assert main(["sample", "u1", "--shape", "4,4", "--beta", "1", "--n", "10", "--therm", "0", "--quiet", "--checkpoint", str(ck), "--json"]) == 0
    capsys.readouterr()
    assert main(["sample", "phi4", "--shape", "4,4", "--m2", "1", "--lam", "0", "--quiet", "--resume", str(ck)]) == 2
    assert "different chain" in capsys.readouterr().err
