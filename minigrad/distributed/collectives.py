"""Collectives on arrays of either device: ``all_reduce``, ``broadcast``, ``all_gather``.

NumPy arrays go over MPI (:mod:`._mpi`), CuPy arrays over NCCL (:mod:`._nccl`); the choice
is made here, in :func:`_transport`, from the array's type. In a single-process world every
collective is a copy. Each returns a new array and leaves its input untouched; the
``*_async`` form returns a :class:`Work` whose ``wait()`` gives that array.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minigrad import backend
from minigrad.distributed import _mpi, _nccl
from minigrad.distributed.world import _ensure

__all__ = ["Work", "all_gather", "all_reduce", "all_reduce_async", "barrier", "broadcast"]

_OPS = ("sum", "mean")


class Work:
    """A started collective; ``wait()`` blocks (up to the timeout) and returns its result."""

    def __init__(
        self, name: str, handle: Any, result: Any, transport: Any = None, scale: float = 1.0
    ) -> None:
        self.name, self._handle, self._result, self._transport = name, handle, result, transport
        self._scale, self._done = scale, handle is None

    def test(self) -> bool:
        """True when complete; under MPI this also lets the transfer progress."""
        if not self._done:
            self._done = self._transport.test(self._handle)
        return self._done

    def wait(self) -> Any:
        """The collective's result (raises DistributedTimeoutError after the timeout)."""
        if not self._done:
            self._transport.wait(self._handle, self.name)
            self._done = True
        if self._scale != 1.0:
            self._result *= self._result.dtype.type(self._scale)
            self._scale = 1.0
        return self._result


def _check_array(name: str, x: Any) -> Any:
    if not (isinstance(x, np.ndarray) or backend.is_cupy_array(x)):
        got = type(x).__name__
        hint = " (pass tensor.data)" if got in ("Tensor", "Parameter") else ""
        raise TypeError(f"{name}: expected a NumPy or CuPy array, got {got}{hint}")
    return x


def _transport(x: Any) -> Any:
    """Where ``x`` travels: the NCCL group of its GPU for CuPy arrays, else MPI."""
    if backend.is_cupy_array(x):
        return _nccl.group_for(x)
    return _MPITransport


class _MPITransport:
    """The MPI functions behind the transport interface (start, then test/wait)."""

    all_reduce = staticmethod(_mpi.iallreduce)
    broadcast = staticmethod(_mpi.ibroadcast)
    all_gather = staticmethod(_mpi.iallgather)
    test = staticmethod(_mpi.test)
    wait = staticmethod(_mpi.wait)


def all_reduce_async(x: Any, op: str = "sum") -> Work:
    """Start :func:`all_reduce`; returns a :class:`Work` (MPI ``Iallreduce`` / NCCL)."""
    _check_array("all_reduce", x)
    if op not in _OPS:
        raise ValueError(f"all_reduce: op must be one of {_OPS}, got {op!r}")
    if op == "mean" and x.dtype.kind not in "fc":
        raise TypeError(f"all_reduce: op='mean' needs a floating-point array, got {x.dtype}")
    w = _ensure()
    scale = 1.0 / w.size if op == "mean" else 1.0
    if w.size == 1:
        return Work("all_reduce", None, x.copy())
    transport = _transport(x)
    handle, out = transport.all_reduce(x)
    return Work("all_reduce", handle, out, transport, scale)


def all_reduce(x: Any, op: str = "sum") -> Any:
    """The element-wise sum (``op="sum"``) or mean (``"mean"``) of ``x`` over all ranks.

    Args:
        x: a NumPy or CuPy array, the same shape and dtype on every rank.
        op: ``"sum"`` or ``"mean"`` (floating-point arrays only).

    Returns:
        A new array (``x`` is not modified).

    Raises:
        TypeError: ``x`` is not an array, or ``"mean"`` of an integer array.
        ValueError: an unknown ``op``.
        DistributedTimeoutError: a peer did not join within the timeout.
    """
    return all_reduce_async(x, op).wait()


def broadcast(x: Any, root: int = 0) -> Any:
    """Rank ``root``'s ``x`` on every rank (a new array; ``x`` gives shape and dtype).

    Raises:
        TypeError: ``x`` is not an array.
        ValueError: ``root`` outside 0 .. world_size() - 1.
        DistributedTimeoutError: a peer did not join within the timeout.
    """
    _check_array("broadcast", x)
    w = _ensure()
    if isinstance(root, bool) or not isinstance(root, int) or not 0 <= root < w.size:
        raise ValueError(f"broadcast: root must be a rank in 0..{w.size - 1}, got {root!r}")
    if w.size == 1:
        return x.copy()
    transport = _transport(x)
    handle, out = transport.broadcast(x, root)
    return Work("broadcast", handle, out, transport).wait()


def all_gather(x: Any) -> Any:
    """Every rank's ``x`` stacked in rank order: shape ``(world_size(), *x.shape)``.

    Raises:
        TypeError: ``x`` is not an array.
        DistributedTimeoutError: a peer did not join within the timeout.
    """
    _check_array("all_gather", x)
    w = _ensure()
    if w.size == 1:
        return x[None].copy()
    transport = _transport(x)
    handle, out = transport.all_gather(x)
    return Work("all_gather", handle, out, transport).wait()


def world_comm() -> Any:
    """mpi4py's ``COMM_WORLD`` (None in a single-process world), for anything not wrapped."""
    return _ensure().comm


def barrier() -> None:
    """Wait until every rank has reached this call (within the timeout)."""
    w = _ensure()
    if w.size > 1:
        _mpi.wait(w.comm.Ibarrier(), "barrier")
