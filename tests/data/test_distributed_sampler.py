"""DistributedSampler: disjoint padded shards, reshuffled per epoch, deterministic, resumable."""

from __future__ import annotations

import numpy as np
import pytest

from minigrad.data import ArrayDataset, DataLoader, DistributedSampler


def shards(n, R, epoch=0, **kw):
    samplers = [DistributedSampler(n, num_replicas=R, rank=r, **kw) for r in range(R)]
    for s in samplers:
        s.set_epoch(epoch)
    return [np.array(list(s)) for s in samplers]


@pytest.mark.parametrize("n, R", [(10, 2), (10, 3), (7, 4), (2, 5), (12, 4), (1, 1)])
def test_shards_cover_the_data_once_with_padding_accounted(n, R):
    parts = shards(n, R, seed=3)
    size = -(-n // R)
    assert all(len(p) == size for p in parts)  # every rank runs the same number of steps
    every = np.concatenate(parts)
    assert set(every) == set(range(n))
    counts = np.bincount(every, minlength=n)
    assert counts.sum() - n == size * R - n  # the padding: exactly the repeated indices
    assert counts.max() <= -(-(size * R) // n)


@pytest.mark.parametrize("n, R", [(10, 3), (7, 4), (12, 4)])
def test_drop_last_gives_disjoint_shards(n, R):
    parts = shards(n, R, drop_last=True)
    every = np.concatenate(parts)
    assert all(len(p) == n // R for p in parts)
    assert len(set(every)) == len(every) == (n // R) * R


def test_epochs_differ_and_the_seed_decides():
    a0, a1 = shards(100, 2, epoch=0, seed=5), shards(100, 2, epoch=1, seed=5)
    assert not np.array_equal(a0[0], a1[0])
    for x, y in zip(a0, shards(100, 2, epoch=0, seed=5)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a0[0], shards(100, 2, epoch=0, seed=6)[0])
    plain = shards(9, 2, shuffle=False)
    np.testing.assert_array_equal(plain[0], [0, 2, 4, 6, 8])
    np.testing.assert_array_equal(plain[1], [1, 3, 5, 7, 0])


def dataset(n):
    images = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1) * np.ones((1, 1, 2, 2), np.float32)
    return ArrayDataset(images, np.arange(n) % 3, classes=["a", "b", "c"], scale=1.0)


def test_loader_serves_the_shard_and_resumes_mid_epoch():
    ds = dataset(23)
    sampler = DistributedSampler(ds, num_replicas=2, rank=1, seed=4)
    loader = DataLoader(ds, batch_size=3, sampler=sampler, prefetch=0)
    assert len(loader) == 4  # ceil(12 / 3)
    for epoch in range(2):
        served = np.concatenate([x[:, 0, 0, 0] for x, _ in loader]).astype(int)
        np.testing.assert_array_equal(served, sampler.indices(epoch))
    it = iter(loader)  # epoch 2
    next(it)
    state = loader.state_dict()
    assert state["sampler"]["seed"] == 4 and state["epoch"] == 2 and state["batch"] == 1
    rest = [x[:, 0, 0, 0] for x in (b[0] for b in it)]
    fresh = DataLoader(ds, batch_size=3, sampler=DistributedSampler(ds, 2, 1, seed=0))
    fresh.load_state_dict(state)
    resumed = [x[:, 0, 0, 0] for x, _ in fresh]
    assert len(resumed) == 3
    for a, b in zip(rest, resumed, strict=True):
        np.testing.assert_array_equal(a, b)


def test_errors():
    with pytest.raises(ValueError, match="DistributedSampler: rank must be < num_replicas"):
        DistributedSampler(10, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="DistributedSampler: num_replicas must be an int >= 1"):
        DistributedSampler(10, num_replicas=0, rank=0)
    with pytest.raises(ValueError, match="DataLoader: pass shuffle or a sampler"):
        DataLoader(dataset(4), shuffle=True, sampler=DistributedSampler(4, 1, 0))


def test_defaults_come_from_the_world():
    s = DistributedSampler(5)
    assert (s.num_replicas, s.rank, len(s)) == (1, 0, 5)
