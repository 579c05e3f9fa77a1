"""Tests of latticeml.exact against sample values of the closed forms and independent checks.

The sample values (15 digits) were evaluated from the closed forms they test, as stated here:
- 2D U(1) on an L x L torus, Wilson action: character expansion Z = sum_n I_n(beta)^V,
  <cos theta_P>_V = sum_n I_n^(V-1) (I_(n-1) + I_(n+1))/2 / Z, <W(RxT)>_V = sum_n I_(n+1)^A I_n^(V-A) / Z,
  and the geometric-charge susceptibility and P(Q) of C. Bonati and P. Rossi, PRD 99 (2019) 054503.
- 2D SU(N): one-plaquette integral Z_1 = sum_q det[I_(q+i-j)(beta/N)] (I. Bars and F. Green, PRD 20
  (1979) 3311; SU(2): I_2/I_1), and on the torus the Migdal-Rusakov sum over representations
  (B. Rusakov, Mod. Phys. Lett. A 5 (1990) 693).
- 4D SU(N) strong coupling: <P> = u + 16 u^5 u' (SU(2)), u + 72 u^5 u' (SU(3)) + O(u^9)
  (J.-M. Drouffe and J.-B. Zuber, Phys. Rep. 102 (1983) 1).
- Free scalar field: G(0) = (1/V) sum_p 1/(phat^2 + m^2), C(t) = cosh(E (L_t/2 - t)) / (2 sinh E sinh(E L_t/2)),
  cosh E = 1 + m^2/2 (standard form S = sum 1/2 (d phi)^2 + 1/2 m^2 phi^2).
Each value is also reproduced below by an independent computation (brute-force link integrals,
dblquad, Weyl eigenphase integrals, loops over momenta), so a wrong digit here cannot hide.

Independent references written here: brute-force link integrals on a 2x2 torus (periodic
trapezoid rule, spectrally exact for these smooth periodic integrands), plaquette-angle
integrals with scipy dblquad at V = 3, Weyl-formula eigenphase integrals for SU(N), plain loops
over momenta for the free field, and finite differences.
"""

import itertools

import numpy as np
import pytest
from scipy import integrate
from scipy.special import iv, ive

from latticeml import exact as ex

# ----------------------------------------------------------------------------- sample values of the closed forms

U1_TABLE = [  # beta, L, <cos theta_P>, <W(2x2)>, chi_t
    (1.0, 8, 0.446389965896535, 0.0397061423548103, 0.0406362361050721),
    (2.0, 8, 0.697774658010838, 0.237061359583229, 0.0193640454800509),
    (2.0, 4, 0.699251926818, 0.248922730676, 0.0181647570474),
    (6.0, 16, 0.912359304355077, 0.692888928023817, 0.00466680253220137),
]


@pytest.mark.parametrize("beta, L, plaquette, wilson, chi", U1_TABLE)
def test_u1_reference_table(beta, L, plaquette, wilson, chi):
    V = L * L
    assert ex.u1_2d_plaquette(beta, V) == pytest.approx(plaquette, rel=1e-10)
    assert ex.u1_2d_wilson_loop(beta, 2, 2, V) == pytest.approx(wilson, rel=1e-10)
    assert ex.u1_2d_topological_susceptibility(beta, V) == pytest.approx(chi, rel=1e-10)


def test_u1_charge_distribution_reference():
    P = ex.u1_2d_charge_distribution(2.0, 16, np.arange(-2, 3))
    expected = [0.0013481632, 0.1399164279, 0.7174688233, 0.1399164279, 0.0013481632]
    np.testing.assert_allclose(P, expected, rtol=0, atol=1e-10)  # quoted to 10 decimals


def test_sun_and_strong_coupling_and_free_field_references():
    assert ex.sun_2d_plaquette(1.0, 2) == pytest.approx(0.24019372387009, rel=1e-12)
    assert ex.sun_2d_plaquette(1.0, 3) == pytest.approx(0.0601265548335648, rel=1e-12)
    assert ex.su2_2d_plaquette_torus(4.0, 16) == pytest.approx(0.658185074567073, rel=1e-12)
    assert ex.su2_2d_plaquette_torus(4.0, None) == pytest.approx(0.65804726735936, rel=1e-12)
    assert ex.su2_4d_plaquette_strong_coupling(0.5) == pytest.approx(0.1238303, abs=5e-8)
    assert ex.su3_4d_plaquette_strong_coupling(1.0) == pytest.approx(0.06013021, abs=5e-9)
    assert ex.free_scalar_phi2((16, 16), 1.0) == pytest.approx(0.254049878757442, rel=1e-12)
    C = ex.free_scalar_zero_momentum_correlator((16, 16), 1.0)
    assert C[0] == pytest.approx(0.447213779128673, rel=1e-12)
    assert ex.free_scalar_energy(1.0) == pytest.approx(0.962423650119, abs=1e-12)


# ----------------------------------------------------------------------------- 2D U(1): brute force


def torus_link_integral(beta, L0, L1, M, observable):
    """<observable> and Z by the M-point trapezoid rule over every link angle not on a maximal tree.

    Links theta[mu][x0][x1]; tree: theta_0(x0, 0) for x0 < L0-1 and theta_1(x0, x1) for x1 < L1-1
    set to 0 (axial-like gauge). The integrand is periodic and entire in each angle, so the rule is
    exact up to Fourier modes of order M (~ I_M(2 beta)).
    """
    tree = {(0, x0, 0) for x0 in range(L0 - 1)} | {(1, x0, x1) for x0 in range(L0) for x1 in range(L1 - 1)}
    free = [link for link in itertools.product(range(2), range(L0), range(L1)) if link not in tree]
    grid = 2 * np.pi * np.arange(M) / M
    theta = {}
    for axis, link in enumerate(free):
        shape = [1] * len(free)
        shape[axis] = M
        theta[link] = grid.reshape(shape)
    for link in tree:
        theta[link] = 0.0

    def plaquette(x0, x1):
        return (theta[0, x0, x1] + theta[1, (x0 + 1) % L0, x1]
                - theta[0, x0, (x1 + 1) % L1] - theta[1, x0, x1])

    plaquettes = [plaquette(x0, x1) for x0 in range(L0) for x1 in range(L1)]
    weight = np.exp(beta * (sum(np.cos(p) for p in plaquettes) - len(plaquettes)))
    Z = np.mean(weight) * np.exp(beta * len(plaquettes))
    return np.mean(weight * observable(theta, plaquettes)) / np.mean(weight), Z


@pytest.mark.parametrize("beta", [0.7, 1.3])
def test_u1_torus_formulas_against_link_integral_on_2x2(beta):
    V = 4
    plaq, Z = torus_link_integral(beta, 2, 2, 18, lambda th, ps: sum(np.cos(p) for p in ps) / len(ps))
    assert ex.u1_2d_plaquette(beta, V) == pytest.approx(plaq, rel=1e-12)
    assert ex.u1_2d_log_partition_function(beta, V) == pytest.approx(np.log(Z), rel=1e-12)
    assert ex.u1_2d_partition_function(beta, V) == pytest.approx(Z, rel=1e-12)

    def polyakov_correlator(th, ps):  # loops along direction 0 (L_t = 2) at x1 = 0 and x1 = 1
        return np.cos((th[0, 0, 0] + th[0, 1, 0]) - (th[0, 0, 1] + th[0, 1, 1]))

    poly, _ = torus_link_integral(beta, 2, 2, 18, polyakov_correlator)
    assert ex.u1_2d_polyakov_correlator(beta, 1, 2, V) == pytest.approx(poly, rel=1e-11)


def test_u1_loop_identities_and_limits():
    beta = 1.7
    infinite = iv(1, beta) / iv(0, beta)
    assert ex.u1_2d_plaquette(beta) == pytest.approx(infinite, rel=1e-14)
    assert ex.u1_2d_plaquette(beta, np.inf) == ex.u1_2d_plaquette(beta, None)
    assert ex.u1_2d_wilson_loop(beta, 3, 2) == pytest.approx(infinite**6, rel=1e-13)
    assert ex.u1_2d_wilson_loop(beta, 1, 1, 36) == pytest.approx(ex.u1_2d_plaquette(beta, 36), rel=1e-13)
    assert ex.u1_2d_wilson_loop(beta, 6, 6, 36) == pytest.approx(1.0, rel=1e-14)  # whole torus
    assert ex.u1_2d_polyakov_correlator(beta, 0, 6, 36) == pytest.approx(1.0, rel=1e-14)
    # distance r and L_x - r bound complementary areas: same correlator
    assert ex.u1_2d_polyakov_correlator(beta, 2, 6, 36) == pytest.approx(
        ex.u1_2d_polyakov_correlator(beta, 4, 6, 36), rel=1e-13)
    # 1x1 torus: theta_P = 0 identically
    assert ex.u1_2d_plaquette(beta, 1) == pytest.approx(1.0, rel=1e-14)
    # approach to infinite volume, also at large beta and V without overflow
    for V in (10**4, 10**7):
        assert ex.u1_2d_plaquette(beta, V) == pytest.approx(infinite, rel=1e-12)
    assert np.isfinite(ex.u1_2d_log_partition_function(200.0, 10**6))
    assert ex.u1_2d_plaquette(200.0, 10**6) == pytest.approx(ive(1, 200.0) / ive(0, 200.0), rel=1e-12)
    assert ex.u1_2d_plaquette(0.0, 16) == 0.0
    # array input
    betas = np.array([[0.5, 1.0], [2.0, 3.0]])
    np.testing.assert_allclose(ex.u1_2d_plaquette(betas, 16),
                               [[ex.u1_2d_plaquette(b, 16) for b in row] for row in betas], rtol=0)


def plain_chi_t(beta, V):
    """chi_t with f_n', f_n'' by adaptive quad (independent of the library's quadrature)."""
    n = np.arange(-40, 41)
    f = iv(np.abs(n), beta)
    opts = dict(epsabs=0, epsrel=1e-13, limit=400)

    def moment(power, trig, k):
        def integrand(p):
            return p**power * trig(k * p) * np.exp(beta * np.cos(p))

        return -integrate.quad(integrand, 0, np.pi, **opts)[0] / np.pi

    f1 = np.array([moment(1, np.sin, k) for k in n])
    f2 = np.array([moment(2, np.cos, k) for k in n])
    return -np.sum((V - 1) * f ** (V - 2) * f1**2 + f ** (V - 1) * f2) / (4 * np.pi**2 * np.sum(f**V))


# quad cannot certify 1e-13 relative on the moments of large |n|, which cancel to ~1e-20 of the
# integrand's size, and says so (roundoff detected); they enter multiplied by f_n^(V-2), far below the
# 1e-10 checked here. (An absolute tolerance, or QUADPACK's sin/cos weights, still warn at some beta.)
@pytest.mark.filterwarnings("ignore:The occurrence of roundoff error:scipy.integrate.IntegrationWarning")
@pytest.mark.parametrize("beta, V", [(0.5, 5), (3.0, 6), (7.0, 9)])
def test_topological_susceptibility_against_quad(beta, V):
    assert ex.u1_2d_topological_susceptibility(beta, V) == pytest.approx(plain_chi_t(beta, V), rel=1e-10)


def charge_distribution_by_dblquad(beta, Q):
    """V = 3: P(Q) from the plaquette angles phi_1, phi_2 in (-pi, pi), phi_3 = 2 pi Q - phi_1 - phi_2."""

    def mass(q):
        def integrand(p2, p1):
            return np.exp(beta * (np.cos(p1) + np.cos(p2) + np.cos(2 * np.pi * q - p1 - p2) - 3))

        # phi_3 in (-pi, pi) needs phi_1 in (2 pi (q - 1), 2 pi (q + 1)) as well
        return integrate.dblquad(
            integrand, max(-np.pi, 2 * np.pi * (q - 1)), min(np.pi, 2 * np.pi * (q + 1)),
            lambda p1: max(-np.pi, 2 * np.pi * q - p1 - np.pi),
            lambda p1: min(np.pi, 2 * np.pi * q - p1 + np.pi),
            epsabs=1e-14, epsrel=1e-12)[0]

    masses = {q: mass(q) for q in (-1, 0, 1)}
    return masses[Q] / sum(masses.values())


@pytest.mark.parametrize("beta", [0.4, 1.5])
def test_charge_distribution_and_chi_at_v3_against_plaquette_integral(beta):
    P1 = charge_distribution_by_dblquad(beta, 1)
    P = ex.u1_2d_charge_distribution(beta, 3, np.array([-1, 0, 1, 2]))
    np.testing.assert_allclose(P, [P1, 1 - 2 * P1, P1, 0.0], rtol=0, atol=1e-12)
    assert ex.u1_2d_topological_susceptibility(beta, 3) == pytest.approx(2 * P1 / 3, rel=1e-10)


@pytest.mark.parametrize("beta, V", [(0.3, 4), (1.0, 5), (2.0, 16), (0.7, 9), (6.0, 64), (2.0, 400)])
def test_charge_distribution_normalised_with_second_moment_v_chi(beta, V):
    Q = np.arange(-(V // 2), V // 2 + 1)
    P = ex.u1_2d_charge_distribution(beta, V, Q)
    assert np.all(P >= -1e-15)
    np.testing.assert_allclose(P, P[::-1], rtol=0, atol=1e-15)
    assert np.sum(P) == pytest.approx(1.0, abs=1e-12)
    assert np.sum(Q**2 * P) / V == pytest.approx(ex.u1_2d_topological_susceptibility(beta, V), rel=1e-10)


@pytest.mark.parametrize("beta, V", [(2.0, 16), (0.7, 9), (4.0, 6)])
def test_charge_distribution_fourier_and_convolution_agree(beta, V):
    Q = np.arange(-3, 4)
    fourier = ex.u1_2d_charge_distribution(beta, V, Q, method="fourier")
    convolution = ex.u1_2d_charge_distribution(beta, V, Q, method="convolution")
    np.testing.assert_allclose(fourier, convolution, rtol=0, atol=1e-12)


def test_topology_limits_and_trivial_tori():
    for V in (1, 2):
        assert ex.u1_2d_topological_susceptibility(1.0, V) == 0.0
        np.testing.assert_array_equal(ex.u1_2d_charge_distribution(1.0, V, np.array([-1, 0, 1])), [0, 1, 0])
    assert ex.u1_2d_charge_distribution(1.0, 8, 4) == 0.0  # |Q| >= V/2
    # beta = 0, V > 2: chi = <phi^2>/(4 pi^2) of a uniform angle = 1/12 for every V
    assert ex.u1_2d_topological_susceptibility(0.0, 3) == pytest.approx(1 / 12, rel=1e-12)
    assert ex.u1_2d_topological_susceptibility(0.0, None) == pytest.approx(1 / 12, rel=1e-12)
    numerator = integrate.quad(lambda p: p**2 * np.exp(5.0 * (np.cos(p) - 1)), -np.pi, np.pi)[0]
    denominator = integrate.quad(lambda p: np.exp(5.0 * (np.cos(p) - 1)), -np.pi, np.pi)[0]
    chi_infinite = numerator / denominator / (4 * np.pi**2)
    assert ex.u1_2d_topological_susceptibility(5.0) == pytest.approx(chi_infinite, rel=1e-10)
    assert ex.u1_2d_topological_susceptibility(5.0, 10**6) == pytest.approx(chi_infinite, rel=1e-10)
    chi_large_beta = ex.u1_2d_topological_susceptibility(400.0)
    assert chi_large_beta * 4 * np.pi**2 * 400.0 == pytest.approx(1.0, rel=2e-3)  # 1 + O(1/beta)


# ----------------------------------------------------------------------------- 2D SU(N)


def weyl_one_plaquette(beta, N, M):
    """u = <Re tr U / N> and du/dbeta = <p^2> - <p>^2 over SU(N) by Weyl's integration formula
    (eigenphases theta_1..theta_{N-1} on an M-point periodic grid, theta_N = -sum)."""
    grid = 2 * np.pi * np.arange(M) / M
    phases = list(np.meshgrid(*([grid] * (N - 1)), indexing="ij"))
    phases.append(-sum(phases))
    vandermonde = np.ones_like(phases[0])
    for i, j in itertools.combinations(range(N), 2):
        vandermonde = vandermonde * np.abs(np.exp(1j * phases[i]) - np.exp(1j * phases[j])) ** 2
    p = sum(np.cos(t) for t in phases) / N
    weight = vandermonde * np.exp(beta * (p - 1))
    mean = np.sum(weight * p) / np.sum(weight)
    return mean, np.sum(weight * p**2) / np.sum(weight) - mean**2


@pytest.mark.parametrize("N, M", [(2, 64), (3, 64), (4, 24)])
@pytest.mark.parametrize("beta", [0.5, 3.0])
def test_one_plaquette_integral_against_weyl_formula(N, M, beta):
    u, du = weyl_one_plaquette(beta, N, M)
    assert ex.sun_2d_plaquette(beta, N) == pytest.approx(u, rel=1e-11)
    assert ex.sun_one_plaquette_derivative(beta, N) == pytest.approx(du, rel=1e-9)


def test_su2_one_plaquette_is_bessel_ratio_and_derivatives():
    betas = np.array([0.05, 0.5, 2.0, 7.0, 25.0])
    u = ex.sun_2d_plaquette(betas, 2)
    np.testing.assert_allclose(u, ive(2, betas) / ive(1, betas), rtol=1e-13)
    np.testing.assert_allclose(ex.sun_one_plaquette_derivative(betas, 2), 1 - u**2 - 3 * u / betas, rtol=1e-9)
    h = 1e-4
    for N in (3, 5):
        for beta in (0.8, 4.0):
            fd = (ex.sun_2d_plaquette(beta + h, N) - ex.sun_2d_plaquette(beta - h, N)) / (2 * h)
            assert ex.sun_one_plaquette_derivative(beta, N) == pytest.approx(fd, rel=1e-6)
    assert ex.sun_2d_wilson_loop(1.3, 2, 3, 3) == pytest.approx(ex.sun_2d_plaquette(1.3, 3) ** 6, rel=1e-14)


def test_su2_torus_is_derivative_of_log_z_and_approaches_infinite_volume():
    def log_z(beta, V):  # Z = sum_d (2 I_d(beta)/beta)^V, plain
        d = np.arange(1, 80)
        return np.log(np.sum((2 * iv(d, beta) / beta) ** V))

    h = 1e-5
    for beta, V in [(1.0, 4), (3.0, 9), (6.0, 16)]:
        fd = (log_z(beta + h, V) - log_z(beta - h, V)) / (2 * h * V)
        assert ex.su2_2d_plaquette_torus(beta, V) == pytest.approx(fd, rel=1e-8)
    for V in (10**4, 10**8):
        assert ex.su2_2d_plaquette_torus(4.0, V) == pytest.approx(ive(2, 4.0) / ive(1, 4.0), rel=1e-12)
    assert ex.su2_2d_plaquette_torus(0.0, 16) == 0.0


# ----------------------------------------------------------------------------- 4D and weak coupling


def test_strong_coupling_series_consistent_with_one_plaquette():
    for beta in (0.2, 0.5, 1.0):
        u = ex.sun_2d_plaquette(beta, 2)
        du = ex.sun_one_plaquette_derivative(beta, 2)
        assert ex.su2_4d_plaquette_strong_coupling(beta) == pytest.approx(u + 16 * u**5 * du, rel=1e-12)
        u3 = ex.sun_2d_plaquette(beta, 3)
        du3 = ex.sun_one_plaquette_derivative(beta, 3)
        assert ex.su3_4d_plaquette_strong_coupling(beta) == pytest.approx(u3 + 72 * u3**5 * du3, rel=1e-12)


def test_weak_coupling_matches_2d_exact_results_at_large_beta():
    beta = 200.0
    # 2D exact plaquettes have 1 - P = n_gen / (2 beta) + c / beta^2 + ..., c = O(1)
    exact_2d = {1: ex.u1_2d_plaquette(beta), 2: ex.sun_2d_plaquette(beta, 2), 3: ex.sun_2d_plaquette(beta, 3)}
    for N, plaquette in exact_2d.items():
        assert ex.plaquette_weak_coupling(beta, N, 2) == pytest.approx(plaquette, abs=2 / beta**2)
        assert abs(ex.plaquette_weak_coupling(beta, N, 2) - plaquette) < 0.1 * (1 - plaquette)
    assert ex.plaquette_weak_coupling(6.0, 3, 4) == pytest.approx(1 - 8 / 24)


# ----------------------------------------------------------------------------- free scalar field


def propagator_by_momentum_sum(shape, m2):
    V = np.prod(shape)
    G = np.zeros(shape)
    for k in itertools.product(*[range(L) for L in shape]):
        p = 2 * np.pi * np.array(k) / np.array(shape)
        phat2 = np.sum(4 * np.sin(p / 2) ** 2)
        for x in itertools.product(*[range(L) for L in shape]):
            G[x] += np.cos(p @ np.array(x)) / (phat2 + m2) / V
    return G


def test_free_propagator_against_momentum_sum_and_equation_of_motion():
    shape, m2 = (4, 3, 5), 0.6
    G = ex.free_scalar_propagator(shape, m2)
    np.testing.assert_allclose(G, propagator_by_momentum_sum(shape, m2), rtol=0, atol=1e-14)
    # (-Laplacian + m^2) G = delta
    laplacian = sum(np.roll(G, 1, mu) + np.roll(G, -1, mu) - 2 * G for mu in range(3))
    delta = np.zeros(shape)
    delta[0, 0, 0] = 1
    np.testing.assert_allclose(-laplacian + m2 * G, delta, rtol=0, atol=1e-14)
    np.testing.assert_allclose(ex.free_scalar_propagator(shape, m2, form="albergo"), G / 2, rtol=1e-15)
    assert ex.free_scalar_phi2(shape, m2) == pytest.approx(G[0, 0, 0], rel=1e-13)
    assert ex.free_scalar_phi2(shape, m2, form="albergo") == pytest.approx(G[0, 0, 0] / 2, rel=1e-13)


def test_albergo_form_schwinger_dyson_identity():
    # 2 (2d + m^2) <phi^2> - 4d <phi(x) phi(x+mu)> = 1 at lambda = 0
    for shape, m2 in [((6, 6), 0.3), ((4, 5, 3), 2.0)]:
        G = ex.free_scalar_propagator(shape, m2, form="albergo")
        d = len(shape)
        neighbour = np.mean([G[tuple(1 if nu == mu else 0 for nu in range(d))] for mu in range(d)])
        assert 2 * (2 * d + m2) * G.flat[0] - 4 * d * neighbour == pytest.approx(1.0, rel=1e-13)


@pytest.mark.parametrize("shape, m2", [((16, 16), 1.0), ((7, 4, 3), 0.25), ((200, 2), 3.0)])
def test_zero_momentum_correlator_closed_form_equals_slice_sum(shape, m2):
    C = ex.free_scalar_zero_momentum_correlator(shape, m2)
    G = ex.free_scalar_propagator(shape, m2)
    # the FFT sum has absolute rounding ~1e-16 (C decays to ~1e-57 in the long lattice)
    np.testing.assert_allclose(C, G.reshape(shape[0], -1).sum(axis=1), rtol=1e-12, atol=1e-15)
    E = ex.free_scalar_energy(m2)
    np.testing.assert_allclose(C[2:] + C[:-2], 2 * np.cosh(E) * C[1:-1], rtol=1e-12)  # transfer matrix
    np.testing.assert_allclose(ex.free_scalar_zero_momentum_correlator(shape, m2, form="albergo"), C / 2)


# ----------------------------------------------------------------------------- bad input


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="beta"):
        ex.u1_2d_plaquette(-1.0, 16)
    with pytest.raises(ValueError, match="volume"):
        ex.u1_2d_plaquette(1.0, 0)
    with pytest.raises(ValueError, match="volume"):
        ex.u1_2d_plaquette(1.0, 16.0)
    with pytest.raises(ValueError, match="finite volume"):
        ex.u1_2d_log_partition_function(1.0, None)
    with pytest.raises(ValueError, match="exceeds"):
        ex.u1_2d_wilson_loop(1.0, 5, 5, 16)
    with pytest.raises(ValueError, match="Q must"):
        ex.u1_2d_charge_distribution(1.0, 16, 0.5)
    with pytest.raises(ValueError, match="convolution"):
        ex.u1_2d_charge_distribution(0.5, 3, 0, method="fourier")
    with pytest.raises(ValueError, match="method"):
        ex.u1_2d_charge_distribution(2.0, 16, 0, method="magic")
    with pytest.raises(ValueError, match="rank"):
        ex.sun_2d_plaquette(1.0, 1)
    with pytest.raises(ValueError, match="m2 must be > 0"):
        ex.free_scalar_propagator((8, 8), -4.0)
    with pytest.raises(ValueError, match="form"):
        ex.free_scalar_phi2((8, 8), 1.0, form="kappa")
    with pytest.raises(ValueError, match="beta > 0"):
        ex.plaquette_weak_coupling(0.0, 2, 4)
