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
