"""Wilson loops, plaquette and Polyakov loops: kernels vs a plain NumPy path walker, exact values, invariances."""


import numpy as np
import pytest

from latticeml import groups
from latticeml.observables import loops


SEED = 31415  # the seed of the shared ``rng`` fixture (tests/conftest.py)


# ----------------------------------------------------------------------------- references and builders


def hot_links(rng, group, shape):
    """A random configuration: U(1) angles (float64) or Haar SU(N) (complex128); group is 'u1' or N."""
    D = len(shape)
    if group == "u1":
        return rng.uniform(-np.pi, np.pi, size=(D,) + tuple(shape))
    return groups.haar_su(rng, group, (D,) + tuple(shape))


def path_product(links, steps):
    """Plain NumPy: the ordered product of links along a path from every site x (np.roll only).

    ``steps`` is a list of signed directions ``(+1, mu)`` / ``(-1, mu)``. Returns U(1) angle sums
    ``(*shape)`` or SU(N) products ``(*shape, N, N)``.
    """
    D = links.shape[0]
    u1 = np.isrealobj(links)
    shape = links.shape[1 : 1 + D]
    offset = np.zeros(D, dtype=int)

    def at(field, off):  # field seen from x + off
        return np.roll(field, tuple(-o for o in off), axis=tuple(range(D)))

    if u1:
        acc = np.zeros(shape)
    else:
        N = links.shape[-1]
        acc = np.broadcast_to(np.eye(N, dtype=complex), shape + (N, N)).copy()
    for sign, mu in steps:
        if sign > 0:
            link = at(links[mu], offset)
            offset[mu] += 1
        else:
            offset[mu] -= 1
            link = at(links[mu], offset)
            link = -link if u1 else np.conj(np.swapaxes(link, -1, -2))
        acc = acc + link if u1 else acc @ link
    return acc


def ref_loop_field(links, R, T, mu, nu):
    """Re tr / N (or cos) of the loop R along mu, T along nu, walked step by step."""
    steps = [(1, mu)] * R + [(1, nu)] * T + [(-1, mu)] * R + [(-1, nu)] * T
    W = path_product(links, steps)
    if np.isrealobj(links):
        return np.cos(W)
    return np.trace(W, axis1=-2, axis2=-1).real / links.shape[-1]


def ref_plaquette_field(links, mu, nu):
    """The textbook plaquette U_mu(x) U_nu(x+mu) U_mu(x+nu)^+ U_nu(x)^+ with np.roll, per site."""
    fw = lambda f, d: np.roll(f, -1, axis=d)  # noqa: E731
    if np.isrealobj(links):
        return np.cos(links[mu] + fw(links[nu], mu) - fw(links[mu], nu) - links[nu])
    dag = lambda M: np.conj(np.swapaxes(M, -1, -2))  # noqa: E731
    P = links[mu] @ fw(links[nu], mu) @ dag(fw(links[mu], nu)) @ dag(links[nu])
    return np.trace(P, axis1=-2, axis2=-1).real / links.shape[-1]


def constant_flux_u1(shape, fluxes):
    """U(1) angles whose plaquettes in plane (mu, nu) all equal phi = 2 pi n / (L_mu L_nu) (mod 2 pi).

    ``fluxes`` maps planes (mu, nu) to the integer number n of flux quanta; the planes must not
    share a direction. theta_nu(x) = phi x_mu gives phi on every plaquette but those with
    x_mu = L_mu - 1, where the jump -phi (L_mu - 1) is repaired by the twisted boundary link
    theta_mu(x) = -phi L_mu x_nu on the slice x_mu = L_mu - 1 (the last one, x_nu = L_nu - 1,
    closes up because phi L_mu L_nu = 2 pi n).
    """
    D = len(shape)
    theta = np.zeros((D,) + tuple(shape))
    x = np.meshgrid(*[np.arange(L) for L in shape], indexing="ij")
    for (mu, nu), n in fluxes.items():
        phi = 2 * np.pi * n / (shape[mu] * shape[nu])
        theta[nu] += phi * x[mu]
        theta[mu] += np.where(x[mu] == shape[mu] - 1, -phi * shape[mu] * x[nu], 0.0)
    return groups.wrap_angle(theta)


def embed_u1(theta, charges):
    """SU(N) links diag(exp(i q_a theta)) for integer charges q_a summing to zero."""
    assert sum(charges) == 0
    N = len(charges)
    U = np.zeros(theta.shape + (N, N), dtype=complex)
    for a, q in enumerate(charges):
        U[..., a, a] = np.exp(1j * q * theta)
    return U


# ----------------------------------------------------------------------------- kernels vs NumPy references

CASES = [("u1", (5, 6)), ("u1", (4, 5, 3)), (2, (4, 3, 5)), (3, (3, 4, 3, 4)), (4, (4, 5))]


@pytest.mark.parametrize("group,shape", CASES)
@pytest.mark.parametrize("R,T", [(1, 1), (2, 1), (1, 2), (2, 2)])
def test_loop_field_matches_path_walker(group, shape, R, T, rng):
    links = hot_links(rng, group, shape)
    F_mu = loops.wilson_loop_field(links, R, T, orientation="mu")
    F_nu = loops.wilson_loop_field(links, R, T, orientation="nu")
    F_both = loops.wilson_loop_field(links, R, T)
    assert F_mu.shape == (len(loops.planes(len(shape))),) + shape
    for p, (mu, nu) in enumerate(loops.planes(len(shape))):
        np.testing.assert_allclose(F_mu[p], ref_loop_field(links, R, T, mu, nu), atol=1e-13)
        # the other orientation: R along nu and T along mu (walked clockwise here: same Re tr)
        np.testing.assert_allclose(F_nu[p], ref_loop_field(links, R, T, nu, mu), atol=1e-13)
    np.testing.assert_allclose(F_both, 0.5 * (F_mu + F_nu), atol=1e-15)
    np.testing.assert_allclose(loops.wilson_loops(links, R, T), F_both.mean(axis=tuple(range(1, F_both.ndim))), atol=1e-15)
    assert loops.wilson_loop(links, R, T) == pytest.approx(F_both.mean(), abs=1e-15)


@pytest.mark.parametrize("group,shape", CASES)
def test_plaquette_is_textbook_plaquette(group, shape, rng):
    links = hot_links(rng, group, shape)
    F = loops.wilson_loop_field(links, 1, 1)
    ref = np.stack([ref_plaquette_field(links, mu, nu) for mu, nu in loops.planes(len(shape))])
    np.testing.assert_allclose(F, ref, atol=1e-13)
    assert loops.plaquette(links) == pytest.approx(ref.mean(), abs=1e-14)


def test_plaquette_agrees_with_theories_module(rng):
    """1x1 loops equal the theories' plaquette fields (cross-module consistency)."""
    u1 = pytest.importorskip("latticeml.theories.u1")
    sun = pytest.importorskip("latticeml.theories.sun")
    theta = hot_links(rng, "u1", (6, 5))
    U = hot_links(rng, 3, (3, 4, 3, 4))
    np.testing.assert_allclose(
        np.cos(u1.plaquette_angles(theta)), loops.wilson_loop_field(theta, 1, 1), atol=1e-13
    )
    np.testing.assert_allclose(sun.plaquette_field(U), loops.wilson_loop_field(U, 1, 1), atol=1e-13)
    assert u1.planes is loops.planes is sun.planes  # one definition, in latticeml.lattice


@pytest.mark.parametrize("group", ["u1", 3])
def test_wilson_line_matches_path_walker_and_winds(group, rng):
    shape = (3, 5)
    links = hot_links(rng, group, shape)
    for mu, n in [(0, 2), (1, 4), (0, 7)]:  # n = 7 > L_0 winds twice and more
        np.testing.assert_allclose(loops.wilson_line(links, mu, n), path_product(links, [(1, mu)] * n), atol=1e-13)


# ----------------------------------------------------------------------------- exact values


@pytest.mark.parametrize("R,T", [(1, 1), (2, 3), (3, 2), (4, 4)])
@pytest.mark.parametrize("n", [1, -2])
def test_constant_field_loops_are_cos_of_enclosed_flux(R, T, n):
    """Every plaquette carries phi, so an R x T loop carries R T phi: W = cos(R T phi) exactly, at every site."""
    shape = (6, 8)
    theta = constant_flux_u1(shape, {(0, 1): n})
    phi = 2 * np.pi * n / 48
    np.testing.assert_allclose(ref_loop_field(theta, 1, 1, 0, 1), np.cos(phi), atol=1e-13)  # the builder
    np.testing.assert_allclose(loops.wilson_loop_field(theta, R, T), np.cos(R * T * phi), atol=1e-13)
    # the same abelian field embedded in SU(2) and SU(3): Re tr W / N = mean_a cos(q_a R T phi)
    for charges in [(1, -1), (1, 1, -2)]:
        U = embed_u1(theta, charges)
        expect = np.mean([np.cos(q * R * T * phi) for q in charges])
        np.testing.assert_allclose(loops.wilson_loop_field(U, R, T), expect, atol=1e-13)


@pytest.mark.parametrize("group", ["u1", 2, 3])
def test_cold_start_is_one(group):
    shape = (4, 3, 3)
    links = np.zeros((3,) + shape) if group == "u1" else np.broadcast_to(np.eye(group, dtype=complex), (3,) + shape + (group, group))
    np.testing.assert_allclose(loops.wilson_loops(links, 2, 2), 1.0, atol=1e-15)
    np.testing.assert_allclose(loops.polyakov_loop(links, direction=1), 1.0, atol=1e-15)
    np.testing.assert_allclose(loops.polyakov_correlator(links), 1.0, atol=1e-15)


# ----------------------------------------------------------------------------- gauge invariance


@pytest.mark.parametrize("group,shape", [("u1", (6, 5)), ("u1", (4, 4, 3)), (2, (4, 3, 4)), (3, (3, 4, 3, 4))])
def test_gauge_invariance(group, shape, rng):
    links = hot_links(rng, group, shape)
    if group == "u1":
        g = groups.gauge_transform_u1(links, groups.random_gauge_transform_u1(rng, shape))
    else:
        g = groups.gauge_transform(links, groups.random_gauge_transform(rng, shape, group))
    for R, T in [(1, 1), (2, 1), (2, 2)]:
        np.testing.assert_allclose(loops.wilson_loop_field(g, R, T), loops.wilson_loop_field(links, R, T), atol=1e-12)
    for d in range(len(shape)):
        np.testing.assert_allclose(loops.polyakov_loop(g, direction=d), loops.polyakov_loop(links, direction=d), atol=1e-12)
    C, Cg = (loops.polyakov_correlator(f, spatial_directions=[1]) for f in (links, g))
    np.testing.assert_allclose(Cg, C, atol=1e-12)


# ----------------------------------------------------------------------------- Polyakov loops


@pytest.mark.parametrize("group,shape", [("u1", (5, 4)), (2, (3, 4, 5)), (3, (4, 3, 3, 3))])
def test_polyakov_loop_matches_reference(group, shape, rng):
    links = hot_links(rng, group, shape)
    for d in range(len(shape)):
        W = path_product(links, [(1, d)] * shape[d])
        W = np.take(W, 0, axis=d)  # loops starting on the slice x_d = 0
        ref = np.exp(1j * W) if group == "u1" else np.trace(W, axis1=-2, axis2=-1) / group
        P = loops.polyakov_loop(links, direction=d)
        assert P.shape == shape[:d] + shape[d + 1 :]
        np.testing.assert_allclose(P, ref, atol=1e-13)
        assert loops.polyakov_loop_mean(links, direction=d) == pytest.approx(ref.mean(), abs=1e-14)


@pytest.mark.parametrize("N", [2, 3])
def test_centre_transformation_rotates_polyakov_loop_only(N, rng):
    """Multiplying the time links of one slice by z = exp(2 pi i / N) gives P -> z P; contractible loops do not change."""
    links = hot_links(rng, N, (4, 3, 4))
    z = np.exp(2j * np.pi / N)
    twisted = links.copy()
    twisted[0, 2] *= z
    np.testing.assert_allclose(loops.polyakov_loop(twisted), z * loops.polyakov_loop(links), atol=1e-13)
    np.testing.assert_allclose(loops.wilson_loop_field(twisted, 2, 1), loops.wilson_loop_field(links, 2, 1), atol=1e-13)


def test_polyakov_correlator_matches_reference(rng):
    links = hot_links(rng, 2, (3, 6, 6))
    P = loops.polyakov_loop(links)
    ref = [np.mean([np.mean(P * np.conj(np.roll(P, -r, axis=a))) for a in (0, 1)]) for r in range(4)]
    C = loops.polyakov_correlator(links)
    np.testing.assert_allclose(C, ref, atol=1e-14)
    assert C[0] == pytest.approx(np.mean(np.abs(P) ** 2))
    # a single spatial direction, and a time direction other than 0
    np.testing.assert_allclose(loops.polyakov_correlator(links, spatial_directions=[2])[2], np.mean(P * np.conj(np.roll(P, -2, axis=1))), atol=1e-14)
    P1 = loops.polyakov_loop(links, direction=1)
    C1 = loops.polyakov_correlator(links, direction=1, spatial_directions=[2])
    np.testing.assert_allclose(C1[3], np.mean(P1 * np.conj(np.roll(P1, -3, axis=1))), atol=1e-14)


# ----------------------------------------------------------------------------- batches


@pytest.mark.parametrize("group,shape", [("u1", (4, 6)), (2, (4, 3, 3))])
def test_batched_equals_one_at_a_time(group, shape, rng):
    batch = np.stack([hot_links(rng, group, shape) for _ in range(3)])
    for f, kw in [
        (loops.wilson_loop_field, dict(R=2, T=1)),
        (loops.wilson_loops, dict(R=1, T=2, orientation="nu")),
        (loops.wilson_loop, dict(R=2, T=2)),
        (loops.plaquette, {}),
        (loops.wilson_line, dict(mu=1, n=3)),
        (loops.polyakov_loop, dict(direction=1)),
        (loops.polyakov_loop_mean, {}),
        (loops.polyakov_correlator, dict(spatial_directions=[1])),
    ]:
        args = (kw.pop("R"), kw.pop("T")) if "R" in kw else ()
        args += (kw.pop("mu"), kw.pop("n")) if "mu" in kw else ()
        got = f(batch, *args, batched=True, **kw)
        np.testing.assert_array_equal(got, np.stack([np.asarray(f(c, *args, **kw)) for c in batch]))
    assert isinstance(loops.plaquette(batch[0]), float) and isinstance(loops.polyakov_loop_mean(batch[0]), complex)


# ----------------------------------------------------------------------------- errors


def test_loop_that_wraps_is_refused_and_orientation_rescues(rng):
    theta = hot_links(rng, "u1", (8, 4))
    with pytest.raises(ValueError, match="wrap around the torus"):
        loops.wilson_loops(theta, 4, 1)  # R = L_1 in the 'nu' orientation
    with pytest.raises(ValueError, match="wrap around the torus"):
        loops.wilson_loop(theta, 1, 4, orientation="mu")
    # 6 along direction 0 (L=8) and 2 along direction 1 (L=4) fits in the 'mu' orientation only
    np.testing.assert_allclose(loops.wilson_loops(theta, 6, 2, orientation="mu"), [ref_loop_field(theta, 6, 2, 0, 1).mean()], atol=1e-14)
    with pytest.raises(ValueError, match="integer >= 1"):
        loops.wilson_loops(theta, 0, 1)
    with pytest.raises(ValueError, match="orientation"):
        loops.wilson_loops(theta, 1, 1, orientation="up")


def test_bad_links_raise(rng):
    with pytest.raises(TypeError, match="float64 angles for U\\(1\\)"):
        loops.plaquette(np.zeros((2, 4, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="batched=True"):
        loops.plaquette(np.zeros((5, 2, 4, 4)))  # a batch of U(1) fields
    with pytest.raises(ValueError, match="\\(B, D"):
        loops.plaquette(np.zeros((2, 4, 4)), batched=True)
    with pytest.raises(ValueError, match="\\(D, L0"):
        loops.plaquette(np.zeros((2, 4, 4, 3, 2), dtype=complex))
    with pytest.raises(ValueError, match="out of range"):
        loops.polyakov_loop(np.zeros((2, 4, 4)), direction=2)
    with pytest.raises(ValueError, match="unequal extents"):
        loops.polyakov_correlator(np.zeros((3, 4, 4, 6)))
    with pytest.raises(ValueError, match="spatial_directions"):
        loops.polyakov_correlator(np.zeros((3, 4, 4, 6)), spatial_directions=[0])
