"""DistributedDataParallel and SyncBatchNorm on 2 ranks equal one process on the whole batch."""

from __future__ import annotations

import re

import numpy as np

import minigrad as mg
from minigrad import nn

# N steps of SGD with momentum; each rank takes its half of every global batch of 2B
EQUIVALENCE = """
import numpy as np
import minigrad as mg
import minigrad.functional as F
from minigrad import distributed as dist, nn, optim

dist.init(timeout=30)
r, R = dist.rank(), dist.world_size()
B, STEPS = 4, 3

def make(bn):
    mg.manual_seed(0)
    layers = [nn.Conv2d(3, 4, 3, padding=1)]
    layers += [nn.BatchNorm2d(4)] if bn else []
    layers += [nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)]
    return nn.Sequential(*layers)

def train(model, xs, ys):
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for x, y in zip(xs, ys):
        loss = F.cross_entropy(model(mg.Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

rng = np.random.default_rng(123)
X = rng.standard_normal((STEPS, R * B, 3, 6, 6)).astype(np.float32)
Y = rng.integers(0, 5, (STEPS, R * B))
for bn in (False, True):
    ref = make(bn)
    train(ref, X, Y)  # one process, global batch 2B
    model = make(bn)
    if r == 1:  # a different init on rank 1: wrapping must broadcast rank 0's
        for p in model.parameters():
            p.data += 1.0
    if bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        assert isinstance(model[1], nn.SyncBatchNorm)
    ddp = nn.DistributedDataParallel(model, bucket_cap_mb=0.0005)  # 524 B: several buckets
    train(ddp, X[:, r * B : (r + 1) * B], Y[:, r * B : (r + 1) * B])
    stats = ddp.last_sync
    assert stats["buckets"] >= 2 and stats["started_in_backward"] >= 1, stats
    want, got = ref.state_dict(), ddp.state_dict()
    assert list(want) == list(got), (list(want), list(got))
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=2e-5, atol=2e-6, err_msg=k)
    plain = make(bn)
    plain.load_state_dict(got)  # no "module." prefix
print(f"ok {r}", flush=True)
"""

NO_SYNC = """
import numpy as np
import minigrad as mg
import minigrad.functional as F
from minigrad import distributed as dist, nn

dist.init(timeout=30)
r = dist.rank()
def make():
    mg.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 3), nn.ReLU(), nn.Linear(3, 2))

ddp = nn.DistributedDataParallel(make())
rng = np.random.default_rng(7)
X = rng.standard_normal((2, 4, 6)).astype(np.float32)  # (rank, micro-batch, ...)
Y = rng.integers(0, 2, (2, 4))

def grads(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(mg.Tensor(x)), y).backward()
    return [p.grad.copy() for p in model.parameters()]

# every rank's two micro-batches, computed locally (single-process reference)
with ddp.no_sync():
    local = {(k, m): grads(ddp, X[k, 2 * m : 2 * m + 2], Y[k, 2 * m : 2 * m + 2])
             for k in range(2) for m in range(2)}
ddp.zero_grad()
with ddp.no_sync():
    F.cross_entropy(ddp(mg.Tensor(X[r, :2])), Y[r, :2]).backward()
for p, g in zip(ddp.parameters(), local[(r, 0)]):  # no communication inside no_sync
    np.testing.assert_allclose(p.grad, g, rtol=1e-6)
F.cross_entropy(ddp(mg.Tensor(X[r, 2:])), Y[r, 2:]).backward()  # synced: mean of the sums
for i, p in enumerate(ddp.parameters()):
    want = sum(local[(k, m)][i] for k in range(2) for m in range(2)) / 2
    np.testing.assert_allclose(p.grad, want, rtol=1e-5, atol=1e-7)

# a backward that raises after the last layer's bucket started: the next step still syncs
small = nn.DistributedDataParallel(make(), bucket_cap_mb=1e-5)
def boom(module, inputs, out):
    out.register_hook(lambda g: 1 / 0)
handle = small.module[1].register_forward_hook(boom)
try:
    F.cross_entropy(small(mg.Tensor(X[r])), Y[r]).backward()
except ZeroDivisionError:
    pass
handle.remove()
small.zero_grad()
F.cross_entropy(small(mg.Tensor(X[r])), Y[r]).backward()
for i, p in enumerate(small.parameters()):
    want = sum(local[(k, m)][i] for k in range(2) for m in range(2)) / 4
    np.testing.assert_allclose(p.grad, want, rtol=1e-5, atol=1e-7)
print(f"ok {r}", flush=True)
"""


def test_ddp_and_sync_batchnorm_equal_one_process_on_the_global_batch(mpirun):
    res = mpirun(EQUIVALENCE)
    assert res.returncode == 0, res.stderr
    assert sorted(re.findall(r"ok \d", res.stdout)) == ["ok 0", "ok 1"]


def test_no_sync_accumulates_locally_then_averages(mpirun):
    res = mpirun(NO_SYNC)
    assert res.returncode == 0, res.stderr
    assert sorted(re.findall(r"ok \d", res.stdout)) == ["ok 0", "ok 1"]
    assert sorted(re.findall(r"ok \d", res.stdout)) == ["ok 0", "ok 1"]


def test_single_process_ddp_is_the_module():
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    ddp = nn.DistributedDataParallel(model)
    assert ddp.module is model
    assert list(ddp.state_dict()) == list(model.state_dict()) == ["0.weight", "0.bias"]
    x = mg.Tensor(np.ones((2, 4), dtype=np.float32))
    ddp(x).sum().backward()
    g = model[0].weight.grad.copy()
    model.zero_grad()
    model(x).sum().backward()
    np.testing.assert_array_equal(model[0].weight.grad, g)
    assert ddp.last_sync == {}  # nothing communicated in a world of one


def test_ddp_argument_errors():
    import pytest

    with pytest.raises(TypeError, match="DistributedDataParallel: expected a Module, got list"):
        nn.DistributedDataParallel([])
    with pytest.raises(ValueError, match="bucket_cap_mb must be > 0, got 0"):
        nn.DistributedDataParallel(nn.Linear(2, 2), bucket_cap_mb=0)
