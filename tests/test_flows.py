"""latticeml.flows: masks, prior, coupling layers (log-Jacobian vs finite differences, inverse,
fused op vs the engine reference vs torch), the flow's density, metrics, flow-MCMC, training
(checkpoint/resume bit for bit, Ctrl-C), save/load, and the command line."""

import json
import math

import numpy as np

from latticeml.theories import make_theory
import pytest

from latticeml import flows, io
from latticeml.autodiff import Tensor, check_grads, nn
from latticeml.cli import main
from latticeml.flows import mcmc
from latticeml.flows import training as train_mod
from latticeml.flows.coupling import AffineCoupling, coupling_op
from latticeml.samplers import resume_chain, run_chain
from latticeml.theories import phi4
from latticeml.theories import Phi4, U1

SHAPE = (4, 4)


def small_flow(seed=0, *, n_layers=4, hidden=(4,), shape=SHAPE, scale=3.0):
    """A flow with weights scaled up so that s and t are O(1): a non-trivial map to test."""
    flow = flows.phi4_flow(shape, n_layers=n_layers, hidden=hidden, rng=np.random.default_rng(seed))
    for p in flow.parameters():
        p.value *= scale
    return flow


def fd_jacobian(f, x, h=1e-6):
    """Central finite-difference Jacobian of f: R^V -> R^V at x (flat)."""
    V = x.size
    J = np.empty((V, V))
    for j in range(V):
        e = np.zeros(V)
        e[j] = h
        J[:, j] = (f(x + e) - f(x - e)) / (2 * h)
    return J


# ----------------------------------------------------------------------------- masks and prior


def test_checkerboard_mask_alternates_and_complements():
    m0, m1 = flows.checkerboard_mask((4, 6), 0), flows.checkerboard_mask((4, 6), 1)
    x, y = np.indices((4, 6))
    np.testing.assert_array_equal(m0, ((x + y) % 2 == 0).astype(float))
    np.testing.assert_array_equal(m0 + m1, np.ones((4, 6)))
    # every nearest neighbour (periodic) of a frozen site is active
    for axis in (0, 1):
        for shift in (1, -1):
            assert np.all(m0 * np.roll(m0, shift, axis) == 0)
    with pytest.raises(ValueError, match="even extents"):
        flows.checkerboard_mask((5, 4), 0)
    with pytest.raises(ValueError, match="parity"):
        flows.checkerboard_mask((4, 4), 2)


def test_prior_log_prob_is_the_standard_normal():
    prior = flows.NormalPrior((3, 2))
    z = prior.sample(np.random.default_rng(0), 5)
    assert z.shape == (5, 3, 2)
    ref = np.array([np.sum(-0.5 * zi**2 - 0.5 * np.log(2 * np.pi)) for zi in z])
    np.testing.assert_allclose(prior.log_prob(z), ref, rtol=1e-14)
    with pytest.raises(TypeError, match="Generator"):
        prior.sample(0, 3)
    with pytest.raises(ValueError, match="shape"):
        prior.log_prob(np.zeros((2, 3, 3)))


# ----------------------------------------------------------------------------- coupling layers


@pytest.mark.parametrize("path", ["fused", "reference"])
def test_each_coupling_log_jacobian_matches_finite_differences(path):
    flow = small_flow(1)
    x = np.random.default_rng(2).standard_normal(SHAPE)
    for layer in flow.layers:
        fwd = layer.forward if path == "fused" else layer.reference_forward

        def f(v):
            return fwd(v.reshape((1,) + SHAPE))[0].value.ravel()

        _, log_det = fwd(x[None])
        sign, logabs = np.linalg.slogdet(fd_jacobian(f, x.ravel()))
        assert sign > 0
        assert abs(log_det.value[0] - logabs) < 1e-7
        assert abs(log_det.value[0]) > 0.1  # the test is not trivially 0 = 0
        x = f(x.ravel()).reshape(SHAPE)


def test_forward_then_inverse_is_the_identity():
    flow = small_flow(3)
    x = np.random.default_rng(4).standard_normal((6,) + SHAPE)
    for layer in flow.layers:
        y, ld = layer(x)
        back, ld_inv = layer.inverse(y.value)
        np.testing.assert_allclose(back, x, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ld_inv, -ld.value, rtol=0, atol=1e-12)
        ref_back, ref_ld = layer.reference_inverse(y.value)
        np.testing.assert_allclose(ref_back.value, x, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ref_ld.value, -ld.value, rtol=0, atol=1e-12)
    phi, log_det = flow(x)
    z, log_det_inv = flow.inverse(phi.value)
    np.testing.assert_allclose(z, x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(log_det_inv, -log_det.value, rtol=0, atol=1e-12)


def test_fused_layer_equals_engine_reference_values_and_gradients():
    flow = small_flow(5, hidden=(4, 3))
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3,) + SHAPE)
    gy, gl = rng.standard_normal((3,) + SHAPE), rng.standard_normal(3)
    layer = flow.layers[1]
    results = []
    for fwd in (layer.forward, layer.reference_forward):
        layer.zero_grad()
        xt = Tensor(x, requires_grad=True)
        y, ld = fwd(xt)
        ((y * gy).sum() + (ld * gl).sum()).backward()
        results.append((y.value, ld.value, xt.grad, [p.grad.copy() for p in layer.parameters()]))
    (y1, l1, gx1, gp1), (y2, l2, gx2, gp2) = results
    np.testing.assert_allclose(y1, y2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(l1, l2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(gx1, gx2, rtol=0, atol=1e-12)
    for a, b in zip(gp1, gp2):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_fused_op_gradients_match_finite_differences():
    rng = np.random.default_rng(7)
    layer = small_flow(8, hidden=(3,), scale=2.0).layers[0]
    params = [np.array(p.value) for p in layer.parameters()]  # w0, b0, w1, b1

    def f(x, *ps):
        return coupling_op(x, *ps, mask=layer._mask_flat, layout=layer._layout, kernel=(3, 3))

    errors = check_grads(f, rng.standard_normal((2,) + SHAPE), *params, rng=rng)
    assert set(errors) == {0, 1, 2, 3, 4}


def test_coupling_falls_back_to_the_reference_for_other_nets_and_checks_channels():
    rng = np.random.default_rng(9)
    net = nn.conv_net([1, 4, 2], activation="sin", rng=rng)  # sin: not fused
    layer = AffineCoupling(net, flows.checkerboard_mask(SHAPE, 0))
    x = rng.standard_normal((2,) + SHAPE)
    y, ld = layer(x)
    ref, ref_ld = layer.reference_forward(x)
    np.testing.assert_array_equal(y.value, ref.value)
    back, _ = layer.inverse(y.value)
    np.testing.assert_allclose(back, x, atol=1e-12)
    mixed = nn.Sequential(nn.Conv(1, 4, 3, rng=rng), nn.LeakyReLU(), nn.Conv(4, 2, 5, rng=rng))  # two kernel sizes
    layer2 = AffineCoupling(mixed, flows.checkerboard_mask(SHAPE, 1))
    assert layer2._convs is None
    np.testing.assert_array_equal(layer2(x)[0].value, layer2.reference_forward(x)[0].value)
    with pytest.raises(ValueError, match="1 channel to 2"):
        AffineCoupling(nn.conv_net([1, 4, 3], rng=rng), flows.checkerboard_mask(SHAPE, 0))
    with pytest.raises(ValueError, match="shape"):
        layer(np.zeros((2, 4, 6)))


def test_coupling_layer_equals_torch_with_the_same_weights():
    torch = pytest.importorskip("torch")
    flow = flows.phi4_flow((6, 4), n_layers=2, rng=np.random.default_rng(10))
    x = np.random.default_rng(11).standard_normal((3, 6, 4))
    for layer in flow.layers:
        convs = [m for m in layer.net.layers if isinstance(m, nn.Conv)]
        tlayers = []
        for j, c in enumerate(convs):
            tc = torch.nn.Conv2d(c.weight.shape[1], c.weight.shape[0], 3, padding=1, padding_mode="circular", dtype=torch.float64)
            with torch.no_grad():
                tc.weight.copy_(torch.tensor(c.weight.value))
                tc.bias.copy_(torch.tensor(c.bias.value))
            tlayers += [tc, torch.nn.LeakyReLU() if j < len(convs) - 1 else torch.nn.Tanh()]
        tnet = torch.nn.Sequential(*tlayers)
        m = torch.tensor(layer.mask)
        tx = torch.tensor(x)
        st = tnet((m * tx).unsqueeze(1))
        ty = m * tx + (1 - m) * (tx * torch.exp(st[:, 0]) + st[:, 1])
        y, ld = layer(x)
        np.testing.assert_allclose(y.value, ty.detach().numpy(), rtol=0, atol=1e-13)
        np.testing.assert_allclose(ld.value, ((1 - m) * st[:, 0]).sum(dim=(1, 2)).detach().numpy(), rtol=0, atol=1e-12)
        x = y.value


# ----------------------------------------------------------------------------- the flow's density


def test_flow_log_prob_is_prior_minus_log_det_of_the_finite_difference_jacobian():
    flow = small_flow(12)
    z = np.random.default_rng(13).standard_normal(SHAPE)

    def f(v):
        return flow(v.reshape((1,) + SHAPE))[0].value.ravel()

    phi = f(z.ravel()).reshape((1,) + SHAPE)
    _, logabs = np.linalg.slogdet(fd_jacobian(f, z.ravel()))
    expected = flow.prior.log_prob(z[None])[0] - logabs
    assert abs(flow.log_prob(phi)[0] - expected) < 1e-7
    phis, log_q = flow.sample(np.random.default_rng(14), 50)
    np.testing.assert_allclose(flow.log_prob(phis), log_q, rtol=0, atol=1e-10)


def test_flow_density_is_normalised_importance_sampling_recovers_the_free_field_partition_function():
    """E_q[exp(-S) / q] = Z exactly for a normalised q: the flow's log-density integrates to one.

    Free field on 4x4 (lam = 0, m2 = 1, Albergo form S = phi^T K phi with K = -Laplacian + m2):
    Z = (2 pi)^(V/2) det(2K)^(-1/2). A briefly trained flow makes the estimate precise.
    """
    theory = Phi4(SHAPE, m2=1.0, lam=0.0)
    V = theory.volume
    K = np.empty((V, V))
    for j in range(V):  # S(phi) = phi^T K phi: K from the action's Hessian, column by column
        e = np.zeros(V)
        e[j] = 1.0
        K[:, j] = 0.5 * phi4.force(e.reshape(SHAPE), m2=1.0, lam=0.0).ravel()
    log_Z = 0.5 * V * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(2 * K)[1]

    flow = flows.phi4_flow(SHAPE, n_layers=4, hidden=(8,), rng=np.random.default_rng(15))
    res = flows.train(flow, theory, steps=150, batch_size=64, lr=3e-3, rng=np.random.default_rng(16), progress=False)
    assert res.history["ess"][-20:].mean() > res.history["ess"][:20].mean()
    phi, log_q = flow.sample(np.random.default_rng(17), 20000)
    log_w = -flows.action(theory, phi) - log_q
    w = np.exp(log_w - log_w.max())
    log_Z_est = np.log(w.mean()) + log_w.max()
    sigma = w.std() / w.mean() / np.sqrt(len(w))  # error of log mean(w), delta method
    assert abs(log_Z_est - log_Z) < 4 * sigma + 1e-12
    assert sigma < 0.02
    # and the reverse KL bound: loss = KL(q||p) - log Z >= -log Z
    assert flows.reverse_kl(-flows.action(theory, phi), log_q) > -log_Z - 3 * sigma


def test_sample_is_reproducible_and_independent_of_the_batch_size():
    flow = small_flow(18)
    a = flow.sample(np.random.default_rng(19), 37, batch_size=10)
    b = flow.sample(np.random.default_rng(19), 37, batch_size=1024)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=0, atol=1e-12)


def test_save_and_load_round_trip_without_pickle(tmp_path):
    flow = flows.phi4_flow(SHAPE, n_layers=3, hidden=(4, 4), rng=np.random.default_rng(20))
    path = flows.save_flow(tmp_path / "m.npz", flow, metadata={"theory": "phi4", "note": [1, 2]})
    with np.load(path, allow_pickle=False) as data:
        assert "layers.0.net.layers.0.weight" in data.files
    loaded = flows.load_flow(path)
    assert loaded.config == flow.config and loaded.metadata["note"] == [1, 2]
    z = np.random.default_rng(21).standard_normal((4,) + SHAPE)
    np.testing.assert_array_equal(loaded(z)[0].value, flow(z)[0].value)
    io.save_npz(tmp_path / "other.npz", {"a": np.zeros(2)}, {"kind": "ensemble"})
    with pytest.raises(ValueError, match="not a flow"):
        flows.load_flow(tmp_path / "other.npz")


def test_builder_validates_its_settings():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="n_layers"):
        flows.phi4_flow(SHAPE, n_layers=0, rng=rng)
    with pytest.raises(ValueError, match="kernel_size"):
        flows.phi4_flow(SHAPE, kernel_size=2, rng=rng)
    with pytest.raises(TypeError, match="rng"):
        flows.phi4_flow(SHAPE, rng=0)
    with pytest.raises(ValueError, match="even"):
        flows.phi4_flow((5, 4), rng=rng)


# ----------------------------------------------------------------------------- the target


def test_action_op_matches_the_theory_and_its_gradient_is_the_force():
    theory = Phi4(SHAPE, m2=-1.5, lam=0.7)
    rng = np.random.default_rng(22)
    phi = rng.standard_normal((3,) + SHAPE)
    np.testing.assert_allclose(flows.action(theory, phi), [theory.action(p) for p in phi], rtol=1e-13)
    check_grads(lambda x: flows.action_tensor(theory, x), phi, rng=rng)
    obs = flows.observables(theory, phi)
    for k, v in obs.items():
        np.testing.assert_allclose(v, [theory.observables(p)[k] for p in phi], rtol=1e-13, atol=1e-15)
    with pytest.raises(TypeError, match="phi\\^4 and U\\(1\\)"):
        flows.action(make_theory("su2", (4, 4), beta=1.0), phi)


# ----------------------------------------------------------------------------- metrics


def test_ess_limits_and_formula():
    assert flows.effective_sample_size(np.zeros(10)) == pytest.approx(1.0)
    assert flows.effective_sample_size(np.array([0.0] + [-800.0] * 9)) == pytest.approx(0.1)
    log_w = np.random.default_rng(23).normal(size=50)
    w = np.exp(log_w)
    assert flows.effective_sample_size(log_w) == pytest.approx(w.sum() ** 2 / (50 * (w**2).sum()), rel=1e-13)
    assert flows.effective_sample_size(log_w + 1234.5) == pytest.approx(flows.effective_sample_size(log_w), rel=1e-13)
    with pytest.raises(ValueError, match="finite"):
        flows.effective_sample_size(np.array([0.0, np.nan]))


def test_reweighting_gaussian_shift():
    """q = N(0, 1), p = N(mu, 1): log w = mu x + const, <x>_p = mu."""
    rng = np.random.default_rng(24)
    x = rng.standard_normal(200_000)
    mu = 0.5
    mean, err = flows.reweight(x, mu * x)
    assert abs(mean - mu) < 3 * err
    assert err < 0.01


def test_acceptance_estimate_matches_brute_force_and_a_simulated_chain():
    rng = np.random.default_rng(25)
    log_w = rng.normal(scale=1.3, size=40)
    w = np.exp(log_w)
    brute = sum(min(w[i], w[j]) for i in range(40) for j in range(40) if i != j) / (39 * w.sum())
    assert flows.acceptance_estimate(log_w) == pytest.approx(brute, rel=1e-12)
    assert flows.acceptance_estimate(np.zeros(5)) == pytest.approx(1.0)
    # a long independence-Metropolis chain on q = N(0, 1), p = N(0, 1.5^2)
    x = rng.standard_normal(400_000)
    log_w_x = -x**2 / (2 * 1.5**2) + x**2 / 2
    _, accepted, _ = flows.independence_metropolis(log_w_x, rng.random(len(x)))
    est = flows.acceptance_estimate(log_w_x[:20_000])
    assert abs(accepted.mean() - est) < 0.01


# ----------------------------------------------------------------------------- flow-MCMC


def test_independence_metropolis_matches_a_python_loop():
    rng = np.random.default_rng(26)
    log_w, u = rng.normal(size=300), rng.random(300)
    index, accepted, final = flows.independence_metropolis(log_w, u, start_log_weight=0.3)
    cur, cur_lw = -1, 0.3
    for i in range(300):
        if u[i] < math.exp(min(0.0, log_w[i] - cur_lw)):
            cur, cur_lw = i, log_w[i]
        assert index[i] == cur and accepted[i] == (cur == i)
    assert final == cur_lw
    index, accepted, _ = flows.independence_metropolis(log_w, u)  # default: the first proposal is taken
    assert index[0] == 0 and accepted[0]


def test_flow_mcmc_chain_is_consistent_and_continues():
    theory = Phi4(SHAPE, m2=-2.0, lam=3.0)
    flow = small_flow(27, scale=1.0)
    res = flows.flow_mcmc(flow, theory, np.random.default_rng(28), n_steps=500, batch_size=128)
    assert res.fields.shape == (500,) + SHAPE
    assert 0 < res.acceptance < 1 and 0 < res.ess <= 1
    np.testing.assert_allclose(res.log_weights, -flows.action(theory, res.fields) - flow.log_prob(res.fields), atol=1e-9)
    np.testing.assert_allclose(res.records["magnetization"], res.fields.reshape(500, -1).mean(axis=1), atol=1e-15)
    repeats = np.all(res.fields[1:] == res.fields[:-1], axis=(1, 2))
    np.testing.assert_array_equal(repeats, ~res.accepted[1:])
    again = flows.flow_mcmc(flow, theory, np.random.default_rng(28), n_steps=500, batch_size=128)
    np.testing.assert_array_equal(again.fields, res.fields)
    more = flows.flow_mcmc(flow, theory, np.random.default_rng(29), n_steps=50, batch_size=20, state=res.state)
    first_stay = ~more.accepted[0]
    if first_stay:
        np.testing.assert_array_equal(more.fields[0], res.fields[-1])
    summary = flows.summarize(res.records)
    assert set(summary) == {"magnetization", "abs_magnetization", "susceptibility", "action_density"}


def test_flow_mcmc_as_a_sampler_runs_and_resumes_bit_for_bit(tmp_path):
    theory = Phi4(SHAPE, m2=-2.0, lam=3.0)
    flow = small_flow(30, scale=1.0)
    s = flows.flow_sampler(theory, flow)
    start = flow.sample(np.random.default_rng(31), 1)[0][0]
    full = run_chain(s, start, np.random.default_rng(32), n_measure=40, progress=False)
    ck = tmp_path / "c.npz"
    part = run_chain(s, start, np.random.default_rng(32), n_measure=40, progress=False, checkpoint=ck, checkpoint_every=15)
    np.testing.assert_array_equal(part.records["action_density"], full.records["action_density"])
    resumed = resume_chain(ck, s, progress=False)
    np.testing.assert_array_equal(resumed.records["action_density"], full.records["action_density"])
    other = flows.flow_sampler(theory, small_flow(33, scale=1.0))
    with pytest.raises(ValueError, match="different chain"):
        resume_chain(ck, other, progress=False)
    state = mcmc.init(start, flow, theory)
    before = state.field.copy()
    for seed in range(5):
        new, info = mcmc.step(np.random.default_rng(seed), state, flow, theory)
        np.testing.assert_array_equal(state.field, before)  # step is pure
        assert info.accepted == (new is not state) and info.acceptance == float(info.accepted)


# ----------------------------------------------------------------------------- training


def _train(steps, *, checkpoint=None, callback=None, seed=35, lr_final=None):
    theory = Phi4(SHAPE, m2=-2.0, lam=3.0)
    flow = flows.phi4_flow(SHAPE, n_layers=2, hidden=(4,), rng=np.random.default_rng(seed))
    return flows.train(flow, theory, steps=steps, batch_size=16, rng=np.random.default_rng(36), progress=False,
                       checkpoint=checkpoint, checkpoint_every=2, callback=callback, lr_final=lr_final)


def _same(a, b):
    for (na, pa), (nb, pb) in zip(a.flow.named_parameters(), b.flow.named_parameters()):
        assert na == nb
        np.testing.assert_array_equal(pa.value, pb.value)
    for k in train_mod.HISTORY_KEYS:
        np.testing.assert_array_equal(a.history[k], b.history[k])
    assert a.rng.bit_generator.state == b.rng.bit_generator.state


def test_training_lowers_the_loss_and_records_telemetry():
    res = _train(60)
    assert set(res.history) == {"loss", "ess", "acceptance"} and len(res.history["loss"]) == 60 == res.steps
    assert res.history["loss"][-10:].mean() < res.history["loss"][:10].mean()
    assert np.all((res.history["ess"] > 0) & (res.history["ess"] <= 1))


def test_checkpoint_resume_is_bit_identical(tmp_path):
    full = _train(6)
    ck = tmp_path / "t.npz"
    part = _train(4, checkpoint=ck)
    # load_checkpointed_flow: the flow as trained so far (same weights, same density), its target and history
    flow, theory, history, step = flows.load_checkpointed_flow(ck)
    assert step == 4 and isinstance(theory, Phi4) and theory.params == Phi4(SHAPE, m2=-2.0, lam=3.0).params
    for (na, pa), (nb, pb) in zip(flow.named_parameters(), part.flow.named_parameters(), strict=True):
        assert na == nb
        np.testing.assert_array_equal(pa.value, pb.value)
    for k in train_mod.HISTORY_KEYS:
        np.testing.assert_array_equal(history[k], part.history[k])
    x = np.random.default_rng(0).standard_normal((3,) + SHAPE)
    np.testing.assert_array_equal(flow.log_prob(x), part.flow.log_prob(x))
    resumed = flows.resume_training(ck, steps=6, progress=False)
    _same(resumed, full)
    meta = io.load_checkpoint(ck).metadata
    assert meta["kind"] == "flow_training" and meta["settings"]["steps"] == 6


def test_ctrl_c_in_a_callback_or_mid_step_leaves_a_resumable_checkpoint(tmp_path, monkeypatch):
    full = _train(6)

    def stop_at_3(step, record):
        if step == 3:
            raise KeyboardInterrupt

    ck = tmp_path / "a.npz"
    with pytest.raises(KeyboardInterrupt):
        _train(6, checkpoint=ck, callback=stop_at_3)
    assert io.load_checkpoint(ck).step == 3
    _same(flows.resume_training(ck, progress=False), full)

    calls = {"n": 0}
    original = train_mod.action_tensor

    def interrupt_on_fourth_call(theory, phi):
        calls["n"] += 1
        if calls["n"] == 4:  # inside step 4, after the batch was drawn
            raise KeyboardInterrupt
        return original(theory, phi)

    monkeypatch.setattr(train_mod, "action_tensor", interrupt_on_fourth_call)
    ck2 = tmp_path / "b.npz"
    with pytest.raises(KeyboardInterrupt):
        _train(6, checkpoint=ck2)
    monkeypatch.setattr(train_mod, "action_tensor", original)
    assert io.load_checkpoint(ck2).step == 3
    _same(flows.resume_training(ck2, progress=False), full)


def test_annealed_rate_is_applied_stored_and_resumed_bit_for_bit(tmp_path):
    """lr_final: a cosine from lr to lr_final (optim.cosine_rate) set before every step, kept in the
    checkpoint's settings, so an interrupted run resumes on the same curve; lr_final = lr is the
    constant rate bit for bit, and a small lr_final changes the run."""
    full = _train(6, lr_final=1e-5)
    ck = tmp_path / "s.npz"

    def stop_at_4(step, record):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(6, checkpoint=ck, callback=stop_at_4, lr_final=1e-5)
    settings = io.load_checkpoint(ck).metadata["settings"]
    assert settings["lr"] == 1e-3 and settings["lr_final"] == 1e-5
    resumed = flows.resume_training(ck, progress=False)
    _same(resumed, full)
    assert resumed.optimizer.lr == pytest.approx(1e-5, rel=1e-12)  # the last step ran at lr_final
    _same(_train(6, lr_final=1e-3), _train(6))
    annealed, constant = _train(6, lr_final=1e-6), _train(6)
    assert annealed.history["loss"][0] == constant.history["loss"][0]  # the first step at lr in both
    assert not np.array_equal(annealed.history["loss"][2:], constant.history["loss"][2:])
    with pytest.raises(ValueError, match="lr_final"):
        _train(2, lr_final=-1.0)


def test_train_validates_its_arguments():
    theory = Phi4(SHAPE, m2=-2.0, lam=3.0)
    flow = flows.phi4_flow(SHAPE, n_layers=2, hidden=(4,), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="steps"):
        flows.train(flow, theory, steps=-1, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="batch_size"):
        flows.train(flow, theory, steps=1, batch_size=1, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="shape"):
        flows.train(flow, Phi4((6, 6), m2=1.0, lam=0.0), steps=1, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        flows.train(flow, theory, steps=1, rng=1)


# ----------------------------------------------------------------------------- command line


def test_cli_train_sample_and_resume(tmp_path, capsys):
    model = str(tmp_path / "m.npz")
    args = ["flow", "train", "phi4", "--shape", "4,4", "--m2", "-2", "--lam", "3", "--steps", "6", "--batch", "16",
            "--layers", "2", "--hidden", "4", "--seed", "3", "--lr-final", "1e-5", "--out", model, "--quiet", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["training"]["steps"] == 6 and out["theory_params"]["m2"] == -2.0 and out["training"]["lr_final"] == 1e-5
    assert main(["flow", "sample", model, "--n", "64", "--seed", "1", "--batch", "32", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload["observables"]) == {"magnetization", "abs_magnetization", "susceptibility", "action_density"}
    assert {"mean", "error", "tau_int", "tau_int_error"} <= set(payload["observables"]["action_density"])
    assert payload["ess_sample_size"] == 64 and 0 < payload["ess"] <= 1 and 0 <= payload["acceptance"] <= 1
    assert main(["flow", "train", "--resume", str(tmp_path / "m.ckpt.npz"), "--steps", "8", "--out", model, "--quiet"]) == 0
    assert "trained 8 steps" in capsys.readouterr().out
    assert flows.load_flow(model).metadata["training"]["steps"] == 8
    assert flows.load_flow(model).metadata["training"]["lr_final"] == 1e-5  # the schedule came from the checkpoint


def test_cli_user_errors_are_one_line(tmp_path, capsys):
    assert main(["flow", "train", "phi4", "--shape", "4,4", "--m2", "-2", "--lam", "3", "--steps", "5"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["flow", "train", "u1", "--shape", "4,4", "--steps", "5", "--out", str(tmp_path / "x.npz")]) == 2
    assert "--beta" in capsys.readouterr().err  # U(1) flows need the coupling
    assert main(["flow", "train", "su2", "--shape", "4,4", "--steps", "5", "--out", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err
    assert "latticeml: error:" in err and "u1" in err and "phi4" in err and "Traceback" not in err
    assert main(["flow", "sample", str(tmp_path / "missing.npz")]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err


def test_cli_training_stops_cleanly_on_sigterm(tmp_path, capsys):
    """`kill PID` (SIGTERM) stops a background training like Ctrl-C: checkpoint at the last complete step."""
    import os
    import signal
    import threading

    model = str(tmp_path / "m.npz")
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(1.5, os.kill, args=(os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        code = main(["flow", "train", "phi4", "--shape", "4,4", "--m2", "-2", "--lam", "3", "--steps", "10000000",
                     "--batch", "8", "--layers", "2", "--hidden", "2", "--out", model, "--quiet", "--checkpoint-every", "1000000"])
    finally:
        timer.cancel()
    assert code == 130
    assert "checkpoint written" in capsys.readouterr().err
    ck = io.load_checkpoint(tmp_path / "m.ckpt.npz")
    assert ck.step > 0 and len(ck.records["loss"]) == ck.step
    assert signal.getsignal(signal.SIGTERM) is before  # the previous handler is back
