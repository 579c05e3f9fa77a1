"""The lecture 03 figure maker runs end to end through make() and writes compact PNGs.

Its full FAST computation (20 training steps, 4096 flow-MCMC proposals, 2000 HMC and Metropolis
steps: about a minute) already runs in the FAST lecture (tests/test_lectures.py), so here the
budgets are cut to what the figures need to be drawn: the maker's own path, not the statistics.
"""

from latticeml.figure_makers import flows as lec


def test_fast_figures_are_compact_pngs(tmp_path, monkeypatch):
    small = lec.Settings(train_steps=4, n_flow_mcmc=256, n_hmc=200, n_metropolis=200, n_therm=20)
    monkeypatch.setattr(lec, "settings_for", lambda fast: small)
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
        assert 5_000 < p.stat().st_size < 150_000
