"""Local updates (Metropolis, heatbath, overrelaxation): kernels vs plain-NumPy references, exact
single-variable and single-link distributions, invariants (purity, reproducibility, unitarity,
microcanonical overrelaxation) and input errors.

The NumPy references below are written from the formulas (np.roll staples, vectorised over one
checkerboard colour) and share no code with the kernels; they consume the random numbers in
the documented order, so the Metropolis sweeps must agree to rounding.
"""

import numba
import numpy as np
import pytest
from scipy import stats
from scipy.integrate import cumulative_trapezoid
from scipy.special import ive

from latticeml import _threads, groups
from latticeml.lattice import checkerboard_sites, sweep_order
from latticeml.samplers import heatbath, metropolis
from latticeml.samplers.chain import run_chain
from latticeml.theories import make_theory, sun_local, u1

# ----------------------------------------------------------------------------- NumPy references


def shift(f, axis, n):
    """f(x + n e_axis) on the lattice axes of f (np.roll, periodic)."""
    return np.roll(f, -n, axis=axis)


def dagger(M):
    return np.conj(np.swapaxes(M, -1, -2))


def u1_staples_np(theta):
    """A_mu(x) = sum_nu [e^{i(t_nu(x+mu) - t_mu(x+nu) - t_nu(x))} + e^{i(-t_nu(x+mu-nu) - t_mu(x-nu) + t_nu(x-nu))}]."""
    D = theta.shape[0]
    A = np.zeros(theta.shape, complex)
    for mu in range(D):
        for nu in range(D):
            if nu != mu:
                up = shift(theta[nu], mu, 1) - shift(theta[mu], nu, 1) - theta[nu]
                lo = -shift(shift(theta[nu], mu, 1), nu, -1) - shift(theta[mu], nu, -1) + shift(theta[nu], nu, -1)
                A[mu] += np.exp(1j * up) + np.exp(1j * lo)
    return A


def sun_staples_np(U):
    """A_mu(x) = sum_nu [U_nu(x+mu) U_mu(x+nu)^+ U_nu(x)^+ + U_nu(x+mu-nu)^+ U_mu(x-nu)^+ U_nu(x-nu)]."""
    D = U.shape[0]
    A = np.zeros(U.shape, complex)
    for mu in range(D):
        for nu in range(D):
            if nu != mu:
                A[mu] += shift(U[nu], mu, 1) @ dagger(shift(U[mu], nu, 1)) @ dagger(U[nu])
                A[mu] += dagger(shift(shift(U[nu], mu, 1), nu, -1)) @ dagger(shift(U[mu], nu, -1)) @ shift(U[nu], nu, -1)
    return A


def wrap_np(t):
    return groups.wrap_angle(t)


def colours(shape):
    return checkerboard_sites(shape)


def phi4_metropolis_np(phi, rng, m2, lam, step, hits):
    """One checkerboard sweep, vectorised over a colour; dS = -2 n d(phi) + (2D + m2) d(phi^2) + lam d(phi^4)."""
    phi = phi.copy()
    shape, D = phi.shape, phi.ndim
    half = phi.size // 2
    shifts, uniforms = rng.random((2, half, hits)), rng.random((2, half, hits))
    for p, sites in enumerate(colours(shape)):
        n = sum(shift(phi, mu, 1) + shift(phi, mu, -1) for mu in range(D)).ravel()[sites]
        x = phi.ravel()[sites]
        for h in range(hits):
            new = x + step * (2 * shifts[p, :, h] - 1)
            dS = -2 * n * (new - x) + (2 * D + m2) * (new**2 - x**2) + lam * (new**4 - x**4)
            x = np.where((dS <= 0) | (uniforms[p, :, h] < np.exp(-dS)), new, x)
        phi.ravel()[sites] = x  # ravel of a C-contiguous array is a view
    return phi


def u1_metropolis_np(theta, rng, beta, step, hits):
    theta = theta.copy()
    D, shape = theta.shape[0], theta.shape[1:]
    half = theta[0].size // 2
    shifts, uniforms = rng.random((D, 2, half, hits)), rng.random((D, 2, half, hits))
    for mu in range(D):
        for p, sites in enumerate(colours(shape)):
            A = u1_staples_np(theta)[mu].ravel()[sites]
            t = theta[mu].ravel()[sites]
            for h in range(hits):
                new = t + step * (2 * shifts[mu, p, :, h] - 1)
                dS = -beta * np.real((np.exp(1j * new) - np.exp(1j * t)) * A)
                t = np.where((dS <= 0) | (uniforms[mu, p, :, h] < np.exp(-dS)), new, t)
            theta[mu].ravel()[sites] = wrap_np(t)
    return theta


def sun_metropolis_np(U, rng, beta, step, hits):
    U = U.copy()
    D, shape, N = U.shape[0], U.shape[1:-2], U.shape[-1]
    half = int(np.prod(shape)) // 2
    R = groups.random_near_identity(rng, N, (D, 2, half, hits), spread=step)
    uniforms = rng.random((D, 2, half, hits))
    for mu in range(D):
        for p, sites in enumerate(colours(shape)):
            A = sun_staples_np(U)[mu].reshape(-1, N, N)[sites]
            link = U[mu].reshape(-1, N, N)[sites]
            for h in range(hits):
                trial = R[mu, p, :, h] @ link
                dS = -beta / N * np.einsum("sij,sji->s", trial - link, A).real
                acc = (dS <= 0) | (uniforms[mu, p, :, h] < np.exp(-dS))
                link = np.where(acc[:, None, None], trial, link)
            U[mu].reshape(-1, N, N)[sites] = link
    return U


def su2_matrix(q):
    """q0 + i q.sigma as 2x2 matrices, q of shape (..., 4)."""
    q0, q1, q2, q3 = np.moveaxis(q, -1, 0)
    return np.stack([np.stack([q0 + 1j * q3, q2 + 1j * q1], -1), np.stack([-q2 + 1j * q1, q0 - 1j * q3], -1)], -2)


def sun_overrelax_np(U, order):
    """Brown-Woch/Creutz reflection R = (V^+)^2 in every SU(2) subgroup, vectorised over a colour."""
    U = U.copy()
    D, shape, N = U.shape[0], U.shape[1:-2], U.shape[-1]
    for mu, p in order:
        sites = colours(shape)[p]
        link = U[mu].reshape(-1, N, N)[sites]
        W = link @ sun_staples_np(U)[mu].reshape(-1, N, N)[sites]
        for i in range(N - 1):
            for j in range(i + 1, N):
                b = W[:, [i, j]][:, :, [i, j]]
                a = 0.5 * np.stack(
                    [
                        (b[:, 0, 0] + b[:, 1, 1]).real,
                        (b[:, 0, 1] + b[:, 1, 0]).imag,
                        (b[:, 0, 1] - b[:, 1, 0]).real,
                        (b[:, 0, 0] - b[:, 1, 1]).imag,
                    ],
                    -1,
                )
                V = su2_matrix(a / np.linalg.norm(a, axis=-1, keepdims=True))
                r = dagger(V) @ dagger(V)
                for M in (link, W):
                    M[:, [i, j], :] = r @ M[:, [i, j], :]
        U[mu].reshape(-1, N, N)[sites] = link
    return U


# ----------------------------------------------------------------------------- fixtures

THEORIES = {
    "phi4": lambda: make_theory("phi4", (4, 6), m2=-1.0, lam=0.5),
    "u1-2d": lambda: make_theory("u1", (4, 6), beta=1.3),
    "u1-3d": lambda: make_theory("u1", (4, 2, 4), beta=0.9),
    "su2-3d": lambda: make_theory("su2", (4, 2, 4), beta=2.1),
    "su3-4d": lambda: make_theory("su3", (2, 4, 2, 2), beta=5.5),
    "su4-2d": lambda: make_theory("sun", (4, 4), beta=4.0, N=4),
}


def samplers_for(theory):
    out = [metropolis.sampler(theory, step_size=0.7, hits=2)]
    if theory.name != "phi4":
        out += [heatbath.sampler(theory), heatbath.sampler(theory, overrelax=2), heatbath.overrelaxation_sampler(theory, sweeps=2)]
    return out


def hot(theory, seed=0):
    return theory.hot_start(np.random.default_rng(seed))


# ----------------------------------------------------------------------------- kernels vs NumPy


def test_phi4_metropolis_matches_numpy_reference():
    th = make_theory("phi4", (6, 4, 4), m2=-2.0, lam=1.3)
    phi = hot(th)
    new, info = metropolis.step(np.random.default_rng(5), metropolis.init(phi, th), th, step_size=1.1, hits=3)
    ref = phi4_metropolis_np(phi, np.random.default_rng(5), th.m2, th.lam, 1.1, 3)
    np.testing.assert_allclose(new.field, ref, rtol=0, atol=1e-12)
    assert 0.2 < info.acceptance < 0.9 and info.n_proposals == 3 * phi.size


@pytest.mark.parametrize("shape", [(4, 6), (4, 2, 4)])
def test_u1_metropolis_matches_numpy_reference(shape):
    th = make_theory("u1", shape, beta=1.7)
    theta = hot(th)
    new, info = metropolis.step(np.random.default_rng(8), metropolis.init(theta, th), th, step_size=1.3, hits=2)
    ref = u1_metropolis_np(theta, np.random.default_rng(8), th.beta, 1.3, 2)
    np.testing.assert_allclose(new.field, ref, rtol=0, atol=1e-12)
    assert info.n_proposals == 2 * theta.size


@pytest.mark.parametrize("name, shape, N", [("su2", (4, 2, 4), 2), ("su3", (2, 2, 4, 2), 3), ("sun", (4, 4), 4)])
def test_sun_metropolis_matches_numpy_reference(name, shape, N):
    th = make_theory(name, shape, beta=4.5, N=N) if name == "sun" else make_theory(name, shape, beta=4.5)
    U = hot(th)
    new, info = metropolis.step(np.random.default_rng(2), metropolis.init(U, th), th, step_size=0.6, hits=2)
    ref = sun_metropolis_np(U, np.random.default_rng(2), th.beta, 0.6, 2)
    np.testing.assert_allclose(new.field, ref, rtol=0, atol=1e-12)
    assert 0.05 < info.acceptance < 0.95


def test_u1_overrelaxation_matches_numpy_reference_and_is_an_involution():
    th = make_theory("u1", (4, 4, 2), beta=2.0)
    theta = hot(th, 3)
    new, _ = heatbath.overrelaxation_step(np.random.default_rng(0), heatbath.init(theta, th), th)
    ref = theta.copy()
    for mu, p in sweep_order(3):
        sites = colours(th.shape)[p]
        A = u1_staples_np(ref)[mu].ravel()[sites]
        ref[mu].ravel()[sites] = wrap_np(-2 * np.angle(A) - ref[mu].ravel()[sites])
    np.testing.assert_allclose(new.field, ref, rtol=0, atol=1e-12)
    # each sublattice reflection is an involution: sweep, then the reversed sweep, gives the start back
    back = new.field.copy()
    u1.overrelax_sweep(back, order=sweep_order(3, reverse=True))
    np.testing.assert_allclose(wrap_np(back - theta), 0.0, atol=1e-12)
    assert np.abs(new.field - theta).max() > 0.1  # and it did move the links


@pytest.mark.parametrize("name, shape", [("su2", (4, 2, 4)), ("su3", (2, 4, 2, 2)), ("sun", (4, 4))])
def test_sun_overrelaxation_matches_numpy_reference(name, shape):
    th = make_theory(name, shape, beta=3.0, N=4) if name == "sun" else make_theory(name, shape, beta=3.0)
    U = hot(th, 4)
    new, _ = heatbath.overrelaxation_step(np.random.default_rng(0), heatbath.init(U, th), th)
    ref = sun_overrelax_np(U, sweep_order(th.dim))
    np.testing.assert_allclose(new.field, ref, rtol=0, atol=1e-12)
    assert np.abs(new.field - U).max() > 0.1


def test_su2_overrelaxation_is_an_involution():
    """For SU(2) the one subgroup is the whole group: each link reflection is an involution, so the
    reversed sweep undoes a sweep. (For N >= 3 the product over subgroups is undone only by the
    subgroups in reverse order; stationarity needs no more.)"""
    th = make_theory("su2", (4, 2, 4), beta=3.0)
    U = hot(th, 4)
    new, _ = heatbath.overrelaxation_step(np.random.default_rng(0), heatbath.init(U, th), th)
    back = new.field.copy()
    sun_local.overrelax_sweep(back, order=sweep_order(th.dim, reverse=True))
    np.testing.assert_allclose(back, U, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- exact distributions


@pytest.mark.parametrize("kappa", [0.0, 0.05, 1.0, 4.0, 60.0])
def test_von_mises_draws_follow_scipy_vonmises(kappa):
    x = u1.sample_von_mises(np.random.default_rng(int(10 * kappa) + 1), kappa, 40_000)
    assert np.all((x > -np.pi) & (x <= np.pi))
    cdf = stats.uniform(loc=-np.pi, scale=2 * np.pi).cdf if kappa == 0 else stats.vonmises(kappa).cdf
    assert stats.kstest(x, cdf).pvalue > 1e-3
    # <cos t> = I_1/I_0 and <sin t> = 0 within 4 sigma of the sample error
    c, s = np.cos(x), np.sin(x)
    assert abs(c.mean() - ive(1, kappa) / ive(0, kappa)) < 4 * c.std() / np.sqrt(x.size) + 1e-12
    assert abs(s.mean()) < 4 * s.std() / np.sqrt(x.size)


def su2_a0_cdf(alpha):
    """Exact CDF of sqrt(1 - x^2) exp(alpha x) on [-1, 1], tabulated on a fine grid."""
    x = np.linspace(-1, 1, 200_001)
    F = cumulative_trapezoid(np.sqrt(1 - x * x) * np.exp(alpha * (x - 1)), x, initial=0.0)
    return lambda y: np.interp(y, x, F / F[-1])


@pytest.mark.parametrize("alpha", [0.0, 0.4, 1.69, 1.71, 3.0, 25.0])
def test_su2_a0_draws_follow_the_exact_density(alpha):
    """Both branches (Creutz below KP_MIN_ALPHA = 1.7, Kennedy-Pendleton above)."""
    x = sun_local.sample_su2_a0(np.random.default_rng(int(100 * alpha)), alpha, 40_000)
    assert np.all(np.abs(x) <= 1)
    assert stats.kstest(x, su2_a0_cdf(alpha)).pvalue > 1e-3
    mean = ive(2, alpha) / ive(1, alpha) if alpha > 0 else 0.0  # <x0> = I_2/I_1
    assert abs(x.mean() - mean) < 4 * x.std() / np.sqrt(x.size)


def repeated_single_sublattice_updates(theory, field, kernel_call, repeats):
    """Update only the (mu=0, even) links `repeats` times from the same neighbourhood; their staples do
    not involve each other, so every repetition is an independent draw of each link's conditional law."""
    out = []
    for _ in range(repeats):
        work = field.copy()
        kernel_call(work)
        out.append(work[0].reshape((-1,) + field.shape[1 + theory.dim :])[colours(theory.shape)[0]])
    return np.array(out)


def test_u1_heatbath_draws_each_link_from_its_von_mises_conditional():
    th = make_theory("u1", (4, 4), beta=1.7)
    theta = hot(th, 5)
    rng = np.random.default_rng(6)
    order = np.array([[0, 0]])
    call = lambda w: u1.heatbath_sweep(rng, w, beta=th.beta, order=order)
    draws = repeated_single_sublattice_updates(th, theta, call, 3000)  # (repeats, links)
    A = u1_staples_np(theta)[0].ravel()[colours(th.shape)[0]]
    # theta + arg A ~ von Mises(beta |A|): map each link's draws through its own CDF and pool
    u = np.concatenate([stats.vonmises(th.beta * abs(a)).cdf(wrap_np(d + np.angle(a))) for d, a in zip(draws.T, A)])
    assert stats.kstest(u, "uniform").pvalue > 1e-3


def test_su2_heatbath_draws_each_link_from_its_conditional():
    th = make_theory("su2", (4, 4), beta=1.9)
    U = hot(th, 7)
    rng = np.random.default_rng(8)
    order = np.array([[0, 0]])
    call = lambda w: sun_local.heatbath_sweep(rng, w, beta=th.beta, order=order)
    draws = repeated_single_sublattice_updates(th, U, call, 3000)  # (repeats, links, 2, 2)
    A = sun_staples_np(U)[0].reshape(-1, 2, 2)[colours(th.shape)[0]]
    k = np.sqrt(np.linalg.det(A).real)  # A = k V, V in SU(2)
    V = A / k[:, None, None]
    X = draws @ V  # X = U V has density exp(beta k x0) in the Haar measure
    x0 = 0.5 * np.trace(X, axis1=-2, axis2=-1).real
    u = np.concatenate([su2_a0_cdf(th.beta * kk)(col) for col, kk in zip(x0.T, k)])
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    # the direction of the vector part is uniform: x3 / |x| uniform in [-1, 1]
    x3 = 0.5 * (X[..., 0, 0] - X[..., 1, 1]).imag
    cos_polar = (x3 / np.sqrt(1 - x0**2)).ravel()
    assert stats.kstest(cos_polar, stats.uniform(loc=-1, scale=2).cdf).pvalue > 1e-3


# ----------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("key", list(THEORIES))
def test_steps_are_pure_and_reproducible(key):
    th = THEORIES[key]()
    field = hot(th, 1)
    for smp in samplers_for(th):
        state = smp.init(field)
        before = state.field.copy()
        a, info_a = smp.step(np.random.default_rng(11), state)
        b, info_b = smp.step(np.random.default_rng(11), state)
        np.testing.assert_array_equal(state.field, before)  # input untouched
        np.testing.assert_array_equal(a.field, b.field)  # same seed, same field bit for bit
        assert info_a == info_b and 0 <= info_a.acceptance <= 1
        assert a.field is not state.field and a.field.dtype == field.dtype and a.field.shape == field.shape


@pytest.mark.parametrize("key", ["phi4", "u1-3d", "su3-4d"])
def test_chains_do_not_depend_on_the_number_of_threads(key, monkeypatch):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has a single thread here")
    for kind in ("local_phi4", "local_u1", "local_sun"):  # parallel even on tiny lattices
        monkeypatch.setitem(_threads.PARALLEL_MIN, kind, 0)
    th = THEORIES[key]()
    results = []
    old = numba.get_num_threads()
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            for smp in samplers_for(th):
                state, rng = smp.init(hot(th, 2)), np.random.default_rng(4)
                for _ in range(3):
                    state, _ = smp.step(rng, state)
                results.append((threads, smp.name, smp.settings, state.field))
    finally:
        numba.set_num_threads(old)
    n = len(samplers_for(th))
    for first, second in zip(results[:n], results[n:]):
        np.testing.assert_array_equal(first[3], second[3])


@pytest.mark.parametrize("key", ["su2-3d", "su3-4d", "su4-2d"])
def test_links_stay_special_unitary(key):
    th = THEORIES[key]()
    for smp in samplers_for(th):
        state, rng = smp.init(hot(th, 3)), np.random.default_rng(5)
        for _ in range(25):
            state, _ = smp.step(rng, state)
        unit, det = groups.unitarity_violation(state.field)
        assert unit < 1e-12 and det < 1e-12, (smp.name, unit, det)


@pytest.mark.parametrize("key", ["u1-2d", "u1-3d"])
def test_u1_angles_stay_wrapped(key):
    th = THEORIES[key]()
    for smp in samplers_for(th):
        state, rng = smp.init(hot(th, 3)), np.random.default_rng(5)
        for _ in range(5):
            state, _ = smp.step(rng, state)
        assert np.all((state.field > -np.pi) & (state.field <= np.pi))


@pytest.mark.parametrize("key", ["u1-2d", "u1-3d", "su2-3d", "su3-4d", "su4-2d"])
def test_overrelaxation_is_microcanonical(key):
    th = THEORIES[key]()
    smp = heatbath.overrelaxation_sampler(th, sweeps=3)
    state = smp.init(hot(th, 9))
    S0 = th.action(state.field)
    new, info = smp.step(np.random.default_rng(0), state)
    assert abs(th.action(new.field) - S0) < 1e-12 * abs(S0)
    assert info.acceptance == 1.0 and info.sweeps == 3
    assert np.abs(new.field - state.field).max() > 0.1


def test_small_steps_are_almost_always_accepted():
    for key in ("phi4", "u1-2d", "su3-4d"):
        th = THEORIES[key]()
        _, info = metropolis.sampler(th, step_size=1e-6).step(np.random.default_rng(0), metropolis.init(hot(th), th))
        assert info.acceptance > 0.99


def test_heatbath_info_and_settings():
    th = THEORIES["su3-4d"]()
    smp = heatbath.sampler(th, overrelax=3)
    assert smp.name == "heatbath" and smp.settings == {"overrelax": 3}
    _, info = smp.step(np.random.default_rng(0), smp.init(hot(th)))
    assert info.acceptance == 1.0 and info.overrelax == 3 and 1.0 <= info.trials_per_draw < 3.0
    m = metropolis.sampler(THEORIES["phi4"]())
    assert m.name == "metropolis" and m.settings == {"step_size": THEORIES["phi4"]().metropolis_step_size, "hits": 1}


def test_samplers_drive_the_chain_runner():
    th = THEORIES["u1-2d"]()
    res = run_chain(heatbath.sampler(th, overrelax=1), th.cold_start(), np.random.default_rng(0), n_measure=5, n_therm=2, progress=False)
    assert res.records["plaquette"].shape == (5,) and res.n_steps == 7 and np.all(res.acceptance == 1.0)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda th: metropolis.sampler(th, step_size=0.0), "step_size"),
        (lambda th: metropolis.sampler(th, step_size=-1.0), "step_size"),
        (lambda th: metropolis.sampler(th, step_size=float("nan")), "step_size"),
        (lambda th: metropolis.sampler(th, hits=0), "hits"),
        (lambda th: metropolis.sampler(th, hits=1.5), "hits"),
        (lambda th: heatbath.sampler(th, overrelax=-1), "overrelax"),
        (lambda th: heatbath.sampler(th, overrelax=True), "overrelax"),
        (lambda th: heatbath.overrelaxation_sampler(th, sweeps=0), "sweeps"),
    ],
)
def test_bad_settings_raise(build, message):
    with pytest.raises(ValueError, match=message):
        build(THEORIES["u1-2d"]())


def test_bad_theories_and_inputs_raise():
    phi4 = THEORIES["phi4"]()
    with pytest.raises(ValueError, match="u1, su2, su3 and sun"):
        heatbath.sampler(phi4)
    with pytest.raises(ValueError, match="u1, su2, su3 and sun"):
        heatbath.overrelaxation_sampler(phi4)
    with pytest.raises(TypeError, match="theory"):
        metropolis.sampler("u1")
    odd = make_theory("u1", (4, 5), beta=1.0)
    for build in (metropolis.sampler, heatbath.sampler, heatbath.overrelaxation_sampler):
        with pytest.raises(ValueError, match="even"):
            build(odd)
    with pytest.raises(ValueError, match="even"):
        metropolis.step(np.random.default_rng(0), metropolis.State(odd.cold_start()), odd)
    with pytest.raises(ValueError, match="even"):
        heatbath.step(np.random.default_rng(0), heatbath.State(odd.cold_start()), odd)
    th = THEORIES["su3-4d"]()
    smp = heatbath.sampler(th)
    with pytest.raises(TypeError, match="Generator"):
        smp.step(np.random.RandomState(0), smp.init(th.cold_start()))
    with pytest.raises(ValueError, match="shape"):
        smp.step(np.random.default_rng(0), heatbath.State(th.cold_start()[:, :1]))
    with pytest.raises(ValueError, match="not SU"):
        smp.init(2 * th.cold_start())
    with pytest.raises(ValueError, match="kappa"):
        u1.sample_von_mises(np.random.default_rng(0), -1.0, 3)
    with pytest.raises(ValueError, match="alpha"):
        sun_local.sample_su2_a0(np.random.default_rng(0), float("inf"), 3)
