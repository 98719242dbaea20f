"""``benchmarks/gpu_check.sh``: every step runs whatever the ones before gave, then a summary.

Run here with stand-ins for ``python3`` and ``nvidia-smi`` on the PATH: the test suite
"fails", and the benchmarks must still run and the summary must name the failed test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$CALLS"
case "$*" in
  "-m pytest"*) echo "FAILED tests/test_x.py::test_y - boom"; echo "1 failed, 9 passed"; exit 1;;
  *bench_train*) echo "bench_train ran"; exit 0;;
  *bench_ops*) echo "bench_ops ran"; exit 0;;
  *) echo "cupy 14.2.0 numpy 2.4";;
esac
"""


@pytest.mark.skipif(shutil.which("timeout") is None or sys.platform == "win32", reason="bash")
def test_a_failing_test_suite_does_not_stop_the_benchmarks_and_is_summarized(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fakes = (("python3", FAKE_PYTHON), ("nvidia-smi", "#!/bin/sh\necho H200\n"))
    for name, text in fakes:
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "OUT": str(tmp_path / "out"),
        "CALLS": str(tmp_path / "calls"),
    }
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    summary = done.stdout.split("== summary")[1]
    assert "pytest-gpu     rc=1" in summary and "1 failed, 9 passed" in summary
    assert "bench_train    rc=0" in summary and "bench_ops      rc=0" in summary
    assert "FAILED tests/test_x.py::test_y" in summary
    calls = (tmp_path / "calls").read_text().splitlines()
    pytest_call = next(c for c in calls if c.startswith("-m pytest"))
    assert "--device cuda" in pytest_call and "-x" not in pytest_call.split()
    assert "tests/" not in pytest_call  # the whole suite, not a selection
    # "import xdist" succeeded (the fake answers every -c): 12 workers, pytest-benchmark off
    assert "-n 12 -p no:benchmark" in pytest_call
    assert (tmp_path / "out" / "bench_ops.txt").read_text() == "bench_ops ran\n"
