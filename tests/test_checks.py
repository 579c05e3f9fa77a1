"""latticeml.checks (the validation helpers every public function uses; formerly ``_checks``): what
each accepts and converts, and the one-line messages of what it refuses."""

import numpy as np
import pytest

from latticeml.checks import GaugeLinks, check_count, check_rng, finite_float, gauge_links, positive_float


def test_check_rng():
    g = np.random.default_rng(0)
    assert check_rng(g) is g
    with pytest.raises(TypeError, match=r"seed must be a numpy.random.Generator \(np.random.default_rng\(seed\)\), got int"):
        check_rng(3, "seed")
    with pytest.raises(TypeError, match="got RandomState"):
        check_rng(np.random.RandomState(0))


@pytest.mark.parametrize("value, minimum, expected", [(3, 0, 3), (np.int64(5), 1, 5), (4.0, 0, 4), (0, 0, 0)])
def test_check_count_accepts_integers(value, minimum, expected):
    out = check_count(value, "n", minimum=minimum)
    assert out == expected and type(out) is int


@pytest.mark.parametrize("value", [True, 2.5, float("nan"), float("inf"), "3", -1, None])
def test_check_count_refuses(value):
    with pytest.raises(ValueError, match=r"n must be an integer >= 0, got"):
        check_count(value, "n")


def test_check_count_minimum():
    with pytest.raises(ValueError, match="n_steps must be an integer >= 1, got 0"):
        check_count(0, "n_steps", minimum=1)


def test_finite_and_positive_float():
    assert finite_float(np.float32(2.5)) == 2.5 and type(finite_float(2)) is float
    assert positive_float(0.1, "eps") == 0.1
    with pytest.raises(TypeError, match="beta must be a real number, got True"):
        finite_float(True)
    with pytest.raises(TypeError, match="must be a real number"):
        finite_float("1.0", "m2")
    with pytest.raises(ValueError, match="m2 must be a finite number"):
        finite_float(float("nan"), "m2")
    for bad in (0.0, -1e-300):
        with pytest.raises(ValueError, match="eps must be a positive number"):
            positive_float(bad, "eps")


def test_gauge_links_views_and_restores(rng):
    theta = rng.uniform(-np.pi, np.pi, size=(2, 4, 6))
    g = gauge_links(theta)
    assert isinstance(g, GaugeLinks) and g.group == "u1" and g.shape == (4, 6) and not g.batched
    assert (g.B, g.D, g.V, g.N) == (1, 2, 24, 1) and g.flat.flags.c_contiguous
    np.testing.assert_array_equal(g.restore(g.flat), theta)
    U = np.zeros((3, 3, 3, 2, 2, 3, 3), complex)  # a batch of 3 SU(3) fields on 3 x 2 x 2
    g = gauge_links(U, batched=True, group="su")
    assert (g.group, g.shape, g.B, g.D, g.V, g.N) == ("su", (3, 2, 2), 3, 3, 12, 3)
    assert g.restore(g.flat).shape == U.shape
    ints = gauge_links(np.zeros((2, 3, 3), dtype=np.int64))  # integer angles are converted, not refused
    assert ints.flat.dtype == np.float64


@pytest.mark.parametrize(
    "links, kw, error, message",
    [
        (np.zeros((2, 4, 4), bool), {}, TypeError, "use float64 angles for U\\(1\\) or complex128"),
        (np.zeros((2, 4, 4), complex), {"group": "u1"}, TypeError, "pass theta = np.angle"),
        (np.zeros((2, 4, 4)), {"group": "su"}, TypeError, "SU\\(N\\) links must be complex128"),
        (np.zeros((3, 4, 4)), {}, ValueError, "D >= 2, got shape \\(3, 4, 4\\)"),
        (np.zeros((5, 2, 4, 4)), {}, ValueError, "pass batched=True"),
        (np.zeros((2, 4, 4, 2, 3), complex), {}, ValueError, "N x N colour matrices"),
        (np.zeros((0, 2, 4, 4)), {"batched": True}, ValueError, "at least one configuration"),
        (np.zeros((2, 4)), {"min_dim": 1}, ValueError, "U\\(1\\) links must be angles"),
    ],
)
def test_gauge_links_refuses_with_one_line(links, kw, error, message):
    with pytest.raises(error, match=message) as info:
        gauge_links(links, **kw)
    assert "\n" not in str(info.value)
