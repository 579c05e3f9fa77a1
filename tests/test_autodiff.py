"""Tests of the autodiff engine: every VJP rule against central finite differences (float64,
real and complex, with broadcasting), the tape semantics, custom ops, and error messages."""

import numpy as np
import pytest
from numba import njit

from latticeml import autodiff as ad
from latticeml.autodiff import Tensor, check_grads


def _rng(seed):
    return np.random.default_rng(seed)


_g = _rng(1234)


def R(*shape):
    return _g.standard_normal(shape)


def C(*shape):
    return _g.standard_normal(shape) + 1j * _g.standard_normal(shape)


def POS(*shape):
    return _g.uniform(0.5, 2.0, size=shape)


# name -> list of (function of Tensors, args). Broadcasting, complex and mixed cases included.
CASES = {
    "add": [(lambda x, y: x + y, (R(3, 4), R(4))), (lambda x, y: x + y, (R(2, 1, 3), R(4, 1))),
            (lambda x, y: x + y, (C(3), C(2, 3))), (lambda x, y: x + y, (R(3), C(2, 3)))],
    "subtract": [(lambda x, y: x - y, (R(3, 1), R(1, 4))), (lambda x, y: x - y, (C(2, 3), R(3)))],
    "multiply": [(lambda x, y: x * y, (R(3, 4), R(4))), (lambda x, y: x * y, (R(2, 1, 3), R(4, 1))),
                 (lambda x, y: x * y, (C(3, 2), C(2))), (lambda x, y: x * y, (R(3, 2), C(3, 1)))],
    "divide": [(lambda x, y: x / y, (R(3, 4), POS(4))), (lambda x, y: x / y, (C(2, 3), C(3) + 2))],
    "negative": [(lambda x: -x, (R(2, 3),)), (lambda x: -x, (C(4),))],
    "power": [(lambda x: x ** 2.5, (POS(3, 2),)), (lambda x: x ** 3, (R(4),)),
              (lambda x, p: x ** p, (POS(3, 2), R(2))), (lambda z: z ** 2, (C(3),))],
    "matmul": [(lambda a, b: a @ b, (R(2, 3, 4), R(4, 5))), (lambda a, b: a @ b, (R(2, 1, 3, 4), R(3, 4, 2))),
               (lambda a, b: a @ b, (R(4), R(4, 3))), (lambda a, b: a @ b, (R(2, 3, 4), R(4))),
               (lambda a, b: a @ b, (R(4), R(4))), (lambda a, b: a @ b, (C(2, 3, 3), C(3, 3))),
               (lambda a, b: a @ b, (R(3, 3), C(2, 3, 3)))],
    "exp": [(ad.exp, (R(3, 2),)), (ad.exp, (C(3),))],
    "log": [(ad.log, (POS(3, 2),)), (ad.log, (C(4),))],
    "sqrt": [(ad.sqrt, (POS(5),)), (ad.sqrt, (C(4) + 3,))],
    "sin": [(ad.sin, (R(2, 3),)), (ad.sin, (C(3),))],
    "cos": [(ad.cos, (R(2, 3),)), (ad.cos, (C(3),))],
    "tanh": [(ad.tanh, (R(2, 3),)), (ad.tanh, (0.5 * C(3),))],
    "sigmoid": [(ad.sigmoid, (3 * R(2, 3),))],
    "softplus": [(ad.softplus, (3 * R(2, 3),))],
    "relu": [(ad.relu, (R(4, 3),))],
    "leaky_relu": [(ad.leaky_relu, (R(4, 3),)), (lambda x: ad.leaky_relu(x, slope=0.2), (R(5),))],
    "arctan2": [(ad.arctan2, (R(3, 4), R(4))), (ad.arctan2, (R(2, 1), R(1, 3)))],
    "abs": [(ad.abs, (R(3, 2),)), (ad.abs, (C(4),))],
    "conj": [(ad.conj, (C(3, 2),))],
    "real": [(ad.real, (C(3, 2),)), (ad.real, (R(3),))],
    "imag": [(ad.imag, (C(3, 2),))],
    "sum": [(ad.sum, (R(2, 3, 4),)), (lambda x: ad.sum(x, axis=1), (R(2, 3, 4),)),
            (lambda x: x.sum(axis=(0, 2), keepdims=True), (R(2, 3, 4),)), (lambda z: z.sum(axis=-1), (C(2, 3),))],
    "mean": [(ad.mean, (R(2, 3),)), (lambda x: x.mean(axis=(0, 2)), (R(2, 3, 4),)),
             (lambda x: ad.mean(x, axis=1, keepdims=True), (C(2, 3),))],
    "logsumexp": [(ad.logsumexp, (R(2, 3),)), (lambda x: ad.logsumexp(x, axis=-1), (5 * R(3, 4),)),
                  (lambda x: ad.logsumexp(x, axis=0, keepdims=True), (R(3, 2),))],
    "trace": [(ad.trace, (R(2, 3, 3),)), (ad.trace, (C(3, 3),))],
    "reshape": [(lambda x: x.reshape(6, 4), (R(2, 3, 4),)), (lambda x: ad.reshape(x, (-1,)), (C(2, 2),))],
    "transpose": [(lambda x: x.transpose(2, 0, 1), (R(2, 3, 4),)), (lambda x: x.T, (R(2, 3),))],
    "swapaxes": [(lambda x: ad.swapaxes(x, -1, -2), (C(2, 3, 4),)), (ad.dagger, (C(2, 3, 3),))],
    "broadcast_to": [(lambda x: ad.broadcast_to(x, (2, 3, 4)), (R(3, 1),))],
    "getitem": [(lambda x: x[1:, ::2], (R(3, 5),)), (lambda x: x[..., 0], (R(2, 3),)),
                (lambda x: x[np.array([0, 0, 2])], (R(3, 2),)), (lambda x: x[np.array([True, False, True])], (C(3),)),
                (lambda x: x[None, 1], (R(3, 2),))],
    "where": [(lambda x, y: ad.where(np.array([True, False, True]), x, y), (R(2, 3), R(3))),
              (lambda x, y: ad.where(np.array([[True], [False]]), x, y), (C(2, 3), C(1))),
              (lambda x: ad.where(np.array([True, False]), x, 0.0), (R(2),))],
    "roll": [(lambda x: ad.roll(x, 1, axis=0), (R(4, 3),)), (lambda x: ad.roll(x, (1, -2), axis=(0, 1)), (R(3, 5),))],
    "concatenate": [(lambda x, y, z: ad.concatenate([x, y, z], axis=1), (R(2, 1), R(2, 3), R(2, 2))),
                    (lambda x, y: ad.concatenate([x, y]), (C(2, 3), R(1, 3)))],
    "stack": [(lambda x, y: ad.stack([x, y], axis=1), (R(2, 3), R(2, 3))), (lambda x, y: ad.stack([x, y]), (C(3), C(3)))],
}


def test_every_primitive_has_a_gradcheck_case():
    assert set(CASES) == set(ad.PRIMITIVES), "add a gradcheck case for every primitive in ops.py"


@pytest.mark.parametrize(
    "name,k", [(name, k) for name, cases in CASES.items() for k in range(len(cases))], ids=lambda v: str(v)
)
def test_vjp_rule_matches_finite_differences(name, k):
    f, args = CASES[name][k]
    out = f(*[Tensor(a, requires_grad=True) for a in args])
    assert name in _ops_on_tape(out), f"case does not exercise {name}"
    errors = check_grads(f, *args, rng=_rng(k))
    assert set(errors) == set(range(len(args)))


def _ops_on_tape(t):
    seen, stack, ops = set(), [t], set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        ops.add(n.op)
        stack.extend(n.parents)
    return ops


def test_gradcheck_detects_a_wrong_rule():
    wrong = ad.defvjp(ad.Primitive("wrong_sin", np.sin), lambda g, ans, x: g * np.sin(x))
    with pytest.raises(AssertionError, match="disagrees with finite differences"):
        check_grads(wrong, R(4), rng=_rng(0))


def test_missing_rule_names_the_primitive():
    nodiff = ad.Primitive("my_floor_op", np.floor)
    nodiff(R(3))  # fine without gradients
    with pytest.raises(NotImplementedError, match="my_floor_op"):
        nodiff(Tensor(R(3), requires_grad=True))
    partly = ad.defvjp(ad.Primitive("half_rule", np.multiply), lambda g, ans, x, y: g * y)
    with pytest.raises(NotImplementedError, match="'half_rule' with respect to argument 1"):
        partly(R(2), Tensor(R(2), requires_grad=True))


def test_real_only_ops_reject_complex():
    with pytest.raises(TypeError, match="relu"):
        ad.relu(Tensor(C(3)))
    with pytest.raises(TypeError, match="periodic_conv"):
        ad.periodic_conv(C(1, 1, 4), R(1, 1, 3))


def test_gradients_accumulate_over_shared_nodes_and_calls():
    x = Tensor(np.array([0.3, -1.2, 2.0]), requires_grad=True)
    y = ad.tanh(x)
    loss = (y * y + y).sum()  # y used twice: contributions add up
    loss.backward()
    t = np.tanh(x.value)
    expected = (2 * t + 1) * (1 - t**2)
    np.testing.assert_allclose(x.grad, expected, rtol=1e-14)
    loss.backward()
    np.testing.assert_allclose(x.grad, 2 * expected, rtol=1e-14)


def test_gradient_is_not_aliased_between_leaves():
    a = Tensor(R(3), requires_grad=True)
    b = Tensor(R(3), requires_grad=True)
    (a + b).sum().backward()
    a.grad *= 5.0
    np.testing.assert_array_equal(b.grad, np.ones(3))


def test_value_and_grad_and_grad():
    def f(x, y):
        return (ad.sin(x) * y).sum()

    x, y = R(4), R(4)
    v, (gx, gy) = ad.value_and_grad(f, (0, 1))(x, y)
    assert v == pytest.approx(np.sum(np.sin(x) * y), rel=1e-14)
    np.testing.assert_allclose(gx, np.cos(x) * y, rtol=1e-14)
    np.testing.assert_allclose(gy, np.sin(x), rtol=1e-14)
    np.testing.assert_allclose(ad.grad(f)(x, y), np.cos(x) * y, rtol=1e-14)
    # an argument the output does not depend on has zero gradient
    np.testing.assert_array_equal(ad.grad(lambda x, y: (x * 2.0).sum(), 1)(x, y), np.zeros(4))


def test_no_grad_records_nothing():
    x = Tensor(R(3), requires_grad=True)
    with ad.no_grad():
        y = ad.exp(x) * 2.0
        assert ad.is_grad_enabled() is False
    assert ad.is_grad_enabled() is True
    assert not y.requires_grad and y.parents == ()


def test_backward_needs_a_real_scalar_or_a_seed():
    x = Tensor(R(3), requires_grad=True)
    with pytest.raises(ValueError, match="real scalar"):
        (x * 2.0).backward()
    (x * 2.0).backward(np.array([1.0, 0.0, 0.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="real scalar"):
        (x * 1j).sum().backward()


def test_numpy_arrays_on_the_left_record_nodes():
    x = Tensor(R(3), requires_grad=True)
    y = np.array([1.0, 2.0, 3.0]) * x + np.float64(2.0) - np.ones(3) @ np.eye(3) / x
    assert isinstance(y, Tensor) and y.requires_grad
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0, 2.0, 3.0] + 1.0 / x.value**2, rtol=1e-13)


def test_tensor_rejects_non_float_dtypes():
    with pytest.raises(TypeError, match="float64 or complex128"):
        Tensor(np.array(["a"]))
    assert Tensor(np.arange(3)).dtype == np.float64
    assert Tensor(np.ones(2, dtype=np.complex64)).dtype == np.complex128


def test_complex_gradient_convention():
    """L = |z|^2 = x^2 + y^2: gradient dL/dx + i dL/dy = 2 z (PyTorch's convention)."""
    z = C(5)
    g = ad.grad(lambda z: (z * ad.conj(z)).real.sum())(z)
    np.testing.assert_allclose(g, 2 * z, rtol=1e-14)
    # the same through abs: L = sum |z|  ->  z / |z|
    np.testing.assert_allclose(ad.grad(lambda z: ad.abs(z).sum())(z), z / np.abs(z), rtol=1e-14)
    # descent: one small step along -grad lowers the loss
    f = lambda z: (ad.abs(z @ z - 1.0) ** 2).sum()  # noqa: E731
    M = 0.3 * C(3, 3)
    val, gM = ad.value_and_grad(f)(M)
    assert ad.value_and_grad(f)(M - 1e-3 * gM)[0] < val


def test_complex_matrix_traces_and_conjugation_as_in_lcnn():
    """Re tr(W W^dagger V): a typical gauge-invariant readout of complex matrices."""
    W, V = C(2, 3, 3), C(3, 3)
    check_grads(lambda W, V: ad.real(ad.trace(W @ ad.dagger(W) @ V)), W, V, rng=_rng(5))


# --- a custom op with a Numba kernel and hand-written backward: the U(1) plaquette action ---


@njit(cache=True)
def _u1_action_kernel(theta, beta):
    _, L0, L1 = theta.shape
    s = 0.0
    for x in range(L0):
        for y in range(L1):
            p = theta[0, x, y] + theta[1, (x + 1) % L0, y] - theta[0, x, (y + 1) % L1] - theta[1, x, y]
            s += beta * (1.0 - np.cos(p))
    return s


@njit(cache=True)
def _u1_force_kernel(theta, beta, g, out):
    _, L0, L1 = theta.shape
    out[:] = 0.0
    for x in range(L0):
        for y in range(L1):
            p = theta[0, x, y] + theta[1, (x + 1) % L0, y] - theta[0, x, (y + 1) % L1] - theta[1, x, y]
            f = g * beta * np.sin(p)
            out[0, x, y] += f
            out[1, (x + 1) % L0, y] += f
            out[0, x, (y + 1) % L1] -= f
            out[1, x, y] -= f


def _u1_fwd(theta, beta):
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    return np.array(_u1_action_kernel(theta, float(beta))), (theta, float(beta))


def _u1_bwd(g, res, needs):
    theta, beta = res
    out = np.empty_like(theta)
    _u1_force_kernel(theta, beta, float(g), out)
    return out, None


u1_action = ad.custom_op("u1_wilson_action", _u1_fwd, _u1_bwd)


def _u1_action_composite(theta, beta):
    p = theta[0] + ad.roll(theta[1], -1, axis=0) - ad.roll(theta[0], -1, axis=1) - theta[1]
    return (beta * (1.0 - ad.cos(p))).sum()


def test_custom_op_numba_kernel_with_handwritten_backward():
    theta = _rng(7).uniform(-np.pi, np.pi, size=(2, 4, 3))
    check_grads(lambda t: u1_action(t, 1.7), theta, rng=_rng(8))
    v1, g1 = ad.value_and_grad(lambda t: u1_action(t, 1.7))(theta)
    v2, g2 = ad.value_and_grad(lambda t: _u1_action_composite(t, 1.7))(theta)
    assert v1 == pytest.approx(v2, rel=1e-13)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-13)
    # gauge invariance of the action <-> the force sums to zero at each site's divergence
    assert abs(g1.sum()) < 1e-12


def test_custom_op_reports_wrong_gradient_count_and_shape():
    bad_count = ad.custom_op("bad_count", lambda x: (x * 2, None), lambda g, r, needs: (g, g))
    with pytest.raises(RuntimeError, match="bad_count"):
        bad_count(Tensor(R(3), requires_grad=True)).sum().backward()
    bad_shape = ad.custom_op("bad_shape", lambda x: (x * 2, None), lambda g, r, needs: (g[:2],))
    with pytest.raises(RuntimeError, match="bad_shape"):
        bad_shape(Tensor(R(3), requires_grad=True)).sum().backward()


def test_docstring_custom_op_example_runs(tmp_path):
    import importlib.util

    import latticeml.autodiff.tensor as tensor_module

    doc = tensor_module.__doc__
    block = doc.split("backward (the periodic convolution, stout smearing, lattice gauge-equivariant layers)::")[1]
    code = "\n".join(line[6:] for line in block.split("\nGradient convention")[0].splitlines())
    path = tmp_path / "docstring_example.py"  # a real file, so that njit(cache=True) can cache
    path.write_text(code)
    spec = importlib.util.spec_from_file_location("docstring_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cube = module.cube
    np.testing.assert_allclose(ad.grad(lambda x: cube(x).sum())(np.array([1.0, -2.0])), [3.0, 12.0])


# --- optional cross-check against PyTorch ------------------------------------------------------


def test_against_torch_if_installed():
    torch = pytest.importorskip("torch")
    rng = _rng(11)
    A, B, x = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal((5, 3))
    Z = rng.standard_normal((2, 3, 3)) + 1j * rng.standard_normal((2, 3, 3))

    def ours(A, B, x, Z):
        h = ad.tanh(x @ A) @ B
        s = ad.softplus(h).sum() + ad.logsumexp(ad.sigmoid(h), axis=0).sum()
        return s + ad.real(ad.trace(Z @ ad.dagger(Z) @ Z)).sum() + ad.abs(Z).sum()

    def theirs(A, B, x, Z):
        h = torch.tanh(x @ A) @ B
        s = torch.nn.functional.softplus(h).sum() + torch.logsumexp(torch.sigmoid(h), 0).sum()
        return s + torch.real(torch.diagonal(Z @ Z.conj().transpose(-1, -2) @ Z, dim1=-2, dim2=-1).sum(-1)).sum() + Z.abs().sum()

    v, gs = ad.value_and_grad(ours, (0, 1, 2, 3))(A, B, x, Z)
    tt = [torch.tensor(a, requires_grad=True) for a in (A, B, x, Z)]
    tv = theirs(*tt)
    tv.backward()
    assert v == pytest.approx(tv.item(), rel=1e-13)
    for g, t in zip(gs, tt):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-11, atol=1e-12)
