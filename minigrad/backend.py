"""The one module that knows CuPy exists.

Everything device-related lives here: the optional CuPy import, ``get_array_module``,
device strings (``"cpu"``, ``"cuda"``, ``"cuda:N"``), host/device copies, and the few
places where NumPy and CuPy APIs differ. The random generators behind ``manual_seed``
live in :mod:`minigrad.random`.
Ops call ``xp = get_array_module(x)`` and then only ``xp.*`` and the shims below.

The dtype rules live here too: what a Python number becomes (:func:`as_array`,
:func:`default_dtype`: a Python float is float32, PyTorch's default), how a dtype
argument is read (:func:`to_dtype`), and what ``x.to(...)`` means (:func:`parse_to`, for
``Tensor.to`` and ``Module.to``).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np

from minigrad import runtime

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


# ---------------------------------------------------------------- dtype rules
#: what a Python float becomes (PyTorch's default dtype)
DEFAULT_FLOAT = np.dtype(np.float32)
#: NumPy's dtype kind of a Python number -> the dtype it becomes
_PYTHON_NUMBER_DTYPES = {
    "f": DEFAULT_FLOAT,
    "i": np.dtype(np.int64),
    "u": np.dtype(np.int64),
    "b": np.dtype(np.bool_),
}


def _is_array(data: Any) -> bool:
    return isinstance(data, (np.ndarray, np.generic)) or is_cupy_array(data)


def as_array(data: Any, xp: Any = np) -> Any:
    """``data`` as an array of ``xp`` by PyTorch's rule for Python numbers: a Python float
    (or nested sequences of them) becomes float32, an int int64, a bool bool; arrays and
    NumPy scalars keep their dtype. Other data keeps NumPy's dtype."""
    if _is_array(data):
        return xp.asarray(data)
    arr = np.asarray(data)
    arr = arr.astype(_PYTHON_NUMBER_DTYPES.get(arr.dtype.kind, arr.dtype), copy=False)
    return arr if xp is np else xp.asarray(arr)


def default_dtype(data: Any) -> np.dtype:
    """The dtype ``data`` gets when none is asked for (the rule of :func:`as_array`)."""
    return np.dtype(data.dtype) if _is_array(data) else as_array(data).dtype


def to_dtype(dtype: Any, op: str = "tensor") -> np.dtype | None:
    """``dtype`` (a NumPy dtype, type or name) as an ``np.dtype``; None stays None.

    Raises:
        TypeError: an unknown dtype, naming ``op``.
    """
    if dtype is None:
        return None
    try:
        return np.dtype(dtype)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{op}: unknown dtype {dtype!r}") from e


def parse_to(op: str, device: Any = None, dtype: Any = None) -> tuple[str | None, np.dtype | None]:
    """What ``x.to(device, dtype)`` asks for: ``(canonical device or None, dtype or None)``.

    A dtype in the device slot is accepted (``x.to("float64")``, like PyTorch's
    ``x.to(torch.float64)``).

    Raises:
        ValueError: the first argument is neither a device nor a dtype.
        TypeError: an unknown ``dtype``.
    """
    dt = to_dtype(dtype, op)
    if device is None:
        return None, dt
    try:
        return normalize_device(device), dt
    except ValueError:
        try:
            return None, np.dtype(device)
        except (TypeError, ValueError):
            raise ValueError(
                f"{op}: {device!r} is neither a device ('cpu', 'cuda', 'cuda:N') nor a dtype"
            ) from None


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


#: the dtypes the hand-written CUDA kernels (``functional/_cuda.py``) are compiled for
KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def use_cuda_kernels(*arrays: Any) -> bool:
    """True when an op may run its CUDA kernels on these arrays: all CuPy arrays of a
    :data:`KERNEL_DTYPES` dtype, and the kernels are on (:func:`runtime.cuda_kernels_enabled`,
    ``MINIGRAD_CUDA_KERNELS``)."""
    return runtime.cuda_kernels_enabled() and all(
        is_cupy_array(a) and a.dtype in KERNEL_DTYPES for a in arrays
    )


def get_array_module(*arrays: Any) -> Any:
    """``numpy`` or ``cupy``: the module that owns the given arrays."""
    for a in arrays:
        if is_cupy_array(a):
            return _import_cupy()
    return np


def may_share_memory(a: Any, b: Any) -> bool:
    """True when arrays ``a`` and ``b`` may overlap in memory (a bounds check, never a false
    negative); False for arrays of different backends. Autograd's in-place write check."""
    if type(a) is np.ndarray and type(b) is np.ndarray:  # the common case, without detours
        return bool(np.may_share_memory(a, b))
    if is_cupy_array(a) != is_cupy_array(b):
        return False
    return bool(get_array_module(a).may_share_memory(a, b))


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


def require_cuda(device: str) -> Any:
    """CuPy, once ``device`` ("cuda:N") is known to exist.

    Raises:
        ValueError: no CUDA, or no device N.
    """
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
    cp = require_cuda(device)
    with cp.cuda.Device(int(device.split(":")[1])):
        return cp.asarray(a)


def memory_available(device: str = "cpu") -> int | None:
    """Bytes that may still be allocated on ``device``: a GPU's free memory (CUDA's
    ``mem_info``), the host's ``MemAvailable`` (``/proc/meminfo``, else ``os.sysconf``) for
    the CPU or a device that cannot say; None when nothing is known."""
    device = normalize_device(device)
    if device != "cpu":
        cp = require_cuda(device)
        try:
            return int(cp.cuda.Device(int(device.split(":")[1])).mem_info[0])
        except AttributeError:  # a stand-in without mem_info keeps its arrays on the host
            pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def as_numpy(a: Any) -> np.ndarray:
    """A host ``numpy.ndarray`` for any array (copies from the GPU)."""
    if is_cupy_array(a):
        return a.get()
    return np.asarray(a)


def device_context(device: str) -> Any:
    """Context manager that makes ``device`` current (a no-op for the CPU)."""
    if device == "cpu":  # every op enters one: the CPU's costs no parsing
        return contextlib.nullcontext()
    device = normalize_device(device)
    if device == "cpu":
        return contextlib.nullcontext()
    return require_cuda(device).cuda.Device(int(device.split(":")[1]))


_tf32 = False


def tf32_enabled() -> bool:
    """Whether :func:`set_tf32` turned TF32 on (CuPy's float32 matmuls use it then)."""
    return _tf32


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
    global _tf32
    _tf32 = bool(enabled)
    os.environ["CUPY_TF32"] = "1" if enabled else "0"  # read by CuPy on its first matmul
    try:
        from cupy._core import _routines_linalg as linalg  # noqa: PLC0415

        mode = linalg.COMPUTE_TYPE_TF32 if enabled else linalg.COMPUTE_TYPE_FP32
        linalg.set_compute_type(np.float32, mode)  # takes effect at once
    except (ImportError, AttributeError):  # another CuPy layout: the variable above decides
        pass


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
