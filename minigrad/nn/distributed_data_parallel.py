"""``DistributedDataParallel``: one model replica per rank, gradients averaged over the ranks.

How a step goes, on every rank (launched by ``mpiexec``, see :mod:`minigrad.distributed`):

1. wrapping broadcasts rank 0's parameters and buffers, so every replica starts equal;
2. each rank runs forward and backward on its own shard of the batch;
3. during backward, a parameter's gradient is final as soon as the last op that reads the
   parameter has run backward (the engine accumulates it then and calls the parameter's
   post-accumulate hook). The gradients are grouped into buckets of about ``bucket_cap_mb``;
   a bucket whose gradients are all final is flattened and its mean over the ranks started
   with a non-blocking all-reduce (MPI ``Iallreduce``, or NCCL for CuPy arrays), so the
   transfer overlaps the backward of the earlier layers;
4. at the end of backward (an engine callback) the remaining buckets are started, all are
   waited for, and each ``.grad`` is replaced by the mean: every replica then takes the same
   optimizer step.

Buckets are launched strictly in bucket order (the collectives must match across ranks).
The first backward records the order in which gradients become ready; the buckets are then
rebuilt once in that order (rank 0's, broadcast), as PyTorch's DDP does.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from minigrad import backend, devices, engine
from minigrad import distributed as dist
from minigrad.nn.module import Module, Parameter
from minigrad.tensor import Tensor

__all__ = ["DistributedDataParallel"]


def _flat_groups(tensors: list[Tensor]) -> dict[tuple[str, str], list[Tensor]]:
    """Tensors grouped by (dtype, device): each group travels as one flat array."""
    groups: dict[tuple[str, str], list[Tensor]] = {}
    for t in tensors:
        groups.setdefault((str(t.data.dtype), devices.device_of(t.data)), []).append(t)
    return groups


def _unflatten(flat: Any, shapes: list[tuple[int, ...]]) -> list[Any]:
    """Views of ``flat`` with ``shapes``, in order: the inverse of concatenating ravels."""
    parts, offset = [], 0
    for shape in shapes:
        size = math.prod(shape)
        parts.append(flat[offset : offset + size].reshape(shape))
        offset += size
    return parts


def broadcast_tensors(tensors: list[Tensor], root: int = 0) -> None:
    """Overwrite every tensor's data with rank ``root``'s, one broadcast per (dtype, device)."""
    if dist.world_size() == 1:
        return
    for group in _flat_groups(tensors).values():
        xp = backend.get_array_module(group[0].data)
        flat = dist.broadcast(xp.concatenate([t.data.ravel() for t in group]), root)
        for t, part in zip(group, _unflatten(flat, [t.data.shape for t in group])):
            t.copy_(part)


class _Bucket:
    """Parameters whose gradients are all-reduced as one flat array."""

    def __init__(self, params: list[int]) -> None:
        self.params = params  # indices into DistributedDataParallel._params
        self.ready = 0  # how many of them have their gradient for this backward
        self.work: dist.Work | None = None


class DistributedDataParallel(Module):
    """Wrap ``module`` so that ``backward`` leaves the gradient mean over all ranks in ``.grad``.

    Args:
        module: the model; every rank must build the same architecture.
        bucket_cap_mb: gradients per all-reduce, in MiB (PyTorch's default is 25; a few MiB
            start the first transfer earlier in backward).
        broadcast_buffers: in training, send rank 0's buffers (BatchNorm running statistics)
            to all ranks before each forward, so every replica keeps the same ones (not
            needed with ``SyncBatchNorm``, whose statistics are already global).

    ``forward`` is the module's; ``.module`` is the wrapped model; ``state_dict()`` and
    ``load_state_dict()`` are the module's (no ``module.`` prefix), so a checkpoint loads
    into a plain model. In a single-process world nothing is communicated.

    Raises:
        TypeError: ``module`` is not a Module.
        ValueError: a non-positive ``bucket_cap_mb``, or ranks whose models differ in
            parameter count or size.
    """

    def __init__(
        self, module: Module, bucket_cap_mb: float = 4.0, broadcast_buffers: bool = True
    ) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(
                f"DistributedDataParallel: expected a Module, got {type(module).__name__}"
            )
        if not bucket_cap_mb > 0:
            raise ValueError(
                f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb}"
            )
        self.module = module
        self.bucket_cap_bytes = int(bucket_cap_mb * 2**20)
        self.broadcast_buffers = broadcast_buffers
        self.world_size = dist.world_size()
        self._params: list[Parameter] = [p for p in module.parameters() if p.requires_grad]
        self._check_same_model()
        broadcast_tensors(list(module.parameters()) + list(module.buffers()))
        self._sync = True
        self._active = False  # a backward is under way with hooks fired
        self._ready_order: list[int] | None = []  # recorded during the first backward
        self._buckets = self._make_buckets(list(reversed(range(len(self._params)))))
        #: figures of the last synchronised backward: ``wait_s`` (seconds waiting for the
        #: all-reduces at its end), ``buckets``, ``started_in_backward`` (buckets started by
        #: the hooks, before the end of backward), ``bytes`` reduced
        self.last_sync: dict[str, float] = {}
        self._handles = [
            engine.register_post_accumulate_grad_hook(p, self._hook(i))
            for i, p in enumerate(self._params)
        ]

    # ------------------------------------------------------------ setup
    def _check_same_model(self) -> None:
        mine = np.array([len(self._params), sum(p.data.size for p in self._params)], np.int64)
        every = dist.all_gather(mine)  # (R, 2)
        for r, theirs in enumerate(every):
            if tuple(theirs) != tuple(mine):
                raise ValueError(
                    f"DistributedDataParallel: rank {dist.rank()} has {mine[0]} parameters "
                    f"({mine[1]} values) but rank {r} has {theirs[0]} ({theirs[1]} values); "
                    "every rank must build the same model"
                )

    def _make_buckets(self, order: list[int]) -> list[_Bucket]:
        """Consecutive parameters of ``order`` up to ``bucket_cap_bytes`` and of one kind."""
        buckets: list[_Bucket] = []
        current: list[int] = []
        size, kind = 0, None
        for i in order:
            a = self._params[i].data
            k = (str(a.dtype), devices.device_of(a))
            if current and (size + a.nbytes > self.bucket_cap_bytes or k != kind):
                buckets.append(_Bucket(current))
                current, size = [], 0
            current.append(i)
            size, kind = size + a.nbytes, k
        if current:
            buckets.append(_Bucket(current))
        self._bucket_of = {i: b for b, bucket in enumerate(buckets) for i in bucket.params}
        return buckets

    # ------------------------------------------------------------ backward hooks
    def _hook(self, i: int) -> Any:
        def on_grad_ready(p: Tensor) -> None:
            if self._sync and self.world_size > 1:
                self._grad_ready(i)

        return on_grad_ready

    def _grad_ready(self, i: int) -> None:
        if not self._active:
            self._active, self._next, self._polled = True, 0, 0
            for bucket in self._buckets:
                bucket.ready, bucket.work = 0, None
            engine.queue_callback(self._finish)
        if self._ready_order is not None:
            self._ready_order.append(i)
        self._buckets[self._bucket_of[i]].ready += 1
        while self._next < len(self._buckets):  # launch in bucket order only
            bucket = self._buckets[self._next]
            if bucket.ready < len(bucket.params):
                break
            self._launch(bucket)
        # poll the oldest started bucket still in flight (a poll lets MPI progress every
        # transfer started); one poll per hook plus one per bucket done, not every bucket
        while self._polled < self._next and self._buckets[self._polled].work.test():
            self._polled += 1

    def _launch(self, bucket: _Bucket) -> None:
        params = [self._params[i] for i in bucket.params]
        xp = backend.get_array_module(params[0].data)
        flat = xp.concatenate(
            [(p.grad if p.grad is not None else xp.zeros_like(p.data)).ravel() for p in params]
        )
        bucket.work = dist.all_reduce_async(flat, op="mean")
        self._next += 1

    def _finish(self) -> None:
        """End of backward: start what is left, wait for all, write the means into .grad."""
        started_in_backward = self._next
        while self._next < len(self._buckets):
            self._launch(self._buckets[self._next])
        start = time.perf_counter()
        nbytes = 0
        for bucket in self._buckets:
            flat = bucket.work.wait()
            nbytes += flat.nbytes
            params = [self._params[i] for i in bucket.params]
            for p, part in zip(params, _unflatten(flat, [p.data.shape for p in params])):
                p.grad = part
            bucket.work = None
        self.last_sync = {
            "wait_s": time.perf_counter() - start,
            "buckets": len(self._buckets),
            "started_in_backward": started_in_backward,
            "bytes": nbytes,
        }
        self._active = False
        if self._ready_order is not None:
            self._rebuild_buckets()

    def _rebuild_buckets(self) -> None:
        """Once, after the first backward: buckets in rank 0's gradient-ready order."""
        seen = dict.fromkeys(self._ready_order)  # keeps first occurrences, in order
        rest = [i for i in reversed(range(len(self._params))) if i not in seen]
        order = dist.broadcast(np.array(list(seen) + rest, dtype=np.int64))
        self._ready_order = None
        self._buckets = self._make_buckets([int(i) for i in order])

    # ------------------------------------------------------------ public API
    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Inside, backward only accumulates local gradients (no communication); the first
        backward after it averages the accumulated sum (gradient accumulation)."""
        previous, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = previous

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self._active = False  # a backward that raised never ran its end callback: start over
        if self.broadcast_buffers and self.training and self.world_size > 1:
            broadcast_tensors(list(self.module.buffers()))
        return self.module(*args, **kwargs)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The wrapped module's state dict (keys without a ``module.`` prefix)."""
        return self.module.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> Any:
        """Load into the wrapped module (keys as a plain model writes them)."""
        return self.module.load_state_dict(state_dict, strict)

    def extra_repr(self) -> str:
        return (
            f"world_size={self.world_size}, buckets={len(self._buckets)}, "
            f"bucket_cap_mb={self.bucket_cap_bytes / 2**20:g}"
        )
