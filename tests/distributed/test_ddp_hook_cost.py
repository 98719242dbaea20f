"""The work of DistributedDataParallel's gradient hook does not grow with the buckets.

Each hook adds to its bucket's ready counter, launches the buckets that became complete (in
order), and polls only the oldest bucket still in flight: over a backward, the polls number
at most one per hook plus one per bucket, not hooks x started buckets. Checked on the hook
itself with fake transfers, so no second process is needed.
"""

from __future__ import annotations

from minigrad.nn import Module
from minigrad.nn.distributed_data_parallel import DistributedDataParallel, _Bucket


class _Work:
    polls = 0

    def __init__(self, done_after: int) -> None:
        self.left = done_after

    def test(self) -> bool:
        _Work.polls += 1
        self.left -= 1
        return self.left <= 0


def test_hook_polls_once_per_hook_plus_once_per_bucket():
    n = 400  # parameters, one bucket each: the old scan polled ~n*n/2 times
    ddp = object.__new__(DistributedDataParallel)  # the hook's state only, no module
    Module.__init__(ddp)
    vars(ddp).update(
        _active=True, _next=0, _polled=0, _ready_order=None,
        _buckets=[_Bucket([i]) for i in range(n)], _bucket_of={i: i for i in range(n)},
    )  # fmt: skip
    launched = []

    def launch(bucket):
        bucket.work = _Work(done_after=3)
        launched.append(bucket.params[0])
        ddp._next += 1

    ddp._launch = launch
    _Work.polls = 0
    for i in range(n):
        ddp._grad_ready(i)
    assert launched == list(range(n))  # in bucket order, each once its gradient is ready
    assert _Work.polls <= 2 * n
    assert ddp._polled > 0  # transfers were polled along the way


def test_buckets_launch_in_order_when_gradients_arrive_out_of_order():
    ddp = object.__new__(DistributedDataParallel)
    Module.__init__(ddp)
    vars(ddp).update(
        _active=True, _next=0, _polled=0, _ready_order=None,
        _buckets=[_Bucket([0, 1]), _Bucket([2]), _Bucket([3, 4])],
        _bucket_of={0: 0, 1: 0, 2: 1, 3: 2, 4: 2},
    )  # fmt: skip
    launched = []

    def launch(bucket):
        bucket.work = _Work(done_after=1)
        launched.append(tuple(bucket.params))
        ddp._next += 1

    ddp._launch = launch
    for i, want in ((2, []), (3, []), (0, []), (1, [(0, 1), (2,)]), (4, [(0, 1), (2,), (3, 4)])):
        ddp._grad_ready(i)
        assert launched == want
