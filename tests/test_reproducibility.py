"""Pinned chains: the same seed gives the same chain, before and after any refactoring.

Each chain below was run once before the library was restructured (the theory registry, local
updates as theory methods, the integrator registry); its fingerprint is pinned in
``tests/data/pinned_chains.json``. The fingerprint is the acceptance sequence (exact), the
recorded observables and four fixed random projections of the final field (to 1e-11 relative:
the SU(3) kernels use ``fastmath`` SIMD, whose rounding may differ on another CPU, but any change
of the algorithm or of the order of random draws moves these by O(1)).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from latticeml.samplers import build_sampler, run_chain
from latticeml.theories import make_theory

PINS = Path(__file__).parent / "data" / "pinned_chains.json"

#: name -> (theory, shape, couplings, algorithm, settings, n_measure)
CHAINS = {
    "phi4_metropolis": ("phi4", (8, 8), dict(m2=-4.0, lam=8.0), "metropolis", dict(step_size=1.0, hits=2), 12),
    "phi4_hmc_leapfrog": ("phi4", (8, 8), dict(m2=-4.0, lam=8.0), "hmc", dict(step_size=0.1, n_steps=10), 8),
    "u1_metropolis": ("u1", (8, 8), dict(beta=2.0), "metropolis", dict(step_size=1.0, hits=1), 8),
    "u1_heatbath_or": ("u1", (8, 8), dict(beta=2.0), "heatbath", dict(overrelax=1), 8),
    "u1_hmc_instanton": ("u1", (8, 8), dict(beta=3.0), "hmc", dict(step_size=0.1, n_steps=10, instanton_every=2), 8),
    "su2_heatbath_or": ("su2", (4, 4, 4, 4), dict(beta=2.3), "heatbath", dict(overrelax=1), 4),
    "su3_heatbath": ("su3", (4, 4, 4, 4), dict(beta=5.7), "heatbath", dict(overrelax=1), 3),
    "su3_metropolis": ("su3", (4, 4, 4, 4), dict(beta=5.7), "metropolis", dict(step_size=0.3, hits=2), 3),
    "su3_hmc_omelyan": ("su3", (4, 4, 4, 4), dict(beta=5.7), "hmc", dict(step_size=0.1, n_steps=5, integrator="omelyan"), 4),
}


def fingerprint(name: str) -> dict:
    theory_name, shape, couplings, algorithm, settings, n_measure = CHAINS[name]
    theory = make_theory(theory_name, shape, **couplings)
    rng = np.random.default_rng(20261203)
    field = theory.hot_start(rng)
    result = run_chain(build_sampler(theory, algorithm, **settings), field, rng, n_measure=n_measure, progress=False)
    final = np.asarray(result.state.field)
    w = np.random.default_rng(7).standard_normal((4,) + final.shape)
    projections = [complex(np.sum(wk * final)) for wk in w]
    return {
        "acceptance": [float(a) for a in result.acceptance],
        "records": {k: [float(x) for x in v] for k, v in sorted(result.records.items())},
        "projections": [[p.real, p.imag] for p in projections],
    }


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_chain_matches_pinned_fingerprint(name):
    pinned = json.loads(PINS.read_text())[name]
    got = fingerprint(name)
    assert got["acceptance"] == pinned["acceptance"]
    assert sorted(got["records"]) == sorted(pinned["records"])
    for k, values in pinned["records"].items():
        np.testing.assert_allclose(got["records"][k], values, rtol=1e-11, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(got["projections"], pinned["projections"], rtol=1e-11, atol=1e-11)
