"""Process-wide settings that make CPU training faster, in one place.

Importing minigrad changes none of them: the training CLI (the application's) and the
benchmarks call :func:`configure_cpu_training`, and a library user can do the same.

Three settings matter on the CPU (measured in the README's performance section):

- **glibc's malloc keeps freed memory** (:func:`keep_freed_memory`). NumPy takes every
  array of more than a few hundred KiB from ``malloc``, and glibc hands big blocks back to
  the kernel when they are freed. The next step's arrays are then fresh pages, which the
  kernel must zero on first touch: on a virtual machine that costs more than the work
  itself (a copy into a fresh 160 MB array took 48 ms, into a reused one 15 ms). With
  ``mmap`` off and trimming off, a training step reuses the previous step's pages.
- **BLAS on one thread, minigrad's chunks on all cores** (:func:`set_blas_threads`).
  Convolutions run as cache-sized chunks (im2col of a few images, then their products)
  shared out among minigrad's host threads (:mod:`minigrad.functional._threads`), which
  keeps ``col`` in the cache and threads the copies as well as the products. That needs
  each product on one BLAS thread; with a multi-threaded BLAS the chunks run one after
  another on the calling thread and BLAS threads each product instead.
- **OpenBLAS's idle threads stop spinning soon** (``OPENBLAS_THREAD_TIMEOUT``, read when
  NumPy loads OpenBLAS, so it must be in the environment before ``import numpy``; see
  :data:`BLAS_ENV_DEFAULTS`): after each product OpenBLAS's worker threads busy-wait for
  the next one (2**28 cycles by default) on the cores the host threads need.

The BLAS thread count is changed through OpenBLAS's own ``openblas_set_num_threads``
(found in the OpenBLAS library NumPy loaded); with another BLAS (MKL, Accelerate) it is
left alone and :func:`blas_threads` reports ``None``.
"""

from __future__ import annotations

import ctypes
import glob
import os
import platform
import sys
from typing import Any

#: environment defaults to set before NumPy is imported (``os.environ.setdefault``);
#: ``OPENBLAS_THREAD_TIMEOUT=4``: idle OpenBLAS threads wait 2**4 cycles, then sleep
BLAS_ENV_DEFAULTS = {"OPENBLAS_THREAD_TIMEOUT": "4"}

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
_state: dict[str, Any] = {"keep_freed_memory": False, "blas": None, "blas_threads": None}


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for the next allocations (process-wide).

    Sets ``M_MMAP_MAX=0`` (big blocks come from the heap, not from fresh ``mmap`` pages),
    ``M_TRIM_THRESHOLD`` to 2 GiB (freed memory stays mapped) and ``M_TOP_PAD`` to
    64 MiB. The process's resident memory then stays at its high-water mark instead of
    shrinking between steps, which for a training process is where it goes back to anyway.

    Returns:
        True when the settings were applied; False on a C library that is not glibc
        (macOS, musl, Windows), where nothing changes.
    """
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = (
        mallopt(_M_MMAP_MAX, 0) == 1
        and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
        and mallopt(_M_TOP_PAD, 64 << 20) == 1
    )
    _state["keep_freed_memory"] = ok
    return ok


def _openblas() -> tuple[Any, Any] | None:
    """(get, set) thread-count functions of the OpenBLAS NumPy loaded, or None."""
    if _state["blas"] is None:
        import numpy as np  # noqa: PLC0415 - NumPy decides which BLAS is loaded

        found: tuple[Any, Any] | tuple[()] = ()
        libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
        candidates = glob.glob(os.path.join(libs, "*openblas*"))
        for path in [*candidates, None]:  # None: symbols already in the process
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for prefix, suffix in (
                ("scipy_openblas", "64_"),
                ("openblas", ""),
                ("scipy_openblas", ""),
            ):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
                    found = (get, put)
                    break
            if found:
                break
        _state["blas"] = found
    return _state["blas"] or None


def blas_threads() -> int | None:
    """The number of threads OpenBLAS uses for each product, or None for another BLAS."""
    if _state["blas_threads"] is None:
        blas = _openblas()
        _state["blas_threads"] = blas[0]() if blas else 0
    return _state["blas_threads"] or None


def set_blas_threads(n: int) -> bool:
    """Make OpenBLAS use ``n`` threads per product; False (no change) for another BLAS."""
    blas = _openblas()
    if not blas:
        return False
    blas[1](int(n))
    _state["blas_threads"] = blas[0]()
    return True


def configure_cpu_training(threads: int | None = None) -> dict[str, Any]:
    """The settings of the training CLI and the benchmarks, in one call.

    Keeps freed memory (:func:`keep_freed_memory`), runs BLAS on one thread and minigrad's
    chunks on ``threads`` host threads (default: ``MINIGRAD_NUM_THREADS``, else the CPU
    count). Returns :func:`settings`.
    """
    from minigrad.functional import _threads  # noqa: PLC0415

    keep_freed_memory()
    if threads is not None:
        _threads.set_host_threads(threads)
    set_blas_threads(1)
    return settings()


def settings() -> dict[str, Any]:
    """What this process runs with: allocator, BLAS threads, host threads, BLAS timeout."""
    from minigrad.functional import _threads  # noqa: PLC0415

    return {
        "keep_freed_memory": _state["keep_freed_memory"],
        "blas_threads": blas_threads(),
        "host_threads": _threads.host_threads(),
        "OPENBLAS_THREAD_TIMEOUT": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
    }
