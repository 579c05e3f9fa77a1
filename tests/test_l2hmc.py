"""L2HMC (latticeml.samplers.l2hmc): exactness is tested, not assumed.

* the d = -1 trajectory inverts the d = +1 trajectory to 1e-12 (positions, momenta) and its
  log-Jacobian is minus the forward one;
* the accumulated log|J| equals log|det| of the central-difference Jacobian of (x, v) -> (x', v')
  (float64) for a Gaussian, a Gaussian mixture and 2D U(1) on a 2x2 torus, networks random;
* with random networks (head_scale 1: far from leapfrog) the chain reproduces exact results: the
  covariance of a correlated Gaussian and the plaquette and topological susceptibility of 2D U(1)
  on a 4x4 torus (latticeml.exact), Gamma-method errors, 4 sigma;
* training lowers the loss and a checkpointed training resumes bit-identically.
"""

import numpy as np
import pytest

from latticeml import autodiff as ad
from latticeml import exact
from latticeml.observables import topology
from latticeml.samplers import l2hmc as L
from latticeml.stats import gamma_method

SEED = 707


def _toy_targets():
    return {
        "gaussian": L.correlated_gaussian(),
        "mixture": L.MixtureTarget([[-2.0, 0.0], [2.0, 0.5]], 0.7),
    }


def _dynamics(event_shape, angles, rng, n_layers=2, scale_coefficient=3.0):
    """Random networks far from leapfrog: the scale exponents s reach +-3, so |log J| is O(1) per trajectory
    (the chain tests fail if log J is left out of the acceptance)."""
    dyn = L.L2HMCDynamics(event_shape, n_layers=n_layers, angles=angles, rng=rng, hidden=(8,), head_scale=1.0,
                          step_size=0.25)
    for net in dyn.vnets_a + dyn.vnets_b + dyn.xnets_1 + dyn.xnets_2:
        if net.coeff_s is not None:
            net.coeff_s.value[:] = scale_coefficient
    return dyn


def _cases(rng):
    for name, target in _toy_targets().items():
        yield name, target, _dynamics(target.event_shape, False, rng), rng.standard_normal((3, 2))
    u1 = L.U1Target((2, 2), 1.5)
    yield "u1", u1, _dynamics(u1.event_shape, True, rng), rng.uniform(-np.pi, np.pi, (3,) + u1.event_shape)


def test_backward_inverts_forward(rng):
    for name, target, dyn, x in _cases(rng):
        v = rng.standard_normal(x.shape)
        with ad.no_grad():
            fwd = L.trajectory(dyn, target, x, v, direction=1)
            back = L.trajectory(dyn, target, fwd.x.value, fwd.v.value, direction=-1)
        assert np.max(np.abs(fwd.x.value - x)) > 1e-2, name  # the map moves
        np.testing.assert_allclose(back.x.value, x, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(back.v.value, v, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(back.log_jacobian.value, -fwd.log_jacobian.value, atol=1e-12, err_msg=name)


def _numerical_log_det(dyn, target, x, v, h=1e-6):
    """log|det| of the central-difference Jacobian of z = (x, v) -> (x', v') for one configuration."""
    n = x.size
    z0 = np.concatenate([x.ravel(), v.ravel()])

    def f(z):
        with ad.no_grad():
            r = L.trajectory(dyn, target, z[:n].reshape((1,) + x.shape), z[n:].reshape((1,) + x.shape), direction=1)
        return np.concatenate([r.x.value.ravel(), r.v.value.ravel()])

    J = np.empty((2 * n, 2 * n))
    for j in range(2 * n):
        e = np.zeros(2 * n)
        e[j] = h
        J[:, j] = (f(z0 + e) - f(z0 - e)) / (2 * h)
    return np.linalg.slogdet(J)[1]


def test_log_jacobian_matches_numerical_determinant(rng):
    for name, target, dyn, x in _cases(rng):
        x1 = x[0]
        v1 = rng.standard_normal(x1.shape)
        with ad.no_grad():
            lj = L.trajectory(dyn, target, x1[None], v1[None], direction=1).log_jacobian.value[0]
        num = _numerical_log_det(dyn, target, x1, v1)
        assert abs(lj) > 1e-3, name  # a non-trivial Jacobian
        assert abs(lj - num) < 1e-7, (name, lj, num)


def _run(rng, dyn, target, x, n_steps, n_therm, measure):
    state = L.init_state(target, x)
    series, acc = [], []
    for i in range(n_steps):
        state, info = L.l2hmc_step(rng, state, dyn, target)
        acc.append(info.acceptance)
        if i >= n_therm:
            series.append(measure(state.x))
    return np.array(series), np.mean(acc)


def test_random_networks_sample_a_correlated_gaussian_exactly(rng):
    cov = np.array([[1.0, 0.6], [0.6, 2.0]])
    target = L.GaussianTarget(cov)
    dyn = _dynamics((2,), False, rng, n_layers=3)
    x0 = rng.standard_normal((64, 2))

    def second_moments(x):  # chain-averaged x0^2, x0 x1, x1^2 per step
        return [np.mean(x[:, 0] ** 2), np.mean(x[:, 0] * x[:, 1]), np.mean(x[:, 1] ** 2)]

    series, acc = _run(rng, dyn, target, x0, 250, 50, second_moments)
    assert 0.2 < acc < 0.98
    for k, exact_value in enumerate([cov[0, 0], cov[0, 1], cov[1, 1]]):
        g = gamma_method(series[:, k])
        assert abs(g.value - exact_value) < 4 * g.error, (k, g.value, g.error, exact_value)


def test_random_networks_reproduce_exact_2d_u1(rng):
    beta, shape = 1.0, (4, 4)
    V = 16
    target = L.U1Target(shape, beta)
    dyn = _dynamics(target.event_shape, True, rng, n_layers=2, scale_coefficient=4.0)
    x0 = rng.uniform(-np.pi, np.pi, (32,) + target.event_shape)

    def measure(x):
        q = topology.topological_charge_u1(x, batched=True)
        return [np.mean(np.cos(L.u1_plaquette_angles(x).value)), np.mean(q**2) / V]

    series, acc = _run(rng, dyn, target, x0, 300, 50, measure)
    assert 0.2 < acc < 0.98
    for k, exact_value in enumerate([exact.u1_2d_plaquette(beta, V), exact.u1_2d_topological_susceptibility(beta, V)]):
        g = gamma_method(series[:, k])
        assert abs(g.value - exact_value) < 4 * g.error, (k, g.value, g.error, exact_value)


def test_training_improves_the_jump_and_resumes_bit_identically(rng, tmp_path):
    target = L.correlated_gaussian()
    seed = 11

    def fresh():
        return L.L2HMCDynamics((2,), n_layers=3, angles=False, rng=np.random.default_rng(seed), hidden=(8,), step_size=0.2)

    full = L.train(fresh(), target, steps=40, rng=np.random.default_rng(3), batch_size=32, lr=1e-2, progress=False)
    assert np.mean(full.history["mean_jump"][-10:]) > np.mean(full.history["mean_jump"][:10])
    ck = tmp_path / "train.npz"
    L.train(fresh(), target, steps=20, rng=np.random.default_rng(3), batch_size=32, lr=1e-2, progress=False,
            checkpoint=ck, checkpoint_every=5)
    resumed = L.resume_training(ck, steps=40, progress=False)
    np.testing.assert_array_equal(resumed.history["loss"], full.history["loss"])
    for a, b in zip(resumed.dynamics.parameters(), full.dynamics.parameters()):
        np.testing.assert_array_equal(a.value, b.value)


def test_annealed_rate_follows_the_cosine_and_survives_an_interruption(tmp_path, monkeypatch):
    """``lr_final``: Adam's rate at every step is cosine_rate(lr, lr_final, step, steps), and a run
    interrupted by Ctrl-C at step 12 and resumed ends bit-identical to the uninterrupted one."""
    from latticeml.autodiff import optim

    target = L.correlated_gaussian()

    def fresh():
        return L.L2HMCDynamics((2,), n_layers=2, angles=False, rng=np.random.default_rng(5), hidden=(8,), step_size=0.2)

    rates, adam_step = [], optim.Adam.step

    def spy(self):
        rates.append(self.lr)
        return adam_step(self)

    monkeypatch.setattr(optim.Adam, "step", spy)
    kw = dict(steps=30, batch_size=16, lr=1e-2, lr_final=1e-4, progress=False)
    full = L.train(fresh(), target, rng=np.random.default_rng(4), **kw)
    np.testing.assert_allclose(rates, [optim.cosine_rate(1e-2, 1e-4, k, 30) for k in range(30)], rtol=1e-15)
    assert rates[-1] == pytest.approx(1e-4)
    monkeypatch.setattr(optim.Adam, "step", adam_step)

    def stop_at_12(step, record):
        if step == 12:
            raise KeyboardInterrupt

    ck = tmp_path / "train.npz"
    with pytest.raises(KeyboardInterrupt):
        L.train(fresh(), target, rng=np.random.default_rng(4), checkpoint=ck, checkpoint_every=5, callback=stop_at_12, **kw)
    resumed = L.resume_training(ck, progress=False)
    assert resumed.steps == 30
    np.testing.assert_array_equal(resumed.history["loss"], full.history["loss"])
    for a, b in zip(resumed.dynamics.parameters(), full.dynamics.parameters()):
        np.testing.assert_array_equal(a.value, b.value)
    # and the schedule matters: a constant rate ends elsewhere
    const = L.train(fresh(), target, rng=np.random.default_rng(4), **dict(kw, lr_final=None))
    assert not np.array_equal(const.history["loss"], full.history["loss"])


def test_tempered_mixture_is_beta_times_the_mixture(rng):
    """``MixtureTarget.with_beta``: S_beta = beta S_1 (up to nothing: the same normalization), the force
    is the central-difference gradient of S_beta, the config round-trips, and annealed training
    visits the scheduled betas and ends on the untempered target."""
    target = L.MixtureTarget([[-4.0, 0.0], [4.0, 0.0]], 1.0, weights=[0.3, 0.7])
    x = np.concatenate([rng.standard_normal((4, 2)) * 3.0, [[0.0, 0.1]]])
    for beta in (0.1, 0.37, 1.0):
        hot = target.with_beta(beta)
        assert hot.beta == beta and target.beta == 1.0
        with ad.no_grad():
            np.testing.assert_allclose(hot.action(x).value, beta * target.action(x).value, rtol=1e-14)
            F = hot.force(x).value
            h = 1e-6
            for j in range(2):
                e = np.zeros(2)
                e[j] = h
                fd = (hot.action(x + e).value - hot.action(x - e).value) / (2 * h)
                np.testing.assert_allclose(F[:, j], fd, rtol=1e-7, atol=1e-8)
        again = L.target_from_config(hot.config)
        np.testing.assert_allclose(again.action(x).value, hot.action(x).value, rtol=1e-15)
    old = dict(target.config)
    del old["beta"]  # models saved before tempering existed
    assert L.target_from_config(old).beta == 1.0
    dyn = L.L2HMCDynamics((2,), n_layers=1, angles=False, rng=np.random.default_rng(2), hidden=(4,), step_size=0.3)
    res = L.train(dyn, target, steps=5, rng=np.random.default_rng(3), batch_size=8, beta_start=0.2, beta_end=1.0, progress=False)
    np.testing.assert_allclose(res.history["beta"], [0.2, 0.4, 0.6, 0.8, 1.0])
    assert res.target.beta == 1.0


def test_model_round_trip(rng, tmp_path):
    target = L.U1Target((4, 4), 2.0)
    dyn = _dynamics(target.event_shape, True, rng)
    path = L.save_model(tmp_path / "m.npz", dyn, target)
    dyn2, target2, _ = L.load_model(path)
    assert target2.config == target.config
    for a, b in zip(dyn.parameters(), dyn2.parameters()):
        np.testing.assert_array_equal(a.value, b.value)


def test_trajectory_refuses_a_bad_direction(rng):
    target = L.correlated_gaussian()
    with pytest.raises(ValueError, match="direction"):
        L.trajectory(_dynamics((2,), False, rng), target, np.zeros((1, 2)), np.zeros((1, 2)), direction=0)


def test_learned_integrator_fits_the_integrator_seam(rng):
    from latticeml.samplers.integrators import IntegratorResult
    from latticeml.theories import make_theory

    theory = make_theory("u1", (4, 4), beta=1.5)
    target = L.U1Target((4, 4), 1.5)
    dyn = _dynamics(target.event_shape, True, rng)
    field, p = theory.hot_start(rng), rng.standard_normal((2, 4, 4))
    out = L.learned_integrator(dyn, direction=1)(field, p, None, force_fn=theory.force, evolve_fn=theory.evolve,
                                                 step_size=0.1, n_steps=5)
    assert isinstance(out, IntegratorResult) and out.n_force_evaluations == dyn.n_layers + 1
    with ad.no_grad():
        ref = L.trajectory(dyn, target, field[None], p[None], direction=1)
    np.testing.assert_allclose(np.exp(1j * out.field), np.exp(1j * ref.x.value[0]), atol=1e-12)
    np.testing.assert_allclose(out.momentum, ref.v.value[0], atol=1e-12)
    assert out.log_jacobian == pytest.approx(ref.log_jacobian.value[0], abs=1e-12)
