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

A rank that ends for any reason ends the job in bounded time:

* an exception, or a non-zero exit code handed to :func:`stop_job`: ``MPI_Abort`` at once;
* an interrupt (SIGINT/Ctrl-C, or SIGTERM turned into one) on rank ``r > 0``:
  :func:`stop_job` with 130 first sends a *stop notice* to every other rank over a control
  communicator of its own (a ``Dup`` of the world, so it never mixes with the
  collectives). A rank waiting in a collective polls for that notice and raises
  :class:`PeerInterrupt` (a ``KeyboardInterrupt``), so rank 0 stops as after Ctrl-C (it
  saves its checkpoint) and then aborts the job; rank ``r`` aborts it itself if rank 0
  has not done so within the timeout;
* ``kill -9`` (any death by a signal): MPICH's launcher (Hydra) sees the process die and
  kills the others (measured: under a second);
* a rank that hangs: the others' collectives raise :class:`DistributedTimeoutError`
  after the timeout.
"""

from __future__ import annotations

import atexit
import os
import socket
import sys
import time
import traceback
from typing import Any

__all__ = [
    "DistributedTimeoutError",
    "PeerInterrupt",
    "get_timeout",
    "init",
    "is_initialized",
    "is_main",
    "rank",
    "stop_job",
    "world_size",
]

DEFAULT_TIMEOUT = 300.0
#: set by the launcher (``python -m minigrad.distributed.run``): a folder where each rank
#: records its pid and host, and the first rank to stop the job records why
RUN_STATE_ENV = "MINIGRAD_RUN_STATE"

#: environment variables that MPI launchers (MPICH/Hydra, Open MPI, PMIx, Slurm's PMI) set
_LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")


class DistributedTimeoutError(RuntimeError):
    """A collective that some peer did not join within the timeout."""


class PeerInterrupt(KeyboardInterrupt):
    """Another rank was interrupted: raised in this rank's collective, so that this rank
    stops as after Ctrl-C (rank 0 saves its checkpoint), and the job then ends.

    Attributes:
        peer: the rank that was interrupted.
        code: the exit status it stops with (130).
    """

    def __init__(self, peer: int, code: int) -> None:
        super().__init__(f"rank {peer} was interrupted (exit code {code})")
        self.peer, self.code = peer, code


#: the tag of a stop notice on the control communicator
_STOP_TAG = 7


class _World:
    """The state behind the module functions (one per process)."""

    def __init__(self) -> None:
        self.initialized = False
        self.rank, self.size = 0, 1
        self.comm: Any = None  # mpi4py's COMM_WORLD, or None for a single-process world
        self.MPI: Any = None  # the mpi4py.MPI module
        self.timeout = DEFAULT_TIMEOUT
        self.nccl: dict[str, Any] = {}  # device string -> NCCL communicator (lazy)
        self.control: Any = None  # a Dup of COMM_WORLD that carries stop notices only
        self.notice: Any = None  # the posted receive of a stop notice, and its buffer
        self.notice_buf: Any = None
        self.sent: list[Any] = []  # stop notices sent (kept alive until the job ends)
        self.stopping: tuple[int, int] | None = None  # (rank, code) of a stop notice seen


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
    _record("rank-{rank}.json", {"pid": os.getpid(), "host": socket.gethostname()})
    if _world.size > 1:
        _listen_for_stop_notices()
    if abort_on_exception and _world.size > 1:
        sys.excepthook = _abort_hook


def _record(name: str, fields: dict[str, Any], exclusive: bool = False) -> None:
    """Write ``fields`` (and this rank) as JSON to ``name`` in the launcher's state folder
    (nothing without a launcher; ``exclusive``: only if no such file exists yet)."""
    folder = os.environ.get(RUN_STATE_ENV)
    if not folder:
        return
    import json  # noqa: PLC0415

    path = os.path.join(folder, name.format(rank=_world.rank))
    try:
        with open(path, "x" if exclusive else "w") as f:
            json.dump({"rank": _world.rank, **fields}, f)
    except OSError:  # another rank recorded first, or the folder is not on this host
        pass


def _listen_for_stop_notices() -> None:
    import numpy as np  # noqa: PLC0415

    _world.control = _world.comm.Dup()
    _world.notice_buf = np.zeros(2, dtype=np.int64)  # [rank, exit code]
    _world.notice = _world.control.Irecv(
        _world.notice_buf, source=_world.MPI.ANY_SOURCE, tag=_STOP_TAG
    )
    atexit.register(_stop_listening)  # runs before mpi4py's MPI_Finalize (registered earlier)


def _stop_listening() -> None:
    """Cancel the pending receive of a stop notice, so that ``MPI_Finalize`` finds no
    communication left open."""
    if _world.notice is not None:
        _world.notice.Cancel()
        _world.notice.Wait()
        _world.notice = None


def check_peers() -> None:
    """Raise :class:`PeerInterrupt` if another rank sent a stop notice (polled by every
    collective's wait; cheap: one ``MPI_Test``)."""
    if _world.notice is not None and _world.notice.Test():
        peer, code = (int(v) for v in _world.notice_buf)
        _world.notice = None  # one notice is enough; the job is ending
        _world.stopping = (peer, code)
        raise PeerInterrupt(peer, code)


def stop_job(code: int, grace: float | None = None) -> None:
    """End every rank of the job with exit status ``code`` (under MPI on N > 1 ranks;
    otherwise nothing happens and the caller exits as usual).

    Rank 0, or any rank with a code other than 130 (an error), calls ``MPI_Abort(code)`` at
    once. Another rank with 130 (interrupted) first sends a stop notice to every rank, so
    that rank 0's next collective raises :class:`PeerInterrupt` and rank 0 saves its
    checkpoint and ends the job itself; if it has not within ``grace`` seconds (default:
    the collective timeout), this rank aborts the job.
    """
    if _world.comm is None or _world.size == 1:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    if _world.stopping is None:  # the first rank to stop: the launcher reports it
        _record("failure.json", {"code": code}, exclusive=True)
    if code == 130 and _world.rank != 0:
        import numpy as np  # noqa: PLC0415

        note = np.array([_world.rank, code], dtype=np.int64)
        for r in range(_world.size):
            if r != _world.rank:
                _world.sent.append((note, _world.control.Isend(note, dest=r, tag=_STOP_TAG)))
        deadline = time.monotonic() + (_world.timeout if grace is None else grace)
        while time.monotonic() < deadline:  # rank 0 saves, then aborts (ending this rank)
            for _, request in _world.sent:
                request.Test()  # let MPI move the notices
            time.sleep(0.01)
    else:
        # MPI_Abort kills the job at once: give mpiexec's output forwarding a moment to
        # pass on what this rank just wrote (seen lost under load without it)
        time.sleep(0.5)
    _world.comm.Abort(code)


def _abort_hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    lines = traceback.format_exception(kind, value, tb)
    sys.stderr.write("".join(f"[rank {_world.rank}] {line}" for line in lines))
    sys.stderr.flush()
    stop_job(130 if issubclass(kind, KeyboardInterrupt) else 1)


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
