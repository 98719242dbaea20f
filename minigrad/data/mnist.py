"""MNIST and Fashion-MNIST from the four official IDX files (gzipped or not).

IDX: a big-endian header (magic number, then one int32 per dimension) followed by the raw
uint8 values. Images have magic 2051 (0x00000803: uint8, 3 dims), labels 2049 (0x00000801).
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from minigrad.data.checksums import check_file, register_known
from minigrad.data.dataset import ArrayDataset
from minigrad.data.download import (
    DownloadError,
    default_root,
    describe_missing,
    download_url,
)

__all__ = ["FASHION_MNIST_CLASSES", "MNIST", "FashionMNIST", "read_idx"]

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def read_idx(path: str | Path, magic: int, max_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read an IDX file of uint8 values (``.gz`` is decompressed) and check its header.

    The header is read and checked first; then exactly the number of bytes it declares is
    read (decompressed), plus one to tell a longer file, so a file cannot make the reader
    hold more than ``max_shape`` asks for, however well it compresses.

    Args:
        path: the file.
        magic: the expected magic number (2051 for images, 2049 for labels).
        max_shape: the largest shape the caller accepts, one bound per dimension; a header
            declaring more is refused before any data is read.

    Returns:
        The array, shaped as the header says.

    Raises:
        ValueError: naming the file when it is truncated, not gzip, or has a wrong magic
            number, a shape larger than ``max_shape``, or a size that disagrees with its
            header.
    """
    path = Path(path)
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            return _read_idx_stream(f, path, magic, max_shape)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise ValueError(
            f"{path} is truncated or corrupt ({type(e).__name__}: {e}); "
            "delete it and download it again"
        ) from e


def _read_idx_stream(
    f: BinaryIO, path: Path, magic: int, max_shape: tuple[int, ...] | None
) -> np.ndarray:
    raw = f.read(4)
    if len(raw) < 4:
        raise ValueError(f"{path}: {len(raw)} bytes, too short for an IDX header")
    got = int.from_bytes(raw, "big")
    if got != magic:
        raise ValueError(
            f"{path}: bad IDX magic number {got} (0x{got:08x}), expected {magic} "
            f"(0x{magic:08x}); is this the right file?"
        )
    ndim = magic & 0xFF
    raw = f.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header ({4 + len(raw)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4"))
    if min(dims) < 0 or (max_shape is not None and any(d > m for d, m in zip(dims, max_shape))):
        raise ValueError(
            f"{path}: header declares shape {dims}, expected at most {max_shape}; "
            "it is corrupt or not this dataset's file, delete it and download it again"
        )
    size = math.prod(dims)
    data = f.read(size + 1)  # never more than the header declares, plus one to tell
    if len(data) != size:
        got_size = f"{len(data)}" if len(data) <= size else "more"
        raise ValueError(
            f"{path}: header says shape {dims} ({size} bytes of data) but the file has "
            f"{got_size}; it is truncated or corrupt, delete it and download it again"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


class MNIST(ArrayDataset):
    """MNIST handwritten digits: 60,000 train / 10,000 test 28x28 grayscale images.

    Args:
        root: folder holding the four IDX files (``train-images-idx3-ubyte.gz``, ...),
            either directly or in a ``mnist/`` subfolder (``fashion-mnist/`` for
            Fashion-MNIST), gzipped or not (default root:
            :func:`~minigrad.data.download.default_root`).
        train: the training files, else the ``t10k`` ones.
        download: fetch the missing ``.gz`` files (md5-checked) into ``root/mnist/``.

    Local ``.gz`` files are checked against the published md5s once per file version (see
    :mod:`minigrad.data.checksums`): a mismatch warns with ``ChecksumWarning``, saying which
    dataset's file it is when it is another known one. Uncompressed files are not checked
    (only the ``.gz`` digests are published).

    Samples are (1, 28, 28) float32 in [0, 1] and int labels.

    Raises:
        FileNotFoundError: files missing (says where to put them and about ``download=True``).
        ValueError: a truncated file, a bad magic number, or images and labels that disagree.
    """

    folder = "mnist"
    title = "MNIST"
    base_url = "https://ossci-datasets.s3.amazonaws.com/mnist/"
    md5 = {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    class_names: tuple[str, ...] = tuple(str(d) for d in range(10))
    #: images per split in the official files: the most a file's header may declare
    split_sizes = {"train": 60_000, "t10k": 10_000}

    def __init__(
        self, root: str | Path | None = None, train: bool = True, download: bool = False
    ) -> None:
        root = Path(root).expanduser() if root is not None else default_root()
        self.root, self.train = root, train
        prefix = "train" if train else "t10k"
        names = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
        paths = [self._find(root, n) for n in names]
        if download and None in paths:
            for n, p in zip(names, paths):
                if p is None:
                    try:
                        download_url(self.base_url + n + ".gz", root / self.folder / f"{n}.gz",
                                     self.md5[n + ".gz"])  # fmt: skip
                    except DownloadError as e:
                        raise DownloadError(
                            f"{e}; {type(self).__name__}'s four files "
                            f"({', '.join(sorted(self.md5))}, from {self.base_url}) "
                            f"all go in {root / self.folder}"
                        ) from None
            paths = [self._find(root, n) for n in names]
        if None in paths:
            missing = [n for n, p in zip(names, paths) if p is None]
            raise FileNotFoundError(
                describe_missing(
                    f"{type(self).__name__} files {missing}",
                    [root / self.folder / f"{n}.gz" for n in missing]
                    + [root / f"{n}.gz" for n in missing],
                    f"Pass download=True (--download on the command line) to fetch them from "
                    f"{self.base_url}, or put the .gz files in {root / self.folder}.",
                )
            )
        n = self.split_sizes[prefix]  # the official count bounds what a file may declare
        images = read_idx(paths[0], IMAGES_MAGIC, (n, 28, 28))  # (N, 28, 28)
        labels = read_idx(paths[1], LABELS_MAGIC, (n,))  # (N,)
        if images.shape[1:] != (28, 28):
            raise ValueError(f"{paths[0]}: images are {images.shape[1:]}, expected (28, 28)")
        if len(images) != len(labels):
            raise ValueError(
                f"{paths[0]} has {len(images)} images but {paths[1]} has {len(labels)} labels"
            )
        if labels.size and labels.max() >= 10:
            raise ValueError(f"{paths[1]}: labels must lie in [0, 10), got max {labels.max()}")
        for p in paths:  # after the format checks: a broken file is an error, not a warning
            if p.name in self.md5:
                check_file(p, self.md5[p.name], root, f"{self.title}'s {p.name}")
        super().__init__(images[:, None], labels.astype(np.int64), self.class_names, 255.0)

    def _find(self, root: Path, name: str) -> Path | None:
        for folder in (root / self.folder, root):
            for candidate in (folder / f"{name}.gz", folder / name):
                if candidate.is_file():
                    return candidate
        return None

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"{type(self).__name__}({split}, {len(self)} images, root={str(self.root)!r})"


class FashionMNIST(MNIST):
    """Fashion-MNIST (Zalando): 28x28 grayscale clothing images, 10 classes, MNIST's format.

    Same arguments as :class:`MNIST`; files go in ``root/fashion-mnist/`` (or ``root``).
    """

    folder = "fashion-mnist"
    title = "Fashion-MNIST"
    base_url = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    md5 = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    class_names = FASHION_MNIST_CLASSES


def _known_files() -> dict[str, str]:
    pairs = (("MNIST", MNIST.md5), ("Fashion-MNIST", FashionMNIST.md5))
    return {md5: f"{label}'s {name}" for label, table in pairs for name, md5 in table.items()}


register_known(_known_files)
