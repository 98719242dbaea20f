"""Host (NumPy) arrays over MPI: buffer-protocol, non-blocking calls, waited with a deadline.

Every collective here is the non-blocking MPI call (``Iallreduce``, ``Ibcast``,
``Iallgather``, ``Ibarrier``) followed by :func:`wait`, which polls ``Test()`` until the
request completes or the timeout passes. Arrays travel as raw buffers (mpi4py's upper-case
methods), never pickled.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from minigrad.distributed.world import DistributedTimeoutError, _world, check_peers

#: spin (yielding the CPU to the other ranks) this long before sleeping between polls:
#: MPICH moves a large message in chunks, one per progress call, so sleeping too early
#: would stretch a big all-reduce
_SPIN_S = 0.05
_MAX_SLEEP_S = 1e-3


def test(request: Any) -> bool:
    """Poll once (this also lets MPI progress the transfer); True when complete."""
    return bool(request.Test())


def wait(request: Any, name: str) -> None:
    """Wait for ``request`` until the timeout, then raise naming ``name`` and the rank.

    Each poll also checks for another rank's stop notice (see
    :func:`~minigrad.distributed.world.stop_job`).

    Raises:
        DistributedTimeoutError: a peer did not join the collective in time.
        PeerInterrupt: another rank was interrupted (this rank then stops as after Ctrl-C).
    """
    if request.Test():
        return
    start = time.monotonic()
    deadline = start + _world.timeout
    pause = 0.0
    while not request.Test():
        check_peers()
        now = time.monotonic()
        if now > deadline:
            raise DistributedTimeoutError(
                f"{name}: rank {_world.rank} of {_world.size} waited {_world.timeout:g} s "
                "and a peer never joined (a rank crashed, hangs, or skipped the call); "
                "raise the limit with init(timeout=...) or MINIGRAD_DIST_TIMEOUT"
            )
        if now - start < _SPIN_S:
            os.sched_yield()
        else:
            time.sleep(pause)
            pause = min(2 * pause or 1e-5, _MAX_SLEEP_S)


def iallreduce(x: np.ndarray) -> tuple[Any, np.ndarray]:
    """Start the sum of ``x`` over all ranks into a new array: (request, result)."""
    out = np.array(x, order="C")  # a C-contiguous copy (0-d stays 0-d)
    return _world.comm.Iallreduce(_world.MPI.IN_PLACE, out, op=_world.MPI.SUM), out


def ibroadcast(x: np.ndarray, root: int) -> tuple[Any, np.ndarray]:
    """Start sending root's ``x`` to every rank, into a new array: (request, result)."""
    out = np.array(x, order="C")  # a C-contiguous copy (0-d stays 0-d)
    return _world.comm.Ibcast(out, root=root), out


def iallgather(x: np.ndarray) -> tuple[Any, np.ndarray]:
    """Start gathering every rank's ``x`` into a new (world, *x.shape) array."""
    send = np.ascontiguousarray(x)
    out = np.empty((_world.size, *x.shape), dtype=x.dtype)  # (R, *x.shape)
    return _world.comm.Iallgather(send, out), out
