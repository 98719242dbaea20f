"""CuPy (GPU) arrays over NCCL: one communicator per CUDA device, its unique id sent over MPI.

NCCL calls are queued on the current CUDA stream and return at once; completion is an
event recorded after them, polled until the timeout (then the communicator is aborted).
CuPy is reached only through :mod:`minigrad.backend` (``nccl_module``, ``cuda_event``).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from minigrad import backend, devices
from minigrad.distributed.world import DistributedTimeoutError, _world, check_peers

_NCCL_DTYPES = {
    "float16": "NCCL_FLOAT16",
    "float32": "NCCL_FLOAT32",
    "float64": "NCCL_FLOAT64",
    "int8": "NCCL_INT8",
    "uint8": "NCCL_UINT8",
    "int32": "NCCL_INT32",
    "int64": "NCCL_INT64",
}


class NcclGroup:
    """The NCCL communicator of one CUDA device across all ranks."""

    def __init__(self, device: str) -> None:
        self.nccl = backend.nccl_module()
        uid = np.zeros(128, dtype=np.int64)  # NCCL's 128-byte unique id, as ints
        if _world.rank == 0:
            uid[:] = self.nccl.get_unique_id()
        from minigrad.distributed import _mpi  # noqa: PLC0415

        _mpi.wait(_world.comm.Ibcast(uid, root=0), "nccl init (unique id broadcast)")
        with devices.device_context(device):
            self.comm = self.nccl.NcclCommunicator(
                _world.size, tuple(int(v) for v in uid), _world.rank
            )
        self.device = device

    def _dtype(self, name: str, x: Any) -> int:
        key = _NCCL_DTYPES.get(str(x.dtype))
        if key is None:
            raise TypeError(f"{name}: NCCL has no type for dtype {x.dtype}")
        return getattr(self.nccl, key)

    def all_reduce(self, x: Any) -> tuple[Any, Any]:
        xp = backend.get_array_module(x)
        send = xp.ascontiguousarray(x)
        out = xp.empty(x.shape, dtype=x.dtype)
        with devices.device_context(self.device):
            stream = devices.current_stream_ptr()
            t = self._dtype("all_reduce", x)
            self.comm.allReduce(
                send.data.ptr, out.data.ptr, send.size, t, self.nccl.NCCL_SUM, stream
            )
            return devices.cuda_event(), out

    def broadcast(self, x: Any, root: int) -> tuple[Any, Any]:
        xp = backend.get_array_module(x)
        out = xp.array(x, order="C")  # a C-contiguous copy (0-d stays 0-d)
        with devices.device_context(self.device):
            stream = devices.current_stream_ptr()
            self.comm.bcast(out.data.ptr, out.size, self._dtype("broadcast", x), root, stream)
            return devices.cuda_event(), out

    def all_gather(self, x: Any) -> tuple[Any, Any]:
        xp = backend.get_array_module(x)
        send = xp.ascontiguousarray(x)
        out = xp.empty((_world.size, *x.shape), dtype=x.dtype)  # (R, *x.shape)
        with devices.device_context(self.device):
            stream = devices.current_stream_ptr()
            t = self._dtype("all_gather", x)
            self.comm.allGather(send.data.ptr, out.data.ptr, send.size, t, stream)
            return devices.cuda_event(), out

    def test(self, event: Any) -> bool:
        """True when the NCCL call before ``event`` has completed."""
        return bool(event.done)

    def wait(self, event: Any, name: str) -> None:
        """Poll ``event`` (recorded after the NCCL call) until the timeout, then abort."""
        deadline = time.monotonic() + _world.timeout
        while not event.done:
            check_peers()  # another rank's stop notice (raises PeerInterrupt)
            if time.monotonic() > deadline:
                self.comm.abort()
                raise DistributedTimeoutError(
                    f"{name}: rank {_world.rank} of {_world.size} waited {_world.timeout:g} s "
                    f"on NCCL ({self.device}) and a peer never joined; the communicator "
                    "is aborted"
                )
            os.sched_yield()


def group_for(x: Any) -> NcclGroup:
    """The NCCL group of the device ``x`` lives on (created on first use)."""
    device = devices.device_of(x)
    group = _world.nccl.get(device)
    if group is None:
        group = _world.nccl[device] = NcclGroup(device)
    return group
