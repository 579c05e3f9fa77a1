"""The Markov chain runner: thermalise, measure, checkpoint, resume.

A sampler (see :mod:`latticeml.samplers`) is a pair of pure functions, as in blackjax:

    state = sampler.init(field)
    state, info = sampler.step(rng, state)

``state.field`` is the current configuration and ``info.acceptance`` the fraction of proposals
accepted in that step. :func:`run_chain` drives it:

* ``n_therm`` thermalisation steps, then ``n_measure`` measurements, one every ``every`` steps;
* ``measure(field) -> dict[str, float]`` is recorded into arrays (``result.records``);
* a tqdm progress bar (``progress=False`` silences it);
* with ``checkpoint=PATH`` the field, the random generator's state, the step counter and the
  records are written atomically every ``checkpoint_every`` steps and at the end; a Ctrl-C
  writes one before the ``KeyboardInterrupt`` propagates. A Ctrl-C while a step draws its
  numbers discards that step (the generator is rewound); one while the step is committed (new
  state, count, records) waits until the commit is complete (:class:`latticeml._runs.CheckpointedRun`).
  :func:`resume_chain` continues such a chain and produces exactly the numbers an uninterrupted
  run would have produced.

The same seed gives the same chain bit for bit: all randomness flows from the one ``rng``.
"""

from __future__ import annotations

import json
from typing import Any, Callable, NamedTuple

import numpy as np

from .. import io
from .._runs import CheckpointedRun

__all__ = ["Sampler", "ChainResult", "run_chain", "resume_chain", "chain_summary"]


class Sampler(NamedTuple):
    """A Markov-chain transition bound to a theory and its settings.

    name:     algorithm name, e.g. ``"hmc"``.
    theory:   the target (:mod:`latticeml.theories`): ``.name``, ``.params``, ``.observables``.
    settings: JSON-able algorithm settings (step size, number of steps, ...).
    init:     ``field -> State``; ``State`` is a NamedTuple with at least ``field``.
    step:     ``(rng, State) -> (State, Info)``; ``Info`` is a NamedTuple with at least ``acceptance``.
    """

    name: str
    theory: Any
    settings: dict
    init: Callable
    step: Callable


class ChainResult(NamedTuple):
    """What :func:`run_chain` returns.

    records:    dict name -> float64 array ``(n_measure,)`` of measurements.
    acceptance: float64 array ``(n_steps,)``: ``info.acceptance`` of every step (thermalisation included).
    fields:     ``(n_measure, *field.shape)`` measured configurations if ``keep_fields`` else ``None``.
    state:      the final sampler state.
    rng:        the generator, advanced past the chain (continue with it for bit-identical extensions).
    n_steps:    total number of steps taken.
    """

    records: dict
    acceptance: np.ndarray
    fields: np.ndarray | None
    state: Any
    rng: np.random.Generator
    n_steps: int


def _metadata(sampler: Sampler, n_measure: int, n_therm: int, every: int, keep_fields: bool) -> dict:
    return {
        "theory": sampler.theory.name,
        "theory_params": sampler.theory.params,
        "algorithm": sampler.name,
        "settings": sampler.settings,
        "n_measure": n_measure,
        "n_therm": n_therm,
        "every": every,
        "keep_fields": keep_fields,
    }


def _json_form(x):
    return json.loads(json.dumps(x))


def _check_counts(n_measure, n_therm, every):
    for name, value, low in (("n_measure", n_measure, 1), ("n_therm", n_therm, 0), ("every", every, 1)):
        if isinstance(value, bool) or int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def run_chain(
    sampler: Sampler,
    field: np.ndarray,
    rng: np.random.Generator,
    *,
    n_measure: int,
    n_therm: int = 0,
    every: int = 1,
    measure: Callable[[np.ndarray], dict] | None = None,
    keep_fields: bool = False,
    checkpoint=None,
    checkpoint_every: int = 1000,
    progress: bool = True,
) -> ChainResult:
    """Run ``n_therm + n_measure * every`` steps of ``sampler`` from ``field``.

    ``measure`` defaults to ``sampler.theory.observables``. See the module docstring for
    checkpoints; ``checkpoint_every`` counts steps.
    """
    _check_counts(n_measure, n_therm, every)
    meta = _metadata(sampler, int(n_measure), int(n_therm), int(every), bool(keep_fields))
    return _drive(sampler, sampler.init(field), rng, meta, 0, {}, [], [], measure, checkpoint, checkpoint_every, progress)


def resume_chain(
    checkpoint,
    sampler: Sampler,
    *,
    measure: Callable[[np.ndarray], dict] | None = None,
    checkpoint_every: int = 1000,
    progress: bool = True,
) -> ChainResult:
    """Continue the chain stored in ``checkpoint`` (written by :func:`run_chain`) to its planned end.

    ``sampler`` must be built for the same theory, parameters and algorithm settings as the
    original chain; anything else raises ``ValueError`` (a chain cannot change its target midway).
    """
    ck = io.load_checkpoint(checkpoint)
    meta = ck.metadata
    expected = _metadata(sampler, meta.get("n_measure", 0), meta.get("n_therm", 0), meta.get("every", 1), meta.get("keep_fields", False))
    for key in ("theory", "theory_params", "algorithm", "settings"):
        # JSON turns tuples into lists: compare JSON-normalised forms
        if _json_form(meta.get(key)) != _json_form(expected[key]):
            raise ValueError(
                f"checkpoint {checkpoint} was written by a different chain: its {key} is {meta.get(key)!r}, "
                f"this sampler has {expected[key]!r}; resume with the same theory, couplings and algorithm settings"
            )
    field = ck.state_arrays["field"]
    sampler.theory.check_field(field)
    records = {k: list(v) for k, v in ck.records.items() if not k.startswith("_")}
    acceptance = list(ck.records.get("_acceptance", np.empty(0)))
    fields = list(ck.records.get("_fields", np.empty((0,) + field.shape)))
    return _drive(sampler, sampler.init(field), ck.rng, meta, ck.step, records, acceptance, fields, measure, checkpoint, checkpoint_every, progress)


def _drive(sampler, state, rng, meta, start, records, acceptance, fields, measure, checkpoint, checkpoint_every, progress):
    measure = measure or sampler.theory.observables
    n_therm, every, n_measure = meta["n_therm"], meta["every"], meta["n_measure"]
    total = n_therm + n_measure * every

    def snapshot():
        recs = {k: np.asarray(v, dtype=np.float64) for k, v in records.items()}
        recs["_acceptance"] = np.asarray(acceptance, dtype=np.float64)
        if meta["keep_fields"]:
            recs["_fields"] = np.asarray(fields) if fields else np.empty((0,) + state.field.shape, state.field.dtype)
        return {"field": state.field}, recs

    with CheckpointedRun(rng, start=start, total=total, checkpoint=checkpoint, snapshot=snapshot, metadata=meta,
                         checkpoint_every=checkpoint_every, progress=progress,
                         desc=f"{sampler.theory.name} {sampler.name}") as run:
        while run.step < total:
            run.begin_step()
            new_state, info = sampler.step(rng, state)
            measuring = run.step + 1 > n_therm and (run.step + 1 - n_therm) % every == 0
            values = measure(new_state.field) if measuring else {}
            # the new state, the step count and the step's records become the chain's together
            with run.commit():
                state = new_state
                acceptance.append(float(info.acceptance))
                for k, v in values.items():
                    records.setdefault(k, []).append(float(v))
                if measuring and meta["keep_fields"]:
                    fields.append(np.array(state.field, copy=True))
            if run.bar is not None and run.step % 50 == 0:
                run.bar.set_postfix(acc=f"{np.mean(acceptance[-50:]):.3f}")
    return ChainResult(
        records={k: np.asarray(v, dtype=np.float64) for k, v in records.items()},
        acceptance=np.asarray(acceptance, dtype=np.float64),
        fields=np.asarray(fields) if meta["keep_fields"] else None,
        state=state,
        rng=rng,
        n_steps=run.step,
    )


def chain_summary(theory, sampler: Sampler, result: ChainResult, *, n: int, therm: int, every: int, seed) -> dict:
    """The summary of a finished chain that ``latticeml sample --json`` prints and each task of
    ``latticeml scan`` stores: theory, params (couplings, shape, algorithm and its settings, n, therm,
    every, seed), mean acceptance and the observables with Gamma-method errors
    (:func:`latticeml.stats.summarise`)."""
    from ..stats import summarise

    params = dict(theory.params)
    params.update(algorithm=sampler.name, **sampler.settings, n=n, therm=therm, every=every, seed=seed)
    return {
        "theory": theory.name,
        "params": params,
        "acceptance": float(np.mean(result.acceptance)) if len(result.acceptance) else None,
        "observables": summarise(result.records),
    }
