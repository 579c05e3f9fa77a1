"""Lecture 03 library code: the pretrained model, the figure registry, where figures go."""

import pathlib

import numpy as np

from latticeml import figures, flows
from latticeml.figure_makers import flows as lec


def test_pretrained_model_is_small_plain_and_the_tutorial_architecture():
    path = lec.pretrained_path()
    assert path.exists() and path.stat().st_size < 1_000_000
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert all(data[k].dtype.kind in "fU" for k in data.files)
    flow = lec.load_pretrained()
    cfg = flow.config
    assert cfg["shape"] == [8, 8] and cfg["n_layers"] == 16 and cfg["hidden"] == [8, 8] and cfg["kernel_size"] == 3
    assert cfg["activation"] == "leaky_relu" and cfg["final_tanh"]
    assert flow.metadata["theory_params"] == {"shape": [8, 8], "m2": lec.M2, "lam": lec.LAM}
    assert flow.metadata["training"]["batch_size"] == 64
    # it is a trained model: its samples are far better than a fresh flow's
    theory = lec.lecture_theory()
    fresh = flows.phi4_flow(theory.shape, rng=np.random.default_rng(0))
    ess = []
    for f in (flow, fresh):
        phi, log_q = f.sample(np.random.default_rng(1), 512)
        ess.append(flows.effective_sample_size(-flows.action(theory, phi) - log_q))
    assert ess[0] > 10 * ess[1]


def test_figure_maker_is_registered():
    assert "latticeml.figure_makers.flows" in figures.FIGURE_MODULES
    assert figures.registry()["phi4_flow"].make is lec.make


def test_fast_figures_never_go_to_the_repository(monkeypatch, tmp_path):
    repo_figures = pathlib.Path(lec.__file__).resolve().parents[2] / "figures"
    monkeypatch.delenv("LATTICEML_FIGURES_DIR", raising=False)
    temporary = lec.figures_dir(True)
    assert temporary != repo_figures and temporary.exists()
    temporary.rmdir()
    assert lec.figures_dir(False) == repo_figures
    monkeypatch.setenv("LATTICEML_FIGURES_DIR", str(tmp_path))
    assert lec.figures_dir(True) == tmp_path


def test_settings_fast_is_small():
    fast, full = lec.settings_for(True), lec.settings_for(False)
    assert full.train_steps == 2500  # the tutorial's budget
    assert fast.train_steps < 100 and fast.n_flow_mcmc < full.n_flow_mcmc
