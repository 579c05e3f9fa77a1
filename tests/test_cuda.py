"""The CUDA backend from the outside: the simulator tests in their own process, imports, refusals, compiling.

Numba reads ``NUMBA_ENABLE_CUDASIM`` once, when ``numba.cuda`` is first imported, and other tests
(``latticeml info``) may import it in this process without the simulator. So every check here
runs in a fresh Python: :func:`test_kernels_under_the_simulator` runs ``tests/test_cuda_sim.py``
(each CUDA kernel against its cpu twin, HMC chains on both backends) with the simulator on, and
the rest of the suite never sees the variable. ``pytest -m cuda`` runs these alone.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cuda

ROOT = Path(__file__).resolve().parents[1]
HAVE_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None
needs_numba_cuda = pytest.mark.skipif(not HAVE_NUMBA_CUDA, reason="the CUDA backend needs numba-cuda: pip install 'latticeml[cuda]'")


def _python(code_or_args, *, simulator: bool, timeout: float = 600):
    """Run ``python -c code`` (a str) or ``python *args`` in a fresh process at the repository root."""
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else list(code_or_args)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@needs_numba_cuda
def test_kernels_under_the_simulator():
    run = _python(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cuda_sim.py"], simulator=True)
    tail = (run.stdout + run.stderr)[-6000:]
    assert run.returncode == 0, f"tests/test_cuda_sim.py under NUMBA_ENABLE_CUDASIM=1 failed:\n{tail}"
    assert " passed" in run.stdout and "skipped" not in run.stdout.splitlines()[-1], tail


def test_cpu_users_import_nothing_of_cuda():
    code = (
        "import sys, numpy as np, latticeml\n"
        "from latticeml.theories import make_theory\n"
        "from latticeml.cli import main\n"
        "t = make_theory('su3', (2, 2, 2, 2), beta=5.7)\n"
        "t.action(t.cold_start())\n"
        "bad = sorted(m for m in sys.modules if m == 'numba.cuda' or m.startswith(('numba.cuda.', 'numba_cuda', 'latticeml.backends.cuda')))\n"
        "assert not bad, bad\n"
    )
    run = _python(code, simulator=False)
    assert run.returncode == 0, run.stderr[-3000:]


@needs_numba_cuda
def test_cuda_without_a_device_is_one_line():
    run = _python(["-m", "latticeml", "sample", "su2", "--shape", "2,2", "--beta", "2", "--n", "1", "--therm", "0",
                   "--nsteps", "1", "--quiet", "--backend", "cuda"], simulator=False)
    if run.returncode == 0:
        pytest.skip("a CUDA GPU is present")
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert lines[0].startswith("latticeml: error: backend 'cuda' is not available (no CUDA GPU or driver found") and "NUMBA_ENABLE_CUDASIM=1" in lines[0]
    assert lines[0].endswith("choose one of: cpu")


def _have_nvvm_wheel() -> bool:
    """True if the CUDA compiler wheel of the cuda extra (nvidia-cuda-nvcc-cu12, which ships NVVM) is installed."""
    try:
        return importlib.util.find_spec("nvidia.cuda_nvcc") is not None
    except ModuleNotFoundError:  # no nvidia namespace at all
        return False


@needs_numba_cuda
@pytest.mark.skipif(not _have_nvvm_wheel(), reason="compiling for a GPU needs the CUDA compiler wheels: pip install 'latticeml[cuda]'")
def test_every_kernel_compiles_for_a_gpu():
    """The simulator runs any Python; this compiles each kernel to PTX (compute capability 8.0) as a GPU run would."""
    run = _python("from latticeml.backends.cuda import compile_kernels\n"
                  "bad = [(k, e) for k, e in compile_kernels((8, 0)) if e]\n"
                  "assert not bad, bad\n", simulator=False)
    assert run.returncode == 0, run.stderr[-3000:]
