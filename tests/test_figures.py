"""latticeml.figures: the registry, where figures go, save_figures, make_figures; and the two lecture
figure makers that no lecture test calls through ``make`` (u1_topology, smearing_flow_slhmc), run
end to end on shrunken FAST plans (their full FAST computations run in tests/test_lectures.py).
"""

import os
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from latticeml import figures  # noqa: E402
from latticeml.figure_makers import smearing as smearing_maker  # noqa: E402
from latticeml.figure_makers import u1_topology as u1_maker  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _assert_pngs(paths, names, outdir):
    assert [p.name for p in paths] == [f"{n}.png" for n in names]
    for p in paths:
        assert p.parent == pathlib.Path(outdir)
        data = p.read_bytes()
        assert data[:8] == PNG and 5_000 < len(data) < 250_000, (p, len(data))


def test_registry_holds_every_lecture_maker():
    reg = figures.registry()
    assert {"stats_ar1_tau_int", "symmetries_cubic_fit", "u1_topology", "phi4_flow", "smearing_flow_slhmc",
            "lcnn_generalisation"} <= set(reg)
    for name, fig in reg.items():
        assert fig.name == name and fig.description and callable(fig.make)
    assert list(reg) == sorted(reg)


def test_register_refuses_a_second_maker_under_one_name(monkeypatch):
    monkeypatch.setattr(figures, "_REGISTRY", {})

    def maker(outdir, *, fast=False):
        return []

    figures.register("x", "one")(maker)
    figures.register("x", "the same function again is fine")(maker)
    with pytest.raises(ValueError, match="registered twice"):
        figures.register("x", "another")(lambda outdir, *, fast=False: [])


def test_lecture_figures_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LATTICEML_FIGURES_DIR", str(tmp_path / "env"))
    assert figures.lecture_figures_dir(False) == tmp_path / "env"
    monkeypatch.delenv("LATTICEML_FIGURES_DIR")
    fast = figures.lecture_figures_dir(True)
    assert fast.is_dir() and "latticeml_fast_figures_" in fast.name  # FAST never writes into figures/
    fast.rmdir()
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "lectures").mkdir()
    monkeypatch.chdir(tmp_path / "lectures")
    assert figures.lecture_figures_dir(False) == tmp_path / "figures"


def test_save_and_make_figures(tmp_path, monkeypatch):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [1, 0])
    paths = figures.save_figures({"line": fig}, tmp_path / "new")
    plt.close(fig)
    _assert_pngs(paths, ["line"], tmp_path / "new")

    calls = []

    def maker(outdir, *, fast=False):
        calls.append(fast)
        (outdir / "dummy.png").write_bytes(PNG)
        return [str(outdir / "dummy.png")]

    monkeypatch.setattr(figures, "FIGURE_MODULES", [])
    monkeypatch.setattr(figures, "_REGISTRY", {"dummy": figures.Figure("dummy", "test", maker)})
    lines = []
    assert figures.make_figures(tmp_path / "out", ["dummy"], fast=True, log=lines.append) == [tmp_path / "out" / "dummy.png"]
    assert calls == [True] and len(lines) == 1 and lines[0].startswith("dummy")
    with pytest.raises(KeyError, match="unknown figure"):
        figures.make_figures(tmp_path / "out", ["nope"], log=lines.append)


def test_u1_topology_maker_runs_end_to_end(tmp_path, monkeypatch):
    """make() -> exact scan + freezing study + four PNGs, on a plan shrunk to seconds (L = 6, 8)."""
    plan = u1_maker.StudyPlan(tuple((a, L, n) for L, n in ((6, 300), (8, 150)) for a in u1_maker.ALGORITHMS), n_therm=20)
    monkeypatch.setattr(u1_maker, "study_plan", lambda *, fast: plan)
    real_scan = u1_maker.exact_scan
    monkeypatch.setattr(u1_maker, "exact_scan", lambda *, fast: real_scan(fast=fast, L=6))
    paths = u1_maker.make(tmp_path, fast=True)
    _assert_pngs(paths, ["u1_topology_exact", "u1_topology_histories", "u1_topology_charge_distribution", "u1_topology_tau_int"], tmp_path)


def test_smearing_maker_runs_end_to_end(tmp_path, monkeypatch):
    """make() -> smoothing, Wilson flow and t0, RK3 order, covariant net + SLHMC, and their PNGs, on
    the FAST settings cut further (2^4 flow lattice, shorter chains)."""
    real = smearing_maker.settings

    def small(fast):
        s = real(True)
        s["flow"].update(shape=(2, 2, 2, 2), n_therm=3, n_configs=8, t_max=0.3)
        s["slhmc"].update(shape=(3, 3, 3, 3), n_ref=20, n_therm=2, n_before=3, n_slhmc=12, epochs=1)
        return s

    monkeypatch.setattr(smearing_maker, "settings", small)
    paths = smearing_maker.make(tmp_path, fast=True)
    _assert_pngs(paths, ["smearing_plaquette_vs_steps", "smearing_flow_t2E", "smearing_rk3_order", "smearing_slhmc_training",
                         "smearing_slhmc_exactness"], tmp_path)
