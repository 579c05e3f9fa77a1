"""The latticeml command: --version, info, figures."""

import subprocess
import sys

import pytest

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
