"""``latticeml sample ... --fermions staggered``: JSON observables and one-line refusals of mistakes."""

import json

import pytest

from latticeml.cli import main


@pytest.mark.parametrize("argv", [
    ["u1", "--shape", "4,4", "--beta", "1.0", "--n-staggered", "2"],
    ["su3", "--shape", "2,2,2,2", "--beta", "5.0", "--integrator", "omelyan"],
    ["sun", "--shape", "2,2,2,2", "--beta", "4.0", "--N", "2"],
])
def test_sample_with_staggered_fermions_prints_the_observables(capsys, argv):
    base = ["sample", *argv, "--fermions", "staggered", "--mass", "0.5", "--algorithm", "hmc", "--n", "6", "--therm", "1",
            "--step", "0.2", "--nsteps", "3", "--json", "--quiet"]
    assert main(base) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"plaquette", "polyakov_loop", "polyakov_loop_trace", "chiral_condensate"} <= set(out["observables"])
    assert out["cg_iterations_mean"] > 0 and out["params"]["mass"] == 0.5 and "trace over sites and colour" in out["conventions"]


@pytest.mark.parametrize("extra, message", [
    (["--mass", "0.3"], "add --fermions staggered"),
    (["--fermions", "staggered"], "needs --mass"),
    (["--fermions", "staggered", "--mass", "-1"], "--mass"),
    (["--fermions", "staggered", "--mass", "0.3", "--n-staggered", "0"], "--n-staggered"),
    (["--fermions", "staggered", "--mass", "0.3", "--algorithm", "heatbath"], "--algorithm hmc"),
    (["--fermions", "wilson", "--mass", "0.3"], "--fermions"),
])
def test_mistakes_are_one_line_exit_2(capsys, extra, message):
    assert main(["sample", "su2", "--shape", "4,4,4,4", "--beta", "2.7", *extra, "--n", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("latticeml: error:") and message in err


def test_odd_extents_and_non_gauge_theories_are_refused(capsys):
    assert main(["sample", "u1", "--shape", "3,4", "--beta", "1", "--fermions", "staggered", "--mass", "0.3"]) == 2
    assert "even extents" in capsys.readouterr().err
    assert main(["sample", "phi4", "--shape", "4,4", "--m2", "1", "--lam", "1", "--fermions", "staggered", "--mass", "0.3"]) == 2
    assert "gauge theory" in capsys.readouterr().err


def test_slhmc_train_then_sample(capsys, tmp_path):
    net = str(tmp_path / "net.npz")
    common = ["su2", "--shape", "4,2,2,2", "--beta", "2.7", "--mass", "0.3", "--md-mass", "0.4"]
    assert main(["slhmc", "train", *common, "--n", "4", "--therm", "1", "--layers", "1", "--out", net, "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert len(trained["rho"]) == 1 and len(trained["rho"][0]) == 3 and trained["md_mass"] == 0.4
    assert main(["sample", *common, "--fermions", "staggered", "--algorithm", "slhmc", "--model", net, "--n", "3",
                 "--therm", "1", "--step", "0.2", "--nsteps", "3", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"]["algorithm"] == "slhmc" and out["params"]["md_params"]["mass"] == 0.4
    assert "chiral_condensate" in out["observables"]
    # mistakes
    base = ["sample", "su2", "--shape", "4,2,2,2", "--beta", "2.7", "--fermions", "staggered", "--mass", "0.3"]
    for extra, message in (
        (["--algorithm", "slhmc", "--model", net], "needs --md-mass"),
        (["--algorithm", "slhmc", "--md-mass", "0.4"], "needs --model"),
        (["--md-mass", "0.4"], "--md-mass is the molecular-dynamics mass"),
        (["--algorithm", "slhmc", "--md-mass", "0.4", "--model", str(tmp_path / "none.npz")], "--model"),
    ):
        assert main(base + extra) == 2, extra
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and message in err, (extra, err)
    np_file = tmp_path / "other.npz"
    import numpy as np

    np.savez(np_file, x=np.zeros(3))
    assert main(base + ["--algorithm", "slhmc", "--md-mass", "0.4", "--model", str(np_file)]) == 2
    assert "latticeml slhmc train" in capsys.readouterr().err
    assert main(["slhmc", "train", "phi4", "--shape", "4,4", "--beta", "1", "--mass", "0.3", "--md-mass", "0.4", "--out", net]) == 2
    assert main(["sample", "su2", "--shape", "4,4,4,4", "--beta", "2.7", "--algorithm", "slhmc"]) == 2
    assert "with --fermions staggered" in capsys.readouterr().err


def test_two_scale_integrator_with_fermions_only(capsys):
    argv = ["sample", "u1", "--shape", "4,4", "--beta", "1", "--integrator", "two-scale", "--n", "3", "--therm", "0", "--json", "--quiet"]
    assert main(argv + ["--fermions", "staggered", "--mass", "0.5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"]["integrator"] == "sexton_weingarten_4"
    assert main(argv) == 2
    assert "--fermions staggered" in capsys.readouterr().err
