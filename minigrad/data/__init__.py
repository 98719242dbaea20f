"""Datasets (real downloads, checksums, official formats), a threaded DataLoader, transforms.

from minigrad.data import DataLoader, get_dataset, dataset_info
info = dataset_info("digits")
loader = DataLoader(get_dataset("digits"), 64, shuffle=True, transform=info.train_transform)
for images, labels in loader:  # (N, 1, 32, 32) float32, (N,) int64 NumPy arrays
    ...
"""

from minigrad.data import transforms
from minigrad.data.cifar import CIFAR10, CIFAR100
from minigrad.data.dataset import (
    ArrayDataset,
    Dataset,
    Subset,
    TensorDataset,
    collate,
    random_split,
)
from minigrad.data.digits import Digits
from minigrad.data.distributed_sampler import DistributedSampler
from minigrad.data.download import (
    ChecksumWarning,
    DownloadError,
    default_root,
    download_url,
    extract_archive,
)
from minigrad.data.imagenette import Imagenette
from minigrad.data.loader import DataLoader
from minigrad.data.mnist import MNIST, FashionMNIST
from minigrad.data.registry import (
    DATASET_NAMES,
    SIZED_DATASETS,
    DatasetInfo,
    dataset_info,
    get_dataset,
)

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "DATASET_NAMES",
    "SIZED_DATASETS",
    "MNIST",
    "ArrayDataset",
    "ChecksumWarning",
    "DataLoader",
    "Dataset",
    "DatasetInfo",
    "Digits",
    "DistributedSampler",
    "DownloadError",
    "FashionMNIST",
    "Imagenette",
    "Subset",
    "TensorDataset",
    "collate",
    "dataset_info",
    "default_root",
    "download_url",
    "extract_archive",
    "get_dataset",
    "random_split",
    "transforms",
]
