"""latticeml._runs.CheckpointedRun: a stop signal during a commit waits for it, then meets the
handler that was in place; the step protocol.

The runs built on it (chains, flow training) test interruption and bit-identical resumption in
tests/test_chain.py and tests/test_flows.py.
"""

import signal

import numpy as np
import pytest

from latticeml import io
from latticeml._runs import CheckpointedRun


@pytest.fixture
def handlers():
    """Restore the SIGINT/SIGTERM handlers after the test, whatever it installed."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def test_stop_signals_wait_for_the_commit(tmp_path, handlers):
    seen = []

    def record(signum, frame):
        seen.append(signum)

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, record)  # stands in for `latticeml flow train`'s SIGTERM -> Ctrl-C
    ck = tmp_path / "run.npz"
    state = {"x": 0}
    rng = np.random.default_rng(5)
    with pytest.raises(KeyboardInterrupt):
        with CheckpointedRun(rng, start=0, total=10, checkpoint=ck, metadata={"what": "test"}, progress=False,
                             snapshot=lambda: ({"x": np.array(state["x"])}, {})) as run:
            while run.step < run.total:
                run.begin_step()
                rng.random()  # the step's draw
                with run.commit():
                    if run.step == 3:
                        signal.raise_signal(signal.SIGTERM)
                        signal.raise_signal(signal.SIGINT)
                        assert seen == []  # held back
                    state["x"] += 1
                assert run.step < 4  # the Ctrl-C ended the run right after step 4's commit
    assert seen == [signal.SIGTERM]  # delivered, in order, to the handler in place
    saved = io.load_checkpoint(ck)
    assert saved.step == 4 and int(saved.state_arrays["x"]) == 4 and saved.metadata == {"what": "test"}
    assert saved.rng.random() == np.random.default_rng(5).random(5)[4]  # the generator after 4 draws
    # the run's own handlers are gone; an ignored Ctrl-C (a background job) is never intercepted
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler and signal.getsignal(signal.SIGTERM) is record
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with CheckpointedRun(rng, start=0, total=1, progress=False) as run:
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        run.begin_step()
        with run.commit():
            signal.raise_signal(signal.SIGINT)
    assert run.step == 1


def test_commit_needs_begin_step_and_counts(tmp_path):
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match="snapshot"):
        CheckpointedRun(rng, start=0, total=1, checkpoint=tmp_path / "c.npz")
    with pytest.raises(ValueError, match="checkpoint_every"):
        CheckpointedRun(rng, start=0, total=1, checkpoint=tmp_path / "c.npz", snapshot=lambda: ({}, {}), checkpoint_every=0)
    with CheckpointedRun(rng, start=3, total=5, progress=False) as run:
        with pytest.raises(RuntimeError, match="begin_step"):
            with run.commit():
                pass
        while run.step < run.total:
            run.begin_step()
            with run.commit():
                pass
    assert run.step == 5
