"""The one module that knows CuPy exists.

Everything device-related lives here: the optional CuPy import, ``get_array_module``,
device strings (``"cpu"``, ``"cuda"``, ``"cuda:N"``), host/device copies, the random
generators behind ``manual_seed``, and the few places where NumPy and CuPy APIs differ.
Ops call ``xp = get_array_module(x)`` and then only ``xp.*`` and the shims below.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

_cupy: Any = None
_cupy_tried = False


def _import_cupy() -> Any:
    """Import CuPy once, lazily; return None when it is missing or broken."""
    global _cupy, _cupy_tried
    if not _cupy_tried:
        _cupy_tried = True
        if os.environ.get("MINIGRAD_DISABLE_CUPY"):
            return None
        try:
            import cupy  # noqa: PLC0415 - optional dependency, imported on demand

            _cupy = cupy
        except Exception:  # ImportError, or a CUDA library that fails to load
            _cupy = None
    return _cupy


def cuda_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device. Never raises."""
    cp = _import_cupy()
    if cp is None:
        return False
    try:
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def is_cupy_array(a: Any) -> bool:
    """True for a ``cupy.ndarray`` (checked without importing CuPy)."""
    return type(a).__module__.startswith("cupy")


def get_array_module(*arrays: Any) -> Any:
    """``numpy`` or ``cupy``: the module that owns the given arrays."""
    for a in arrays:
        if is_cupy_array(a):
            return _import_cupy()
    return np


def normalize_device(device: Any) -> str:
    """Canonical device string: ``"cpu"`` or ``"cuda:N"``.

    Raises:
        ValueError: for anything else (``"gpu"``, ``"cuda:x"``, ``"cuda:-1"``).
    """
    if device is None:
        return "cpu"
    d = str(device).strip().lower()
    if d == "cpu":
        return "cpu"
    if d == "cuda":
        return "cuda:0"
    if d.startswith("cuda:") and d[5:].isdigit():
        return f"cuda:{int(d[5:])}"
    raise ValueError(f"unknown device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")


def default_device() -> str:
    """``"cuda:0"`` when a GPU is usable, else ``"cpu"``."""
    return "cuda:0" if cuda_available() else "cpu"


def device_of(a: Any) -> str:
    """The canonical device string of an array."""
    if is_cupy_array(a):
        return f"cuda:{a.device.id}"
    return "cpu"


def _require_cuda(device: str) -> Any:
    cp = _import_cupy()
    if cp is None or not cuda_available():
        raise ValueError(
            f"device {device!r} requested but CUDA is not available "
            "(install the 'gpu' extra, e.g. pip install cupy-cuda12x, on a machine with a GPU)"
        )
    index = int(device.split(":")[1])
    count = cp.cuda.runtime.getDeviceCount()
    if index >= count:
        raise ValueError(f"device {device!r} requested but only {count} CUDA device(s) exist")
    return cp


def to_device(a: Any, device: str) -> Any:
    """Copy an array to ``device`` (no copy when it is already there)."""
    device = normalize_device(device)
    if device == "cpu":
        return as_numpy(a)
    cp = _require_cuda(device)
    with cp.cuda.Device(int(device.split(":")[1])):
        return cp.asarray(a)


def as_numpy(a: Any) -> np.ndarray:
    """A host ``numpy.ndarray`` for any array (copies from the GPU)."""
    if is_cupy_array(a):
        return a.get()
    return np.asarray(a)


def device_context(device: str) -> Any:
    """Context manager that makes ``device`` current (a no-op for the CPU)."""
    import contextlib

    if device == "cpu":
        return contextlib.nullcontext()
    return _require_cuda(device).cuda.Device(int(device.split(":")[1]))


def set_tf32(enabled: bool) -> None:
    """Let CuPy's float32 matmuls (every conv and linear layer) use TF32 tensor cores.

    TF32 keeps float32's range with a 10-bit mantissa: roughly 2-8x faster GEMMs on Ampere
    and newer GPUs, at about 1e-3 relative error per product. Off by default.

    Raises:
        ValueError: when CUDA is not available (NumPy on the CPU has no TF32).
    """
    cp = _import_cupy()
    if cp is None or not cuda_available():
        raise ValueError("set_tf32: TF32 needs CuPy and a CUDA device; the CPU has no TF32")
    os.environ["CUPY_TF32"] = "1" if enabled else "0"  # read by CuPy on its first matmul
    try:
        from cupy._core import _routines_linalg as linalg  # noqa: PLC0415

        mode = linalg.COMPUTE_TYPE_TF32 if enabled else linalg.COMPUTE_TYPE_FP32
        linalg.set_compute_type(np.float32, mode)  # takes effect at once
    except (ImportError, AttributeError):  # another CuPy layout: the variable above decides
        pass


# ---------------------------------------------------------------- randomness
_seed: int | None = None
_generators: dict[str, Any] = {}


def manual_seed(seed: int) -> None:
    """Seed every random op (dropout, init, shuffling) on every device."""
    global _seed
    _seed = int(seed)
    _generators.clear()


def generator(device: str = "cpu") -> Any:
    """The random generator of ``device`` (``numpy.random.Generator`` or CuPy's)."""
    device = normalize_device(device)
    g = _generators.get(device)
    if g is None:
        seed = None if _seed is None else _seed + (0 if device == "cpu" else 1 + int(device[5:]))
        if device == "cpu":
            g = np.random.default_rng(seed)
        else:
            cp = _require_cuda(device)
            with cp.cuda.Device(int(device[5:])):
                g = cp.random.default_rng(seed)
        _generators[device] = g
    return g


def get_rng_state() -> dict[str, Any]:
    """Host-side snapshot of the CPU generator and seed (for checkpoints)."""
    return {"seed": _seed, "cpu": generator("cpu").bit_generator.state}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    manual_seed(state["seed"]) if state.get("seed") is not None else _generators.clear()
    generator("cpu").bit_generator.state = state["cpu"]


# ---------------------------------------------------------------- API shims
def raw_module(source: str) -> Any:
    """CuPy's ``RawModule`` for a CUDA C++ source (compiled by NVRTC on first use); the
    kernels of ``minigrad.functional._cuda`` are looked up in it.

    Raises:
        ValueError: when CuPy is not available.
    """
    cp = _import_cupy()
    if cp is None:
        raise ValueError("raw_module: CUDA kernels need CuPy (pip install cupy-cuda12x)")
    return cp.RawModule(code=source)


def scatter_add(xp: Any, target: Any, index: Any, values: Any) -> None:
    """``target[index] += values`` with repeated indices summed (np.add.at / cupyx)."""
    if xp is np:
        np.add.at(target, index, values)
    else:
        import cupyx  # noqa: PLC0415

        cupyx.scatter_add(target, index, values)


# ---------------------------------------------------------------- NCCL (minigrad.distributed)
def nccl_module() -> Any:
    """CuPy's NCCL binding ``cupy.cuda.nccl`` (collectives on CuPy arrays across processes).

    Raises:
        ValueError: when CuPy or its NCCL support is not available.
    """
    nccl = None
    if _import_cupy() is not None:
        try:
            import cupy.cuda.nccl as nccl  # noqa: PLC0415 - a submodule CuPy does not preload
        except ImportError:
            nccl = None
    if nccl is None or not getattr(nccl, "available", True):
        raise ValueError(
            "nccl_module: collectives on GPU arrays need CuPy built with NCCL "
            "(pip install cupy-cuda12x nvidia-nccl-cu12)"
        )
    return nccl


def current_stream_ptr() -> int:
    """The raw handle of CuPy's current CUDA stream (where NCCL calls are queued)."""
    return _import_cupy().cuda.get_current_stream().ptr


def cuda_event() -> Any:
    """A CUDA event recorded now on the current stream (``.done`` polls it)."""
    event = _import_cupy().cuda.Event(block=False, disable_timing=True)
    event.record()
    return event
