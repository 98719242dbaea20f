"""DistributedSampler: each rank's share of a dataset's indices, for data-parallel training."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["DistributedSampler"]


def _int_at_least(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"DistributedSampler: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


class DistributedSampler:
    """The indices of rank ``rank`` out of ``num_replicas``: a disjoint shard of each epoch.

    An epoch's order is ``default_rng([seed, epoch]).permutation(n)`` (or ``0..n-1`` without
    ``shuffle``), the same on every rank. Unless ``drop_last``, it is padded by repeating its
    first indices up to a multiple of ``num_replicas``, so every rank gets ``ceil(n / R)``
    indices and runs the same number of steps (the padded samples are seen twice that
    epoch); with ``drop_last`` the tail is dropped instead (``n // R`` each). Rank ``r``
    takes positions ``r, r + R, r + 2R, ...`` (PyTorch's layout).

    Args:
        dataset: a dataset (anything with ``__len__``) or its length.
        num_replicas: number of ranks; default ``minigrad.distributed.world_size()``.
        rank: this rank; default ``minigrad.distributed.rank()``.
        shuffle: a new order each epoch (``set_epoch``); False keeps the dataset order.
        seed: the seed of the shuffle; must be the same on every rank.
        drop_last: drop the tail instead of padding.

    With a :class:`~minigrad.data.DataLoader` (``sampler=``), the loader sets the epoch
    and its ``state_dict`` holds the sampler's, so a run resumes mid-epoch exactly (on the
    same number of ranks).

    Raises:
        ValueError: a rank outside ``0 .. num_replicas - 1`` or a non-positive count.
    """

    def __init__(
        self,
        dataset: Any,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if num_replicas is None or rank is None:
            from minigrad import distributed as dist  # noqa: PLC0415 - only when needed

            num_replicas = dist.world_size() if num_replicas is None else num_replicas
            rank = dist.rank() if rank is None else rank
        n = dataset if isinstance(dataset, (int, np.integer)) else len(dataset)
        self.n = _int_at_least(n, "the dataset length", 0)
        self.num_replicas = _int_at_least(num_replicas, "num_replicas", 1)
        self.rank = _int_at_least(rank, "rank", 0)
        if self.rank >= self.num_replicas:
            raise ValueError(
                f"DistributedSampler: rank must be < num_replicas ({self.num_replicas}), "
                f"got {self.rank}"
            )
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.seed = int(seed)
        self.epoch = 0
        R = self.num_replicas
        self.num_samples = self.n // R if drop_last else -(-self.n // R)  # per rank

    def indices(self, epoch: int) -> np.ndarray:
        """This rank's indices of ``epoch`` in the order they are served, (num_samples,)."""
        order = (
            np.random.default_rng([self.seed, epoch]).permutation(self.n)
            if self.shuffle
            else np.arange(self.n)
        )
        total = self.num_samples * self.num_replicas
        if total > self.n:  # pad with the first indices (cycled when the padding exceeds n)
            order = np.concatenate([order, np.resize(order, total - self.n)])
        return order[self.rank : total : self.num_replicas]

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration serve ``epoch`` (a new shuffle, the same on every rank)."""
        self.epoch = _int_at_least(epoch, "epoch", 0)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices(self.epoch).tolist())

    def __len__(self) -> int:
        return self.num_samples

    def state_dict(self) -> dict[str, int]:
        """``{"seed", "epoch", "num_replicas", "rank"}`` (the last two for checking only)."""
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "num_replicas": self.num_replicas,
            "rank": self.rank,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore seed and epoch; the rank and world size stay this process's own."""
        self.seed = int(state["seed"])
        self.set_epoch(int(state["epoch"]))

    def __repr__(self) -> str:
        return (
            f"DistributedSampler(n={self.n}, num_replicas={self.num_replicas}, "
            f"rank={self.rank}, shuffle={self.shuffle}, seed={self.seed}, "
            f"drop_last={self.drop_last})"
        )
