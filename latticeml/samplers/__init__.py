"""Markov chain Monte Carlo samplers.

Every algorithm module offers a builder ``sampler(theory, **settings) -> Sampler`` (see
:mod:`latticeml.samplers.chain` for the ``init``/``step`` protocol and the chain runner):

========================  ==========================================================
``metropolis``            local Metropolis (theories whose ``local_updates`` has it: phi^4, U(1), SU(N))
``heatbath``              heatbath + ``overrelax`` overrelaxation sweeps (the Wilson actions of U(1), SU(N))
``hmc``                   hybrid Monte Carlo, leapfrog or Omelyan 2MN (all theories);
                          with ``instanton_every=K``: K trajectories + one instanton move
                          (2D U(1), :mod:`latticeml.samplers.instanton`)
``l2hmc``                 HMC with a trained generalized leapfrog (U(1); ``model=PATH``,
                          :mod:`latticeml.samplers.l2hmc`)
========================  ==========================================================

:func:`build_sampler` picks one by name, which is what the command line does. The local samplers
call the theory's own sweeps (:mod:`latticeml.theories.base`); a theory that does not offer an
algorithm is refused in one line naming the algorithms that do support it
(:func:`supported_algorithms`, :func:`check_supported`), so nothing ever samples another action
than the one asked for.
"""

from __future__ import annotations

import importlib

from .chain import ChainResult, Sampler, resume_chain, run_chain

__all__ = [
    "ALGORITHMS",
    "build_sampler",
    "supported_algorithms",
    "check_supported",
    "Sampler",
    "ChainResult",
    "run_chain",
    "resume_chain",
]

ALGORITHMS = {
    "metropolis": "latticeml.samplers.metropolis",
    "heatbath": "latticeml.samplers.heatbath",
    "hmc": "latticeml.samplers.hmc",
    "l2hmc": "latticeml.samplers.l2hmc",
}


#: algorithm -> the local update a theory must offer for it (None: only the dynamics every theory has).
_NEEDS = {"metropolis": "metropolis", "heatbath": "heatbath", "hmc": None, "l2hmc": None}

#: algorithm -> the one theory, with the Wilson action, it is written for (absent: every theory).
#: L2HMC's layers act on U(1) angles and its target is the Wilson U(1) action (samplers.l2hmc.U1Target).
_ONLY_FOR = {"l2hmc": "u1"}


def _serves(algorithm: str, theory) -> bool:
    only = _ONLY_FOR.get(algorithm)
    return only is None or (getattr(theory, "name", None) == only and getattr(theory, "c1", 0.0) == 0.0)


def supported_algorithms(theory) -> tuple[str, ...]:
    """The names in :data:`ALGORITHMS` that can sample ``theory``, e.g. ``("metropolis", "hmc")`` for phi^4."""
    local = getattr(theory, "local_updates", frozenset())
    return tuple(a for a in ALGORITHMS if (_NEEDS.get(a) is None or _NEEDS[a] in local) and _serves(a, theory))


def _listing(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _who_supports(local_update: str) -> str:
    """'phi4 and the Wilson actions of u1, su2, su3 and sun': the registered theories offering ``local_update``."""
    from ..theories import theory_registry

    plain, gauge = [], []
    for name, cls in theory_registry().items():
        if local_update in cls.local_updates:
            (gauge if any(p.name == "action" for p in cls.parameters) else plain).append(name)
    parts = plain + ([f"the Wilson actions of {_listing(gauge)}"] if gauge else [])
    return _listing(parts) if parts else "no registered theory"


def check_supported(theory, algorithm: str, local_update: str | None = None) -> None:
    """Refuse ``theory`` unless it offers ``local_update`` (default: the one ``algorithm`` needs).

    Raises TypeError for something that is not a theory and ValueError, in one line naming the
    algorithms that do support the theory, for a theory without the update.
    """
    need = _NEEDS.get(algorithm, algorithm) if local_update is None else local_update
    if need is None and _serves(algorithm, theory):  # HMC checks the dynamics it needs itself
        return
    if not hasattr(theory, "local_updates") or not callable(getattr(theory, "check_field", None)):
        raise TypeError(f"expected a theory (latticeml.theories.make_theory(name, shape, ...)), got {type(theory).__name__}")
    if need is not None and need in theory.local_updates and _serves(algorithm, theory):
        return
    describe = theory.describe() if callable(getattr(theory, "describe", None)) else getattr(theory, "name", type(theory).__name__)
    use = " or ".join(supported_algorithms(theory))
    who = _who_supports(need) if need is not None else f"the Wilson action of {_ONLY_FOR[algorithm]}"
    raise ValueError(f"{algorithm} cannot sample {describe}: it supports only {who}; use {use}")


def build_sampler(theory, algorithm: str, **settings) -> Sampler:
    """``ALGORITHMS[algorithm].sampler(theory, **settings)``, with a clear error for unknown names
    and a one-line refusal (:func:`check_supported`) for a theory the algorithm does not support."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    check_supported(theory, algorithm)
    backend = getattr(theory, "backend", "cpu")
    if backend != "cpu" and (algorithm != "hmc" or settings.get("instanton_every") is not None):
        # only plain HMC keeps its fields on a device (latticeml.backends.cuda); the others call cpu kernels
        what = "instanton moves" if algorithm == "hmc" else algorithm
        raise ValueError(f"{what} run on backend 'cpu' only; on backend {backend!r} sample {theory.name} with plain hmc")
    if settings.get("instanton_every") is not None:  # HMC + instanton moves (2D U(1)), see samplers.instanton
        if algorithm != "hmc":
            raise ValueError(f"instanton_every mixes instanton moves into HMC; it does not apply to {algorithm!r} (use algorithm 'hmc')")
        return importlib.import_module("latticeml.samplers.instanton").hmc_sampler(theory, **settings)
    return importlib.import_module(ALGORITHMS[algorithm]).sampler(theory, **settings)
