"""Lattice geometry: neighbour tables, shifts and checkerboards against plain NumPy."""

import numpy as np
import pytest

from latticeml import lattice


@pytest.mark.parametrize("shape", [(4,), (4, 6), (2, 3, 4), (4, 4, 2, 6)])
def test_neighbour_table_matches_roll(shape):
    V = int(np.prod(shape))
    idx = np.arange(V).reshape(shape)
    fwd, bwd = lattice.neighbour_table(shape)
    assert fwd.shape == bwd.shape == (V, len(shape)) and fwd.dtype == np.int64
    coords = lattice.coordinates(shape)
    for mu in range(len(shape)):
        step = np.zeros(len(shape), dtype=int)
        step[mu] = 1
        # x + mu_hat computed from coordinates, independently of np.roll
        up = np.ravel_multi_index(tuple(((coords + step) % shape).T), shape)
        down = np.ravel_multi_index(tuple(((coords - step) % shape).T), shape)
        np.testing.assert_array_equal(fwd[:, mu], up)
        np.testing.assert_array_equal(bwd[:, mu], down)
        np.testing.assert_array_equal(fwd[bwd[:, mu], mu], np.arange(V))
    f = np.random.default_rng(0).standard_normal(shape)
    for mu in range(len(shape)):
        np.testing.assert_array_equal(lattice.shift(f, mu).ravel(), f.ravel()[fwd[:, mu]])
        np.testing.assert_array_equal(lattice.shift(f, mu, -1).ravel(), f.ravel()[bwd[:, mu]])


def test_shift_on_link_field():
    rng = np.random.default_rng(1)
    U = rng.standard_normal((2, 4, 6, 3, 3))
    s = lattice.shift(U, 1, lattice_axes=range(1, 3))
    assert s[0, 2, 5, 1, 2] == U[0, 2, 0, 1, 2]
    with pytest.raises(ValueError, match="direction"):
        lattice.shift(U, 2, lattice_axes=range(1, 3))


def test_checkerboard():
    shape = (4, 6, 2)
    even, odd = lattice.checkerboard_sites(shape)
    assert len(even) == len(odd) == 24
    p = lattice.parity(shape).ravel()
    assert (p[even] == 0).all() and (p[odd] == 1).all()
    fwd, bwd = lattice.neighbour_table(shape)
    # every neighbour of an even site is odd (needs even extents, also across the boundary)
    assert (p[fwd[even]] == 1).all() and (p[bwd[even]] == 1).all()
    with pytest.raises(ValueError, match="even extents"):
        lattice.checkerboard_sites((4, 5))


def test_bad_shapes():
    with pytest.raises(ValueError, match="empty"):
        lattice.check_shape(())
    with pytest.raises(ValueError, match=">= 1"):
        lattice.check_shape((4, 0))
    with pytest.raises(TypeError, match="sequence"):
        lattice.check_shape(4)
    with pytest.raises(ValueError, match="supports D"):
        lattice.check_shape((4, 4, 4), dims=(2, 4))
    assert lattice.volume((3, 4)) == 12
