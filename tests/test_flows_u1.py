"""Gauge-equivariant U(1) flows (latticeml.flows.u1, .circle) and free energies (latticeml.flows.free_energy).

Circle maps: bijections of the circle with periodic derivatives, exact derivatives against finite
differences. Layers: masks partition the plaquettes, gauge equivariance, inverse, log-Jacobian
against the finite-difference Jacobian, the fused op's gradients. Flows: gauge-invariant density
to 1e-12; untrained flows are exact samplers (flow-MCMC reproduces the Bessel plaquette and chi_t)
and estimators of ln Z (the Bessel U(1) value, the free-field Gaussian); training, checkpoints,
save/load and the command line for U(1).
"""

import json

import numpy as np
import pytest

from latticeml import exact, flows, io
from latticeml.autodiff import check_grads
from latticeml.cli import main
from latticeml.flows.circle import circle_backward, circle_forward, circle_inverse, n_parameters
from latticeml.flows.u1 import u1_coupling_op
from latticeml.groups import gauge_transform_u1, random_gauge_transform_u1
from latticeml.stats import gamma_method
from latticeml.theories import make_theory

SEED = 1414
TWO_PI = 2 * np.pi
SHAPE = (4, 4)
KINDS = [("ncp", 3), ("spline", 5)]


def wrap(d):
    return (np.asarray(d) + np.pi) % TWO_PI - np.pi


def small_u1_flow(seed=0, *, transform="ncp", components=2, n_layers=4, scale=2.0, shape=SHAPE):
    """A small flow with weights scaled up so that the circle maps are far from the identity."""
    flow = flows.u1_flow(shape, n_layers=n_layers, hidden=(4,), transform=transform, components=components,
                         rng=np.random.default_rng(seed))
    for p in flow.parameters():
        p.value *= scale
    return flow


def gauge(theta, alpha):
    return np.stack([gauge_transform_u1(t, alpha) for t in theta])


# ----------------------------------------------------------------------------- circle maps


@pytest.mark.parametrize("kind,K", KINDS)
def test_circle_maps_are_bijections_with_periodic_derivatives(kind, K, rng):
    B, n = 4, 64
    params = 1.5 * rng.standard_normal((B, n_parameters(kind, K), n))
    x = np.sort(rng.uniform(0, TWO_PI, (B, n)), axis=1)
    x[:, 0], x[:, -1] = 0.0, np.nextafter(TWO_PI, 0)
    y, logd = circle_forward(kind, x, params)
    assert np.all((y >= 0) & (y < TWO_PI))
    # inverse(forward) = identity, and the inverse reports the same log-derivative
    # (in x to 1e-12 / h'(x): an error eps in y is an error eps / h' in x wherever the map is flat)
    x_back, logd_back = circle_inverse(kind, y, params)
    np.testing.assert_array_less(np.abs(wrap(x_back - x)), 1e-13 * np.exp(-logd) + 1e-13)
    np.testing.assert_allclose(wrap(circle_forward(kind, x_back, params)[0] - y), 0.0, atol=1e-12)
    np.testing.assert_allclose(logd_back, logd, atol=1e-9)
    # h fixes 0 and 2 pi before the shift t: y(0) = t, y(2 pi-) = t (mod 2 pi); periodic derivative
    t = params[:, -1, :]
    zero, full = np.zeros((B, n)), np.full((B, n), TWO_PI)
    np.testing.assert_allclose(wrap(circle_forward(kind, zero, params)[0] - t), 0.0, atol=1e-12)
    np.testing.assert_allclose(wrap(circle_forward(kind, full, params)[0] - t), 0.0, atol=1e-12)
    np.testing.assert_allclose(circle_forward(kind, zero, params)[1], circle_forward(kind, full, params)[1], atol=1e-12)
    # a bijection of the circle: the map without its shift is increasing, and its derivative integrates to 2 pi
    grid = np.linspace(0.0, TWO_PI, 4001)
    p1 = np.repeat(params[:1, :, :1], grid.size, axis=2)
    p1[:, -1] = 0.0
    y_grid, logd_grid = circle_forward(kind, grid[None, :-1], p1[:, :, :-1])
    assert np.all(np.diff(y_grid[0]) > 0)
    deriv = np.exp(circle_forward(kind, grid[None], p1)[1][0])
    assert np.trapezoid(deriv, grid) == pytest.approx(TWO_PI, rel=1e-5)


@pytest.mark.parametrize("kind,K", KINDS)
def test_circle_map_derivatives_match_finite_differences(kind, K, rng):
    B, n, h = 2, 6, 1e-6
    params = rng.standard_normal((B, n_parameters(kind, K), n))
    x = rng.uniform(0.1, TWO_PI - 0.1, (B, n))
    y, logd = circle_forward(kind, x, params)
    dy = wrap(circle_forward(kind, x + h, params)[0] - circle_forward(kind, x - h, params)[0]) / (2 * h)
    np.testing.assert_allclose(dy, np.exp(logd), rtol=1e-7)
    a, l = rng.standard_normal((B, n)), rng.standard_normal((B, n))
    gx, gp = circle_backward(kind, x, params, a, l)

    def loss_change(xp, pp, xm, pm):
        yp, lp = circle_forward(kind, xp, pp)
        ym, lm = circle_forward(kind, xm, pm)
        return ((a * wrap(yp - ym)).sum() + (l * (lp - lm)).sum()) / (2 * h)

    fd_x = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        fd_x[idx] = loss_change(x + e, params, x - e, params)
    np.testing.assert_allclose(gx, fd_x, atol=1e-6)
    fd_p = np.empty_like(params)
    for idx in np.ndindex(params.shape):
        e = np.zeros_like(params)
        e[idx] = h
        fd_p[idx] = loss_change(x, params + e, x, params - e)
    np.testing.assert_allclose(gp, fd_p, atol=1e-6)


# ----------------------------------------------------------------------------- masks and layers


def test_plaquette_masks_partition_and_active_links_sit_in_one_active_plaquette_each():
    shape = (8, 4)
    for mu in (0, 1):
        for off in range(4):
            m = flows.plaquette_masks(shape, mu, off)
            np.testing.assert_array_equal(m["frozen"] + m["active"] + m["passive"], 1.0)
            assert m["active"].sum() == np.prod(shape) / 4 and m["frozen"].sum() == np.prod(shape) / 2
            # perturb the active links: frozen plaquettes must not move, each active plaquette by exactly +-eps
            links = flows.active_link_mask(shape, mu, off)
            theta = np.random.default_rng(off).uniform(-np.pi, np.pi, (1, 2) + shape)
            p0 = flows.u1.plaquette_map(theta)[0, 0]
            p1 = flows.u1.plaquette_map(theta + 1e-3 * links)[0, 0]
            change = np.round((p1 - p0) / 1e-3)
            np.testing.assert_array_equal(change * m["frozen"], 0.0)
            np.testing.assert_array_equal(np.abs(change * m["active"]), m["active"])
            assert np.abs(change).sum() == 2 * m["active"].sum()  # the passive plaquette absorbs the rest
    with pytest.raises(ValueError, match="multiples of 4"):
        flows.plaquette_masks((6, 8), 0, 0)


@pytest.mark.parametrize("transform,K", [("ncp", 2), ("spline", 4)])
def test_flow_is_gauge_equivariant_invertible_and_its_density_gauge_invariant(transform, K, rng):
    # (weights x 2 for the NCP, x 1 for the spline: with flat stretches h' ~ 1e-2 in 8 stacked layers the
    # spline's inverse amplifies the rounding of the gauge transformation itself beyond 1e-12)
    flow = small_u1_flow(1, transform=transform, components=K, n_layers=8, shape=(4, 8), scale=2.0 if transform == "ncp" else 1.0)
    z = flow.prior.sample(rng, 3)
    theta, log_q = flow.sample(np.random.default_rng(5), 3)
    alpha = random_gauge_transform_u1(rng, (4, 8))
    # each layer commutes with gauge transformations
    for layer in flow.layers[:2]:
        y = layer(z)[0].value
        np.testing.assert_allclose(wrap(layer(gauge(z, alpha))[0].value - gauge(y, alpha)), 0.0, atol=1e-12)
    # the density is gauge invariant, and log_prob (through the inverse) agrees with sampling
    np.testing.assert_allclose(flow.log_prob(gauge(theta, alpha)), flow.log_prob(theta), atol=1e-12, rtol=0)
    np.testing.assert_allclose(flow.log_prob(theta), log_q, atol=1e-10)
    # inverse(forward) = identity, and the log-determinants are opposite
    x, log_det = flow(z)
    z_back, log_det_inv = flow.inverse(x.value)
    np.testing.assert_allclose(wrap(z_back - z), 0.0, atol=1e-11)
    np.testing.assert_allclose(log_det_inv, -log_det.value, atol=1e-11)
    assert np.all(np.abs(x.value) <= np.pi)  # links stay in [-pi, pi]


@pytest.mark.parametrize("transform,K", [("ncp", 2), ("spline", 3)])
def test_log_jacobian_matches_the_finite_difference_jacobian(transform, K, rng):
    flow = small_u1_flow(2, transform=transform, components=K, n_layers=3)
    z = flow.prior.sample(rng, 1)
    n, h = z.size, 1e-6

    def f(v):
        return flow(v.reshape(z.shape))[0].value.ravel()

    J = np.empty((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = h
        J[:, j] = wrap(f(z.ravel() + e) - f(z.ravel() - e)) / (2 * h)
    sign, logabsdet = np.linalg.slogdet(J)
    assert sign > 0
    assert flow(z)[1].value[0] == pytest.approx(logabsdet, abs=1e-6)


@pytest.mark.parametrize("transform,K", [("ncp", 2), ("spline", 3)])
def test_fused_layer_gradients_match_finite_differences(transform, K, rng):
    layer = small_u1_flow(3, transform=transform, components=K, n_layers=2).layers[1]
    z = rng.uniform(-1.0, 1.0, (2, 2) + SHAPE)  # away from the wrap of the links
    params = layer._params(values=True)
    kw = layer._kw()
    check_grads(lambda x, *p: u1_coupling_op(x, *p, **kw), z, *params, rng=rng)


def test_conditioner_equals_the_engine_net_on_the_whole_lattice(rng):
    """The fused layer evaluates its net only where the active plaquettes depend on it (the output layer on
    the active stripe, the layer before on three stripes of four): the circle parameters must equal the
    net run by the engine's periodic_conv on every site (an independent kernel) at the active sites."""
    from latticeml.autodiff import Tensor

    shape = (8, 12)
    flow = flows.u1_flow(shape, n_layers=8, hidden=(8, 8), transform="spline", components=3, rng=np.random.default_rng(6))
    theta = flow.prior.sample(rng, 5)
    for layer in flow.layers:
        x, cparams = layer.circle_parameters(theta)
        plaq = np.mod(theta[:, 0] + np.roll(theta[:, 1], -1, axis=1) - np.roll(theta[:, 0], -1, axis=2) - theta[:, 1], TWO_PI)
        fp = plaq * layer.masks["frozen"]
        full = layer.net(Tensor(np.stack([np.cos(fp), np.sin(fp)], axis=1))).value  # (B, C, L0, L1)
        active = layer.masks["active"].ravel() == 1.0
        np.testing.assert_allclose(x, plaq.reshape(5, -1)[:, active], rtol=0, atol=1e-12)
        np.testing.assert_allclose(cparams, full.reshape(5, full.shape[1], -1)[:, :, active], rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- exactness of untrained flows


def test_flow_mcmc_with_an_untrained_flow_reproduces_the_exact_plaquette_and_chi_t():
    beta, shape = 0.5, (4, 4)
    theory = make_theory("u1", shape, beta=beta)
    # an untrained model, its NCP scales biased to s ~ -0.7 so that its proposals crowd the plaquettes
    # towards 0: without the exact density in the accept/reject step the plaquette is off by 70 sigma
    flow = small_u1_flow(4, n_layers=4, scale=1.0)
    for layer in flow.layers:
        layer.net.layers[-1].bias.value[:-1] = -0.7
    chain = flows.flow_mcmc(flow, theory, np.random.default_rng(6), n_steps=16000, batch_size=4000, keep_fields=False)
    assert 0.05 < chain.acceptance < 0.9
    # the proposals alone (no accept/reject) are far from the target: the Metropolis step does the work
    raw = flows.observables(theory, flow.sample(np.random.default_rng(16), 4000)[0])["plaquette"]
    assert abs(raw.mean() - exact.u1_2d_plaquette(beta, 16)) > 10 * raw.std() / np.sqrt(raw.size)
    V = shape[0] * shape[1]
    for key, value in (("plaquette", exact.u1_2d_plaquette(beta, V)),
                       ("topological_susceptibility", exact.u1_2d_topological_susceptibility(beta, V))):
        g = gamma_method(chain.records[key])
        assert abs(g.value - value) < 4 * g.error, (key, g.value, g.error, value)
        assert g.error < 0.1 * value  # the test has the power to see a wrong result


def test_importance_sampling_ln_z_matches_the_exact_u1_partition_function():
    beta, shape = 0.5, (4, 4)
    theory = make_theory("u1", shape, beta=beta)
    flow = small_u1_flow(7, n_layers=2, scale=2.0)
    fe = flows.estimate_free_energy(flow, theory, np.random.default_rng(8), n=20000, batch_size=5000)
    exact_lnz = flows.u1_exact_log_partition_function(beta, shape)
    assert exact_lnz == pytest.approx(flows.exact_log_partition_function(theory))
    assert abs(fe.log_z - exact_lnz) < 4 * fe.log_z_error and fe.log_z_error < 0.05
    assert fe.bound < exact_lnz  # Jensen: the reverse-KL bound lies below
    # the reference itself: Z = e^{-beta V} sum_n I_n(beta)^V written out with scipy's Bessel functions
    from scipy.special import iv

    V = 16
    assert exact_lnz == pytest.approx(-beta * V + np.log(sum(iv(n, beta) ** V for n in range(-10, 11))), rel=1e-12)


def test_importance_sampling_ln_z_matches_the_free_field_gaussian():
    # (2 x 2 sites: a near-identity flow from N(0, 1) still has a useful ESS against K's spread of scales)
    shape = (2, 2)
    theory = make_theory("phi4", shape, m2=1.0, lam=0.0)
    flow = flows.phi4_flow(shape, n_layers=2, hidden=(4,), rng=np.random.default_rng(9))
    for p in flow.parameters():
        p.value *= 0.3
    fe = flows.estimate_free_energy(flow, theory, np.random.default_rng(10), n=20000)
    exact_lnz = flows.gaussian_log_partition_function(shape, 1.0)
    # the Gaussian integral, independently: (V/2) ln 2pi - (1/2) ln det K with K the matrix of S = phi.K phi / 2
    V = 4
    K = np.zeros((V, V))
    for i in range(V):
        e = np.zeros(V)
        e[i] = 1.0
        K[:, i] = theory.force(e.reshape(shape)).ravel()  # dS/dphi = K phi for a quadratic S
    assert exact_lnz == pytest.approx(0.5 * V * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(K)[1], rel=1e-12)
    assert abs(fe.log_z - exact_lnz) < 4 * fe.log_z_error and fe.log_z_error < 0.1, fe
    assert fe.bound < exact_lnz
    assert flows.gaussian_log_partition_function((4, 4), 1.0) == pytest.approx(flows.exact_log_partition_function(
        make_theory("phi4", (4, 4), m2=1.0, lam=0.0)))


def test_free_energy_estimators_on_known_weights():
    # equal weights: the estimate is exact with zero error; the bound equals it
    lnz, err = flows.log_partition_function(np.full(100, -3.0))
    assert lnz == pytest.approx(-3.0) and err == 0.0
    assert flows.reverse_kl_bound(np.full(100, -3.0)) == (pytest.approx(-3.0), 0.0)
    # log-normal weights, log w ~ N(mu, s^2): E[w] = exp(mu + s^2/2); error from the spread of the weights
    rng = np.random.default_rng(11)
    mu, s, n = -1.0, 0.5, 200000
    lnz, err = flows.log_partition_function(mu + s * rng.standard_normal(n))
    assert abs(lnz - (mu + s * s / 2)) < 4 * err
    assert err == pytest.approx(np.sqrt((np.exp(s * s) - 1) / n), rel=0.05)
    with pytest.raises(ValueError, match="finite"):
        flows.log_partition_function(np.array([0.0, np.nan]))


# ----------------------------------------------------------------------------- training, files, command line


def _train_u1(steps, *, checkpoint=None, callback=None):
    theory = make_theory("u1", SHAPE, beta=1.0)
    flow = flows.u1_flow(SHAPE, n_layers=2, hidden=(4,), rng=np.random.default_rng(12))
    return flows.train(flow, theory, steps=steps, batch_size=16, rng=np.random.default_rng(13), progress=False,
                       checkpoint=checkpoint, checkpoint_every=2, callback=callback)


def test_u1_training_lowers_the_loss_and_resumes_bit_for_bit(tmp_path):
    full = _train_u1(40)
    assert full.history["loss"][-10:].mean() < full.history["loss"][:10].mean()

    def stop_at_3(step, record):
        if step == 3:
            raise KeyboardInterrupt

    ck = tmp_path / "u1.ckpt.npz"
    with pytest.raises(KeyboardInterrupt):
        _train_u1(6, checkpoint=ck, callback=stop_at_3)
    flow, theory, history, step = flows.load_checkpointed_flow(ck)
    assert step == 3 and theory.name == "u1" and theory.beta == 1.0 and len(history["loss"]) == 3
    resumed = flows.resume_training(ck, steps=6, progress=False)
    short = _train_u1(6)
    for (na, pa), (nb, pb) in zip(resumed.flow.named_parameters(), short.flow.named_parameters(), strict=True):
        np.testing.assert_array_equal(pa.value, pb.value)
    np.testing.assert_array_equal(resumed.history["loss"], short.history["loss"])


@pytest.mark.parametrize("transform", ["ncp", "spline"])
def test_save_and_load_round_trip(tmp_path, transform):
    flow = small_u1_flow(14, transform=transform, components=3)
    path = flows.save_flow(tmp_path / f"{transform}.npz", flow, metadata={"theory": "u1", "theory_params": {"beta": 1.0}})
    back = flows.load_flow(path)
    assert back.config == flow.config and back.metadata["theory"] == "u1"
    theta = flow.prior.sample(np.random.default_rng(15), 4)
    np.testing.assert_array_equal(back.log_prob(theta), flow.log_prob(theta))


def test_flows_refuse_mismatched_theories():
    flow = flows.u1_flow(SHAPE, n_layers=1, hidden=(2,), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="shape"):
        flows.train(flow, make_theory("phi4", SHAPE, m2=1.0, lam=1.0), steps=1, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="phi\\^4 and U\\(1\\)"):
        flows.flow_mcmc(flow, make_theory("su2", (4, 4), beta=1.0), np.random.default_rng(0), n_steps=8)
    with pytest.raises(ValueError, match="multiples of 4"):
        flows.u1_flow((4, 6), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="transform"):
        flows.u1_flow(SHAPE, transform="affine", rng=np.random.default_rng(0))


def test_cli_trains_and_samples_u1(tmp_path, capsys):
    model = str(tmp_path / "u1.npz")
    assert main(["flow", "train", "u1", "--shape", "4,4", "--beta", "1", "--steps", "4", "--batch", "8", "--layers", "2",
                 "--hidden", "4", "--seed", "3", "--out", model, "--quiet", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["theory"] == "u1" and trained["theory_params"] == {"shape": [4, 4], "beta": 1.0}
    assert main(["flow", "sample", model, "--n", "400", "--seed", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 0.0 < out["acceptance"] <= 1.0 and 0.0 < out["ess"] <= 1.0
    assert set(out["log_z"]) == {"mean", "error"} and np.isfinite(out["log_z"]["mean"])
    for key in ("plaquette", "topological_susceptibility", "topological_charge", "wilson_loop_2x2"):
        assert set(out["observables"][key]) >= {"mean", "error", "tau_int"}
    assert main(["flow", "sample", model, "--n", "64", "--json", "--beta", "1.5"]) == 0
    assert json.loads(capsys.readouterr().out)["params"]["beta"] == 1.5
    ck = io.load_checkpoint(model.replace(".npz", ".ckpt.npz"))
    assert ck.metadata["theory"] == "u1" and ck.step == 4


@pytest.mark.parametrize("argv,message", [
    (["flow", "train", "u1", "--shape", "6,6", "--beta", "1", "--steps", "2"], "multiples of 4"),
    (["flow", "train", "u1", "--shape", "4,4", "--steps", "2"], "needs --shape and --beta"),
    (["flow", "train", "u1", "--shape", "4,4", "--beta", "1", "--lam", "1", "--steps", "2"], "--lam belongs"),
    (["flow", "train", "phi4", "--shape", "4,4", "--m2", "1", "--lam", "1", "--beta", "1", "--steps", "2"], "--beta belongs"),
    (["flow", "train", "su2", "--shape", "4,4", "--beta", "1", "--steps", "2"], "phi4 and u1"),
])
def test_cli_user_errors_are_one_line(tmp_path, capsys, argv, message):
    assert main(argv + ["--out", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("latticeml: error:")



# ----------------------------------------------------------------------------- lecture 06


def test_lecture_figure_maker_is_registered_and_fast_settings_are_small():
    from latticeml import figures
    from latticeml.figure_makers import u1_flows as lec

    assert figures.registry()["u1_flows"].make is lec.make
    fast, full = lec.settings_for(True), lec.settings_for(False)
    assert full.train_steps[lec.BETA] == 1000 and full.architecture == {"n_layers": 16, "hidden": (8, 8)}  # the tutorial
    assert max(fast.train_steps.values()) <= 50 and fast.n_chain < full.n_chain


def test_a_flow_carries_over_to_a_larger_lattice():
    from latticeml.figure_makers import u1_flows as lec

    flow = small_u1_flow(17)
    big = lec.transfer(flow, (8, 8))
    assert big.field_shape == (2, 8, 8)
    for (na, pa), (nb, pb) in zip(flow.named_parameters(), big.named_parameters(), strict=True):
        np.testing.assert_array_equal(pa.value, pb.value)
