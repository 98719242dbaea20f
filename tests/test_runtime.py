"""minigrad.runtime: the process settings of the training CLI and the benchmarks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from minigrad import runtime


def test_blas_threads_can_be_read_and_set_back():
    before = runtime.blas_threads()
    if before is None:  # not OpenBLAS: nothing to set, and set says so
        assert runtime.set_blas_threads(1) is False
        return
    try:
        assert runtime.set_blas_threads(1) is True
        assert runtime.blas_threads() == 1
        a = np.ones((64, 64), dtype=np.float32)
        np.testing.assert_array_equal(a @ a, np.full((64, 64), 64.0, dtype=np.float32))
    finally:
        runtime.set_blas_threads(before)
    assert runtime.blas_threads() == before


def test_configure_cpu_training_in_a_fresh_process_reports_its_settings():
    # a subprocess: the allocator and BLAS settings are process-wide
    code = (
        "from minigrad import runtime;"
        "s = runtime.configure_cpu_training(3);"
        "print(s['keep_freed_memory'], s['blas_threads'], s['host_threads'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    keep, blas, host = out.stdout.split()
    assert host == "3"
    assert blas in ("1", "None")  # 1 with OpenBLAS; None (left alone) with another BLAS
    if sys.platform.startswith("linux"):
        import platform

        assert keep == str(platform.libc_ver()[0] == "glibc")


def test_settings_lists_what_the_process_runs_with():
    s = runtime.settings()
    assert set(s) == {
        "keep_freed_memory",
        "blas_threads",
        "host_threads",
        "OPENBLAS_THREAD_TIMEOUT",
    }
    assert s["host_threads"] == runtime.host_threads()
    assert runtime.BLAS_ENV_DEFAULTS == {"OPENBLAS_THREAD_TIMEOUT": "4"}
