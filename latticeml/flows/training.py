"""Self-training of a flow by the reverse Kullback-Leibler divergence (no training data), for any
theory of :mod:`latticeml.flows.target` (phi^4, 2D U(1)) and any flow built by
:mod:`latticeml.flows.model` (affine couplings, gauge-equivariant U(1) couplings).

Albergo, Kanwar & Shanahan, PRD 100 (2019) 034515, Sec. III C; the tutorial, arXiv:2101.08176,
Sec. 3. Each step draws ``z ~ r`` from the prior, maps it to ``phi = f(z)`` with
``log q(phi) = log r(z) - log det``, and minimises the Monte Carlo estimate

    loss = (1/B) sum_b [ log q(phi_b) + S(phi_b) ]  =  KL(q || p) - log Z   (estimated)

with Adam (Kingma & Ba, ICLR 2015). The gradient flows through the samples themselves
(the "reparameterisation trick"): only the action and the flow have to be differentiable.

Telemetry per step, computed on the step's batch *before* the update (``history`` arrays):
``loss``; ``ess`` the effective sample size per configuration of the batch
(:func:`latticeml.flows.metrics.effective_sample_size`, so on ``batch_size`` samples: ESS depends
on the sample size); ``acceptance`` the expected flow-MCMC acceptance estimated from the batch
(:func:`latticeml.flows.metrics.acceptance_estimate`).

Checkpoints (``checkpoint=PATH``, every ``checkpoint_every`` steps, at the end and on Ctrl-C)
hold the architecture, the parameters, Adam's moments and step count, the random generator, the
step counter and the history; :func:`resume_training` continues bit for bit, or further with a
larger ``steps``. A Ctrl-C during the forward/backward pass rewinds the generator to the last
complete step; the parameter update itself is shielded from Ctrl-C (deferred by a few
microseconds, :class:`latticeml._runs.CheckpointedRun`), so a checkpoint never holds a
half-updated model.
"""

from __future__ import annotations

import json
from typing import Callable, NamedTuple

import numpy as np

from .. import io
from .._runs import CheckpointedRun
from ..autodiff import optim
from ..checks import check_count, check_rng, positive_float
from ..theories.base import Theory, make_theory
from .metrics import acceptance_estimate, effective_sample_size
from .model import Flow, _flow_from_config
from .target import action_tensor, check_theory

__all__ = ["TrainResult", "reverse_kl_loss", "train", "resume_training", "load_checkpointed_flow", "HISTORY_KEYS"]

HISTORY_KEYS = ("loss", "ess", "acceptance")


class TrainResult(NamedTuple):
    """What :func:`train` returns.

    flow:      the trained flow (the same object that was passed in, updated in place).
    theory:    the target theory.
    optimizer: the Adam optimizer (its moments continue a later training).
    history:   dict ``loss``/``ess``/``acceptance`` -> float64 array ``(steps,)``, one entry per step.
    rng:       the generator, advanced past the training.
    steps:     number of optimisation steps done in total.
    """

    flow: Flow
    theory: Theory
    optimizer: optim.Adam
    history: dict
    rng: np.random.Generator
    steps: int


def reverse_kl_loss(flow: Flow, theory: Theory, z):
    """``(loss, log_q, S)`` for the prior draws ``z`` ``(B, *shape)``: loss a scalar Tensor,
    ``log q`` and ``S`` of the pushed-forward fields as arrays ``(B,)``."""
    log_r = flow.prior.log_prob(z)
    phi, log_det = flow(z)
    S = action_tensor(theory, phi)
    log_q = log_r - log_det
    loss = (log_q + S).mean()
    return loss, np.array(log_q.value), np.array(S.value)


def _check_int(name, value, minimum):
    return check_count(value, name, minimum=minimum)


def _settings(steps, batch_size, optimizer, schedule) -> dict:
    return {
        "steps": int(steps),
        "batch_size": int(batch_size),
        "lr": optimizer.lr if schedule is None else schedule[0],
        "lr_final": None if schedule is None else schedule[1],
        "betas": [optimizer.b1, optimizer.b2],
        "eps": optimizer.eps,
    }


def train(
    flow: Flow,
    theory: Theory,
    *,
    steps: int,
    rng: np.random.Generator,
    batch_size: int = 64,
    lr: float = 1e-3,
    lr_final: float | None = None,
    optimizer: optim.Adam | None = None,
    checkpoint=None,
    checkpoint_every: int = 100,
    progress: bool = True,
    callback: Callable | None = None,
) -> TrainResult:
    """Train ``flow`` towards ``exp(-S)`` of ``theory`` for ``steps`` Adam steps of ``batch_size`` samples.

    ``optimizer`` continues an earlier training (default: a new ``Adam(lr=lr)``). ``lr_final``: if
    given, the rate follows a cosine from ``lr`` (the optimizer's rate if one is passed) at the first
    step to ``lr_final`` at the last (:func:`latticeml.autodiff.optim.cosine_rate`; stored in the
    checkpoint, so a resumed run follows it). Measured on the tutorial's U(1) flow (8x8, beta = 2,
    4000 steps of batch 128): 3e-3 -> 1e-5 reaches a flow-MCMC acceptance of 0.39, a constant 1e-3 at
    batch 64 0.33 (benchmarks/RESULTS.md).
    ``callback(step, record)`` is called after every step with the step number (1-based) and that
    step's telemetry dict. See the module docstring for checkpoints and Ctrl-C.
    """
    check_theory(theory)
    if not isinstance(flow, Flow):
        raise TypeError(f"flow must be a latticeml.flows.Flow (e.g. phi4_flow(shape, rng=rng)), got {type(flow).__name__}")
    if flow.field_shape != theory.field_shape:
        raise ValueError(f"the flow models fields of shape {flow.field_shape} but the theory's fields have shape {theory.field_shape}")
    check_rng(rng)
    steps = _check_int("steps", steps, 0)
    batch_size = _check_int("batch_size", batch_size, 2)
    checkpoint_every = _check_int("checkpoint_every", checkpoint_every, 1)
    if optimizer is None:
        optimizer = optim.Adam(flow.parameters(), lr=lr)
    schedule = None if lr_final is None else (optimizer.lr, positive_float(lr_final, "lr_final"))
    history = {k: [] for k in HISTORY_KEYS}
    return _loop(flow, theory, optimizer, rng, 0, steps, batch_size, history, checkpoint, checkpoint_every, progress, callback,
                 schedule)


def resume_training(
    checkpoint,
    *,
    steps: int | None = None,
    checkpoint_every: int = 100,
    progress: bool = True,
    callback: Callable | None = None,
) -> TrainResult:
    """Continue the training stored in ``checkpoint`` to its planned number of steps, or to ``steps``.

    Everything (architecture, parameters, optimizer, generator, history, theory) comes from the
    file; the continuation gives exactly the numbers of an uninterrupted run (with a learning-rate
    schedule too, as long as ``steps`` is the planned total: the cosine is stretched to a new total).
    """
    ck, flow, theory = _read_checkpoint(checkpoint)
    s = ck.metadata["settings"]
    optimizer = optim.Adam(flow.parameters(), lr=s["lr"], betas=tuple(s["betas"]), eps=s["eps"])
    optimizer.load_state_dict({k[len("adam/"):]: v for k, v in ck.state_arrays.items() if k.startswith("adam/")})
    total = s["steps"] if steps is None else _check_int("steps", steps, ck.step)
    history = {k: list(ck.records[k]) for k in HISTORY_KEYS}
    schedule = None if s.get("lr_final") is None else (s["lr"], s["lr_final"])
    return _loop(flow, theory, optimizer, ck.rng, ck.step, total, s["batch_size"], history, checkpoint,
                 _check_int("checkpoint_every", checkpoint_every, 1), progress, callback, schedule)


def _read_checkpoint(path):
    ck = io.load_checkpoint(path)
    meta = ck.metadata
    if meta.get("kind") != "flow_training":
        raise ValueError(f"{path} is not a flow-training checkpoint (written by latticeml.flows.train or `latticeml flow train`)")
    flow = _flow_from_config(meta["architecture"])
    flow.load_state_dict({k[len("param/"):]: v for k, v in ck.state_arrays.items() if k.startswith("param/")})
    tp = dict(meta["theory_params"])
    return ck, flow, make_theory(meta.get("theory", "phi4"), tuple(tp.pop("shape")), **tp)


def load_checkpointed_flow(path) -> tuple[Flow, Theory, dict, int]:
    """``(flow, theory, history, step)`` from a training checkpoint, without continuing the training
    (e.g. to sample from a run that is still going, or was interrupted)."""
    ck, flow, theory = _read_checkpoint(path)
    return flow, theory, {k: np.asarray(ck.records[k]) for k in HISTORY_KEYS}, int(ck.step)


def _loop(flow, theory, optimizer, rng, start, total, batch_size, history, checkpoint, checkpoint_every, progress, callback,
          schedule=None):
    settings = _settings(total, batch_size, optimizer, schedule)
    meta = {
        "kind": "flow_training",
        "architecture": flow.config,
        "theory": theory.name,
        "theory_params": theory.params,
        "settings": settings,
    }
    if checkpoint is not None:
        json.dumps(meta)  # the architecture must be JSON-able to be checkpointed
        if flow.config is None:
            raise ValueError("checkpoints need a flow built by phi4_flow or u1_flow (it records the architecture)")

    def snapshot():
        arrays = {f"param/{k}": v for k, v in flow.state_dict().items()}
        arrays.update({f"adam/{k}": v for k, v in optimizer.state_dict().items()})
        return arrays, {k: np.asarray(v, dtype=np.float64) for k, v in history.items()}

    with CheckpointedRun(rng, start=start, total=total, checkpoint=checkpoint, snapshot=snapshot, metadata=meta,
                         checkpoint_every=checkpoint_every, progress=progress, desc="flow training") as run:
        while run.step < total:
            run.begin_step()
            if schedule is not None:
                optimizer.lr = optim.cosine_rate(schedule[0], schedule[1], run.step, total)
            z = flow.prior.sample(rng, batch_size)
            optimizer.zero_grad()
            loss, log_q, S = reverse_kl_loss(flow, theory, z)
            loss.backward()
            log_w = -S - log_q
            record = {"loss": float(loss.value), "ess": effective_sample_size(log_w), "acceptance": acceptance_estimate(log_w)}
            with run.commit():  # the update, the count and the record as one unit
                optimizer.step()
                for k in HISTORY_KEYS:
                    history[k].append(record[k])
            if run.bar is not None and (run.step % 10 == 0 or run.step == total):
                last = slice(-50, None)
                run.bar.set_postfix(loss=f"{np.mean(history['loss'][last]):.2f}", ess=f"{np.mean(history['ess'][last]):.3f}",
                                    acc=f"{np.mean(history['acceptance'][last]):.3f}")
            if callback is not None:
                callback(run.step, record)
    return TrainResult(
        flow=flow,
        theory=theory,
        optimizer=optimizer,
        history={k: np.asarray(v, dtype=np.float64) for k, v in history.items()},
        rng=rng,
        steps=run.step,
    )
