"""Process-wide settings, in one place: which paths the ops take, and how fast a CPU runs.

Which implementation of an op runs (see :class:`minigrad.autograd.Function`):

- :func:`reference_ops` (``with mg.reference_ops():``, per thread, like ``no_grad``) and
  ``MINIGRAD_REFERENCE_OPS=1`` (the process default) run every op on its readable
  reference ``forward``/``backward`` instead of its fast paths;
- ``MINIGRAD_CUDA_KERNELS=0`` (or :func:`set_cuda_kernels`) turns the hand-written CUDA
  kernels off; the CuPy arrays then take the generic array code.

How many host threads the ops' chunks run on: :func:`set_host_threads`, else
``MINIGRAD_NUM_THREADS``, else the cores of the process's affinity mask divided among the
ranks an MPI launcher started on this machine (:func:`host_threads`). Every environment
variable here is read ONCE, when this module is imported.

Importing minigrad changes none of the settings below: the training CLI (the application's) and the
benchmarks call :func:`configure_cpu_training`, and a library user can do the same.

Three settings matter on the CPU (measured in docs/performance.md):

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

import contextlib
import ctypes
import glob
import os
import platform
import sys
import threading
from typing import Any

#: environment defaults to set before NumPy is imported (``os.environ.setdefault``);
#: ``OPENBLAS_THREAD_TIMEOUT=4``: idle OpenBLAS threads wait 2**4 cycles, then sleep
BLAS_ENV_DEFAULTS = {"OPENBLAS_THREAD_TIMEOUT": "4"}

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
_state: dict[str, Any] = {"keep_freed_memory": False, "blas": None, "blas_threads": None}


def _env_flag(name: str, default: bool) -> bool:
    """An on/off environment variable: "0", "false", "no", "off" or "" is off."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("", "0", "false", "no", "off")


def _env_threads() -> int | None:
    value = os.environ.get("MINIGRAD_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


#: the environment, read once at import
ENV_NUM_THREADS: int | None = _env_threads()
ENV_CUDA_KERNELS: bool = _env_flag("MINIGRAD_CUDA_KERNELS", True)
ENV_REFERENCE_OPS: bool = _env_flag("MINIGRAD_REFERENCE_OPS", False)

_settings: dict[str, Any] = {"host_threads": None, "cuda_kernels": ENV_CUDA_KERNELS}


# ---------------------------------------------------------------- which path the ops take
_mode = threading.local()  # per thread: .stack of reference_ops modes to restore on exit


def is_reference_ops() -> bool:
    """True inside ``reference_ops()`` (or with ``MINIGRAD_REFERENCE_OPS=1``): every op
    runs its reference ``forward``/``backward``, none of its fast paths."""
    return getattr(_mode, "on", ENV_REFERENCE_OPS)


class reference_ops(contextlib.ContextDecorator):
    """Context manager / decorator: the ops run their readable reference code.

    For reading and debugging (the study tools, a debugger stepping through the maths) and
    as the tests' oracle; slower than the fast paths. Per thread, nestable, and
    ``reference_ops(False)`` switches the fast paths back on inside it. The path is chosen
    when an op runs forward; its backward takes the same path, whatever the mode then.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = bool(enabled)

    def __enter__(self) -> None:
        if not hasattr(_mode, "stack"):
            _mode.stack = []
        _mode.stack.append(is_reference_ops())
        _mode.on = self.enabled

    def __exit__(self, *exc: Any) -> None:
        _mode.on = _mode.stack.pop()


def cuda_kernels_enabled() -> bool:
    """Whether ops on CuPy arrays use the hand-written CUDA kernels (default: yes, unless
    ``MINIGRAD_CUDA_KERNELS=0`` at import; see :func:`set_cuda_kernels`)."""
    return _settings["cuda_kernels"]


def set_cuda_kernels(enabled: bool | None) -> None:
    """Turn the CUDA kernels on or off for the process (None: back to the environment's)."""
    _settings["cuda_kernels"] = ENV_CUDA_KERNELS if enabled is None else bool(enabled)


# ---------------------------------------------------------------- host threads
def available_cores() -> int:
    """The cores this process may run on: its affinity mask (``taskset``, a container's or
    a batch scheduler's CPU set), else the machine's CPU count."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


#: what MPI launchers tell each process about the ranks on its machine (MPICH's Hydra,
#: Open MPI); read when asked, not at import
_LOCAL_SIZE_VARS = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE")


def launcher_local_size() -> int:
    """How many ranks an MPI launcher started on this machine (1 when not launched)."""
    for name in _LOCAL_SIZE_VARS:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def default_host_threads() -> int:
    """The available cores divided among the ranks on this machine (at least 1), so that
    ``mpiexec -n N`` on one machine does not oversubscribe it."""
    return max(available_cores() // launcher_local_size(), 1)


def host_threads() -> int:
    """Host threads for the ops' array passes: :func:`set_host_threads`'s value, else
    ``MINIGRAD_NUM_THREADS`` (read at import), else :func:`default_host_threads` (the
    affinity cores divided among the ranks an MPI launcher started on this machine)."""
    if _settings["host_threads"] is not None:
        return _settings["host_threads"]
    return ENV_NUM_THREADS or default_host_threads()


def set_host_threads(n: int | None) -> None:
    """Use ``n`` host threads (None: back to ``MINIGRAD_NUM_THREADS`` / the CPU count)."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"set_host_threads: expected a positive int or None, got {n!r}")
    _settings["host_threads"] = n


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
    keep_freed_memory()
    if threads is not None:
        set_host_threads(threads)
    set_blas_threads(1)
    return settings()


def settings() -> dict[str, Any]:
    """What this process runs with: allocator, BLAS threads, host threads, BLAS timeout."""
    return {
        "keep_freed_memory": _state["keep_freed_memory"],
        "blas_threads": blas_threads(),
        "host_threads": host_threads(),
        "OPENBLAS_THREAD_TIMEOUT": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
    }
