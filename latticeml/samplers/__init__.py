"""Markov chain Monte Carlo samplers.

Every algorithm module offers a builder ``sampler(theory, **settings) -> Sampler`` (see
:mod:`latticeml.samplers.chain` for the ``init``/``step`` protocol and the chain runner):

========================  ==========================================================
``metropolis``            local Metropolis (phi^4, U(1), SU(N))
``heatbath``              heatbath + ``overrelax`` overrelaxation sweeps (U(1), SU(N))
``hmc``                   hybrid Monte Carlo, leapfrog or Omelyan 2MN (all theories);
                          with ``instanton_every=K``: K trajectories + one instanton move
                          (2D U(1), :mod:`latticeml.samplers.instanton`)
========================  ==========================================================

:func:`build_sampler` picks one by name, which is what the command line does.
"""

from __future__ import annotations

import importlib

from .chain import ChainResult, Sampler, resume_chain, run_chain

__all__ = ["ALGORITHMS", "build_sampler", "Sampler", "ChainResult", "run_chain", "resume_chain"]

ALGORITHMS = {
    "metropolis": "latticeml.samplers.metropolis",
    "heatbath": "latticeml.samplers.heatbath",
    "hmc": "latticeml.samplers.hmc",
}


def build_sampler(theory, algorithm: str, **settings) -> Sampler:
    """``ALGORITHMS[algorithm].sampler(theory, **settings)``, with a clear error for unknown names."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    if settings.get("instanton_every") is not None:  # HMC + instanton moves (2D U(1)), see samplers.instanton
        if algorithm != "hmc":
            raise ValueError(f"instanton_every mixes instanton moves into HMC; it does not apply to {algorithm!r} (use algorithm 'hmc')")
        return importlib.import_module("latticeml.samplers.instanton").hmc_sampler(theory, **settings)
    return importlib.import_module(ALGORITHMS[algorithm]).sampler(theory, **settings)
