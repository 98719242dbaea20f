"""The one module that knows CuPy exists: the NumPy/CuPy switch and the dtype rules.

The optional CuPy import (:func:`import_cupy`), ``get_array_module`` (the array module of
some arrays), host copies (:func:`as_numpy`), and the few places where NumPy and CuPy APIs
differ (the shims at the bottom: ``scatter_add``, ``raw_module`` for the CUDA kernels,
``nccl_module``, ``set_cupy_tf32``). Ops call ``xp = get_array_module(x)`` and then only
``xp.*`` and these shims. Devices (``"cpu"``, ``"cuda:N"``), copies between them, the
current device, streams, events, TF32 and free memory live in :mod:`minigrad.devices`, which
gets CuPy from :func:`import_cupy`; the random generators live in :mod:`minigrad.random`.

The dtype rules live here too: what a Python number becomes (:func:`as_array`,
:func:`default_dtype`: a Python float is float32, PyTorch's default) and how a dtype
argument is read (:func:`to_dtype`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from minigrad import runtime

_cupy: Any = None
_cupy_tried = False


def import_cupy() -> Any:
    """CuPy, imported once, lazily; None when it is missing, broken or disabled
    (``MINIGRAD_DISABLE_CUPY``). The only way into CuPy for the rest of the package."""
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


def is_cupy_array(a: Any) -> bool:
    """True for a ``cupy.ndarray`` (checked without importing CuPy)."""
    return type(a).__module__.startswith("cupy")


#: the dtypes the hand-written CUDA kernels (registered in ``functional/_cuda.py``) are compiled for
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
            return import_cupy()
    return np


def may_share_memory(a: Any, b: Any) -> bool:
    """True when arrays ``a`` and ``b`` may overlap in memory (a bounds check, never a false
    negative); False for arrays of different backends. Autograd's in-place write check."""
    if type(a) is np.ndarray and type(b) is np.ndarray:  # the common case, without detours
        return bool(np.may_share_memory(a, b))
    if is_cupy_array(a) != is_cupy_array(b):
        return False
    return bool(get_array_module(a).may_share_memory(a, b))


def as_numpy(a: Any) -> np.ndarray:
    """A host ``numpy.ndarray`` for any array (copies from the GPU)."""
    if is_cupy_array(a):
        return a.get()
    return np.asarray(a)


# ---------------------------------------------------------------- API shims
def raw_module(source: str) -> Any:
    """CuPy's ``RawModule`` for a CUDA C++ source (compiled by NVRTC on first use); the
    kernels the op families register with ``minigrad.functional._cuda`` are looked up in it.

    Raises:
        ValueError: when CuPy is not available.
    """
    cp = import_cupy()
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
    if import_cupy() is not None:
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


def set_cupy_tf32(enabled: bool) -> None:
    """Make CuPy's float32 matmuls use TF32 tensor cores, or not (:func:`minigrad.devices.set_tf32`
    checks for a GPU and keeps the setting)."""
    os.environ["CUPY_TF32"] = "1" if enabled else "0"  # read by CuPy on its first matmul
    try:
        from cupy._core import _routines_linalg as linalg  # noqa: PLC0415

        mode = linalg.COMPUTE_TYPE_TF32 if enabled else linalg.COMPUTE_TYPE_FP32
        linalg.set_compute_type(np.float32, mode)  # takes effect at once
    except (ImportError, AttributeError):  # another CuPy layout: the variable above decides
        pass
