"""The process group: who am I, how many are we, and how long to wait for the others.

``init()`` joins the MPI world when the process was started by ``mpiexec``/``mpirun``
(detected from the launcher's environment variables) and ``mpi4py`` imports; otherwise it
makes a single-process world, so a script written for N ranks runs unchanged as one.
Every collective waits at most ``timeout`` seconds for its peers (``init(timeout=...)``,
else the environment variable ``MINIGRAD_DIST_TIMEOUT``, else 300 s) and then raises
:class:`DistributedTimeoutError` naming the collective and the rank.

Under MPI, ``init`` also installs an exception hook: an exception that reaches the top of
one rank prints its traceback (prefixed with the rank) and aborts the whole job, so
``mpiexec`` exits non-zero with that message instead of the other ranks waiting for ever.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Any

__all__ = [
    "DistributedTimeoutError",
    "get_timeout",
    "init",
    "is_initialized",
    "is_main",
    "rank",
    "world_size",
]

DEFAULT_TIMEOUT = 300.0

#: environment variables that MPI launchers (MPICH/Hydra, Open MPI, PMIx, Slurm's PMI) set
_LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")


class DistributedTimeoutError(RuntimeError):
    """A collective that some peer did not join within the timeout."""


class _World:
    """The state behind the module functions (one per process)."""

    def __init__(self) -> None:
        self.initialized = False
        self.rank, self.size = 0, 1
        self.comm: Any = None  # mpi4py's COMM_WORLD, or None for a single-process world
        self.MPI: Any = None  # the mpi4py.MPI module
        self.timeout = DEFAULT_TIMEOUT
        self.nccl: dict[str, Any] = {}  # device string -> NCCL communicator (lazy)


_world = _World()


def _launched_by_mpi() -> bool:
    return any(v in os.environ for v in _LAUNCHER_VARS)


def _parse_timeout(timeout: float | None) -> float:
    if timeout is None:
        env = os.environ.get("MINIGRAD_DIST_TIMEOUT")
        if env is None:
            return DEFAULT_TIMEOUT
        try:
            timeout = float(env)
        except ValueError:
            raise ValueError(
                f"init: MINIGRAD_DIST_TIMEOUT must be a number of seconds, got {env!r}"
            ) from None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"init: timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def init(timeout: float | None = None, abort_on_exception: bool = True) -> None:
    """Join the MPI world (or make a single-process one); safe to call more than once.

    Args:
        timeout: seconds a collective waits for its peers before raising
            :class:`DistributedTimeoutError`; default ``MINIGRAD_DIST_TIMEOUT`` or 300.
        abort_on_exception: under MPI, make an uncaught exception on any rank abort the
            whole job (``MPI_Abort``) after printing it, instead of leaving the others
            blocked in their next collective until the timeout.

    Raises:
        ValueError: for a non-positive ``timeout`` (or an unparsable environment value).
    """
    _world.timeout = _parse_timeout(timeout)
    if _world.initialized:
        return
    _world.initialized = True
    if not _launched_by_mpi():
        return
    try:
        from mpi4py import MPI  # noqa: PLC0415 - optional dependency (the 'dist' extra)
    except ImportError:
        print(
            "minigrad.distributed: launched by an MPI launcher but mpi4py is missing; "
            "running as a single process (pip install 'minigrad[dist]')",
            file=sys.stderr,
        )
        return
    _world.MPI, _world.comm = MPI, MPI.COMM_WORLD
    _world.rank, _world.size = _world.comm.Get_rank(), _world.comm.Get_size()
    if abort_on_exception and _world.size > 1:
        sys.excepthook = _abort_hook


def _abort_hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    lines = traceback.format_exception(kind, value, tb)
    sys.stderr.write("".join(f"[rank {_world.rank}] {line}" for line in lines))
    sys.stderr.flush()
    time.sleep(0.5)  # let mpiexec forward the message before the abort kills the job
    _world.comm.Abort(1)


def _ensure() -> _World:
    if not _world.initialized:
        init()
    return _world


def is_initialized() -> bool:
    """True once :func:`init` has run (the collectives call it on first use)."""
    return _world.initialized


def rank() -> int:
    """This process's index in the world, 0 .. world_size() - 1."""
    return _ensure().rank


def world_size() -> int:
    """The number of processes (1 when not launched by ``mpiexec``)."""
    return _ensure().size


def is_main() -> bool:
    """True on rank 0, the rank that prints, writes files and checkpoints."""
    return _ensure().rank == 0


def get_timeout() -> float:
    """Seconds a collective waits for its peers."""
    return _ensure().timeout
