"""Data-parallel building blocks: the process group and collectives (MPI on CPU, NCCL on GPU).

from minigrad import distributed as dist
dist.init()                                  # the MPI world under mpiexec, else one process
g = dist.all_reduce(grad, op="mean")         # NumPy arrays over MPI, CuPy arrays over NCCL
if dist.is_main():
    print("written by rank 0 only")

Launch: ``mpiexec -n 2 python script.py`` (the ``dist`` extra installs mpi4py and MPICH).
"""

from minigrad.distributed.collectives import (
    Work,
    all_gather,
    all_reduce,
    all_reduce_async,
    barrier,
    broadcast,
    world_comm,
)
from minigrad.distributed.world import (
    DistributedTimeoutError,
    PeerInterrupt,
    get_timeout,
    init,
    is_initialized,
    is_main,
    rank,
    stop_job,
    world_size,
)

__all__ = [
    "DistributedTimeoutError",
    "PeerInterrupt",
    "Work",
    "all_gather",
    "all_reduce",
    "all_reduce_async",
    "barrier",
    "broadcast",
    "get_timeout",
    "init",
    "is_initialized",
    "is_main",
    "rank",
    "stop_job",
    "world_comm",
    "world_size",
]
