"""Neural-network building blocks: ``Module``, ``Parameter``, containers, layers, ``init``.

from minigrad import nn
model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                      nn.Linear(8 * 32 * 32, 10))
"""

from minigrad.nn import init
from minigrad.nn.containers import ModuleDict, ModuleList, Sequential
from minigrad.nn.distributed_data_parallel import DistributedDataParallel
from minigrad.nn.layers import Conv2d, Dropout, Flatten, Identity, Linear, ReLU
from minigrad.nn.module import LoadResult, Module, Parameter
from minigrad.nn.normalization import BatchNorm2d, BatchNormReLU2d, LocalResponseNorm
from minigrad.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from minigrad.nn.sync_batchnorm import SyncBatchNorm, SyncBatchNormReLU2d

__all__ = [
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm2d",
    "BatchNormReLU2d",
    "Conv2d",
    "DistributedDataParallel",
    "Dropout",
    "Flatten",
    "Identity",
    "Linear",
    "LoadResult",
    "LocalResponseNorm",
    "MaxPool2d",
    "Module",
    "ModuleDict",
    "ModuleList",
    "Parameter",
    "ReLU",
    "Sequential",
    "SyncBatchNorm",
    "SyncBatchNormReLU2d",
    "init",
]
