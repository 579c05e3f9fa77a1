"""The instanton update of latticeml.samplers.instanton: the field, the action change, the Metropolis
decision replayed by hand, the HMC composite, build_sampler routing and the --instanton-every option.

Independent references written here: the plaquette angles and the Wilson action by np.roll, and
the charge-n field ``constant_flux_u1`` of tests/test_loops.py. Statistical checks (detailed
balance) are in tests/integration/test_u1_topology.py.
"""

import json

import numpy as np
import pytest
from test_loops import constant_flux_u1

from latticeml import groups
from latticeml.cli import main
from latticeml.observables import topology
from latticeml.samplers import build_sampler, hmc, instanton
from latticeml.theories import make_theory


def ref_plaquettes(theta):
    return theta[0] + np.roll(theta[1], -1, axis=0) - np.roll(theta[0], -1, axis=1) - theta[1]


def ref_action(theta, beta):
    return beta * np.sum(1 - np.cos(ref_plaquettes(theta)))


def rough_smooth_fields(rng, shape):
    """A hot (rough) field and a smooth one (cold start plus small noise)."""
    return [groups.wrap_angle(rng.uniform(-np.pi, np.pi, (2,) + shape)), groups.wrap_angle(0.1 * rng.standard_normal((2,) + shape))]


@pytest.mark.parametrize("shape", [(8, 8), (6, 10), (5, 3)])
@pytest.mark.parametrize("charge", [-2, -1, 1, 3])
def test_instanton_field_is_the_constant_flux_of_charge_n(shape, charge):
    I = instanton.instanton_field(shape, charge=charge)
    V = shape[0] * shape[1]
    np.testing.assert_allclose(I, constant_flux_u1(shape, {(0, 1): charge}), atol=1e-13)
    assert I.shape == (2,) + shape and np.all(np.abs(I) <= np.pi)
    # every plaquette angle is 2 pi n / V mod 2 pi
    np.testing.assert_allclose(groups.wrap_angle(ref_plaquettes(I) - 2 * np.pi * charge / V), 0.0, atol=1e-12)
    if abs(charge) < V / 2:
        assert topology.topological_charge_u1(I) == charge
    assert instanton.action_change(np.zeros((2,) + shape), beta=1.7, charge=charge) == pytest.approx(
        1.7 * V * (1 - np.cos(2 * np.pi * charge / V)), rel=1e-12)


def test_action_change_matches_action_difference_and_is_gauge_invariant():
    rng = np.random.default_rng(11)
    for shape in [(6, 8), (4, 4)]:
        for theta in rough_smooth_fields(rng, shape):
            for charge in (-2, -1, 1, 2):
                beta = 2.3
                proposal = instanton.propose(theta, charge=charge)
                reference = ref_action(proposal, beta) - ref_action(theta, beta)
                dS = instanton.action_change(theta, beta=beta, charge=charge)
                assert dS == pytest.approx(reference, rel=1e-10, abs=1e-10)
                np.testing.assert_allclose(proposal, groups.wrap_angle(theta + constant_flux_u1(shape, {(0, 1): charge})), atol=1e-12)
                g = groups.gauge_transform_u1(theta, groups.random_gauge_transform_u1(rng, shape))
                assert instanton.action_change(g, beta=beta, charge=charge) == pytest.approx(dS, rel=1e-10, abs=1e-10)
    assert instanton.action_change(theta, beta=1.0, charge=0) == 0.0


def test_accepted_move_on_a_smooth_field_shifts_q_by_one():
    rng = np.random.default_rng(5)
    theta = rough_smooth_fields(rng, (8, 8))[1]
    Q = topology.topological_charge_u1(theta)
    for s in (-1, 1):
        assert topology.topological_charge_u1(instanton.propose(theta, charge=s)) == Q + s


def test_metropolis_decision_replayed_by_hand():
    """P(accept) = min(1, exp(-dS)) with dS from the np.roll action; the direction and the
    decision use rng.random() twice, in that order."""
    theory = make_theory("u1", (6, 6), beta=1.3)
    seen = set()
    for seed in range(60):
        rng = np.random.default_rng(seed)
        field = rough_smooth_fields(rng, (6, 6))[seed % 2]
        state = instanton.init(field, theory)
        before = state.field.copy()
        new, info = instanton.step(rng, state, theory)
        replay = np.random.default_rng(seed)
        rough_smooth_fields(replay, (6, 6))  # the same draws as above
        s = 1 if replay.random() < 0.5 else -1
        proposal = groups.wrap_angle(field + constant_flux_u1((6, 6), {(0, 1): s}))
        dS = ref_action(proposal, 1.3) - ref_action(field, 1.3)
        p = min(1.0, np.exp(-dS))
        accept = replay.random() < p
        assert info.charge_shift == s
        assert info.delta_S == pytest.approx(dS, rel=1e-10, abs=1e-10)
        assert info.acceptance_probability == pytest.approx(p, rel=1e-10)
        assert info.accepted == accept and info.acceptance == float(accept)
        np.testing.assert_allclose(new.field, proposal if accept else field, atol=1e-12)
        np.testing.assert_array_equal(state.field, before)  # pure
        seen.add((s, accept, p < 1))
    assert {(1, True), (-1, True), (1, False), (-1, False)} <= {(s, a) for s, a, _ in seen}
    assert any(below for _, _, below in seen) and any(not below for _, _, below in seen)


def test_instanton_sampler_is_reproducible():
    theory = make_theory("u1", (4, 6), beta=2.0)
    s = instanton.sampler(theory)
    assert s.name == "instanton" and s.settings == {}
    fields = []
    for _ in range(2):
        rng = np.random.default_rng(3)
        state = s.init(theory.hot_start(rng))
        for _ in range(20):
            state, _ = s.step(rng, state)
        fields.append(state.field)
    np.testing.assert_array_equal(fields[0], fields[1])


@pytest.mark.parametrize("K", [1, 3])
def test_composite_is_k_hmc_trajectories_then_one_instanton_move(K):
    theory = make_theory("u1", (6, 6), beta=1.5)
    comp = build_sampler(theory, "hmc", instanton_every=K, step_size=0.1, n_steps=5)
    plain = hmc.sampler(theory, step_size=0.1, n_steps=5)
    assert comp.name == "hmc+instanton"
    assert comp.settings == dict(plain.settings, instanton_every=K)
    field = theory.hot_start(np.random.default_rng(0))
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    state_a, state_b = comp.init(field), plain.init(field)
    moves = 0
    for _ in range(8):
        state_a, info = comp.step(rng_a, state_a)
        accepted, force = [], 0
        for _ in range(K):
            state_b, hinfo = plain.step(rng_b, state_b)
            accepted.append(hinfo.acceptance)
            force += hinfo.n_force_evaluations
        state_i, iinfo = instanton.step(rng_b, instanton.State(state_b.field), theory)
        if iinfo.accepted:
            state_b = plain.init(state_i.field)
            moves += 1
        np.testing.assert_array_equal(state_a.field, state_b.field)
        assert state_a.action == state_b.action
        assert info.acceptance == pytest.approx(np.mean(accepted))
        assert info.instanton_accepted == iinfo.accepted and info.charge_shift == iinfo.charge_shift
        assert info.instanton_delta_S == iinfo.delta_S
        assert info.n_trajectories == K and info.n_force_evaluations == force + int(iinfo.accepted)
        # the cached action and force are those of the field (so a resumed chain is the same chain)
        assert state_a.action == theory.action(state_a.field)
        np.testing.assert_array_equal(state_a.force, theory.force(state_a.field))
    assert moves > 0


def test_bad_input_raises_clear_errors():
    u1_2d = make_theory("u1", (4, 4), beta=1.0)
    for theory in (make_theory("u1", (4, 4, 4), beta=1.0), make_theory("phi4", (4, 4), m2=1.0, lam=0.0), make_theory("su2", (4, 4), beta=1.0)):
        with pytest.raises(ValueError, match="2D U\\(1\\)"):
            instanton.sampler(theory)
        with pytest.raises(ValueError, match="2D U\\(1\\)"):
            build_sampler(theory, "hmc", instanton_every=1, step_size=0.1, n_steps=2)
    with pytest.raises(ValueError, match="use algorithm 'hmc'"):
        build_sampler(u1_2d, "heatbath", instanton_every=2)
    with pytest.raises(ValueError, match=">= 1"):
        build_sampler(u1_2d, "hmc", instanton_every=0, step_size=0.1, n_steps=2)
    with pytest.raises(TypeError, match="integer"):
        instanton.hmc_sampler(u1_2d, instanton_every=1.5, step_size=0.1, n_steps=2)
    with pytest.raises(ValueError, match="exactly two"):
        instanton.hmc_sampler(u1_2d, instanton_every=1, step_size=0.1)
    with pytest.raises(ValueError, match=r"\(2, L0, L1\)"):
        instanton.action_change(np.zeros((3, 4, 4, 4)), beta=1.0)
    with pytest.raises(TypeError, match="real angles"):
        instanton.propose(np.zeros((2, 4, 4), dtype=complex))
    with pytest.raises(ValueError, match="V >= 3"):
        instanton.instanton_field((1, 2))
    with pytest.raises(TypeError, match="integer"):
        instanton.instanton_field((4, 4), charge=0.5)
    with pytest.raises(TypeError, match="Generator"):
        instanton.step(0, instanton.init(u1_2d.cold_start(), u1_2d), u1_2d)


# ----------------------------------------------------------------------------- command line


def test_cli_instanton_every_runs_and_is_documented(capsys):
    argv = ["sample", "u1", "--shape", "6,6", "--beta", "2", "--algorithm", "hmc", "--step", "0.1", "--nsteps", "5",
            "--instanton-every", "2", "--n", "12", "--therm", "2", "--json", "--quiet"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"]["algorithm"] == "hmc+instanton" and out["params"]["instanton_every"] == 2
    assert "topological_charge" in out["observables"]
    # 0 means plain HMC
    assert main(argv[:-6] + ["--instanton-every", "0", "--n", "12", "--therm", "2", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["params"]["algorithm"] == "hmc"
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    assert "--instanton-every" in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["u1", "--shape", "6,6", "--beta", "2", "--algorithm", "heatbath", "--instanton-every", "2"], ["--instanton-every", "heatbath"]),
    (["phi4", "--shape", "6,6", "--m2", "1", "--lam", "0", "--instanton-every", "2"], ["--instanton-every", "phi4"]),
    (["u1", "--shape", "4,4,4", "--beta", "2", "--step", "0.1", "--nsteps", "2", "--instanton-every", "1"], ["2D U(1)"]),
    (["u1", "--shape", "6,6", "--beta", "2", "--step", "0.1", "--nsteps", "2", "--instanton-every", "-1"], ["--instanton-every"]),
])
def test_cli_instanton_every_errors_cleanly(argv, words, capsys):
    assert main(["sample", *argv, "--n", "10", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("latticeml: error:")
    for w in words:
        assert w in err
