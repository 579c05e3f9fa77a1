"""Tests of latticeml.io: .npz round trips, atomic writes, pickle refusal, RNG state."""

import json
import os
import pickle

import numpy as np
import pytest

from latticeml import io

BIT_GENERATORS = ["PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"]


def sample_arrays(rng):
    return {
        "links": rng.uniform(-np.pi, np.pi, size=(2, 4, 6)),
        "su2": (rng.standard_normal((2, 3, 3, 2, 2)) + 1j * rng.standard_normal((2, 3, 3, 2, 2))),
        "spins": rng.integers(-3, 3, size=(5,), dtype=np.int8),
        "mask": rng.random((3, 3)) > 0.5,
        "labels": np.array(["plaquette", "Q"]),
        "scalar": np.float32(1.5),
        "strided": np.arange(20.0)[::3],  # non-contiguous input
        "fortran": np.asfortranarray(rng.random((3, 4))),
        "big_endian": np.arange(4, dtype=">f8"),
    }


def assert_bit_identical(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("compress", [False, True])
def test_npz_round_trip_is_bit_identical(tmp_path, compress):
    arrays = sample_arrays(np.random.default_rng(1))
    metadata = {"beta": 2.25, "L": [8, 8], "note": "héllo", "nested": {"a": None, "b": True},
                "numpy_scalar": np.float64(0.1), "numpy_int": np.int64(7)}
    path = io.save_npz(tmp_path / "run.npz", arrays, metadata, compress=compress)
    assert path == tmp_path / "run.npz" and os.listdir(tmp_path) == ["run.npz"]
    loaded, meta = io.load_npz(path)
    assert set(loaded) == set(arrays)
    for name, array in arrays.items():
        assert_bit_identical(loaded[name], np.asarray(array))
    assert meta["format"] == io.FORMAT and meta["format_version"] == io.FORMAT_VERSION
    expected = json.loads(json.dumps({**metadata, "numpy_scalar": 0.1, "numpy_int": 7}))
    assert {k: v for k, v in meta.items() if k not in ("format", "format_version")} == expected
    # loaded metadata can be saved again unchanged
    io.save_npz(path, loaded, meta)
    assert io.load_npz(path)[1] == meta


def test_nan_and_extreme_values_survive(tmp_path):
    x = np.array([np.nan, np.inf, -0.0, 5e-324, np.finfo(float).max])
    io.save_npz(tmp_path / "x.npz", {"x": x}, {})
    assert io.load_npz(tmp_path / "x.npz")[0]["x"].tobytes() == x.tobytes()


def test_interrupted_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ensemble.npz"
    io.save_npz(path, {"x": np.arange(5.0)}, {"version": "old"})
    before = path.read_bytes()

    def crash(file, **arrays):
        file.write(b"partial garbage")
        raise KeyboardInterrupt("simulated crash while writing")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        io.save_npz(path, {"x": np.arange(7.0)}, {"version": "new"})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ensemble.npz"]  # no temporary left behind
    arrays, meta = io.load_npz(path)
    assert meta["version"] == "old" and np.array_equal(arrays["x"], np.arange(5.0))


def test_foreign_files_rejected_with_clear_errors(tmp_path):
    np.savez(tmp_path / "plain.npz", x=np.ones(3))
    with pytest.raises(ValueError, match="without latticeml metadata"):
        io.load_npz(tmp_path / "plain.npz")
    np.save(tmp_path / "single.npy", np.ones(3))
    with pytest.raises(ValueError, match="single .npy"):
        io.load_npz(tmp_path / "single.npy")
    with open(tmp_path / "obj.pkl", "wb") as handle:
        pickle.dump({"x": 1}, handle)
    with pytest.raises(ValueError, match="not a latticeml"):
        io.load_npz(tmp_path / "obj.pkl")
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(ValueError, match="not a latticeml"):
        io.load_npz(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", __metadata__=np.array(json.dumps({"format": "other"})))
    with pytest.raises(ValueError, match="does not declare format"):
        io.load_npz(tmp_path / "other.npz")
    newer = json.dumps({"format": "latticeml", "format_version": io.FORMAT_VERSION + 1})
    np.savez(tmp_path / "newer.npz", __metadata__=np.array(newer))
    with pytest.raises(ValueError, match="upgrade"):
        io.load_npz(tmp_path / "newer.npz")
    with pytest.raises(FileNotFoundError):
        io.load_npz(tmp_path / "missing.npz")


def test_pickled_object_arrays_rejected(tmp_path):
    with pytest.raises(TypeError, match="object"):
        io.save_npz(tmp_path / "a.npz", {"x": np.array([{"a": 1}], dtype=object)}, {})
    assert not os.listdir(tmp_path)
    # a crafted file with valid metadata but a pickled array is refused on load
    meta = json.dumps({"format": "latticeml", "format_version": 1})
    np.savez(tmp_path / "evil.npz", x=np.array([{"a": 1}], dtype=object), __metadata__=np.array(meta))
    with pytest.raises(ValueError, match="pickled object arrays"):
        io.load_npz(tmp_path / "evil.npz")


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        io.save_npz(tmp_path / "a.npz", {"__metadata__": np.ones(1)}, {})
    with pytest.raises(ValueError, match="reserved"):
        io.save_npz(tmp_path / "a.npz", {}, {"format": "mine"})
    with pytest.raises(TypeError, match="JSON"):
        io.save_npz(tmp_path / "a.npz", {}, {"when": object()})
    with pytest.raises(TypeError, match="arrays"):
        io.save_npz(tmp_path / "a.npz", {}, {"field": np.ones(3)})
    with pytest.raises(FileNotFoundError, match="create it"):
        io.save_npz(tmp_path / "no" / "a.npz", {}, {})
    with pytest.raises(ValueError, match="step"):
        io.save_checkpoint(tmp_path / "c.npz", state_arrays={}, rng=np.random.default_rng(), step=-1)
    assert not os.listdir(tmp_path)


# ----------------------------------------------------------------------------- RNG state


@pytest.mark.parametrize("name", BIT_GENERATORS)
def test_rng_state_round_trip_continues_bit_identically(name):
    rng = np.random.Generator(getattr(np.random, name)(12345))
    rng.standard_normal(7)
    rng.integers(0, 10, size=3, dtype=np.int32)  # leaves a buffered uint32 in some generators
    state = json.loads(json.dumps(io.rng_state(rng)))  # through text, as in a file
    restored = io.rng_from_state(state)
    assert type(restored.bit_generator).__name__ == name
    for draw in (lambda g: g.random(5), lambda g: g.standard_normal(5),
                 lambda g: g.integers(0, 2**62, size=5), lambda g: g.integers(0, 9, 3, dtype=np.int32)):
        assert draw(restored).tobytes() == draw(rng).tobytes()


def test_pcg64_state_is_exact_128_bit_int():
    rng = np.random.default_rng(2**100 + 3)
    state = io.rng_state(rng)
    assert state["state"]["state"] == rng.bit_generator.state["state"]["state"]
    assert state["state"]["state"] > 2**64  # really 128-bit, kept exact by JSON ints


def test_rng_from_state_rejects_garbage():
    with pytest.raises(ValueError, match="unknown bit generator"):
        io.rng_from_state({"bit_generator": "Generator"})
    with pytest.raises(ValueError, match="rng_state"):
        io.rng_from_state({"state": 1})
    with pytest.raises(ValueError, match="invalid PCG64"):
        io.rng_from_state({"bit_generator": "PCG64", "state": {}})
    with pytest.raises(TypeError, match="Generator"):
        io.rng_state(np.random.RandomState(1))


# ----------------------------------------------------------------------------- ensembles, checkpoints


def test_ensemble_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    configs = rng.uniform(-np.pi, np.pi, size=(10, 2, 4, 4))
    observables = {"plaquette": rng.random(10), "Q": rng.integers(-2, 3, size=10)}
    io.save_ensemble(tmp_path / "ens.npz", configs, theory="u1", params={"beta": 2.0, "L": [4, 4]},
                     observables=observables, metadata={"sampler": "hmc"})
    ens = io.load_ensemble(tmp_path / "ens.npz")
    assert ens.configs.tobytes() == configs.tobytes() and ens.configs.dtype == configs.dtype
    assert ens.theory == "u1" and ens.params == {"beta": 2.0, "L": [4, 4]}
    assert ens.metadata == {"sampler": "hmc"}
    assert set(ens.observables) == {"plaquette", "Q"}
    for name in observables:
        assert ens.observables[name].tobytes() == observables[name].tobytes()
    io.save_ensemble(tmp_path / "bare.npz", configs, theory="u1", params={})
    assert io.load_ensemble(tmp_path / "bare.npz").observables == {}
    with pytest.raises(ValueError, match="kind 'ensemble', not 'checkpoint'"):
        io.load_checkpoint(tmp_path / "ens.npz")


def test_checkpoint_resumes_a_chain_bit_identically(tmp_path):
    """A toy Metropolis chain run 40 steps straight equals 20 steps + checkpoint + 20 steps."""

    def run(phi, rng, records, n_steps):
        for _ in range(n_steps):
            proposal = phi + 0.5 * rng.standard_normal(phi.shape)
            accept = rng.random(phi.shape) < np.exp(0.5 * (phi**2 - proposal**2))
            phi = np.where(accept, proposal, phi)
            records.append(float(np.mean(phi**2)))
        return phi

    phi0 = np.zeros((4, 4))
    straight_records = []
    straight = run(phi0, np.random.default_rng(9), straight_records, 40)

    rng = np.random.default_rng(9)
    records = []
    phi = run(phi0, rng, records, 20)
    io.save_checkpoint(tmp_path / "ckpt.npz", state_arrays={"phi": phi}, rng=rng, step=20,
                       records={"phi2": np.array(records)}, metadata={"theory": "gaussian"})
    del phi, rng, records
    ckpt = io.load_checkpoint(tmp_path / "ckpt.npz")
    assert ckpt.step == 20 and ckpt.metadata == {"theory": "gaussian"}
    records = list(ckpt.records["phi2"])
    resumed = run(ckpt.state_arrays["phi"], ckpt.rng, records, 20)
    assert resumed.tobytes() == straight.tobytes()
    assert np.array(records).tobytes() == np.array(straight_records).tobytes()
