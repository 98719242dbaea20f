"""``mpirun`` fixture: run a small script on N ranks with ``mpiexec`` (skips without MPI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from minigrad.distributed import run

ROOT = Path(__file__).resolve().parents[2]


def mpiexec_path() -> str | None:
    """The venv's mpiexec (the mpich wheel puts it beside python), else the one on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"  # the mpich wheel puts it in the venv
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def mpi_flavor() -> str | None:
    """``"mpich"`` or ``"openmpi"``: which launcher :func:`mpiexec_path` is (the launcher's
    own test, ``minigrad.distributed.run.mpi_flavor``); None without one."""
    exe = mpiexec_path()
    return None if exe is None else run.mpi_flavor(exe)


def killed_status() -> int:
    """mpiexec's exit status when a rank dies of SIGKILL: MPICH's Hydra gives the signal's
    number (9), Open MPI 128 + the number (137)."""
    return 128 + 9 if mpi_flavor() == "openmpi" else 9


@pytest.fixture
def mpirun(tmp_path):
    """``mpirun(source, n=2, timeout=60, env={}) -> CompletedProcess`` (text output).

    The script runs with warnings as errors and the repository on ``sys.path``.
    """
    exe = mpiexec_path()
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip("mpi4py is not installed (pip install -e '.[dist]')")
    if exe is None:
        pytest.skip("mpiexec not found (pip install -e '.[dist]' installs MPICH)")

    def run(source: str, n: int = 2, timeout: float = 60, env: dict[str, str] | None = None):
        script = tmp_path / "script.py"
        header = "import warnings\nwarnings.simplefilter('error')\n"
        script.write_text(header + textwrap.dedent(source))
        environ = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "MINIGRAD_DISABLE_CUPY": "1",
            "OMP_NUM_THREADS": "1",
            **(env or {}),
        }
        cmd = [exe, "-n", str(n), sys.executable, str(script)]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=environ, cwd=tmp_path
        )

    return run
