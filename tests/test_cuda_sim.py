"""The CUDA kernels under Numba's CUDA simulator, each against its cpu twin (the reference).

This module needs ``NUMBA_ENABLE_CUDASIM=1`` before ``numba.cuda`` is first imported, so it runs
in a process of its own: ``tests/test_cuda.py::test_kernels_under_the_simulator`` starts it (the
whole suite and ``pytest -m cuda`` run it that way); in any other process it skips itself. To run
it directly::

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/test_cuda_sim.py

The simulator runs every kernel as Python, so the lattices are tiny (4x4, 3x2x2x2, 4x3x2, 2^4).
Shapes with an extent 3 make forward and backward neighbours differ; extents 2 keep SU(3) cheap.
"""

import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    pytest.skip("runs in a subprocess with NUMBA_ENABLE_CUDASIM=1 (tests/test_cuda.py)", allow_module_level=True)
pytest.importorskip("numba_cuda", reason="the CUDA backend needs numba-cuda: pip install 'latticeml[cuda]'")

from latticeml import groups
from latticeml.backends.cuda import sun as csun
from latticeml.backends.cuda import u1 as cu1
from latticeml.backends.cuda.arrays import DeviceField
from latticeml.observables import loops, topology
from latticeml.samplers import build_sampler, run_chain
from latticeml.smearing import gradient_flow, stout
from latticeml.theories import make_theory, sun, u1

pytestmark = pytest.mark.cuda

SEED = 1212
TOL = 1e-12


def close(cuda_value, cpu_value, tol=TOL):
    """max |cuda - cpu| <= tol, with the CUDA value copied to the host (a DeviceField or a number)."""
    a = np.asarray(cuda_value)
    b = np.asarray(cpu_value)
    assert a.shape == b.shape, (a.shape, b.shape)
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    assert err <= tol, err
    return err


# ----------------------------------------------------------------------------- U(1)


@pytest.mark.parametrize("shape", [(4, 4), (3, 2, 2, 2)], ids=["2d", "4d"])
def test_u1_kernels_equal_the_cpu_kernels(rng, shape):
    theta = u1.hot_start(rng, shape)
    p = rng.standard_normal(theta.shape)
    beta = 1.7
    close(cu1.plaquette_angles(theta), u1.plaquette_angles(theta))
    close(cu1.mean_plaquette(theta), u1.mean_plaquette(theta))
    close(cu1.action(theta, beta=beta), u1.action(theta, beta=beta), TOL * 100)  # S ~ 100: relative 1e-14
    close(cu1.staples(theta), u1.staples(theta))
    close(cu1.force(theta, beta=beta), u1.force(theta, beta=beta))
    close(cu1.evolve(theta, p, 0.37), u1.evolve(theta, p, 0.37))
    close(cu1.kinetic_energy(p), 0.5 * np.sum(p * p), TOL * 100)
    for d in range(len(shape)):
        close(cu1.polyakov_loop(theta, direction=d), loops.polyakov_loop(theta, direction=d))
    close(cu1.polyakov_loop_mean(theta), loops.polyakov_loop_mean(theta))
    for integrator in ("rk3", "euler"):
        close(cu1.flow_step(theta, step_size=0.05, integrator=integrator),
              gradient_flow.flow_step(theta, step_size=0.05, integrator=integrator))
    close(cu1.stout(theta, rho=0.1, n_steps=2), stout(theta, rho=0.1, n_steps=2))


def test_u1_wrap_edge_and_device_inputs(rng):
    """The drift wraps into (-pi, pi] like groups.wrap_angle (-pi goes to +pi); device fields pass through."""
    theta = np.array([[[np.pi, -np.pi], [3 * np.pi, 0.0]], [[-3 * np.pi, 1.0], [2.0, -4.0]]])
    zero = np.zeros_like(theta)
    close(cu1.evolve(theta, zero, 0.1), groups.wrap_angle(theta))
    on_device = cu1.to_angles(cu1.to_phases(theta))
    assert isinstance(on_device, DeviceField) and on_device.shape == theta.shape
    close(cu1.action(on_device, beta=1.0), u1.action(groups.wrap_angle(theta), beta=1.0))


# ----------------------------------------------------------------------------- SU(2), SU(3)


@pytest.mark.parametrize("N,shape", [(2, (4, 3, 2)), (3, (2, 2, 2, 2))], ids=["su2-3d", "su3-4d"])
def test_sun_kernels_equal_the_cpu_kernels(rng, N, shape):
    U = sun.hot_start(rng, shape, N)
    P = groups.random_algebra(rng, N, (len(shape),) + shape)
    beta = 2.3
    close(csun.plaquette_field(U), sun.plaquette_field(U))
    close(csun.mean_plaquette(U), sun.mean_plaquette(U))
    close(csun.action(U, beta=beta), sun.action(U, beta=beta), TOL * 100)
    close(csun.staples(U), sun.staples(U))
    close(csun.force(U, beta=beta), sun.force(U, beta=beta))
    close(csun.evolve(U, P, 0.23), sun.evolve(U, P, 0.23))
    close(csun.kinetic_energy(P), np.vdot(P, P).real, TOL * 100)
    for d in range(len(shape)):
        close(csun.polyakov_loop(U, direction=d), loops.polyakov_loop(U, direction=d))
    close(csun.flow_step(U, step_size=0.04), gradient_flow.flow_step(U, step_size=0.04))
    if N == 2:  # the rest of the flow and stout code is the same for every N (SU(3): test_gauge_invariance...)
        close(csun.flow(U, step_size=0.04, n_steps=2, integrator="euler"),
              gradient_flow.flow_step(gradient_flow.flow_step(U, step_size=0.04, integrator="euler"), step_size=0.04, integrator="euler"))
        close(csun.stout(U, rho=0.12, n_steps=2), stout(U, rho=0.12, n_steps=2))
    close(csun.clover_field_strength(U), topology.clover_field_strength(U))
    if len(shape) == 4:
        close(csun.topological_charge_density(U), topology.topological_charge_density(U))
        close(csun.topological_charge(U), topology.topological_charge(U))


def test_su3_exponential_branches(rng):
    """exp(X) on both sides of the small-Q series (c1 < 1e-12) and for det Q of either sign."""
    shape = (2, 2)
    U = sun.cold_start(shape, 3)
    P = groups.random_algebra(rng, 3, (2,) + shape)
    for eps in (1e-7, 0.3, -0.3, 2.5):
        close(csun.evolve(U, P, eps), sun.evolve(U, P, eps))


def test_gauge_invariance_and_unitarity_on_cuda(rng):
    shape = (2, 2, 2, 2)
    U = sun.hot_start(rng, shape, 3)
    Omega = groups.random_gauge_transform(rng, shape, 3)
    V = groups.gauge_transform(U, Omega)
    close(csun.action(V, beta=5.5), csun.action(U, beta=5.5), 1e-10)
    close(csun.topological_charge_density(V), csun.topological_charge_density(U))
    close(np.abs(np.asarray(csun.polyakov_loop(V))), np.abs(np.asarray(csun.polyakov_loop(U))))
    P = groups.random_algebra(rng, 3, (4,) + shape)
    smeared = csun.stout(U, rho=0.2)
    close(smeared, stout(U, rho=0.2))
    for out in (csun.evolve(U, P, 0.5), csun.flow(U, step_size=0.1, n_steps=1), smeared):
        assert max(groups.unitarity_violation(np.asarray(out))) < TOL
    theta = u1.hot_start(rng, (4, 4))
    alpha = groups.random_gauge_transform_u1(rng, (4, 4))
    close(cu1.action(groups.gauge_transform_u1(theta, alpha), beta=2.0), cu1.action(theta, beta=2.0), 1e-10)


# ----------------------------------------------------------------------------- HMC on the device


@pytest.mark.parametrize("name,shape,couplings", [("u1", (4, 4), {"beta": 1.5}), ("su2", (2, 2, 2, 2), {"beta": 2.2})])
def test_hmc_chain_is_the_cpu_chain(name, shape, couplings):
    """Same seed, same chain: momenta drawn on the host from the same Generator calls, everything else on the device."""
    chains = {}
    for backend in ("cpu", "cuda"):
        theory = make_theory(name, shape, backend=backend, **couplings)
        rng = np.random.default_rng(SEED)
        sampler = build_sampler(theory, "hmc", step_size=0.1, n_steps=4)
        chains[backend] = run_chain(sampler, theory.hot_start(rng), rng, n_measure=3, progress=False)
    cpu, gpu = chains["cpu"], chains["cuda"]
    assert isinstance(gpu.state.field, DeviceField) and gpu.acceptance.sum() >= 2  # the field moved on the device
    np.testing.assert_array_equal(gpu.acceptance, cpu.acceptance)
    close(gpu.records["plaquette"], cpu.records["plaquette"], 1e-10)
    close(gpu.state.field, cpu.state.field, 1e-10)
    assert set(gpu.records) == set(cpu.records)


def test_device_field_arithmetic(rng):
    x = rng.standard_normal((2, 3)) + 1j * rng.standard_normal((2, 3))
    y = rng.standard_normal((2, 3)) + 1j * rng.standard_normal((2, 3))
    X = DeviceField(csun.to_device(x, np.complex128))
    assert X.shape == (2, 3) and X.dtype == np.complex128 and X.ndim == 2 and X.size == 6
    np.testing.assert_array_equal(np.asarray(X), x)
    close(X - 0.5 * X, 0.5 * x)
    close(y - X, y - x)  # ndarray - DeviceField: NumPy defers to __rsub__
    close(X + y, x + y)
    close(-X / 4, -x / 4)
    with pytest.raises(TypeError):
        X * X


# ----------------------------------------------------------------------------- the theories on the device


def test_cuda_theories_and_their_refusals(rng):
    th = make_theory("su3", (3, 2, 2, 2), beta=5.7, backend="cuda")
    cpu = make_theory("su3", (3, 2, 2, 2), beta=5.7)
    assert type(th).__name__ == "CudaSU3" and th.name == "su3" and th.params == cpu.params and th.backend == "cuda"
    assert th.local_updates == frozenset() and th.describe() == "su3 (Wilson action) on CUDA"
    U = th.hot_start(np.random.default_rng(3))
    obs, ref = th.observables(U), cpu.observables(U)
    assert set(obs) == set(ref)
    for k in obs:
        close(obs[k], ref[k])
    assert th.kinetic_energy(th.random_momentum(np.random.default_rng(4))) == pytest.approx(
        cpu.kinetic_energy(cpu.random_momentum(np.random.default_rng(4))), rel=1e-13)
    with pytest.raises(ValueError, match="sample it with hmc|support"):
        build_sampler(th, "heatbath")
    with pytest.raises(ValueError, match=r"SU\(4\) runs on backend='cpu'"):
        make_theory("sun", (2, 2), beta=1.0, N=4, backend="cuda")
    with pytest.raises(ValueError, match="runs the theories .* with the Wilson action, not Phi4"):
        make_theory("phi4", (4, 4), m2=1.0, lam=0.0, backend="cuda")
    with pytest.raises(ValueError, match="with the Wilson action, not Improved"):
        make_theory("u1", (4, 4), beta=1.0, action="iwasaki", backend="cuda")
    with pytest.raises(ValueError, match="instanton moves run on backend 'cpu' only; on backend 'cuda' sample u1 with plain hmc"):
        build_sampler(make_theory("u1", (4, 4), beta=2.0, backend="cuda"), "hmc", step_size=0.1, n_steps=1, instanton_every=1)
    with pytest.raises(ValueError, match="one configuration at a time"):
        csun.action(U[None], beta=1.0, batched=True)
