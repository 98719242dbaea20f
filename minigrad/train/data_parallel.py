"""What ``train`` does differently when ``mpiexec -n N`` started it: the data-parallel pieces.

The trainer calls these small functions; each is a no-op (or the identity) in a
single-process world, so a run without ``mpiexec`` behaves exactly as before.

* :func:`join_world` joins the MPI world (``minigrad.distributed.init``; no flag needed).
* ``--batch-size`` is the global batch: :func:`per_rank_batch` splits it (it must divide).
* :func:`wrap_model`: ``--sync-bn`` converts batch norm to ``SyncBatchNorm``; on N ranks the
  model is wrapped in ``DistributedDataParallel`` (rank 0's weights broadcast, gradients
  averaged).
* :func:`rank_device`: ``--device cuda`` (or the default on a GPU machine) on N ranks is
  ``cuda:<local rank>``, one GPU per rank on each machine.
* :func:`train_sampler`: rank ``r`` of ``R`` trains on positions ``r, r + R, ...`` of each
  epoch's shuffled order (``DistributedSampler``, tail dropped). With the per-rank batch
  ``G / R`` step ``b`` then covers positions ``[b G, (b + 1) G)`` of the SAME order that one
  process shuffles with the same seed, so the data of every step (and a mid-epoch position)
  is independent of the number of ranks.
* :func:`rank_threads`: the ops' host threads default to the available cores (the affinity
  mask) divided by the ranks on this machine; an explicit ``--threads`` wins, with a
  warning when it oversubscribes them.
* :func:`rank_seed`: augmentation and dropout draw from a per-rank seed (rank 0 keeps the
  run's seed), so ranks do not repeat each other's crops and masks.
* :func:`eval_shard`: rank ``r`` evaluates samples ``r, r + R, ...`` (no padding), and
  ``evaluate(..., sharded=True)`` sums the counts, so each image counts exactly once.
* :func:`from_rank_0`: rank 0 reads the checkpoint to resume and sends it to the others,
  so only rank 0's machine needs the run folder.
* :func:`for_this_rank`: a checkpoint (written by rank 0 of any world) adjusted for this rank.
* :func:`end_together`: a rank that stops with a non-zero exit code ends the whole job
  (an interrupted rank lets rank 0 save its checkpoint first).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

__all__ = [
    "RankContext",
    "end_together",
    "eval_shard",
    "for_this_rank",
    "from_rank_0",
    "join_world",
    "local_rank",
    "local_ranks",
    "per_rank_batch",
    "quiet_stream",
    "rank_device",
    "rank_seed",
    "rank_threads",
    "reseed",
    "threads_note",
    "train_sampler",
    "unwrap",
    "wrap_model",
]


@dataclass(frozen=True)
class RankContext:
    """This process's ``rank`` among ``size`` processes, as the trainer's functions take it.

    A plain value (a test builds ``RankContext(1, 4)`` without MPI); the process group it
    was read from is :mod:`minigrad.distributed` (see :func:`join_world`).
    """

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the rank that prints, writes metrics, plots and checkpoints."""
        return self.rank == 0


def join_world() -> RankContext:
    """Join the MPI world when launched by ``mpiexec`` (else a single process) and return it.

    Also installs the library's hook: an uncaught exception on one rank prints its traceback
    (prefixed ``[rank r]``) and aborts every rank.
    """
    from minigrad import distributed as dist  # noqa: PLC0415 - mpi4py only when launched

    dist.init()
    return RankContext(dist.rank(), dist.world_size())


def per_rank_batch(global_batch: int, w: RankContext) -> int:
    """The images each rank takes per step: ``global_batch / size``.

    Raises:
        ValueError: the global batch is not a multiple of the number of ranks.
    """
    if global_batch % w.size:
        raise ValueError(
            f"--batch-size {global_batch} is the global batch and must be divisible by the "
            f"{w.size} ranks (e.g. {global_batch // w.size * w.size or w.size})"
        )
    return global_batch // w.size


_LOCAL: list[tuple[int, int]] = []  # (local rank, local size), found once per process


def local_ranks() -> tuple[int, int]:
    """(this rank's index among the ranks on its machine, how many ranks that machine runs);
    ``(0, 1)`` in a single process.

    A collective the first time (``MPI_Comm_split_type(COMM_TYPE_SHARED)``): every rank
    must call it; the answer is kept for the process.
    """
    if _LOCAL:
        return _LOCAL[0]
    from minigrad import distributed as dist  # noqa: PLC0415

    comm = dist.world_comm()
    if comm is None:
        return (0, 1)
    from mpi4py import MPI  # noqa: PLC0415 - present when there is a world communicator

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        _LOCAL.append((int(node.Get_rank()), int(node.Get_size())))
    finally:
        node.Free()
    return _LOCAL[0]


def local_rank() -> int:
    """This rank's index among the ranks on its machine (0 in a single process); see
    :func:`local_ranks`."""
    return local_ranks()[0]


def rank_threads(requested: int | None, w: RankContext) -> tuple[int, str | None]:
    """The host threads of this rank's ops, and a warning (or None).

    The default is the available cores divided among the ranks on this machine
    (``runtime.available_cores() // local size``, at least 1), so N ranks on one machine do not
    oversubscribe it. ``requested`` (``--threads``, else ``MINIGRAD_NUM_THREADS``) wins;
    the warning says when it oversubscribes the cores. Calls :func:`local_ranks` on N ranks
    (a collective the first time).
    """
    from minigrad import runtime  # noqa: PLC0415

    cores = runtime.available_cores()
    per_host = local_ranks()[1] if w.size > 1 else 1
    default = max(cores // per_host, 1)
    if requested is None:
        requested = runtime.ENV_NUM_THREADS
    if requested is None:
        return default, None
    if requested * per_host > cores:
        ranks = f" x {per_host} ranks on this machine" if per_host > 1 else ""
        return requested, (
            f"warning: --threads {requested}{ranks} = {requested * per_host} threads on "
            f"{cores} available cores oversubscribes them (the default would be {default})"
        )
    return requested, None


def threads_note(threads: int, w: RankContext) -> str:
    """What the start line says about the threads: ``2 threads`` in one process, ``1 thread
    per rank (2 cores / 2 ranks on this machine)`` on N ranks."""
    plural = "s" * (threads != 1)
    if w.size == 1:
        return f"{threads} thread{plural}"
    per_host = local_ranks()[1]
    from minigrad import runtime  # noqa: PLC0415

    return (
        f"{threads} thread{plural} per rank ({runtime.available_cores()} cores / {per_host} "
        f"rank{'s' * (per_host != 1)} on this machine)"
    )


def rank_device(requested: str | None, w: RankContext) -> str | None:
    """This rank's device: on N ranks, ``cuda`` (or no ``--device`` on a GPU machine) means
    ``cuda:<local rank>``, so the ranks of a machine use one GPU each; ``cpu`` and an
    explicit ``cuda:N`` stay as given (a local rank past the machine's GPUs then fails with
    the error of ``devices.require_cuda`` for a missing device)."""
    if w.size == 1:
        return requested
    from minigrad import devices  # noqa: PLC0415

    local = local_rank()  # on every rank: a collective
    if requested is None:
        return f"cuda:{local}" if devices.default_device() != "cpu" else None
    return f"cuda:{local}" if requested.strip().lower() == "cuda" else requested


def rank_seed(seed: int, w: RankContext) -> int:
    """The seed of this rank's augmentation and dropout: ``seed`` on rank 0, a number
    derived from ``(seed, rank)`` on the others (the same on every run)."""
    if w.rank == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), w.rank]).generate_state(1, np.uint64)[0] >> 1)


def wrap_model(model: Any, w: RankContext, sync_bn: bool = False) -> Any:
    """``model`` with batch norm made ``SyncBatchNorm`` (``sync_bn``) and, on N ranks,
    wrapped in ``DistributedDataParallel`` (which broadcasts rank 0's weights)."""
    from minigrad import nn  # noqa: PLC0415

    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return nn.DistributedDataParallel(model) if w.size > 1 else model


def unwrap(model: Any) -> Any:
    """The model inside a ``DistributedDataParallel`` (or ``model`` itself)."""
    from minigrad import nn  # noqa: PLC0415

    return model.module if isinstance(model, nn.DistributedDataParallel) else model


def train_sampler(dataset: Any, seed: int, w: RankContext) -> Any:
    """This rank's shard of each training epoch (None in a single process: the loader's own
    shuffle, which draws the same order from the same seed)."""
    if w.size == 1:
        return None
    from minigrad.data import DistributedSampler  # noqa: PLC0415

    return DistributedSampler(dataset, w.size, w.rank, shuffle=True, seed=seed, drop_last=True)


def eval_shard(dataset: Any, w: RankContext) -> Any:
    """Samples ``rank, rank + size, ...`` of ``dataset``: disjoint, together the whole split."""
    if w.size == 1:
        return dataset
    from minigrad.data import Subset  # noqa: PLC0415

    return Subset(dataset, np.arange(w.rank, len(dataset), w.size))


def from_rank_0(read: Callable[[], Any], w: RankContext) -> Any:
    """``read()`` on rank 0, its result sent to every rank (pickled, once): so that only rank
    0's host needs the file (a checkpoint to resume, on machines without a shared disk).

    Raises:
        the exception ``read`` raised on rank 0 (re-raised on every rank, so that all of
        them stop with the same one-line error).
    """
    if w.size == 1:
        return read()
    from minigrad import distributed as dist  # noqa: PLC0415

    result: tuple[bool, Any] = (True, None)
    if w.rank == 0:
        try:
            result = (True, read())
        except Exception as e:  # sent, then raised on every rank
            result = (False, e)
    ok, value = dist.world_comm().bcast(result if w.rank == 0 else None, root=0)
    if not ok:
        raise value
    return value


def for_this_rank(ckpt: dict[str, Any] | None, seed: int, w: RankContext) -> dict[str, Any] | None:
    """Rank 0's checkpoint (of a run on any number of ranks), made this rank's.

    Model, optimizer, schedule, EMA, metrics and the loader's epoch/batch position are the
    same on every rank and carry over as they are (the position maps exactly, see the module
    docstring). Rank 0 restores the RNG state too; the others keep their own loader seed and
    reseed their dropout stream from ``(seed, rank, step)`` (so a resumed run on N > 1 ranks
    does not replay the dropout masks of ranks > 0 bit for bit).
    """
    if ckpt is None or w.rank == 0:
        return ckpt
    ckpt = dict(ckpt)
    if ckpt.get("loader") is not None:
        ckpt["loader"] = {**ckpt["loader"], "seed": rank_seed(seed, w)}
    ckpt["rng"] = None
    reseed(seed, w, int(ckpt.get("step", 0)))
    return ckpt


def reseed(seed: int, w: RankContext, step: int = 0) -> None:
    """Give ranks > 0 their own random stream (dropout) from ``(seed, rank, step)``."""
    if w.rank == 0:
        return
    from minigrad import random  # noqa: PLC0415

    derived = np.random.SeedSequence([int(seed), w.rank, int(step)]).generate_state(1, np.uint64)
    random.manual_seed(int(derived[0] >> 1))


class _Silent(io.TextIOBase):
    """A text stream that drops what is written (no file to close)."""

    def write(self, s: str) -> int:
        return len(s)


def quiet_stream(w: RankContext) -> TextIO | None:
    """Where progress goes: None (stdout) on rank 0, nowhere on the others."""
    return None if w.is_main else _Silent()


def end_together(code: int) -> int:
    """Return ``code``; but on N ranks a non-zero code ends the whole job with it, so that
    no rank waits in its next collective for a peer that has stopped.

    An error (1, 2, 3) aborts every rank at once (``MPI_Abort``). An interrupt (130: Ctrl-C,
    SIGINT or SIGTERM sent to this rank alone or to ``mpiexec``) on a rank other than 0
    first tells the others, so that rank 0's next collective stops it as Ctrl-C would: it
    saves ``last.npz`` at its last completed step and then ends the job with 130.
    See :func:`minigrad.distributed.stop_job`.
    """
    from minigrad import distributed as dist  # noqa: PLC0415

    if code == 0 or not dist.is_initialized() or dist.world_size() == 1:
        return code
    sys.stdout.flush()
    if code == 130 and dist.rank() != 0:
        why = "interrupted: rank 0 saves last.npz and ends the job"
    else:
        why = f"exit code {code}: aborting all ranks"
    sys.stderr.write(f"[rank {dist.rank()}] {why}\n")
    sys.stderr.flush()
    dist.stop_job(code)
    return code  # not reached under MPI
