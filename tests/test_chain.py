"""The chain runner: same seed -> same chain; checkpoints resume bit-identically; Ctrl-C leaves a usable checkpoint."""

import signal
from typing import NamedTuple

import numpy as np
import pytest

from latticeml import io
from latticeml.samplers.chain import Sampler, resume_chain, run_chain


class _State(NamedTuple):
    field: np.ndarray


class _Info(NamedTuple):
    acceptance: float


class _Gaussian:
    """A toy target: independent N(0,1) sites, sampled by a random-walk Metropolis step."""

    name = "toy"

    def __init__(self, n=4, width=1.0):
        self.params = {"n": n, "width": width}

    def check_field(self, field):
        return np.asarray(field, dtype=np.float64)

    def observables(self, field):
        return {"mean": float(field.mean()), "x0": float(field[0])}


def _toy_sampler(theory, interrupt_at=None):
    calls = {"n": 0}

    def step(rng, state):
        calls["n"] += 1
        x = state.field
        prop = x + theory.params["width"] * rng.standard_normal(x.shape)
        if interrupt_at is not None and calls["n"] == interrupt_at:
            raise KeyboardInterrupt  # mid-step, after the step has drawn random numbers
        accept = np.log(rng.random(x.shape)) < 0.5 * (x**2 - prop**2)
        return _State(np.where(accept, prop, x)), _Info(float(accept.mean()))

    return Sampler("toy-metropolis", theory, {"width": theory.params["width"]}, lambda f: _State(np.array(f, dtype=float)), step)


def _run(tmp_path=None, seed=3, **kw):
    theory = _Gaussian()
    return run_chain(_toy_sampler(theory), np.zeros(4), np.random.default_rng(seed), n_measure=40, n_therm=7, every=3, progress=False, **kw)


def test_same_seed_same_chain():
    a, b = _run(), _run()
    for k in a.records:
        np.testing.assert_array_equal(a.records[k], b.records[k])
    np.testing.assert_array_equal(a.acceptance, b.acceptance)
    assert a.n_steps == 7 + 40 * 3 and len(a.records["mean"]) == 40
    assert not np.array_equal(_run(seed=4).records["mean"], a.records["mean"])


def test_interrupt_then_resume_is_bit_identical(tmp_path):
    ref = _run(keep_fields=True)
    ck = tmp_path / "chain.npz"
    theory = _Gaussian()
    with pytest.raises(KeyboardInterrupt):
        run_chain(
            _toy_sampler(theory, interrupt_at=58), np.zeros(4), np.random.default_rng(3),
            n_measure=40, n_therm=7, every=3, progress=False, keep_fields=True, checkpoint=ck, checkpoint_every=10,
        )
    assert ck.exists()  # written at the interrupt, after step 57
    res = resume_chain(ck, _toy_sampler(theory), progress=False, checkpoint_every=10)
    for k in ref.records:
        np.testing.assert_array_equal(res.records[k], ref.records[k])
    np.testing.assert_array_equal(res.acceptance, ref.acceptance)
    np.testing.assert_array_equal(res.fields, ref.fields)
    np.testing.assert_array_equal(res.state.field, ref.state.field)
    # the generators are at the same point too: extensions stay identical
    assert res.rng.random() == ref.rng.random()


class _SigintOnFloat:
    """A measured value whose conversion to float, which the chain does inside its commit, sends
    SIGINT (a real Ctrl-C, delivered by the OS) to this process."""

    def __init__(self, value):
        self.value = value

    def __float__(self):
        signal.raise_signal(signal.SIGINT)
        return self.value


def test_ctrl_c_during_the_commit_waits_for_it(tmp_path, ctrl_c_raises):
    ref = _run(keep_fields=True)
    theory = _Gaussian()
    calls = {"n": 0}

    def measure(field):
        calls["n"] += 1
        values = theory.observables(field)
        if calls["n"] == 13:  # the 13th measurement, at step 7 + 13 * 3 = 46
            values["mean"] = _SigintOnFloat(values["mean"])
        return values

    ck = tmp_path / "chain.npz"
    with pytest.raises(KeyboardInterrupt):
        run_chain(
            _toy_sampler(theory), np.zeros(4), np.random.default_rng(3), n_measure=40, n_therm=7, every=3,
            measure=measure, progress=False, keep_fields=True, checkpoint=ck, checkpoint_every=10,
        )
    assert calls["n"] == 13  # the interrupt stopped the chain right after that commit
    # step 46 was committed whole: state, count and all its records, with the generator after it
    saved = io.load_checkpoint(ck)
    assert saved.step == 46
    assert len(saved.records["_acceptance"]) == 46 and len(saved.records["mean"]) == len(saved.records["x0"]) == 13
    np.testing.assert_array_equal(saved.state_arrays["field"], ref.fields[12])
    res = resume_chain(ck, _toy_sampler(theory), progress=False, checkpoint_every=10)
    for k in ref.records:
        np.testing.assert_array_equal(res.records[k], ref.records[k])
    np.testing.assert_array_equal(res.acceptance, ref.acceptance)
    np.testing.assert_array_equal(res.fields, ref.fields)
    assert res.rng.bit_generator.state == ref.rng.bit_generator.state


def test_resume_refuses_another_chain(tmp_path):
    ck = tmp_path / "c.npz"
    _run(checkpoint=ck)
    other = _Gaussian(width=0.5)
    with pytest.raises(ValueError, match="different chain"):
        resume_chain(ck, _toy_sampler(other), progress=False)


@pytest.mark.parametrize("kw", [{"n_measure": 0}, {"every": 0}, {"n_therm": -1}, {"n_measure": 2.5}])
def test_bad_counts(kw):
    args = {"n_measure": 3, "n_therm": 0, "every": 1} | kw
    with pytest.raises(ValueError, match="integer"):
        run_chain(_toy_sampler(_Gaussian()), np.zeros(4), np.random.default_rng(0), progress=False, **args)
