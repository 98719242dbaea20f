"""Datasets by name, with what a generic training script needs to know about each.

info = dataset_info("cifar10")
train = get_dataset("cifar10", root="data", train=True, download=True)
loader = DataLoader(train, 128, shuffle=True, transform=info.train_transform)
model = GoogLeNet(info.num_classes, in_channels=info.in_channels, stem="cifar")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from minigrad.data.cifar import (
    CIFAR10,
    CIFAR10_CLASSES,
    CIFAR100,
    CIFAR100_CLASSES,
    CIFAR100_SUPERCLASSES,
)
from minigrad.data.dataset import Dataset
from minigrad.data.digits import Digits
from minigrad.data.imagenette import IMAGENETTE_CLASSES, Imagenette
from minigrad.data.images import bomb_checks, load_image, model_image
from minigrad.data.mnist import FASHION_MNIST_CLASSES, MNIST, FashionMNIST
from minigrad.data.transforms import (
    CenterCrop,
    Compose,
    Normalize,
    Pad,
    PhotometricDistortion,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToFloat,
    Transform,
)

__all__ = ["DATASET_NAMES", "SIZED_DATASETS", "DatasetInfo", "dataset_info", "get_dataset"]

DATASET_NAMES = ("digits", "cifar10", "cifar100", "imagenette", "mnist", "fashion-mnist")
#: the datasets whose image size can be chosen (``image_size``, ``--image-size``); the one
#: list, read through :attr:`DatasetInfo.size_can_be_set` where an info is at hand
SIZED_DATASETS = ("digits", "imagenette")
_ALIASES = {"cifar-10": "cifar10", "cifar-100": "cifar100", "fashionmnist": "fashion-mnist"}


@dataclass(frozen=True, eq=False)
class DatasetInfo:
    """What a training script needs to know about a dataset, without loading it.

    Attributes:
        name: registry name.
        num_classes, in_channels: for the model's head and stem.
        image_size: side of the square images the model sees (after the transforms).
        class_names: index = label.
        mean, std: per-channel normalisation of [0, 1] pixels (used by the transforms).
        train_transform, eval_transform: batch transforms for ``DataLoader(transform=...)``.
        sample_train_transform, sample_eval_transform: per-image Pillow transforms that
            :func:`get_dataset` gives lazily decoded datasets (None for in-memory ones).
        native_size: side of the dataset's own samples (None when they vary).
        stem: the GoogLeNet stem that suits ``image_size`` ("cifar" or "imagenet").
        light_on_dark: the dataset's images are light strokes or objects on a dark
            background (the digits, MNIST, Fashion-MNIST); :meth:`preprocess_image` then
            inverts an image that is dark on a light background, as a drawing usually is.
    """

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_transform: Transform
    eval_transform: Transform
    sample_train_transform: Transform | None = None
    sample_eval_transform: Transform | None = None
    native_size: int | None = None
    stem: str = "cifar"
    light_on_dark: bool = False

    @property
    def size_can_be_set(self) -> bool:
        """Whether :func:`dataset_info` and :func:`get_dataset` take an ``image_size`` for
        this dataset (:data:`SIZED_DATASETS`); the others have a fixed size."""
        return self.name in SIZED_DATASETS

    def preprocess(self, image: Any) -> np.ndarray:
        """An image file or Pillow image as the model sees it in eval: (C, H, W) float32
        (:meth:`preprocess_image` without its note)."""
        return self.preprocess_image(image)[0]

    def preprocess_image(self, image: Any) -> tuple[np.ndarray, str | None]:
        """An image file or Pillow image as the model sees it in eval, and a note.

        Converts to grayscale or RGB as the dataset has it, resizes and center-crops to the
        dataset's size, scales to [0, 1] and applies ``eval_transform`` (for ``predict``).
        16-bit and float images are scaled to [0, 1] as such (see
        :mod:`minigrad.data.images`), not clipped to 8 bits. For a ``light_on_dark``
        dataset, an image whose border is light (median border pixel above 0.5: dark ink on
        white paper) is inverted, and the note says so; otherwise the note is None.

        Returns:
            ``(x, note)``: x of shape (C, H, W), float32.

        Raises:
            ValueError: naming the file when it is not an image, empty, truncated or a
                decompression bomb.
        """
        if isinstance(image, (str, Path)):
            name, image = str(image), load_image(image, self.in_channels)
        else:
            name, image = "image", model_image(image, self.in_channels)
        with bomb_checks(name):  # Pillow checks the size of a resize or crop too
            if self.sample_eval_transform is not None:
                image = self.sample_eval_transform(image)
            else:
                size = self.native_size or self.image_size
                image = CenterCrop(size)(Resize(size)(image))
        x = ToFloat()(image)[None]  # (1, C, H, W), in [0, 1]
        note = None
        if self.light_on_dark and _light_background(x[0]):
            x = 1 - x
            note = (
                f"dark on a light background: inverted, as the {self.name} images are light on dark"
            )
        return self.eval_transform(x, np.random.default_rng(0))[0], note


def _light_background(x: np.ndarray) -> bool:
    """Whether a (C, H, W) image in [0, 1] has a light border (its median pixel > 0.5)."""
    border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=None)
    return bool(np.median(border) > 0.5)


def _canonical(name: str) -> str:
    key = str(name).strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    return key


def dataset_info(
    name: str, image_size: int | None = None, size: str = "160", label: str = "fine"
) -> DatasetInfo:
    """The :class:`DatasetInfo` of a registered dataset (nothing is loaded).

    Args:
        name: one of ``DATASET_NAMES`` ("digits", "cifar10", "cifar100", "imagenette",
            "mnist", "fashion-mnist").
        image_size: side the model sees: digits default 32 (upsampled from 8), Imagenette
            default 128 for the 160px version and 224 otherwise; fixed 32 for the others.
        size: Imagenette's archive ("160", "320", "full").
        label: CIFAR-100's "fine" (100) or "coarse" (20) labels.

    Raises:
        ValueError: an unknown name, or an ``image_size`` the dataset cannot take.
    """
    key = _canonical(name)
    if image_size is not None and key not in SIZED_DATASETS:
        raise ValueError(f"dataset_info: {key} has a fixed image size of 32, got {image_size}")
    if image_size is not None and image_size < 8:
        raise ValueError(f"dataset_info: image_size must be >= 8, got {image_size}")
    if key == "digits":
        s = image_size or 32
        mean, std = (0.3056,), (0.3240,)
        norm = Normalize(mean, std)
        return DatasetInfo(
            key, 10, 1, s, tuple(str(d) for d in range(10)), mean, std,
            train_transform=Compose([RandomCrop(s, padding=max(1, s // 16)), norm]),
            eval_transform=norm, native_size=s, light_on_dark=True,
        )  # fmt: skip
    if key in ("cifar10", "cifar100"):
        if key == "cifar10":
            n, names = 10, CIFAR10_CLASSES
            mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
        else:
            if label not in ("fine", "coarse"):
                raise ValueError(f"dataset_info: label must be 'fine' or 'coarse', got {label!r}")
            n, names = (100, CIFAR100_CLASSES) if label == "fine" else (20, CIFAR100_SUPERCLASSES)
            mean, std = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
        norm = Normalize(mean, std)
        return DatasetInfo(
            key, n, 3, 32, names, mean, std,
            train_transform=Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), norm]),
            eval_transform=norm, native_size=32,
        )  # fmt: skip
    if key in ("mnist", "fashion-mnist"):
        if key == "mnist":
            names, mean, std, flip = tuple(str(d) for d in range(10)), (0.1307,), (0.3081,), []
        else:
            names, mean, std = FASHION_MNIST_CLASSES, (0.2860,), (0.3530,)
            flip = [RandomHorizontalFlip()]
        norm = Normalize(mean, std)
        return DatasetInfo(
            key, 10, 1, 32, names, mean, std,  # padded 28 -> 32 for the CIFAR stem
            train_transform=Compose([Pad(2), RandomCrop(32, padding=2), *flip, norm]),
            eval_transform=Compose([Pad(2), norm]), native_size=28, light_on_dark=True,
        )  # fmt: skip
    # imagenette
    if str(size) not in ("160", "320", "full"):
        raise ValueError(f"dataset_info: Imagenette size must be 160, 320 or full, got {size!r}")
    s = image_size or (128 if str(size) == "160" else 224)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    norm = Normalize(mean, std)
    return DatasetInfo(
        key, 10, 3, s, IMAGENETTE_CLASSES, mean, std,
        train_transform=Compose([PhotometricDistortion(), norm]),
        eval_transform=norm,
        sample_train_transform=Compose([RandomResizedCrop(s), RandomHorizontalFlip()]),
        sample_eval_transform=Compose([Resize(round(s * 8 / 7)), CenterCrop(s)]),
        stem="imagenet" if s >= 128 else "cifar",
    )  # fmt: skip


def get_dataset(
    name: str,
    root: str | Path | None = None,
    train: bool = True,
    download: bool = False,
    image_size: int | None = None,
    size: str = "160",
    label: str = "fine",
) -> Dataset:
    """A registered dataset, ready for ``DataLoader(..., transform=info.train_transform)``.

    Args:
        name: one of ``DATASET_NAMES``.
        root: the data folder (ignored by the embedded digits).
        train: the training split, else the test/validation split.
        download: fetch the files when missing (not needed for digits).
        image_size, size, label: as in :func:`dataset_info`.

    Raises:
        ValueError: an unknown name; FileNotFoundError: files missing without ``download``.
    """
    info = dataset_info(name, image_size, size, label)
    key = info.name
    if key == "digits":
        return Digits(train=train, size=info.image_size)
    if key == "cifar10":
        return CIFAR10(root, train=train, download=download)
    if key == "cifar100":
        return CIFAR100(root, train=train, download=download, label=label)
    if key == "mnist":
        return MNIST(root, train=train, download=download)
    if key == "fashion-mnist":
        return FashionMNIST(root, train=train, download=download)
    transform = info.sample_train_transform if train else info.sample_eval_transform
    return Imagenette(root, "train" if train else "val", size, download, transform)
