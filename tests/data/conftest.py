"""Writers of tiny dataset files in exactly the official formats, as fixtures.

- CIFAR: Python-2 style pickles (strings as BINSTRING, NumPy 1's ``numpy.core`` globals)
  in ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` with the official member names.
- Imagenette: ``imagenette2-160.tgz`` with ``train/`` and ``val/`` folders of JPEGs by
  WordNet id, one grayscale and one CMYK JPEG among them.
- MNIST: the four big-endian IDX files, gzipped.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from minigrad.data.imagenette import IMAGENETTE_WNIDS

# Every test here reads tiny stand-ins whose md5s differ from the published ones.
pytestmark = pytest.mark.filterwarnings("ignore::minigrad.data.download.ChecksumWarning")


class Py2Pickler(pickle._Pickler):  # the pure-Python pickler lets us choose opcodes
    """Pickles the way Python 2's cPickle wrote the CIFAR batches (protocol 2)."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: Any) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def py2_pickle(obj: Any) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def cifar_batch(rng: np.random.Generator, n: int, label_keys: dict[str, int]) -> dict:
    batch: dict[str, Any] = {
        "batch_label": "training batch 1 of 5",
        "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        "filenames": [f"img_{i}.png" for i in range(n)],
    }
    for key, k in label_keys.items():
        batch[key] = [int(v) for v in rng.integers(0, k, size=n)]
    return batch


def write_cifar10(root: Path, n: int = 3, seed: int = 0) -> tuple[Path, dict[str, dict]]:
    """cifar-10-python.tar.gz with 5 training batches of ``n`` and a test batch of ``n + 1``."""
    rng = np.random.default_rng(seed)
    members = {f"data_batch_{i}": cifar_batch(rng, n, {"labels": 10}) for i in range(1, 6)}
    members["test_batch"] = cifar_batch(rng, n + 1, {"labels": 10})
    meta = {"num_cases_per_batch": n, "label_names": ["airplane", "automobile", "bird", "cat",
            "deer", "dog", "frog", "horse", "ship", "truck"], "num_vis": 3072}  # fmt: skip
    path = root / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        add_dir(tar, "cifar-10-batches-py")
        for name, batch in members.items():
            add_bytes(tar, f"cifar-10-batches-py/{name}", py2_pickle(batch))
        add_bytes(tar, "cifar-10-batches-py/batches.meta", py2_pickle(meta))
        add_bytes(tar, "cifar-10-batches-py/readme.html", b"<html></html>")
    return path, members


def write_cifar100(root: Path, n: int = 5, seed: int = 1) -> tuple[Path, dict[str, dict]]:
    """cifar-100-python.tar.gz with ``train`` of ``n`` and ``test`` of ``n - 1`` images."""
    from minigrad.data.cifar import CIFAR100_CLASSES, CIFAR100_SUPERCLASSES

    rng = np.random.default_rng(seed)
    keys = {"fine_labels": 100, "coarse_labels": 20}
    members = {"train": cifar_batch(rng, n, keys), "test": cifar_batch(rng, n - 1, keys)}
    meta = {"fine_label_names": list(CIFAR100_CLASSES),
            "coarse_label_names": list(CIFAR100_SUPERCLASSES)}  # fmt: skip
    path = root / "cifar-100-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        add_dir(tar, "cifar-100-python")
        for name, batch in members.items():
            add_bytes(tar, f"cifar-100-python/{name}", py2_pickle(batch))
        add_bytes(tar, "cifar-100-python/meta", py2_pickle(meta))
    return path, members


def jpeg_bytes(rng: np.random.Generator, mode: str, size: tuple[int, int]) -> bytes:
    from PIL import Image

    w, h = size
    channels = {"RGB": 3, "L": 1, "CMYK": 4}[mode]
    a = rng.integers(0, 256, size=(h, w, channels), dtype=np.uint8)
    img = Image.fromarray(a[..., 0] if channels == 1 else a, mode=mode)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_imagenette(root: Path, per_class: int = 1, seed: int = 2) -> Path:
    """imagenette2-160.tgz: ``per_class`` JPEGs per class in train/ and in val/.

    The first train image of class 0 is grayscale, that of class 1 is CMYK; sizes vary.
    """
    rng = np.random.default_rng(seed)
    path = root / "imagenette2-160.tgz"
    with tarfile.open(path, "w:gz") as tar:
        add_dir(tar, "imagenette2-160")
        add_bytes(tar, "imagenette2-160/noisy_imagenette.csv", b"path,noisy_labels_0\n")
        for split in ("train", "val"):
            add_dir(tar, f"imagenette2-160/{split}")
            for k, wnid in enumerate(IMAGENETTE_WNIDS):
                add_dir(tar, f"imagenette2-160/{split}/{wnid}")
                for i in range(per_class):
                    mode = (
                        {0: "L", 1: "CMYK"}.get(k, "RGB") if split == "train" and i == 0 else "RGB"
                    )
                    size = (int(rng.integers(20, 30)), int(rng.integers(16, 24)))
                    name = f"imagenette2-160/{split}/{wnid}/{wnid}_{i}.JPEG"
                    add_bytes(tar, name, jpeg_bytes(rng, mode, size))
    return path


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = struct.pack(">i", magic) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_mnist(folder: Path, n_train: int = 6, n_test: int = 4, seed: int = 3) -> dict:
    """The four gzipped IDX files in ``folder``; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(idx_bytes(images, 2051))
        )
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(idx_bytes(labels, 2049))
        )
        arrays[prefix] = (images, labels)
    return arrays


def register_mnist_md5s(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make the IDX files in ``folder`` the "published" ones for this test (Fashion-MNIST's
    when the folder is ``fashion-mnist``, else MNIST's), so reading them raises no
    ChecksumWarning while the check itself still runs."""
    from minigrad.data import MNIST, FashionMNIST
    from minigrad.data.download import md5sum

    cls = FashionMNIST if folder.name == "fashion-mnist" else MNIST
    for path in folder.glob("*-ubyte.gz"):
        monkeypatch.setitem(cls.md5, path.name, md5sum(path))


@pytest.fixture
def archives(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The writers above, for tests: ``archives.write_cifar10(tmp_path)`` etc.

    ``archives.write_mnist`` registers the md5s of the files it writes (see
    :func:`register_mnist_md5s`); ``write_mnist`` itself does not.
    """
    import types

    def write_mnist_registered(folder: Path, *args: Any, **kwargs: Any) -> dict:
        arrays = write_mnist(folder, *args, **kwargs)
        register_mnist_md5s(monkeypatch, folder)
        return arrays

    return types.SimpleNamespace(
        write_cifar10=write_cifar10,
        write_cifar100=write_cifar100,
        write_imagenette=write_imagenette,
        write_mnist=write_mnist_registered,
        py2_pickle=py2_pickle,
        idx_bytes=idx_bytes,
        add_bytes=add_bytes,
        jpeg_bytes=jpeg_bytes,
    )
