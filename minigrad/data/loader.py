"""DataLoader: batches as NumPy arrays, assembled by background threads, exactly resumable.

Everything random is a pure function of ``(seed, epoch, batch)``: the shuffled order of an
epoch comes from ``default_rng([seed, epoch])``, the batch transform of batch ``b`` from
``default_rng([seed, epoch, b])`` and a lazily decoded sample at position ``p`` from
``default_rng([seed, epoch, p, 1])``. So batches do not depend on thread timing, and a run
resumed from ``state_dict()`` sees exactly the batches an uninterrupted run would have seen.

Threads, not processes: NumPy and Pillow release the GIL in the heavy parts (copies, matmuls,
JPEG decoding), so a thread pool decodes in parallel without pickling datasets.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from minigrad import random
from minigrad.data.dataset import Dataset, collate
from minigrad.data.transforms import Transform

__all__ = ["DataLoader"]


def _positive_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"DataLoader: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


class DataLoader:
    """Iterate over ``dataset`` in batches ``(images (N, C, H, W) float32, labels (N,) int64)``.

    Args:
        dataset: a :class:`~minigrad.data.Dataset` (or anything with ``__len__`` and
            ``__getitem__`` returning ``(image, label)``).
        batch_size: samples per batch.
        shuffle: a new order every epoch, drawn from ``(seed, epoch)``.
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        num_workers: threads that decode samples in parallel (lazy datasets such as
            Imagenette) or assemble whole batches in parallel (in-memory datasets); 0 = only
            the prefetch thread.
        transform: applied to each whole batch as ``transform(images, rng)`` (vectorized
            transforms such as ``RandomCrop``, ``Normalize``); plain callables get ``(images)``.
        seed: the seed of shuffling and augmentation; None draws one from
            ``minigrad.random.generator("cpu")`` (so ``minigrad.manual_seed`` fixes it).
        prefetch: batches prepared ahead in the background; 0 = no threads at all.
        sampler: where the indices of an epoch come from instead of ``shuffle``, e.g. a
            :class:`~minigrad.data.DistributedSampler` (the loader calls its ``set_epoch``
            with the loader's epoch, and its ``state_dict`` is part of the loader's).

    The epoch counter advances each time iteration starts; ``set_epoch`` sets it and
    ``state_dict``/``load_state_dict`` save and restore the position, mid-epoch included.

    Raises:
        ValueError: for a non-positive ``batch_size`` or negative ``num_workers``/``prefetch``,
            or ``shuffle`` together with a ``sampler``.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        num_workers: int = 0,
        transform: Callable[..., Any] | None = None,
        seed: int | None = None,
        prefetch: int = 2,
        sampler: Any = None,
    ) -> None:
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(
                f"DataLoader: dataset must define __len__ and __getitem__, "
                f"got {type(dataset).__name__}"
            )
        self.dataset = dataset
        self.batch_size = _positive_int(batch_size, "batch_size", 1)
        self.num_workers = _positive_int(num_workers, "num_workers", 0)
        self.prefetch = _positive_int(prefetch, "prefetch", 0)
        self.shuffle, self.drop_last, self.transform = bool(shuffle), bool(drop_last), transform
        if sampler is not None and self.shuffle:
            raise ValueError("DataLoader: pass shuffle or a sampler (which shuffles), not both")
        self.sampler = sampler
        if seed is None:
            seed = int(random.generator("cpu").integers(0, 2**63 - 1))
        self.seed = int(seed)
        self.epoch = 0  # the epoch the next iteration runs
        self._start_batch = 0  # where the next iteration starts (for mid-epoch resume)
        self._position: tuple[int, int] | None = None  # (epoch, batches handed out) of a live one

    # ------------------------------------------------------------ position and resume
    def __len__(self) -> int:
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Make the next iteration run ``epoch``, starting at batch ``start_batch``."""
        self.epoch = _positive_int(epoch, "epoch", 0)
        self._start_batch = _positive_int(start_batch, "start_batch", 0)
        self._position = None

    def state_dict(self) -> dict[str, Any]:
        """``{"seed", "epoch", "batch"}``: where a resumed loader should continue.

        During an epoch: that epoch and the number of batches handed out so far; between
        epochs: the next epoch and 0.
        """
        if self._position is not None:
            epoch, batch = self._position
        else:
            epoch, batch = self.epoch, self._start_batch
        state: dict[str, Any] = {"seed": self.seed, "epoch": epoch, "batch": batch}
        if self.sampler is not None and hasattr(self.sampler, "state_dict"):
            state["sampler"] = self.sampler.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from what :meth:`state_dict` returned."""
        self.seed = int(state["seed"])
        if "sampler" in state and hasattr(self.sampler, "load_state_dict"):
            self.sampler.load_state_dict(state["sampler"])
        self.set_epoch(int(state["epoch"]), int(state.get("batch", 0)))

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices of ``epoch`` in the order they are served."""
        if self.sampler is not None:
            if hasattr(self.sampler, "set_epoch"):
                self.sampler.set_epoch(epoch)
            return np.fromiter(iter(self.sampler), dtype=np.int64, count=len(self.sampler))
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    # ------------------------------------------------------------ making one batch
    def _lazy(self) -> bool:
        return not getattr(self.dataset, "vectorized", False)

    def _sample(self, epoch: int, position: int, index: int) -> tuple[Any, Any]:
        rng = np.random.default_rng([self.seed, epoch, position, 1])
        get = getattr(self.dataset, "get", None)
        return get(index, rng) if get is not None else self.dataset[index]

    def make_batch(
        self, epoch: int, batch: int, order: np.ndarray | None = None, pool: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Batch number ``batch`` of ``epoch``: a pure function of (seed, epoch, batch)."""
        order = self.order(epoch) if order is None else order
        start = batch * self.batch_size
        indices = order[start : start + self.batch_size]
        rng = np.random.default_rng([self.seed, epoch, batch])
        if self._lazy():
            positions = range(start, start + len(indices))
            args = (positions, [int(i) for i in indices])
            mapper = pool.map if pool is not None else map
            samples = list(mapper(lambda p, i: self._sample(epoch, p, i), *args))
            images, labels = collate(samples, type(self.dataset).__name__)
        else:
            images, labels = self.dataset.get_batch(indices, rng)
        if self.transform is not None:
            t = self.transform
            images = t(images, rng) if isinstance(t, Transform) else t(images)
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.ndim != 4:
            raise ValueError(f"DataLoader: batch images must be (N, C, H, W), got {images.shape}")
        return images, np.asarray(labels, dtype=np.int64)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        epoch, start = self.epoch, self._start_batch
        self.epoch, self._start_batch = epoch + 1, 0
        return _BatchIterator(self, epoch, start)

    def __repr__(self) -> str:
        return (
            f"DataLoader({type(self.dataset).__name__}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, "
            f"num_workers={self.num_workers}, prefetch={self.prefetch}, seed={self.seed})"
        )


def _shutdown(pools: list[ThreadPoolExecutor], pending: deque[Future[Any]]) -> None:
    for f in pending:
        f.cancel()
    for p in pools:
        p.shutdown(wait=True, cancel_futures=True)


class _BatchIterator:
    """One epoch: keeps up to ``prefetch`` batches in flight, yields them in order.

    Worker exceptions re-raise here, in the consumer's thread. The threads stop when the
    epoch ends, on ``close()``, or when the iterator is garbage-collected (``break``).
    """

    def __init__(self, loader: DataLoader, epoch: int, start: int) -> None:
        self.loader, self.epoch = loader, epoch
        self.order = loader.order(epoch)
        self.n = len(loader)
        self.next_submit = self.next_yield = min(start, self.n)
        self.pending: deque[Future[Any]] = deque()
        self.pools: list[ThreadPoolExecutor] = []
        self.sample_pool: ThreadPoolExecutor | None = None
        lazy = loader._lazy()
        if loader.prefetch > 0 or loader.num_workers > 0:
            # in-memory: whole batches in parallel; lazy: samples decode in the worker pool
            # while up to `prefetch` batch threads run the batch transforms
            n = loader.num_workers
            batch_threads = max(1, min(n, loader.prefetch) if lazy else n)
            self.depth = max(loader.prefetch, batch_threads)
            self.pools.append(
                ThreadPoolExecutor(batch_threads, thread_name_prefix="minigrad-loader")
            )
            if lazy and loader.num_workers > 0:
                self.sample_pool = ThreadPoolExecutor(
                    loader.num_workers, thread_name_prefix="minigrad-loader-worker"
                )
                self.pools.append(self.sample_pool)
        self._finalizer = weakref.finalize(self, _shutdown, self.pools, self.pending)
        loader._position = (epoch, self.next_yield)

    def _fill(self) -> None:
        while self.pools and len(self.pending) < self.depth and self.next_submit < self.n:
            fut = self.pools[0].submit(
                self.loader.make_batch, self.epoch, self.next_submit, self.order, self.sample_pool
            )
            self.pending.append(fut)
            self.next_submit += 1

    def __iter__(self) -> _BatchIterator:
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        if self.next_yield >= self.n:
            self.close()
            if self.loader._position == (self.epoch, self.n):
                self.loader._position = None
            raise StopIteration
        try:
            if self.pools:
                self._fill()
                batch = self.pending.popleft().result()
            else:
                batch = self.loader.make_batch(self.epoch, self.next_yield, self.order)
        except BaseException:
            self.close()
            raise
        self.next_yield += 1
        self.loader._position = (self.epoch, self.next_yield)
        self._fill()
        return batch

    def __len__(self) -> int:
        return self.n - self.next_yield

    def close(self) -> None:
        """Stop the background threads (pending batches are dropped)."""
        self._finalizer()
