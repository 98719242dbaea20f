"""Devices: which exist, what a device string means, copies between them, the current
device, streams and events, TF32, and how much memory is left.

A device is ``"cpu"`` or ``"cuda:N"`` (:func:`normalize_device` reads ``"cuda"``, ``"CUDA:1"``
and the like); an array's device is where its memory lives (:func:`device_of`). CuPy comes
from :func:`minigrad.backend.import_cupy` (``backend.py`` stays the one module that imports
it), so everything here works, and says so clearly, without CuPy.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np

from minigrad import backend
from minigrad.backend import as_numpy, is_cupy_array, to_dtype


def cuda_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device. Never raises."""
    cp = backend.import_cupy()
    if cp is None:
        return False
    try:
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


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
    cp = backend.import_cupy()
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
    if not cuda_available():
        raise ValueError("set_tf32: TF32 needs CuPy and a CUDA device; the CPU has no TF32")
    global _tf32
    backend.set_cupy_tf32(enabled)
    _tf32 = bool(enabled)


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


# ---------------------------------------------------- streams and events (minigrad.distributed)
def current_stream_ptr() -> int:
    """The raw handle of CuPy's current CUDA stream (where NCCL calls are queued)."""
    return backend.import_cupy().cuda.get_current_stream().ptr


def cuda_event() -> Any:
    """A CUDA event recorded now on the current stream (``.done`` polls it)."""
    event = backend.import_cupy().cuda.Event(block=False, disable_timing=True)
    event.record()
    return event
