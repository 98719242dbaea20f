"""Datasets: the indexable base class, in-memory arrays, subsets and random splits.

A dataset maps an index to ``(image, label)``: a ``(C, H, W)`` float32 array and an int.
Two optional methods let :class:`~minigrad.data.DataLoader` do better than one
``__getitem__`` per sample:

- ``get(index, rng)``: the sample with its random transform drawn from ``rng``, so the
  loader can make augmentation a pure function of (seed, epoch, position);
- ``get_batch(indices, rng)``: a whole batch in one vectorized step (in-memory datasets).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from minigrad import backend, random

Transform = Callable[..., Any]


class Dataset:
    """Base class: subclasses define ``__len__`` and ``__getitem__`` (or ``get``).

    Attributes:
        classes: class names, index = label (empty when unknown).
    """

    classes: Sequence[str] = ()
    vectorized: bool = False  # True when get_batch is one array operation, not a loop

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.get(index, random.generator("cpu"))

    def get(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """The sample at ``index``, random transforms drawn from ``rng``.

        The default ignores ``rng`` and calls ``self[index]``; datasets with random
        per-sample transforms override it so the loader can seed them.
        """
        if type(self).__getitem__ is Dataset.__getitem__:
            raise NotImplementedError(f"{type(self).__name__} must define __getitem__ or get")
        return self[index]

    def get_batch(
        self, indices: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Samples ``indices`` stacked: (N, C, H, W) float32 and (N,) int64."""
        samples = [self.get(int(i), rng) for i in indices]
        return collate(samples, type(self).__name__)


def collate(samples: Sequence[tuple[Any, Any]], where: str = "collate") -> tuple[Any, Any]:
    """Stack ``(image, label)`` pairs into ``(images (N, C, H, W) float32, labels (N,) int64)``.

    Raises:
        ValueError: when the images differ in shape (say which, and how to fix it).
    """
    shapes = {np.shape(img) for img, _ in samples}
    if len(shapes) > 1:
        raise ValueError(
            f"{where}: cannot batch images of different shapes {sorted(shapes)[:4]}; "
            "give the dataset a transform that makes them equal (e.g. CenterCrop or Resize)"
        )
    images = np.stack([np.asarray(img, dtype=np.float32) for img, _ in samples])
    labels = np.asarray([int(lab) for _, lab in samples], dtype=np.int64)
    return images, labels


def check_index(index: Any, n: int, where: str) -> int:
    """``index`` as an int in [0, n) (negative counts from the end), or a named error."""
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
        raise TypeError(f"{where}: index must be an int, got {type(index).__name__}")
    i = int(index)
    if not -n <= i < n:
        raise IndexError(f"{where}: index {i} out of range for {n} samples")
    return i % n


class ArrayDataset(Dataset):
    """Images held in memory as one array: batches are gathered with one fancy index.

    Args:
        images: (N, C, H, W) uint8 (scaled by 1/``scale``) or float array.
        labels: (N,) integer labels.
        classes: class names.
        scale: the value that maps to 1.0 (255 for bytes, 16 for the digits).
    """

    vectorized = True

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        classes: Sequence[str] = (),
        scale: float = 255.0,
    ) -> None:
        images = np.asarray(images)
        labels = np.asarray(labels)
        name = type(self).__name__
        if images.ndim != 4:
            raise ValueError(f"{name}: images must be (N, C, H, W), got shape {images.shape}")
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"{name}: labels must be ({images.shape[0]},) to match the images, "
                f"got shape {labels.shape}"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(f"{name}: labels must be integers, got dtype {labels.dtype}")
        self.data = images
        self.targets = labels.astype(np.int64)
        self.classes = tuple(classes)
        self.scale = float(scale)

    def __len__(self) -> int:
        return len(self.targets)

    def _to_float(self, x: np.ndarray) -> np.ndarray:
        if x.dtype == np.float32 and self.scale == 1.0:
            return x.copy()
        return x.astype(np.float32) * np.float32(1.0 / self.scale)

    def get(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        i = check_index(index, len(self), type(self).__name__)
        return self._to_float(self.data[i]), int(self.targets[i])

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.get(index, random.generator("cpu"))

    def get_batch(
        self, indices: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices, dtype=np.int64)
        return self._to_float(self.data[indices]), self.targets[indices]


class TensorDataset(ArrayDataset):
    """Float images and labels given as arrays (or Tensors), returned unchanged.

    Args:
        images: (N, C, H, W) array or Tensor, cast to float32.
        labels: (N,) integer array or Tensor.
    """

    def __init__(self, images: Any, labels: Any, classes: Sequence[str] = ()) -> None:
        images = backend.as_numpy(getattr(images, "data", images)).astype(np.float32)
        labels = backend.as_numpy(getattr(labels, "data", labels))
        super().__init__(images, labels, classes, scale=1.0)


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices`` (vectorized when the parent is).

    Args:
        dataset: the parent dataset.
        indices: positions in the parent, in the order the subset shows them.
    """

    def __init__(self, dataset: Dataset, indices: Sequence[int] | np.ndarray) -> None:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(dataset)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"Subset: indices must lie in [0, {n}), got {idx.min()}..{idx.max()}")
        self.dataset = dataset
        self.indices = idx
        self.classes = dataset.classes
        self.vectorized = dataset.vectorized

    def __len__(self) -> int:
        return len(self.indices)

    def get(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        i = check_index(index, len(self), "Subset")
        return self.dataset.get(int(self.indices[i]), rng)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.get(index, random.generator("cpu"))

    def get_batch(
        self, indices: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.dataset.get_batch(self.indices[np.asarray(indices, dtype=np.int64)], rng)


def random_split(
    dataset: Dataset, lengths: Sequence[int | float], seed: int | None = None
) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random subsets.

    Args:
        dataset: what to split.
        lengths: sizes that sum to ``len(dataset)``, or fractions that sum to 1 (the
            remainder of the rounding goes to the first subsets, as in PyTorch).
        seed: seed of the permutation; None draws it from ``minigrad.manual_seed``'s generator.

    Raises:
        ValueError: when the lengths do not add up.
    """
    n = len(dataset)
    if all(isinstance(x, float) for x in lengths) and abs(sum(lengths) - 1.0) < 1e-6:
        if any(x < 0 for x in lengths):
            raise ValueError(f"random_split: fractions must be >= 0, got {list(lengths)}")
        sizes = [int(np.floor(n * f)) for f in lengths]
        for k in range(n - sum(sizes)):
            sizes[k % len(sizes)] += 1
    else:
        sizes = [int(x) for x in lengths]
        if any(s < 0 for s in sizes) or sum(sizes) != n:
            raise ValueError(
                f"random_split: lengths {list(lengths)} must be >= 0 and sum to the dataset "
                f"size {n} (or be fractions summing to 1)"
            )
    rng = np.random.default_rng(seed) if seed is not None else random.generator("cpu")
    perm = rng.permutation(n)
    bounds = np.cumsum([0, *sizes])
    return [Subset(dataset, perm[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
