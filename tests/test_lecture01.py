"""Lecture 01 library code: the figure maker runs in FAST mode, is registered, and is reproducible."""

import numpy as np

from latticeml import figures
from latticeml.figure_makers import symmetries as lec
from latticeml.nets import symmetric_part


def test_maker_writes_compact_pngs_and_is_registered(tmp_path):
    paths = lec.make(tmp_path, fast=True)
    assert [p.name for p in paths] == [
        "symmetries_x3_predictions.png",
        "symmetries_x3_symmetric_part.png",
        "symmetries_x3_generalisation.png",
        "symmetries_x2_odd_net.png",
    ]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert p.stat().st_size < 150_000
    assert figures._REGISTRY["symmetries_cubic_fit"].make is lec.make
    assert "latticeml.figure_makers.symmetries" in figures.FIGURE_MODULES


def test_fits_are_reproducible_bit_for_bit():
    a = lec.fit_side_by_side(lec.cube, label="x^3", rng=np.random.default_rng(5), epochs=20, n=10)
    b = lec.fit_side_by_side(lec.cube, label="x^3", rng=np.random.default_rng(5), epochs=20, n=10)
    np.testing.assert_array_equal(a.losses_generic, b.losses_generic)
    np.testing.assert_array_equal(a.losses_odd, b.losses_odd)


def test_lecture_run_shows_the_claims():
    cubic, even = lec.run_lecture(fast=True)
    grid = np.linspace(-4.0, 4.0, 4001)[:, None]
    assert np.max(np.abs(symmetric_part(cubic.odd, grid))) < 1e-14
    assert np.max(np.abs(symmetric_part(cubic.generic, grid))) > 1e-4
    assert cubic.losses_generic[-1] < 0.1 * cubic.losses_generic[0]
    # the odd net cannot represent x^2; the generic net can
    assert even.losses_odd[-1] > 10 * even.losses_generic[-1]
