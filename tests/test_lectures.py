"""Every lecture notebook runs end to end in FAST mode and passes its inline physics asserts."""

import os
import pathlib

import pytest

LECTURES = sorted((pathlib.Path(__file__).resolve().parents[1] / "lectures").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", LECTURES, ids=[p.stem for p in LECTURES])
def test_lecture_runs_fast(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("LATTICEML_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # FAST mode writes its figures here instead of into figures/
    monkeypatch.setenv("LATTICEML_FIGURES_DIR", str(tmp_path))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
