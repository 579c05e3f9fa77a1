"""No traceback ever reaches the user: the command line fuzzed with hypothesis.

Every run of ``main(argv)`` must end with status 0 (it worked, or printed its help), or 2 with
exactly one line ``latticeml: error: ...`` on stderr; "Traceback" must never appear. Arguments are
built from valid and invalid pieces: theory names, shapes as random text and as random integer
lists, couplings as floats (nan, inf, negative, huge) and as random text, algorithm and
integrator names, step sizes, counts 0/-1/1/2, random paths and files that are missing, folders,
text, truncated or of the wrong kind. Nothing is stubbed: a valid command line runs a real (tiny)
chain, so lattices stay small and --n is at most 2.

The default profile is derandomized (the same examples on every run, like every test here) with
60 examples per test; ``HYPOTHESIS_PROFILE=fuzz`` draws 1000 fresh ones.
The last tests run the issue's exact examples through ``python -m latticeml`` in a subprocess.
"""

import contextlib
import io
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latticeml.cli import main

settings.register_profile(
    "cli", max_examples=60, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("fuzz", max_examples=1000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "cli")
#: the smaller commands get half the examples in the default profile
FEWER = settings(settings.get_profile(PROFILE), max_examples=30) if PROFILE == "cli" else settings.get_profile(PROFILE)


def run(argv, cwd="."):
    """``main(argv)`` in-process, in folder ``cwd``: (status, stdout, stderr); --help's SystemExit(0) is status 0."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(argv))
        except SystemExit as exc:
            status = exc.code
    return status, out.getvalue(), err.getvalue()


def assert_clean(argv, cwd=".", run=run):
    status, out, err = run(argv, cwd)
    assert "Traceback" not in err + out, (argv, err)
    assert status in (0, 2), (argv, status, err)
    if status == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and err.endswith("\n") and lines[0].startswith("latticeml: error: "), (argv, err)
    return status, out, err


# ----------------------------------------------------------------------------- files for the path strategies


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Paths of every kind: a real ensemble and checkpoint, and things that are not one."""
    d = tmp_path_factory.mktemp("cli_fuzz")
    ens = d / "ens.npz"
    status, _, err = run(["sample", "u1", "--shape", "4,4", "--beta", "1", "--n", "2", "--therm", "0", "--quiet", "--out", str(ens)])
    assert status == 0, err
    status, _, err = run(["flow", "train", "phi4", "--shape", "4,4", "--m2", "-1", "--lam", "1", "--steps", "2", "--batch", "2",
                          "--layers", "1", "--hidden", "2", "--quiet", "--out", str(d / "model.npz")])
    assert status == 0, err
    (d / "text.npz").write_text("not an archive\n")
    (d / "truncated.npz").write_bytes(ens.read_bytes()[:200])
    import numpy as np

    np.savez(d / "plain.npz", x=np.zeros(3))
    (d / "folder").mkdir()
    return {
        "dir": d,
        "existing": [str(ens), str(d / "ens.ckpt.npz"), str(d / "text.npz"), str(d / "truncated.npz"),
                     str(d / "plain.npz"), str(d / "folder"), str(d / "missing.npz"), str(d / "no_folder" / "x.npz"),
                     str(d / "model.npz"), str(d / "model.ckpt.npz")],
    }


def paths(files):
    """Paths to read or write: the files above, fresh names in the folder, random text."""
    d = files["dir"]
    return st.one_of(
        st.sampled_from(files["existing"]),
        st.text(st.characters(codec="utf-8", exclude_characters="\x00/"), min_size=1, max_size=12).map(lambda t: str(d / t)),
        st.text(max_size=12),
    )


# ----------------------------------------------------------------------------- argument strategies

THEORIES = ["phi4", "u1", "su2", "su3", "sun"]
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "1", "2.5", "-1", "-8", "1e308", "1e400", "-inf", "nan", "0x10", ""]),
    st.text(max_size=6),
)
small_floats = st.sampled_from(["0.5", "1", "2", "-1", "-4", "8", "nan", "inf"])
shapes = st.one_of(
    st.lists(st.integers(-1, 5), min_size=0, max_size=3).map(lambda xs: ",".join(map(str, xs))),
    st.lists(st.sampled_from([2, 4]), min_size=1, max_size=3).map(lambda xs: ",".join(map(str, xs))),
    st.sampled_from(["4,4", "2x2", "8,8,x", "4,,4", " 4 , 4 ", "100000,100000", "10**9,2", "99999999999999999999,2", "٣,٣"]),
    st.text(max_size=8),
)


def option(flag, values):
    """``[flag, value]``, ``[flag=value]`` (how a negative number gets through argparse) or nothing."""
    return st.one_of(
        st.just([]),
        values.map(lambda v: [flag, v]),
        values.map(lambda v: [f"{flag}={v}"]),
    )


#: a valid command line per theory: couplings of the right kind, tiny lattices
VALID = {
    "phi4": ["--m2", "-1", "--lam", "1"],
    "u1": ["--beta", "1"],
    "su2": ["--beta", "2"],
    "su3": ["--beta", "5"],
    "sun": ["--beta", "4", "--N", "2"],
}


@st.composite
def wild_sample_argv(draw, files):
    """Every option independently present or absent, valid or not, in any order."""
    theory = draw(st.one_of(st.sampled_from(THEORIES), st.text(max_size=5)))
    parts = [
        draw(st.one_of(st.just(["--shape", draw(shapes)]), st.just([]))),
        draw(option("--beta", st.one_of(small_floats, numbers))),
        draw(option("--m2", st.one_of(small_floats, numbers))),
        draw(option("--lam", st.one_of(small_floats, numbers))),
        draw(option("--N", st.sampled_from(["2", "3", "1", "0", "-2", "1000000", "x"]))),
        draw(option("--action", st.sampled_from(["wilson", "luscher-weisz", "iwasaki", "symanzik"]))),
        draw(option("--c1", st.one_of(st.sampled_from(["-0.331", "-0.0833", "0"]), numbers))),
        draw(option("--algorithm", st.sampled_from(["hmc", "metropolis", "heatbath", "gibbs", ""]))),
        draw(option("--step", st.one_of(st.sampled_from(["0.1", "0.3", "0", "-0.1", "1e-300", "1e300", "nan"]), numbers))),
        draw(option("--nsteps", st.sampled_from(["1", "3", "0", "-1", "x"]))),
        draw(option("--integrator", st.sampled_from(["leapfrog", "omelyan", "verlet"]))),
        draw(option("--overrelax", st.sampled_from(["0", "1", "-1"]))),
        draw(option("--instanton-every", st.sampled_from(["0", "1", "-1"]))),
        ["--n", draw(st.sampled_from(["0", "-1", "1", "2", "x"]))],
        ["--therm", draw(st.sampled_from(["0", "1", "-1"]))],
        draw(option("--every", st.sampled_from(["1", "2", "0"]))),
        draw(option("--seed", st.sampled_from(["0", "7", "-1", "x"]))),
        draw(option("--start", st.sampled_from(["hot", "cold", "warm"]))),
        draw(option("--out", paths(files))),
        draw(option("--resume", paths(files))),
        draw(option("--checkpoint-every", st.sampled_from(["1", "0"]))),
        draw(st.sampled_from([["--json"], []])),
        ["--quiet"],
        draw(st.sampled_from([[], [], ["--bogus"], ["-x"], ["extra"], ["--"], ["--n"], ["-h"]])),
    ]
    order = draw(st.permutations(range(len(parts))))
    return ["sample", theory] + [tok for i in order for tok in parts[i]]


@st.composite
def mutated_sample_argv(draw, files):
    """A valid command line (a tiny chain that runs) with zero to two mistakes put in.

    Most wild command lines stop at their first mistake; these reach the later checks (paths,
    memory, the theory's and the sampler's own refusals) and the chain itself.
    """
    theory = draw(st.sampled_from(THEORIES))
    argv = ["sample", theory, "--shape", draw(st.sampled_from(["2,2", "4,4", "4,2", "2,2,2"])), *VALID[theory],
            "--n", draw(st.sampled_from(["1", "2"])), "--therm", draw(st.sampled_from(["0", "1"])), "--quiet"]
    argv += draw(st.sampled_from([[], ["--algorithm", "metropolis"], ["--algorithm", "heatbath", "--overrelax", "1"],
                                  ["--step", "0.2", "--nsteps", "2", "--integrator", "omelyan"]]))
    if theory != "phi4":
        argv += draw(st.sampled_from([[], ["--action", "iwasaki"], ["--action", "luscher-weisz"], ["--c1=-0.2"]]))
    argv += draw(st.sampled_from([[], ["--json"], ["--out", "ens.npz"], ["--out", "folder"], ["--checkpoint", "ck.npz"]]))
    return mutated(draw, argv, files, [
        ["--lam", "-8"], ["--beta", "nan"], ["--N", "3"], ["--out", str(files["dir"] / "no_folder" / "x.npz")],
        ["--resume", files["existing"][2]], ["--resume", files["existing"][1]], ["--shape", "100000,100000"],
        ["--n", "1000000000", "--out", "big.npz"], ["--instanton-every", "1"], ["--step", "1e-9"],
    ])


def mutated(draw, argv, files, insertions):
    """``argv`` with zero to two mistakes: a token replaced by junk, a token deleted, or options inserted."""
    argv = list(argv)
    for _ in range(draw(st.integers(0, 2))):
        where = draw(st.integers(2, len(argv)))
        kind = draw(st.sampled_from(["replace", "delete", "insert"]))
        if kind == "replace" and where < len(argv):
            argv[where] = draw(st.one_of(numbers, shapes, paths(files)))
        elif kind == "delete" and where < len(argv):
            del argv[where]
        else:
            argv[where:where] = draw(st.sampled_from(insertions))
    return argv


def sample_argv(files):
    return st.one_of(mutated_sample_argv(files), wild_sample_argv(files))


# ----------------------------------------------------------------------------- the properties


@settings(settings.get_profile(PROFILE))
@given(data=st.data())
def test_sample_never_shows_a_traceback(files, data):
    assert_clean(data.draw(sample_argv(files)), files["dir"])


@FEWER
@given(data=st.data())
def test_measure_and_flow_sample_never_show_a_traceback(files, data):
    path = data.draw(paths(files))
    command = data.draw(st.sampled_from([["measure"], ["flow", "sample"]]))
    extra = data.draw(st.sampled_from([[], ["--json"], ["--n", "8", "--batch", "2"], ["--n", "0"], ["--m2", "nan"], ["--out", path]]))
    assert_clean([*command, path, *extra], files["dir"])


@FEWER
@given(data=st.data())
def test_flow_train_never_shows_a_traceback(files, data):
    """A one-step training on 4x4 (it runs), with zero to two mistakes put in."""
    valid = ["flow", "train", "phi4", "--shape", "4,4", "--m2", "-1", "--lam", "1", "--steps", "1", "--batch", "2",
             "--layers", "1", "--hidden", "2", "--quiet", "--out", "model_fuzz.npz"]
    argv = mutated(data.draw, valid, files, [
        ["--lam", "-8"], ["--m2", "nan"], ["--hidden", "0"], ["--hidden", "2,x"], ["--kernel", "2"], ["--shape", "100000,100000"],
        ["--out", str(files["dir"] / "no_folder" / "m.npz")], ["--resume", files["existing"][-1]], ["--resume", files["existing"][1]],
        ["--batch", "0"], ["--lr", "-1"], ["--json"],
    ])
    assert_clean(argv, files["dir"])


@pytest.mark.parametrize(
    "status, err",
    [
        (1, 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: beta must be finite\n'),
        (2, "latticeml: error: one\nlatticeml: error: two\n"),
        (2, "error: no prefix\n"),
        (1, "latticeml: error: right words, wrong status\n"),
    ],
)
def test_the_property_can_fail(status, err):
    """assert_clean rejects what the issue saw: a traceback, a two-line error, another status."""
    with pytest.raises(AssertionError):
        assert_clean(["sample"], run=lambda argv, cwd: (status, "", err))


# ----------------------------------------------------------------------------- the issue's examples, as a user runs them


@pytest.mark.parametrize(
    "argv, words",
    [
        (["sample", "u1", "--shape", "8,8", "--beta", "nan"], ["--beta", "finite"]),
        (["sample", "u1", "--shape", "8,8", "--beta", "inf"], ["--beta", "finite"]),
        (["sample", "u1", "--shape", "8,8", "--beta", "1", "--out", "no_such_folder/ens.npz"], ["no_such_folder", "does not exist"]),
        (["sample", "phi4", "--shape", "8,8", "--m2", "-4", "--lam", "-8"], ["lam", ">= 0"]),
        (["sample", "u1", "--shape", "1000000,1000000", "--beta", "1"], ["GiB", "--shape"]),
        (["sample", "u1", "--shape", "8,8,x", "--beta", "1"], ["--shape", "'x'"]),
    ],
    ids=["nan", "inf", "out-folder", "negative-lambda", "too-large", "shape-8,8,x"],
)
def test_issue_examples_in_a_subprocess(tmp_path, argv, words):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    done = subprocess.run([sys.executable, "-m", "latticeml", *argv], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("latticeml: error: ")
    for word in words:
        assert word in done.stderr
    assert not (tmp_path / "no_such_folder").exists()  # --out never creates a folder
