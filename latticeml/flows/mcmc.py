"""Flow-based MCMC: the independence Metropolis sampler with a trained flow as the proposal.

Albergo, Kanwar & Shanahan, PRD 100 (2019) 034515, Sec. II; the Metropolis-Hastings algorithm
with a state-independent proposal (L. Tierney, Ann. Statist. 22 (1994) 1701). Proposals
``phi' ~ q`` are drawn independently from the flow and accepted with probability

    A(phi -> phi') = min(1, w(phi') / w(phi)),     log w = log p - log q = -S - log q,

which makes ``exp(-S) / Z`` the stationary distribution *exactly*, however imperfect the flow:
the flow's quality only sets the acceptance rate and the autocorrelations (a rejection repeats
the current configuration).

Two interfaces:

* :func:`flow_mcmc` -- the fast path: proposals drawn in batches (one flow evaluation per batch),
  the accept/reject sweep over them in a small Numba loop, observables measured once per proposal.
  Returns a :class:`FlowMCMCResult` (the chain, acceptances, log weights, observables);
  :func:`summarize` adds Gamma-method errors and tau_int (:func:`latticeml.stats.gamma_method`).
* the blackjax-style protocol of :mod:`latticeml.samplers.chain`: ``init(field, flow, theory)``,
  ``step(rng, state, flow, theory)`` (one proposal per step) and :func:`sampler` binding them, so
  that :func:`latticeml.samplers.run_chain` can drive flow-MCMC with checkpoints and resume.

The two use the random generator differently (batch of normals then batch of uniforms, against
normal-uniform per step), so they give different, equally valid chains for one seed.
"""

from __future__ import annotations

import functools
import hashlib
from typing import NamedTuple

import numpy as np
from numba import njit

from ..checks import check_count, check_rng
from ..samplers.accept import metropolis_test
from ..samplers.chain import Sampler
from ..stats import gamma_method
from ..theories.base import Theory
from .metrics import effective_sample_size
from .model import Flow
from .target import action, check_theory, observables

__all__ = ["State", "Info", "FlowMCMCResult", "init", "step", "sampler", "flow_mcmc", "summarize", "independence_metropolis"]


class State(NamedTuple):
    """Flow-MCMC state.

    field:      the current configuration, ``theory.field_shape``.
    log_weight: ``log w = -S(field) - log q(field)`` of the current configuration.
    """

    field: np.ndarray
    log_weight: float


class Info(NamedTuple):
    """What one flow-MCMC step (one proposal) reports.

    acceptance:             1.0 if the proposal was accepted, else 0.0.
    accepted:               the same as a bool.
    log_weight_proposal:    ``log w`` of the proposal.
    acceptance_probability: ``min(1, w(proposal) / w(current))``.
    """

    acceptance: float
    accepted: bool
    log_weight_proposal: float
    acceptance_probability: float


class FlowMCMCResult(NamedTuple):
    """What :func:`flow_mcmc` returns (``n`` = ``n_steps``).

    fields:               ``(n, *field_shape)`` the chain (``None`` with ``keep_fields=False``).
    accepted:             ``(n,)`` bool, whether step i accepted its proposal.
    acceptance:           the fraction of accepted proposals.
    log_weights:          ``(n,)`` ``log w`` of the chain's configurations.
    proposal_log_weights: ``(n,)`` ``log w`` of the proposals (independent draws from the flow).
    ess:                  effective sample size per configuration of the ``n`` proposals
                          (:func:`latticeml.flows.metrics.effective_sample_size`, on ``n`` samples).
    records:              dict observable -> ``(n,)`` values along the chain (keys as ``latticeml sample``).
    state:                the final :class:`State` (pass it as ``state=`` to continue the chain).
    """

    fields: np.ndarray | None
    accepted: np.ndarray
    acceptance: float
    log_weights: np.ndarray
    proposal_log_weights: np.ndarray
    ess: float
    records: dict
    state: State


def _log_weight(flow: Flow, theory: Theory, phi) -> np.ndarray:
    return -action(theory, phi) - flow.log_prob(phi)


def _check_pair(flow, theory):
    check_theory(theory)
    if not isinstance(flow, Flow):
        raise TypeError(f"flow must be a latticeml.flows.Flow, got {type(flow).__name__}")
    if flow.field_shape != theory.field_shape:
        raise ValueError(f"the flow models fields of shape {flow.field_shape} but the theory's fields have shape {theory.field_shape}")


# ----------------------------------------------------------------------------- the step protocol


def init(field, flow: Flow, theory: Theory) -> State:
    """The state at ``field`` (validated and copied), with its log weight from the flow's inverse."""
    _check_pair(flow, theory)
    field = np.array(theory.check_field(field), copy=True)
    return State(field=field, log_weight=float(_log_weight(flow, theory, field[None])[0]))


def step(rng: np.random.Generator, state: State, flow: Flow, theory: Theory) -> tuple[State, Info]:
    """One independence-Metropolis step: draw one proposal from the flow, then one uniform number."""
    check_rng(rng)
    phi, log_q = flow.sample(rng, 1)
    log_w = float(-action(theory, phi)[0] - log_q[0])
    # accept with min(1, w'/w): the Metropolis test with energy change -(log w' - log w)
    accepted, probability = metropolis_test(rng, state.log_weight - log_w)
    info = Info(acceptance=float(accepted), accepted=accepted, log_weight_proposal=log_w, acceptance_probability=probability)
    if accepted:
        return State(field=phi[0], log_weight=log_w), info
    return state, info


def _weights_fingerprint(flow: Flow) -> str:
    h = hashlib.sha256()
    for name, value in flow.state_dict().items():
        h.update(name.encode())
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()[:16]


def sampler(theory: Theory, flow: Flow) -> Sampler:
    """Flow-MCMC as a :class:`~latticeml.samplers.chain.Sampler` for ``run_chain``/``resume_chain``.

    The settings record the architecture and a fingerprint of the weights, so a checkpoint can
    only be resumed with the same flow.
    """
    _check_pair(flow, theory)
    settings = {"architecture": flow.config, "weights_sha256": _weights_fingerprint(flow)}
    return Sampler(
        name="flow_mcmc",
        theory=theory,
        settings=settings,
        init=functools.partial(init, flow=flow, theory=theory),
        step=functools.partial(step, flow=flow, theory=theory),
    )


# ----------------------------------------------------------------------------- the batched chain


@njit(cache=True)
def _metropolis_sweep(log_w, log_u, current_log_w, index, accepted):
    """Accept proposal i if log u_i < log w_i - log w(current); index[i] = the chain's proposal (-1: start)."""
    current = -1
    for i in range(log_w.shape[0]):
        if log_u[i] < log_w[i] - current_log_w:
            current = i
            current_log_w = log_w[i]
            accepted[i] = True
        else:
            accepted[i] = False
        index[i] = current
    return current_log_w


def independence_metropolis(proposal_log_weights, uniforms, *, start_log_weight: float = -np.inf):
    """The accept/reject sweep: ``(index, accepted, final log weight)``.

    ``index[i]`` is the proposal the chain sits on after step i (``-1``: still the start state,
    whose log weight is ``start_log_weight``; ``-inf`` accepts the first proposal unconditionally).
    Proposal i is accepted when ``uniforms[i] < w_i / w(current)``.
    """
    log_w = np.ascontiguousarray(proposal_log_weights, dtype=np.float64)
    u = np.ascontiguousarray(uniforms, dtype=np.float64)
    if log_w.shape != u.shape or log_w.ndim != 1:
        raise ValueError(f"proposal log weights {log_w.shape} and uniforms {u.shape} must be 1-d of the same length")
    with np.errstate(divide="ignore"):
        log_u = np.log(u)
    index = np.empty(len(log_w), dtype=np.int64)
    accepted = np.empty(len(log_w), dtype=np.bool_)
    final = _metropolis_sweep(log_w, log_u, float(start_log_weight), index, accepted)
    return index, accepted, float(final)


def flow_mcmc(
    flow: Flow,
    theory: Theory,
    rng: np.random.Generator,
    *,
    n_steps: int,
    batch_size: int = 1024,
    state: State | None = None,
    keep_fields: bool = True,
) -> FlowMCMCResult:
    """Run ``n_steps`` steps of flow-based MCMC (one proposal each) and measure the theory's observables.

    Without ``state`` the chain starts on its first proposal (accepted unconditionally, as in the
    tutorial: the flow's samples need no thermalisation); with ``state`` it continues from there.
    Per batch of ``batch_size`` proposals the generator draws the prior's normals, then the
    uniforms of the accept/reject steps.
    """
    _check_pair(flow, theory)
    check_rng(rng)
    n_steps = check_count(n_steps, "n_steps", minimum=1)
    batch_size = check_count(batch_size, "batch_size", minimum=1)
    current = state
    fields = np.empty((n_steps,) + theory.field_shape) if keep_fields else None
    accepted = np.empty(n_steps, dtype=bool)
    chain_log_w = np.empty(n_steps)
    proposal_log_w = np.empty(n_steps)
    records: dict = {}
    current_obs = None if current is None else {k: v[0] for k, v in observables(theory, current.field[None]).items()}
    for start in range(0, n_steps, batch_size):
        n = min(batch_size, n_steps - start)
        phi, log_q = flow.sample(rng, n)
        log_w = -action(theory, phi) - log_q
        uniforms = rng.random(n)
        start_log_w = -np.inf if current is None else current.log_weight
        index, acc, final_log_w = independence_metropolis(log_w, uniforms, start_log_weight=start_log_w)
        obs = observables(theory, phi)
        sl = slice(start, start + n)
        stay = index < 0  # steps before the first acceptance of this batch sit on the old state
        idx = np.where(stay, 0, index)
        for k, v in obs.items():
            values = v[idx]
            if np.any(stay):
                values[stay] = current_obs[k]
            records.setdefault(k, np.empty(n_steps))[sl] = values
        if keep_fields:
            fields[sl] = phi[idx]
            if np.any(stay):
                fields[sl][stay] = current.field
        accepted[sl] = acc
        proposal_log_w[sl] = log_w
        chain_log_w[sl] = np.where(stay, start_log_w, log_w[idx])
        if index[-1] >= 0:
            current = State(field=phi[index[-1]].copy(), log_weight=final_log_w)
            current_obs = {k: v[index[-1]] for k, v in obs.items()}
    return FlowMCMCResult(
        fields=fields,
        accepted=accepted,
        acceptance=float(accepted.mean()),
        log_weights=chain_log_w,
        proposal_log_weights=proposal_log_w,
        ess=effective_sample_size(proposal_log_w),
        records=records,
        state=current,
    )


def summarize(records: dict, *, S: float = 1.5) -> dict:
    """Gamma-method analysis of every record: name -> :class:`latticeml.stats.GammaResult`."""
    return {k: gamma_method(np.asarray(v, dtype=np.float64), S=S) for k, v in records.items()}
