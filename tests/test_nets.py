"""Modules, optimizers, save/load and the odd MLP: an end-to-end training step against finite
differences, optimizer updates against their formulas, exact oddness on a dense grid."""

import numpy as np
import pytest

from latticeml import autodiff as ad
from latticeml.autodiff import nn, optim
from latticeml.autodiff.gradcheck import numerical_grad
from latticeml.nets import OddMLP, antisymmetric_part, symmetric_part


def _data(rng, n=6, n_in=3, n_out=2):
    return rng.standard_normal((n, n_in)), rng.standard_normal((n, n_out))


def _mse(net, x, y):
    return ((net(x) - y) ** 2).mean()


def test_three_layer_mlp_training_step_matches_finite_differences():
    rng = np.random.default_rng(0)
    net = nn.mlp([3, 5, 4, 2], activation="tanh", rng=rng)
    x, y = _data(rng)
    params = net.parameters()
    assert len(params) == 6  # three Dense layers, weights and biases

    loss = _mse(net, x, y)
    loss.backward()
    analytic = [p.grad.copy() for p in params]

    def loss_of(j):
        def f(value):
            saved = params[j].value.copy()
            params[j].value[...] = value
            out = _mse(net, x, y).value
            params[j].value[...] = saved
            return ad.Tensor(out)

        return f

    numeric = [numerical_grad(loss_of(j), [p.value.copy()], 0, np.array(1.0)) for j, p in enumerate(params)]
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=1e-6, atol=1e-9)

    # one Adam step: the first update is p - lr g / (|g| + eps) elementwise
    before = [p.value.copy() for p in params]
    opt = optim.Adam(params, lr=1e-2)
    opt.step()
    for p, b, n in zip(params, before, numeric):
        np.testing.assert_allclose(p.value, b - 1e-2 * n / (np.abs(n) + 1e-8), rtol=1e-6, atol=1e-9)
    assert _mse(net, x, y).value < loss.value


def test_dense_and_conv_shapes():
    rng = np.random.default_rng(1)
    d = nn.Dense(3, 4, rng=rng)
    assert d(np.zeros((2, 5, 3))).shape == (2, 5, 4)
    assert d.weight.shape == (3, 4) and d.bias.shape == (4,)
    c = nn.Conv(2, 5, 3, ndim=3, rng=rng)
    assert c.weight.shape == (5, 2, 3, 3, 3)
    assert c(np.zeros((1, 2, 4, 4, 4))).shape == (1, 5, 4, 4, 4)
    net = nn.conv_net([1, 8, 8, 2], kernel_size=3, rng=rng)
    assert [type(m).__name__ for m in net.layers] == ["Conv", "Tanh", "Conv", "Tanh", "Conv"]
    assert net(np.zeros((4, 1, 8, 8))).shape == (4, 2, 8, 8)
    assert net.num_parameters() == (1 * 9 + 1) * 8 + (8 * 9 + 1) * 8 + (8 * 9 + 1) * 2
    with pytest.raises(ValueError, match="odd"):
        nn.Conv(1, 1, 2, rng=rng)
    with pytest.raises(ValueError, match="unknown activation"):
        nn.mlp([1, 2, 1], activation="swish", rng=rng)
    with pytest.raises(TypeError, match="rng"):
        nn.Dense(2, 2, rng=None)


def test_initialisation_is_seeded_and_bounded():
    a = nn.mlp([2, 7, 1], rng=np.random.default_rng(42)).state_dict()
    b = nn.mlp([2, 7, 1], rng=np.random.default_rng(42)).state_dict()
    c = nn.mlp([2, 7, 1], rng=np.random.default_rng(43)).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["layers.0.weight"], c["layers.0.weight"])
    assert np.abs(a["layers.0.weight"]).max() <= 1 / np.sqrt(2)
    assert np.abs(a["layers.2.weight"]).max() <= 1 / np.sqrt(7)


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    net = nn.conv_net([1, 4, 2], rng=rng)
    x = rng.standard_normal((3, 1, 5, 5))
    path = net.save(tmp_path / "net")
    assert path.name == "net.npz"
    with np.load(path, allow_pickle=False) as f:
        assert sorted(f.files) == ["layers.0.bias", "layers.0.weight", "layers.2.bias", "layers.2.weight"]
    other = nn.conv_net([1, 4, 2], rng=np.random.default_rng(99))
    assert not np.array_equal(other(x).value, net(x).value)
    other.load(path)
    np.testing.assert_array_equal(other(x).value, net(x).value)
    with pytest.raises(ValueError, match="missing"):
        nn.conv_net([1, 4, 4, 2], rng=rng).load(path)
    with pytest.raises(ValueError, match="stored"):
        nn.conv_net([1, 3, 2], rng=rng).load(path)


def _param(values):
    p = ad.Parameter(np.array(values, dtype=float))
    return p


def test_sgd_updates_match_the_formula():
    p = _param([1.0, -2.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    g1, g2 = np.array([0.5, 1.0]), np.array([-1.0, 2.0])
    p.grad = g1
    opt.step()
    np.testing.assert_allclose(p.value, [1.0, -2.0] - 0.1 * g1, rtol=1e-15)
    p.grad = g2
    opt.step()
    v2 = 0.9 * g1 + g2
    np.testing.assert_allclose(p.value, [1.0, -2.0] - 0.1 * g1 - 0.1 * v2, rtol=1e-15)
    q = _param([3.0])
    q.grad = np.array([2.0])
    optim.SGD([q], lr=0.25).step()
    assert q.value[0] == 2.5


def test_adam_updates_match_the_formula():
    x0 = np.array([0.3, -1.0, 2.0])
    p = _param(x0)
    lr, b1, b2, eps = 0.01, 0.8, 0.99, 1e-8
    opt = optim.Adam([p], lr=lr, betas=(b1, b2), eps=eps)
    g1, g2 = np.array([0.1, -3.0, 0.0]), np.array([1.0, 2.0, -0.5])
    p.grad = g1
    opt.step()
    expected = x0 - lr * g1 / (np.abs(g1) + eps)
    np.testing.assert_allclose(p.value, expected, rtol=1e-14)
    p.grad = g2
    opt.step()
    m = b1 * (1 - b1) * g1 + (1 - b1) * g2
    v = b2 * (1 - b2) * g1**2 + (1 - b2) * g2**2
    mhat, vhat = m / (1 - b1**2), v / (1 - b2**2)
    np.testing.assert_allclose(p.value, expected - lr * mhat / (np.sqrt(vhat) + eps), rtol=1e-14)


def test_adam_on_complex_parameters_treats_re_and_im_as_reals():
    z = ad.Parameter(np.array([1 + 2j, -0.5j]))
    r = ad.Parameter(np.array([1.0, 2.0, 0.0, -0.5]))  # the same numbers as (Re, Im) pairs
    oz, orr = optim.Adam([z], lr=0.1), optim.Adam([r], lr=0.1)
    for g in (np.array([0.3 - 1j, 2 + 0.1j]), np.array([-1 + 1j, 0.5 - 0.2j])):
        z.grad, r.grad = g, g.view(np.float64).copy()
        oz.step()
        orr.step()
    np.testing.assert_array_equal(z.value.view(np.float64), r.value)


def test_optimizer_state_resumes_bit_identically():
    rng = np.random.default_rng(3)
    x, y = _data(rng)

    def run(net, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            _mse(net, x, y).backward()
            opt.step()

    a = nn.mlp([3, 4, 2], rng=np.random.default_rng(5))
    oa = optim.Adam(a.parameters(), lr=1e-2)
    run(a, oa, 6)
    b = nn.mlp([3, 4, 2], rng=np.random.default_rng(5))
    ob = optim.Adam(b.parameters(), lr=1e-2)
    run(b, ob, 3)
    net_state, opt_state = b.state_dict(), ob.state_dict()
    c = nn.mlp([3, 4, 2], rng=np.random.default_rng(77))
    c.load_state_dict(net_state)
    oc = optim.Adam(c.parameters(), lr=1e-2)
    oc.load_state_dict(opt_state)
    run(c, oc, 3)
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(c.state_dict()[k], v)


def test_optimizer_argument_errors():
    with pytest.raises(ValueError, match="no parameters"):
        optim.Adam([], lr=1e-3)
    with pytest.raises(TypeError, match="Parameters"):
        optim.SGD([ad.Tensor(np.zeros(2))], lr=1e-3)
    with pytest.raises(ValueError, match="positive"):
        optim.SGD([_param([1.0])], lr=0.0)


# --- the odd MLP --------------------------------------------------------------------------------


def test_odd_mlp_is_odd_to_machine_precision_on_a_dense_grid():
    rng = np.random.default_rng(6)
    odd = OddMLP([1, 16, 16, 1], rng=rng)
    generic = nn.mlp([1, 16, 16, 1], rng=rng)
    x = np.linspace(-4.0, 4.0, 20001)[:, None]
    assert np.max(np.abs(symmetric_part(odd, x))) < 1e-14
    sym_generic = np.max(np.abs(symmetric_part(generic, x)))
    assert sym_generic > 1e-3  # biases break the symmetry: clearly measurable
    np.testing.assert_allclose(antisymmetric_part(odd, x), odd(x).value, rtol=0, atol=0)


def test_odd_mlp_stays_odd_during_training_and_in_several_dimensions():
    rng = np.random.default_rng(7)
    net = OddMLP([3, 8, 8, 2], activation="sin", rng=rng)
    x = rng.standard_normal((32, 3))
    y = np.stack([x[:, 0] ** 3, np.sin(x[:, 1] * x[:, 2] * x[:, 0])], axis=1)
    opt = optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(20):
        opt.zero_grad()
        _mse(net, x, y).backward()
        opt.step()
    grid = 4 * rng.standard_normal((5000, 3))
    assert np.max(np.abs(symmetric_part(net, grid))) < 1e-14
    assert all("bias" not in name for name, _ in net.named_parameters())


def test_odd_mlp_rejects_non_odd_activations():
    with pytest.raises(ValueError, match="not odd"):
        OddMLP([1, 4, 1], activation="relu", rng=np.random.default_rng(0))


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_optimizers_update_scalar_parameters(opt):
    # a 0-d Parameter (e.g. a trainable coupling) minimises (p - 3)^2
    from latticeml.autodiff import Parameter, optim

    p = Parameter(np.array(0.0))
    o = optim.SGD([p], lr=0.1) if opt == "sgd" else optim.Adam([p], lr=0.1)
    for _ in range(300):
        o.zero_grad()
        loss = (p - 3.0) * (p - 3.0)
        loss.backward()
        o.step()
    assert p.value.shape == () and abs(float(p.value) - 3.0) < 1e-3
