"""Self-learning HMC is exact: SU(2) on 4^4 with a plaquette + rectangle (Luscher-Weisz) target.

The molecular dynamics uses the Wilson action of stout-smeared links (a covariant net trained on
configurations of a plain HMC chain of the target); the Metropolis test uses the target action.
The SLHMC chain must reproduce plain HMC's plaquette, 1x2 loop and |Polyakov loop| within 3 sigma
(Gamma-method errors, Wolff 2004), and training must lift the acceptance from ~0 (the Wilson
action at the target's beta) to a usable rate.
"""

import numpy as np
import pytest

from latticeml import smearing
from latticeml.nets.covariant import CovariantNet, train_to_mimic
from latticeml.observables import loops
from latticeml.samplers import chain, hmc, slhmc
from latticeml.stats import gamma_method
from latticeml.theories import sun
from latticeml.theories.improved import ImprovedSUN, SmearedSUN

pytestmark = pytest.mark.slow

SHAPE = (4, 4, 4, 4)
BETA, C1 = 1.5, smearing.LUSCHER_WEISZ_C1
STEP, N_STEPS, N_STEPS_SLHMC = 0.1, 5, 3  # SLHMC: shorter trajectories, as S - S_MD changes less along them
TERMS = ("plaquette", "polyakov_time", "polyakov_space")


def measure(U):
    return {
        "plaquette": sun.mean_plaquette(U, check=False),
        "rectangle": float(loops.wilson_loop(U, 1, 2)),
        "polyakov_abs": abs(loops.polyakov_loop_mean(U)),
    }


@pytest.fixture(scope="module")
def study():
    target = ImprovedSUN(SHAPE, beta=BETA, N=2, c1=C1)
    U0 = target.hot_start(np.random.default_rng(11))
    ref = chain.run_chain(
        hmc.sampler(target, step_size=STEP, n_steps=N_STEPS), U0, np.random.default_rng(12),
        n_measure=360, n_therm=40, measure=measure, keep_fields=True, progress=False,
    )
    # training set: every 4th configuration of the first half of the reference chain
    configs = ref.fields[:180:4]
    S = np.array([target.action(u) for u in configs])
    net = CovariantNet(1, terms=TERMS, beta=BETA)
    untrained = SmearedSUN.from_net(net, SHAPE, N=2)  # rho = 0, beta_theta = beta: the Wilson action
    log = train_to_mimic(net, configs, S, epochs=8, batch_size=5, lr=0.005, rng=np.random.default_rng(13))
    trained = SmearedSUN.from_net(net, SHAPE, N=2)
    before = chain.run_chain(
        slhmc.sampler(target, untrained, step_size=STEP, n_steps=N_STEPS_SLHMC), configs[-1], np.random.default_rng(14),
        n_measure=15, measure=lambda U: {}, progress=False,
    )
    after = chain.run_chain(
        slhmc.sampler(target, trained, step_size=STEP, n_steps=N_STEPS_SLHMC), configs[-1], np.random.default_rng(15),
        n_measure=400, n_therm=10, measure=measure, progress=False,
    )
    return ref, before, after, log, net


def test_training_raises_the_acceptance(study):
    ref, before, after, log, net = study
    print(f"\nHMC acceptance {ref.acceptance.mean():.3f}; SLHMC untrained {before.acceptance.mean():.3f}, "
          f"trained {after.acceptance.mean():.3f}; loss {log.loss[:5].mean():.3g} -> {log.loss[-5:].mean():.3g}; {net}")
    assert before.acceptance.mean() < 0.1
    assert after.acceptance.mean() > 0.15


@pytest.mark.parametrize("name", ["plaquette", "rectangle", "polyakov_abs"])
def test_slhmc_agrees_with_hmc(study, name):
    ref, _, after, _, _ = study
    a = gamma_method(ref.records[name])
    b = gamma_method(after.records[name])
    sigma = np.hypot(a.error, b.error)
    print(f"\n{name}: HMC {a.value:.5f}({a.error:.5f}) tau {a.tau_int:.1f}, SLHMC {b.value:.5f}({b.error:.5f}) "
          f"tau {b.tau_int:.1f}: {abs(a.value - b.value) / sigma:.2f} sigma")
    assert abs(a.value - b.value) < 3 * sigma
