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


def test_lecture_fits_are_reproducible_and_show_the_claims():
    a_cubic, a_even = lec.run_lecture(fast=True)
    b_cubic, _ = lec.run_lecture(fast=True)
    np.testing.assert_array_equal(a_cubic.losses_generic, b_cubic.losses_generic)
    np.testing.assert_array_equal(a_cubic.losses_odd, b_cubic.losses_odd)
    grid = np.linspace(-4.0, 4.0, 4001)[:, None]
    assert np.max(np.abs(symmetric_part(a_cubic.odd, grid))) < 1e-14
    assert np.max(np.abs(symmetric_part(a_cubic.generic, grid))) > 1e-4
    # the odd net cannot represent x^2; the generic net can
    assert a_even.losses_odd[-1] > 10 * a_even.losses_generic[-1]
