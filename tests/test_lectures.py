"""Every lecture notebook runs end to end in FAST mode and passes its inline physics asserts.

The documentation build executes every lecture in FAST mode (docs/conf.py) and stops on a cell
that raises. Where the docs toolchain is installed (CI), this test reads the build's executed
copies (tests/docs_site.py: one build per session), so a lecture runs once per session, not twice;
elsewhere it runs each notebook itself.
"""

import os
import pathlib

import pytest
from docs_site import EXECUTED_LECTURES, docs_toolchain_missing

LECTURES = sorted((pathlib.Path(__file__).resolve().parents[1] / "lectures").glob("[0-9][0-9]_*.ipynb"))


def _code(nb):
    return [c.source for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", LECTURES, ids=[p.stem for p in LECTURES])
def test_lecture_runs_fast(path, tmp_path, monkeypatch, request):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    source = nbformat.read(path, as_version=4)
    if docs_toolchain_missing() is None and not os.environ.get("LATTICEML_DOCS_SITE"):
        request.getfixturevalue("site")  # builds the site (once), which executes every lecture
        executed = nbformat.read(EXECUTED_LECTURES / path.name, as_version=4)
        assert _code(executed) == _code(source), f"{path.name}: the docs build ran another version of the lecture"
        for cell in (c for c in executed.cells if c.cell_type == "code"):
            assert cell.execution_count is not None, f"{path.name}: a cell did not run:\n{cell.source[:200]}"
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert not errors, f"{path.name}: {errors[0].ename}: {errors[0].evalue}"
        return
    monkeypatch.setenv("LATTICEML_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # FAST mode writes its figures here instead of into figures/
    monkeypatch.setenv("LATTICEML_FIGURES_DIR", str(tmp_path))
    client = nbclient.NotebookClient(source, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
