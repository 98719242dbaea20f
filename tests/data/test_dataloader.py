"""Dataset, TensorDataset, Subset, random_split and the threaded, resumable DataLoader."""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest

import minigrad as mg
from minigrad.data import DataLoader, Dataset, Subset, TensorDataset, random_split
from minigrad.data import transforms as T


def toy(n=10, c=1, hw=4):
    images = np.arange(n * c * hw * hw, dtype=np.float32).reshape(n, c, hw, hw)
    return TensorDataset(images, np.arange(n) % 3)


class Lazy(Dataset):
    """A per-sample dataset (like Imagenette): label = index, image filled with the index."""

    def __init__(self, n=10, fail_at=None, delay=0.0):
        self.n, self.fail_at, self.delay = n, fail_at, delay

    def __len__(self):
        return self.n

    def get(self, index, rng):
        time.sleep(self.delay)
        if index == self.fail_at:
            raise RuntimeError(f"cannot decode sample {index}")
        return np.full((2, 3, 3), index, np.float32) + rng.random(), index


def loader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("minigrad-loader")]


def test_tensor_dataset_and_tensors(device):
    x = mg.tensor(np.ones((3, 1, 2, 2), np.float32), device=device)
    ds = TensorDataset(x, np.array([0, 1, 2]))
    img, lab = ds[-1]
    assert img.shape == (1, 2, 2) and img.dtype == np.float32 and lab == 2
    with pytest.raises(IndexError, match="TensorDataset: index 3 out of range for 3 samples"):
        ds[3]
    with pytest.raises(ValueError, match=r"labels must be \(3,\) to match the images"):
        TensorDataset(np.ones((3, 1, 2, 2)), np.zeros(2, np.int64))
    with pytest.raises(TypeError, match="labels must be integers, got dtype float64"):
        TensorDataset(np.ones((2, 1, 2, 2)), np.zeros(2))


def test_subset_and_random_split():
    ds = toy(10)
    sub = Subset(ds, [7, 2])
    assert len(sub) == 2 and sub[0][1] == ds[7][1]
    np.testing.assert_array_equal(sub.get_batch(np.array([1, 0]), None)[0], ds.data[[2, 7]])
    parts = random_split(ds, [6, 4], seed=0)
    idx = np.concatenate([p.indices for p in parts])
    assert [len(p) for p in parts] == [6, 4] and sorted(idx.tolist()) == list(range(10))
    np.testing.assert_array_equal(parts[0].indices, random_split(ds, [6, 4], seed=0)[0].indices)
    assert [len(p) for p in random_split(ds, [0.5, 0.3, 0.2], seed=1)] == [5, 3, 2]
    with pytest.raises(ValueError, match=r"random_split: lengths \[6, 5\] must be >= 0 and sum"):
        random_split(ds, [6, 5])
    with pytest.raises(IndexError, match=r"Subset: indices must lie in \[0, 10\)"):
        Subset(ds, [10])


def test_batches_shapes_dtypes_and_drop_last():
    ds = toy(10)
    batches = list(DataLoader(ds, batch_size=4))
    assert [x.shape for x, _ in batches] == [(4, 1, 4, 4), (4, 1, 4, 4), (2, 1, 4, 4)]
    x, y = batches[0]
    assert x.dtype == np.float32 and y.dtype == np.int64 and x.flags.c_contiguous
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), ds.data)
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), ds.targets)
    loader = DataLoader(ds, batch_size=4, drop_last=True)
    assert len(loader) == 2 and [len(y) for _, y in loader] == [4, 4]
    assert len(DataLoader(ds, batch_size=4)) == 3


@pytest.mark.parametrize("kwargs", [dict(prefetch=0), dict(prefetch=2), dict(num_workers=2)])
def test_shuffle_is_a_pure_function_of_seed_and_epoch(kwargs):
    ds = toy(23)
    tf = T.Compose([T.RandomCrop(4, padding=1), T.RandomHorizontalFlip()])

    def run(loader):
        return [(x.copy(), y.copy()) for x, y in loader]

    a = DataLoader(ds, 5, shuffle=True, transform=tf, seed=11, **kwargs)
    e0, e1 = run(a), run(a)  # the epoch counter advances
    order0 = np.concatenate([y for _, y in e0])
    assert sorted(order0.tolist()) == sorted(ds.targets.tolist())
    assert not all(np.array_equal(x0, x1) for (x0, _), (x1, _) in zip(e0, e1))
    b = DataLoader(ds, 5, shuffle=True, transform=tf, seed=11, prefetch=1)
    b.set_epoch(1)
    for (x1, y1), (x2, y2) in zip(e1, run(b)):  # same (seed, epoch), other threading
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


def test_order_is_a_permutation_and_differs_between_epochs():
    loader = DataLoader(toy(50), 8, shuffle=True, seed=3)
    o0, o1 = loader.order(0), loader.order(1)
    assert sorted(o0.tolist()) == list(range(50)) and not np.array_equal(o0, o1)
    np.testing.assert_array_equal(DataLoader(toy(50), 8, shuffle=False).order(4), np.arange(50))


def test_seed_defaults_to_manual_seed():
    mg.manual_seed(123)
    a = DataLoader(toy(), 2, shuffle=True).seed
    mg.manual_seed(123)
    assert DataLoader(toy(), 2, shuffle=True).seed == a


def test_resume_mid_epoch_gives_the_same_batches():
    ds = toy(30)
    tf = T.RandomCrop(4, padding=2)
    full = DataLoader(ds, 4, shuffle=True, transform=tf, seed=7)
    list(full)
    want = [(x.copy(), y.copy()) for x, y in full]  # epoch 1
    part = DataLoader(ds, 4, shuffle=True, transform=tf, seed=7)
    list(part)
    assert part.state_dict() == {"seed": 7, "epoch": 1, "batch": 0}
    it = iter(part)
    for _ in range(3):
        next(it)
    state = part.state_dict()
    assert state == {"seed": 7, "epoch": 1, "batch": 3}
    del it
    resumed = DataLoader(ds, 4, shuffle=True, transform=tf)  # another seed until loaded
    resumed.load_state_dict(state)
    got = list(resumed)
    assert len(got) == len(want) - 3
    for (x1, y1), (x2, y2) in zip(want[3:], got):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert resumed.state_dict() == {"seed": 7, "epoch": 2, "batch": 0}


def test_lazy_dataset_with_workers_gets_per_sample_rngs():
    ds = Lazy(9, delay=0.002)
    a = [x for x, _ in DataLoader(ds, 4, shuffle=True, num_workers=3, seed=1)]
    b = [x for x, _ in DataLoader(ds, 4, shuffle=True, num_workers=0, prefetch=0, seed=1)]
    for x1, x2 in zip(a, b):
        np.testing.assert_array_equal(x1, x2)
    x = np.concatenate(a)
    assert len(np.unique(x[:, 0, 0, 0] % 1)) == 9  # every sample drew its own noise


@pytest.mark.parametrize("num_workers", [0, 2])
def test_worker_exception_surfaces_in_main_thread(num_workers):
    loader = DataLoader(Lazy(12, fail_at=6), 3, num_workers=num_workers, prefetch=2)
    it = iter(loader)
    next(it)
    next(it)
    with pytest.raises(RuntimeError, match="cannot decode sample 6"):
        next(it)
    gc.collect()
    assert loader_threads() == []


def test_prefetch_thread_stops_on_break_and_after_epoch():
    loader = DataLoader(Lazy(40, delay=0.001), 2, num_workers=2, prefetch=3)
    for i, _ in enumerate(loader):
        assert loader_threads()  # batches are prepared in the background
        if i == 2:
            break
    gc.collect()
    assert loader_threads() == []
    list(loader)
    assert loader_threads() == []


def test_prefetch_zero_uses_no_threads():
    loader = DataLoader(toy(), 3, prefetch=0)
    it = iter(loader)
    next(it)
    assert loader_threads() == []
    assert len(it) == 3


def test_bad_arguments():
    with pytest.raises(ValueError, match="DataLoader: batch_size must be an int >= 1, got 0"):
        DataLoader(toy(), 0)
    with pytest.raises(ValueError, match="DataLoader: num_workers must be an int >= 0, got -1"):
        DataLoader(toy(), 2, num_workers=-1)
    with pytest.raises(TypeError, match="DataLoader: dataset must define __len__"):
        DataLoader(object(), 2)
    with pytest.raises(ValueError, match="batch images must be"):
        next(iter(DataLoader(toy(), 2, transform=lambda x: x[:, 0], prefetch=0)))
