"""`latticeml l2hmc train u1` and `latticeml sample u1 --algorithm l2hmc`: a tiny end-to-end run, resume, errors."""

import json

import numpy as np

from latticeml.cli import main
from latticeml.samplers import l2hmc as L


def test_train_resume_and_sample(tmp_path, capsys):
    model = str(tmp_path / "m.npz")
    # (no annealing here: beta runs over the planned --steps, so extending a run changes its schedule)
    argv = ["l2hmc", "train", "u1", "--shape", "4,4", "--beta", "2", "--batch", "4", "--layers", "2",
            "--seed", "1", "--out", model, "--quiet"]
    assert main(argv + ["--steps", "6"]) == 0
    assert main(["l2hmc", "train", "--resume", str(tmp_path / "m.ckpt.npz"), "--steps", "8", "--out", model, "--quiet"]) == 0
    resumed = L.load_model(model)[0]
    assert main(argv + ["--steps", "8", "--out", str(tmp_path / "full.npz"), "--checkpoint", str(tmp_path / "f.ckpt.npz")]) == 0
    full = L.load_model(tmp_path / "full.npz")[0]
    for a, b in zip(resumed.parameters(), full.parameters()):
        np.testing.assert_array_equal(a.value, b.value)
    annealed = str(tmp_path / "annealed.npz")
    assert main(argv + ["--steps", "4", "--beta-start", "1", "--out", annealed, "--checkpoint", str(tmp_path / "a.ckpt.npz")]) == 0
    assert L.load_model(annealed)[1].beta == 2.0
    # --lr-final reaches the training's schedule (stored in the checkpoint, so --resume follows it)
    from latticeml import io

    assert main(argv + ["--steps", "3", "--lr", "1e-2", "--lr-final", "1e-5", "--out", str(tmp_path / "c.npz"),
                        "--checkpoint", str(tmp_path / "c.ckpt.npz")]) == 0
    schedule = io.load_checkpoint(tmp_path / "c.ckpt.npz").metadata["schedule"]
    assert (schedule["lr"], schedule["lr_final"]) == (1e-2, 1e-5)
    capsys.readouterr()
    assert main(["sample", "u1", "--shape", "4,4", "--beta", "2.5", "--algorithm", "l2hmc", "--model", model,
                 "--n", "20", "--therm", "2", "--seed", "3", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 0.0 <= out["acceptance"] <= 1.0
    assert out["force_evaluations_per_step"] == 2
    assert isinstance(out["charge_changes"], int)
    assert {"plaquette", "topological_susceptibility", "topological_charge"} <= set(out["observables"])


def test_user_mistakes_are_one_line(tmp_path, capsys):
    assert main(["sample", "u1", "--shape", "4,4", "--beta", "2", "--algorithm", "l2hmc", "--n", "2"]) == 2
    assert main(["sample", "u1", "--shape", "4,4", "--beta", "2", "--algorithm", "l2hmc", "--model",
                 str(tmp_path / "missing.npz"), "--n", "2"]) == 2
    assert main(["l2hmc", "train", "u1", "--shape", "4,4", "--beta", "2", "--out", str(tmp_path / "m.npz")]) == 2
    assert main(["l2hmc", "train", "u1", "--shape", "4,4,4", "--beta", "2", "--steps", "1", "--out", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("latticeml: error: ") for line in err)
