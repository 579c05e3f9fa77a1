"""Long runs that survive Ctrl-C: the step bookkeeping shared by Markov chains and flow training.

A long run -- a Markov chain (:mod:`latticeml.samplers.chain`) or a flow's self-training
(:mod:`latticeml.flows.training`) -- is a loop of steps. Each step first *works* (draws random
numbers from the run's one ``numpy.random.Generator``, computes a proposal or a gradient) and then
*commits* (replaces the state or updates the parameters, counts the step, appends telemetry).
A checkpoint must pair the last complete state with the step counter and with the generator's
state at that same moment; only then does a resumed run draw exactly the numbers of an
uninterrupted one, bit for bit. :class:`CheckpointedRun` keeps that promise in one place::

    with CheckpointedRun(rng, start=0, total=n, checkpoint=path, snapshot=snapshot,
                         metadata=meta, checkpoint_every=100, desc="chain") as run:
        while run.step < run.total:
            run.begin_step()                  # remember the generator's state
            new_state, info = work(rng)       # a Ctrl-C here discards the partial step
            with run.commit():                # a Ctrl-C here waits until the commit is done
                state = new_state
                acceptance.append(info.acceptance)

What happens on each way out:

* Ctrl-C (``KeyboardInterrupt``) while a step works: with a checkpoint file, the generator is
  rewound to its state before the step, as if the step had never begun, the checkpoint is
  written and a line on stderr says where; the ``KeyboardInterrupt`` always propagates.
* Ctrl-C (or SIGTERM, which ``latticeml flow train`` turns into a Ctrl-C) during the commit:
  the signal is held back until the commit is complete, then handed to the handler that was in
  place; so a checkpoint never holds a new state with an old step count, or a half-updated model.
* Ctrl-C between steps (a periodic checkpoint, a callback): the counter is already consistent.
* Normal end: the final checkpoint. Any exit: the progress bar is closed.

Checkpoints are :func:`latticeml.io.save_checkpoint` files: the caller's ``snapshot()`` returns
``(state_arrays, records)``; the generator, the step counter and ``metadata`` are added here.
Every ``checkpoint_every`` steps (counted from step 0, not from ``start``, so that a resumed run
writes at the same steps as the original one) and at the end.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Callable

import numpy as np

from . import io
from .checks import check_count

__all__ = ["CheckpointedRun"]

# The signals that stop a run: Ctrl-C, and `kill PID` (SIGTERM), which `latticeml flow train`
# maps onto KeyboardInterrupt because a job started in the background ignores SIGINT.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class CheckpointedRun:
    """The step counter, checkpoints, Ctrl-C handling and progress bar of one long run.

    Arguments (keyword-only after ``rng``):

    rng:              the run's ``numpy.random.Generator``; all of the run's randomness comes
                      from it, so its state is part of every checkpoint.
    start, total:     the run goes from step ``start`` (0, or a checkpoint's step) to ``total``.
    checkpoint:       path of the checkpoint file, or ``None`` for a run without checkpoints
                      (then a Ctrl-C just propagates and the generator is left as it is).
    snapshot:         ``() -> (state_arrays, records)``, dicts of arrays describing the run's
                      last complete step; required with ``checkpoint``.
    metadata:         JSON-able dict stored with every checkpoint.
    checkpoint_every: write a checkpoint whenever the step count is a multiple of this.
    progress, desc:   show a tqdm bar with this description (``run.bar``; ``None`` if not).

    Use as a context manager; inside, call :meth:`begin_step` before each step's random draws
    and put the step's state changes in ``with run.commit():``. ``run.step`` counts the
    committed steps. See the module docstring for what a Ctrl-C does at each point.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        *,
        start: int,
        total: int,
        checkpoint=None,
        snapshot: Callable[[], tuple[dict, dict]] | None = None,
        metadata: dict | None = None,
        checkpoint_every: int = 1000,
        progress: bool = True,
        desc: str = "",
    ):
        if checkpoint is not None:
            if snapshot is None:
                raise TypeError("a checkpointed run needs snapshot() -> (state_arrays, records) to write its checkpoints")
            check_count(checkpoint_every, "checkpoint_every (steps between checkpoints)", minimum=1)
        self.rng = rng
        self.step = int(start)
        self.total = int(total)
        self.checkpoint = checkpoint
        self.bar = None
        self._snapshot = snapshot
        self._metadata = metadata
        self._checkpoint_every = checkpoint_every
        self._progress = progress
        self._desc = desc
        self._rng_before = None
        self._in_step = False  # between begin_step() and the end of the commit
        self._committing = False  # inside commit(): stop signals wait in _pending
        self._pending = []  # (signum, frame) held back during the commit
        self._previous_handlers = {}

    def __enter__(self) -> "CheckpointedRun":
        if self._progress:
            from tqdm.auto import (
                tqdm,  # imported late: tqdm.auto inspects the notebook environment
            )

            self.bar = tqdm(total=self.total, initial=self.step, desc=self._desc, unit="step", leave=False)
        self._intercept_stop_signals()  # last: nothing after it can fail before __exit__ is due
        return self

    def begin_step(self) -> None:
        """Remember the generator's state: the point a Ctrl-C before the commit rewinds to."""
        self._rng_before = self.rng.bit_generator.state
        self._in_step = True

    @contextlib.contextmanager
    def commit(self):
        """Make the enclosed state changes, the step count and the end of the step one unit.

        A Ctrl-C or SIGTERM arriving meanwhile is held back until the block has run, the counter
        is incremented and the step marked complete; then it reaches its handler, and the
        ``KeyboardInterrupt`` it causes finds a consistent run. After the commit come the
        periodic checkpoint and the progress bar's tick.
        """
        if not self._in_step:
            raise RuntimeError("commit() without begin_step(): call run.begin_step() before the step draws random numbers")
        self._committing = True
        try:
            yield
            self.step += 1
            self._in_step = False
        finally:
            self._committing = False
            self._deliver_pending()
        if self.checkpoint is not None and self.step % self._checkpoint_every == 0:
            self.write_checkpoint()
        if self.bar is not None:
            self.bar.update(1)

    # Python runs signal handlers between any two bytecodes, so a Ctrl-C can split statements
    # that must happen together (``state = new_state; step += 1``). For the whole run the stop
    # signals go through _on_stop_signal, which passes them on at once, except inside a commit,
    # where it only notes them. (Setting the handlers around each commit instead costs 10-30 us
    # a step, more than a small sampler's whole step: signal.signal and signal.getsignal convert
    # through enums.) Only signals already handled in
    # Python are intercepted: an ignored one stays ignored, a default one (SIGTERM) still ends
    # the process at once -- which writes nothing, so the last checkpoint stays consistent --
    # and a handler set from C could not be restored. Only the main thread receives signals.

    def _intercept_stop_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in _STOP_SIGNALS:
            if callable(signal.getsignal(signum)):
                self._previous_handlers[signum] = signal.signal(signum, self._on_stop_signal)

    def _restore_stop_signals(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}

    def _on_stop_signal(self, signum, frame) -> None:
        if self._committing:
            self._pending.append((signum, frame))
        else:
            self._previous_handlers[signum](signum, frame)

    def _deliver_pending(self) -> None:
        pending, self._pending = self._pending, []
        for signum, frame in pending:
            self._previous_handlers[signum](signum, frame)

    def write_checkpoint(self) -> None:
        """Write the last complete step (the caller's snapshot), the generator and the counter."""
        state_arrays, records = self._snapshot()
        io.save_checkpoint(self.checkpoint, state_arrays=state_arrays, rng=self.rng, step=self.step, records=records,
                           metadata=self._metadata)

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if self.checkpoint is not None:
                if exc_type is None:
                    self.write_checkpoint()
                elif issubclass(exc_type, KeyboardInterrupt):
                    if self._in_step:  # the step drew numbers but never committed: undo the draws
                        self.rng.bit_generator.state = self._rng_before
                        self._in_step = False
                    self.write_checkpoint()
                    print(f"\ninterrupted after step {self.step}/{self.total}; checkpoint written to {self.checkpoint}"
                          " (resume from it)", file=sys.stderr)
        finally:
            self._restore_stop_signals()
            if self.bar is not None:
                self.bar.close()
        return False  # never swallow the exception: the caller's caller decides what a Ctrl-C means
