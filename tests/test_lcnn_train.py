"""L-CNN training pipeline (latticeml.nets.lcnn_train, latticeml lcnn): labels against a NumPy loop,
a checkpointed run resumes to the same weights, the command line prints the JSON the issue names,
and a short training drives the W1x1 error far below its start."""

import json

import numpy as np
import pytest

from latticeml.cli import main
from latticeml.groups import haar_su
from latticeml.autodiff import optim
from latticeml.nets import lcnn, lcnn_train

SEED = 77


def test_wilson_loop_labels_against_numpy(rng):
    U = haar_su(rng, 2, (2, 2, 5, 4))
    dag = lambda a: np.conj(np.swapaxes(a, -1, -2))  # noqa: E731
    sh = lambda a, mu, k: np.roll(a, -k, axis=1 + mu)  # noqa: E731
    U0, U1 = U[:, 0], U[:, 1]

    def rect(m, n):  # m along axis 0, n along axis 1, corner at x
        P = np.broadcast_to(np.eye(2), U0.shape).copy()
        for k in range(m):
            P = P @ sh(U0, 0, k)
        for k in range(n):
            P = P @ sh(sh(U1, 0, m), 1, k)
        for k in range(m):
            P = P @ dag(sh(sh(U0, 1, n), 0, m - 1 - k))
        for k in range(n):
            P = P @ dag(sh(U1, 1, n - 1 - k))
        return np.trace(P, axis1=-2, axis2=-1).real / 2

    np.testing.assert_allclose(lcnn_train.wilson_loops(U, 1, 1), rect(1, 1), atol=1e-13)
    np.testing.assert_allclose(lcnn_train.wilson_loops(U, 1, 2), 0.5 * (rect(1, 2) + rect(2, 1)), atol=1e-13)
    np.testing.assert_allclose(lcnn_train.wilson_loops(U, 2, 2), rect(2, 2), atol=1e-13)
    np.testing.assert_allclose(lcnn_train.wilson_loops(U, 2, 1, oriented=True), rect(2, 1), atol=1e-13)
    np.testing.assert_allclose(lcnn_train.wilson_loops(U, 1, 2, oriented=True), rect(1, 2), atol=1e-13)
    assert np.abs(rect(2, 1) - rect(1, 2)).max() > 0.1  # the orientations differ


def test_leading_blocks_share_the_parameters(rng):
    model = lcnn.LCNN(D=2, blocks=[(2, 1), (2, 1), (2, 2)], rng=np.random.default_rng(1))
    stage = model.leading_blocks(2, rng=np.random.default_rng(2))
    assert stage.blocks_spec == [(2, 1), (2, 1)]
    assert all(a is b for a, b in zip(stage.convs + stage.bilins, model.convs[:2] + model.bilins[:2]))
    U = haar_su(rng, 2, (1, 2, 4, 4))
    before = stage(U).value
    model.convs[1].weight.value *= 2.0  # training the stage trains the model's blocks
    assert np.abs(stage(U).value - before).max() > 1e-6
    with pytest.raises(ValueError, match="1..3"):
        model.leading_blocks(0, rng=rng)


def test_curriculum_feeds_each_stage_its_loop(rng, monkeypatch):
    """Stage k trains the model's first k blocks on the k-th loop of CURRICULA (one orientation), the
    last stage the model itself on the target's labels, at the rates the docstring gives."""
    U = haar_su(rng, 2, (3, 2, 8, 8))
    model = lcnn.build_lcnn("4x4", "small", D=2, rng=np.random.default_rng(1))
    calls = []

    def fake_train(stage, train_set, **kw):
        calls.append((stage, train_set[1], kw["lr"], kw["lr_final"]))
        return {"loss": [], "val_mse": []}

    monkeypatch.setattr(lcnn_train, "train", fake_train)
    lcnn_train.train_curriculum(model, U, "4x4", rng=rng, epochs=1, lr=3e-3, lr_final=3e-6, stage_lr=1e-2)
    assert [len(c[0].blocks_spec) for c in calls] == [1, 2, 3, 4] and calls[-1][0] is model
    for (stage, y, _, _), (m, n) in zip(calls[:-1], lcnn_train.CURRICULA["4x4"]):
        np.testing.assert_array_equal(y, lcnn_train.wilson_loops(U, m, n, oriented=True))
        assert all(a is b for a, b in zip(stage.convs, model.convs))
    np.testing.assert_array_equal(calls[-1][1], lcnn_train.labels(U, "4x4"))
    assert [c[2:] for c in calls] == [(1e-2, 1e-5)] * 3 + [(3e-3, 3e-6)]
    with pytest.raises(ValueError, match="no curriculum"):
        lcnn_train.train_curriculum(model, U, "1x1", rng=rng)
    with pytest.raises(ValueError, match="4 stages"):
        lcnn_train.train_curriculum(lcnn.build_lcnn("2x2", "small", D=2, rng=rng), U, "4x4", rng=rng)


def _toy_set(rng, n=8, shape=(4, 4)):
    U = haar_su(rng, 2, (n, 2) + shape)
    return U, lcnn_train.labels(U, "1x1")


@pytest.mark.parametrize("lr_final", [None, 5e-5])
def test_training_resumes_bit_for_bit_and_learns_w1x1(rng, tmp_path, lr_final):
    """Also with the annealed rate: it is a function of the epoch alone, so a resumed run follows it."""
    U, y = _toy_set(rng)
    ck = tmp_path / "ck.npz"

    def run(stop_after=None, resume=False, model=None):
        model = model or lcnn.LCNN(D=2, blocks=[], rng=np.random.default_rng(1))
        h = lcnn_train.train(model, (U, y), rng=np.random.default_rng(2), epochs=30, batch=4, lr=0.05, lr_final=lr_final,
                             checkpoint=ck, resume=resume, progress=False, stop_after=stop_after)
        return model, h

    full, h_full = run()
    ck.unlink()
    run(stop_after=13)
    resumed, h_res = run(resume=True)
    for (name, a), (_, b) in zip(full.named_parameters(), resumed.named_parameters()):
        np.testing.assert_array_equal(a.value, b.value, err_msg=name)
    assert h_res["loss"] == h_full["loss"]
    assert h_full["loss"][-1] < 0.1 * h_full["loss"][0]


def test_cosine_rate_and_that_training_uses_it(rng):
    """lr at the first epoch, lr_final at the last, monotone in between (Loshchilov-Hutter cosine);
    ``lr_final = lr`` is the constant rate bit for bit, and a different ``lr_final`` changes the run."""
    rates = [optim.cosine_rate(0.1, 1e-4, e, 11) for e in range(11)]
    assert rates[0] == 0.1 and rates[-1] == pytest.approx(1e-4, rel=1e-12) and np.all(np.diff(rates) < 0)
    assert rates[5] == pytest.approx((0.1 + 1e-4) / 2, rel=1e-12)  # the cosine's midpoint
    assert optim.cosine_rate(0.1, 1e-4, 0, 1) == 0.1
    U, y = _toy_set(rng)

    def weights(lr_final):
        model = lcnn.LCNN(D=2, blocks=[], rng=np.random.default_rng(1))
        lcnn_train.train(model, (U, y), rng=np.random.default_rng(2), epochs=4, batch=4, lr=0.05, lr_final=lr_final, progress=False)
        return np.concatenate([p.value.ravel() for p in model.parameters()])

    constant = weights(None)
    np.testing.assert_array_equal(weights(0.05), constant)
    assert np.abs(weights(1e-5) - constant).max() > 1e-6


def test_cli_train_prints_test_mse_per_shape(capsys, tmp_path, rng):
    """Haar-random configurations stand in for a dataset (the heatbath's compile is too slow for CI)."""
    U = haar_su(rng, 2, (20, 2, 4, 4))
    data = {"U": U, "beta": np.zeros(20), **{f"y_{t}": lcnn_train.labels(U, t) for t in lcnn_train.TARGETS}}
    path = lcnn_train.save_dataset(tmp_path / "d.npz", data)
    rc = main(["lcnn", "train", "--target", "1x1", "--arch", "small", "--data", str(path), "--train-shape", "4,4",
               "--test-shapes", "4,4", "--epochs", "2", "--lr-final", "1e-4", "--baseline", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["test_mse"]) == {"4,4"} and set(out["baseline_test_mse"]) == {"4,4"}
    assert all(np.isfinite(v) for v in out["test_mse"].values())
    rc = main(["lcnn", "train", "--target", "2x2", "--arch", "small", "--data", str(path), "--train-shape", "4,4",
               "--test-shapes", "4,4", "--epochs", "1", "--curriculum", "--stage-lr", "0.01", "--json"])
    assert rc == 0 and np.isfinite(json.loads(capsys.readouterr().out)["test_mse"]["4,4"])


def test_cli_mistakes_are_one_line_errors(capsys):
    assert main(["lcnn", "train", "--group", "sun", "--json"]) == 2
    assert main(["lcnn", "train", "--train-shape", "8,8", "--test-shapes", "8,8,8"]) == 2
    assert main(["lcnn", "dataset", "--shape", "8", "--out", "/nonexistent/x.npz"]) == 2
    assert main(["lcnn", "train", "--target", "1x1", "--curriculum"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("latticeml: error:") for line in err)
