"""The latticeml command: --version, info, figures, the help texts, and the package's import graph."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import latticeml
from latticeml import __version__
from latticeml.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for word in ("numba", "threads", "cuda", "numba cache"):
        assert word in out


def test_figures_list_and_one_fast(tmp_path, capsys):
    assert main(["figures", "--list"]) == 0
    assert "stats_ar1_tau_int" in capsys.readouterr().out
    assert main(["figures", "stats_ar1_tau_int", "--fast", "--out", str(tmp_path)]) == 0
    png = tmp_path / "stats_ar1_tau_int.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_figure_is_a_clean_error(capsys):
    assert main(["figures", "no_such_figure"]) == 2
    err = capsys.readouterr().err
    assert "unknown figure" in err and "--list" in err and "Traceback" not in err


def test_python_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "latticeml", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"latticeml {__version__}"


# ----------------------------------------------------------------------------- help texts


@pytest.mark.parametrize("argv", [[], ["info"], ["figures"], ["sample"], ["measure"], ["flow"], ["flow", "train"], ["flow", "sample"]])
def test_every_help_shows_examples(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    example = out.split("examples:", 1)[1].strip().splitlines()[0].strip()
    assert example.startswith("latticeml " + " ".join(argv)), example


def test_sample_help_lists_each_theory_with_its_couplings(capsys):
    """The coupling flags come from the parameters each registered theory declares."""
    from latticeml.theories.base import theory_registry

    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    for name, cls in theory_registry().items():
        assert f"{name} (" in out
        for p in cls.parameters:
            assert f"--{p.name}" in out and " ".join(p.help.split()) in out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out


# ----------------------------------------------------------------------------- the import graph

PACKAGE = Path(latticeml.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (PACKAGE.parent / rel.with_suffix(".py")).exists() or (PACKAGE.parent / rel / "__init__.py").exists()


def _imports(path: Path) -> set[str]:
    """Every latticeml module ``path`` imports, at module level or inside functions.

    ``from X import Y`` counts as importing ``X.Y`` where that is a module, else ``X``. A
    submodule's implicit import of its parent package is not an edge (it would make every
    package a cycle).
    """
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if _is_module(full) else base)
    return {m for m in found if m.startswith("latticeml")}


def _graph(*packages: str) -> dict[str, set[str]]:
    files = [f for p in packages for f in (PACKAGE / p).rglob("*.py")]
    names = {_module_name(f) for f in files}
    return {_module_name(f): _imports(f) & names for f in files}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a list of modules (first == last), or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node, [node])):
            return cycle
    return None


def test_cli_and_flows_import_graph_has_no_cycle():
    graph = _graph("cli", "flows")
    assert "latticeml.cli.flow" in graph and "latticeml.flows.training" in graph
    assert graph["latticeml.cli"] >= {"latticeml.cli.sample", "latticeml.cli.flow", "latticeml.cli.common"}
    assert _find_cycle(graph) is None, " -> ".join(_find_cycle(graph))


def test_flows_never_import_the_command_line():
    graph = _graph("cli", "flows")
    for module, imported in graph.items():
        if module.startswith("latticeml.flows"):
            assert not {m for m in imported if m.startswith("latticeml.cli")}, module
    assert not (PACKAGE / "flows" / "cli.py").exists()


def test_the_cycle_check_can_fail(tmp_path, monkeypatch):
    """The old layout's cycle is found: cli imported flows.cli, whose functions imported cli."""
    fake = tmp_path / "latticeml"
    (fake / "cli").mkdir(parents=True)
    (fake / "flows").mkdir()
    (fake / "cli" / "__init__.py").write_text("from ..flows import cli\n")
    (fake / "flows" / "__init__.py").write_text("")
    (fake / "flows" / "cli.py").write_text("def f():\n    from ..cli import UserError\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    graph = _graph("cli", "flows")
    assert graph["latticeml.cli"] == {"latticeml.flows.cli"} and graph["latticeml.flows.cli"] == {"latticeml.cli"}
    assert _find_cycle(graph) == ["latticeml.cli", "latticeml.flows.cli", "latticeml.cli"]


def test_importing_the_command_line_imports_no_flows_cli():
    code = "import sys, latticeml.cli; print(sorted(m for m in sys.modules if m.startswith('latticeml.flows')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "latticeml.flows.cli" not in out.stdout
