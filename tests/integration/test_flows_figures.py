"""The lecture 03 figure maker runs in FAST mode and writes compact PNGs."""

import pytest

from latticeml.figure_makers import flows as lec

pytestmark = pytest.mark.slow  # trains and samples the lecture flow: about a minute even in FAST mode


def test_fast_figures_are_compact_pngs(tmp_path):
    paths = lec.make(tmp_path, fast=True)
    assert [p.name for p in paths] == [
        "phi4_flow_training.png",
        "phi4_flow_samples.png",
        "phi4_flow_action_scatter.png",
        "phi4_flow_magnetization.png",
        "phi4_flow_correlators.png",
        "phi4_flow_tau_int.png",
    ]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert p.stat().st_size < 150_000
