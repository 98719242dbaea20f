"""The CUDA source compiles with CuPy's NVRTC, as ``RawModule`` compiles it on a GPU.

NVRTC needs no GPU: ``pip install -e ".[nvrtc]"`` (``cupy-cuda12x`` and NVIDIA's NVRTC wheel)
is enough, and CI runs this file in a venv of its own with ``MINIGRAD_REQUIRE_NVRTC=1``, so
there a missing NVRTC fails instead of skipping. The options are those CuPy's ``RawModule``
passes (``--std=c++17 -ftz=true -arch=sm_XX --device-as-default-execution-space``); the
source is what ``_cuda`` hands it (NVRTC has the math functions built in: no ``#include``).
"""

from __future__ import annotations

import os
import re

import pytest

from minigrad import devices
from minigrad.functional import _cuda

ARCHS = ("80", "90")  # A100, H100/H200


def _nvrtc():
    """CuPy's NVRTC bindings with the library loaded, or a skip (a failure when required)."""
    try:
        from cupy.cuda import nvrtc

        nvrtc.getVersion()  # loads libnvrtc
        return nvrtc
    except Exception as e:  # ImportError, a missing libnvrtc, the CuPy stand-in
        reason = f"CuPy's NVRTC is not available ({type(e).__name__}: {e})"
        if os.environ.get("MINIGRAD_REQUIRE_NVRTC") == "1":
            pytest.fail(reason + '; MINIGRAD_REQUIRE_NVRTC=1: pip install -e ".[nvrtc]"')
        pytest.skip(reason)


def _compile(nvrtc, source: str, arch: str) -> tuple[bytes, str]:
    prog = nvrtc.createProgram(source, "minigrad_kernels.cu", (), ())
    try:
        options = ("--std=c++17", "-ftz=true", f"-arch=sm_{arch}")
        nvrtc.compileProgram(prog, (*options, "--device-as-default-execution-space"))
        return nvrtc.getCUBIN(prog), nvrtc.getProgramLog(prog)
    except nvrtc.NVRTCError as e:
        raise AssertionError(f"sm_{arch}: {e}\n{nvrtc.getProgramLog(prog)}") from None
    finally:
        nvrtc.destroyProgram(prog)


@pytest.mark.parametrize("arch", ARCHS)
def test_the_kernel_source_compiles_cleanly_with_nvrtc(arch):
    nvrtc = _nvrtc()
    assert str(arch) in {str(a) for a in nvrtc.getSupportedArchs()}
    source = _cuda.source().replace("#include <math.h>\n", "")
    cubin, log = _compile(nvrtc, source, arch)
    assert "warning" not in log.lower(), log  # cleanly: no warnings either
    kernels = re.findall(r'extern "C" __global__ void (\w+)\(', source)
    assert len(kernels) >= 10
    for name in kernels:  # every kernel is in the binary under its C name
        assert name.encode() in cubin, name


def test_a_broken_source_fails_with_the_compiler_log():
    """The check above can fail: NVRTC's errors reach the test with its log."""
    nvrtc = _nvrtc()
    bad = 'extern "C" __global__ void k(float* x) { x[0] = not_declared; }'
    with pytest.raises(AssertionError, match="not_declared"):
        _compile(nvrtc, bad, "80")


def test_cupy_installed_without_a_gpu_leaves_the_suite_on_the_cpu():
    """With CuPy (and NVRTC) installed but no GPU, nothing thinks a GPU is there."""
    _nvrtc()
    import cupy

    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no driver, or no device: what CI's machine has
        count = 0
    if count > 0:
        pytest.skip("a GPU is present")
    assert not devices.cuda_available() and devices.default_device() == "cpu"
