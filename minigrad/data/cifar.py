"""CIFAR-10 and CIFAR-100 from the official python-pickle tarballs.

The batches are Python-2 pickles of a dict with ``data`` (N, 3072) uint8 (R, G, B planes of
32x32) and the labels. They are read with a restricted unpickler that resolves only the NumPy
globals an array needs, so a malicious file cannot run code. Either the extracted folder
(``cifar-10-batches-py/``) or the tarball itself (read without extracting) is accepted.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from minigrad.data.checksums import mismatch_message, register_known
from minigrad.data.dataset import ArrayDataset
from minigrad.data.download import (
    ChecksumWarning,
    default_root,
    describe_missing,
    download_url,
    extract_archive,
    read_members,
)

__all__ = ["CIFAR10", "CIFAR100", "CIFAR10_CLASSES", "CIFAR100_CLASSES", "CIFAR100_SUPERCLASSES"]

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR100_CLASSES = tuple(
    """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
    butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch
    crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo
    keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse
    mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
    porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper
    snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television
    tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm""".split()
)
CIFAR100_SUPERCLASSES = tuple(
    """aquatic_mammals fish flowers food_containers fruit_and_vegetables
    household_electrical_devices household_furniture insects large_carnivores
    large_man-made_outdoor_things large_natural_outdoor_scenes large_omnivores_and_herbivores
    medium_mammals non-insect_invertebrates people reptiles small_mammals trees vehicles_1
    vehicles_2""".split()
)

# The only globals a pickled NumPy array needs, under the module names NumPy 1 (numpy.core)
# and NumPy 2 (numpy._core) write; resolved from live objects, never by importing a name.
_RECONSTRUCT = np.ndarray(0).__reduce__()[0]
_SCALAR = np.float64(0).__reduce__()[0]
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
}


class _RefusedGlobal(pickle.UnpicklingError):
    pass


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _RefusedGlobal(f"{module}.{name}") from None


def load_pickle(raw: bytes, source: str) -> dict[str, Any]:
    """Unpickle a CIFAR batch safely; dict keys come back as ``str`` whatever the pickle had.

    Raises:
        ValueError: naming ``source`` when the pickle is corrupt, is not a dict, or refers
            to anything but NumPy arrays.
    """
    try:
        obj = _SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except _RefusedGlobal as e:
        raise ValueError(
            f"{source}: refusing to unpickle the global {e} (only NumPy arrays are allowed); "
            "this is not a CIFAR batch file"
        ) from None
    except Exception as e:  # UnpicklingError, EOFError, ValueError, ... from a broken file
        raise ValueError(
            f"{source} is truncated or corrupt ({type(e).__name__}: {e}); "
            "delete it and download it again"
        ) from e
    if not isinstance(obj, dict):
        raise ValueError(f"{source}: expected a pickled dict, got {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


class _CIFAR(ArrayDataset):
    """Shared loading of the CIFAR tarballs; subclasses give files and label keys."""

    url: str
    md5: str
    folder: str
    train_members: tuple[str, ...]
    test_members: tuple[str, ...]
    meta_member: str
    member_md5: dict[str, str]
    num_classes: int
    #: the largest batch file accepted, about twice the official ones: a file or tar
    #: member declaring more is refused before it is read into memory
    max_member_bytes: int

    @property
    def archive_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    def __init__(self, root: str | Path | None, train: bool, download: bool) -> None:
        root = Path(root).expanduser() if root is not None else default_root()
        self.root, self.train = root, train
        members = self.train_members if train else self.test_members
        folder, archive = self._folder(root, members), root / self.archive_name
        if download and folder is None:
            if not archive.exists():
                download_url(self.url, archive, self.md5)
            extract_archive(archive, root)
            folder = self._folder(root, members)
        if folder is None and not archive.is_file():
            raise FileNotFoundError(
                describe_missing(
                    f"{type(self).__name__} files",
                    [root / self.folder, archive],
                    f"Pass download=True (--download on the command line) to fetch "
                    f"{self.url}, or put {self.archive_name} or its extracted "
                    f"{self.folder}/ folder in {root}.",
                )
            )
        raws = self._read(folder, archive, (*members, self.meta_member))
        images, labels = [], []
        for m in members:
            raw, name = raws[m]
            if raw is None:
                raise FileNotFoundError(f"{type(self).__name__}: {name} is missing")
            data, labs = self._parse(self._unpickle(raw, name, m), name)
            images.append(data)
            labels.append(labs)
        raw, name = raws[self.meta_member]
        meta = None if raw is None else self._unpickle(raw, name, self.meta_member)
        super().__init__(
            np.concatenate(images).reshape(-1, 3, 32, 32),  # (N, 3, 32, 32) RGB planes
            np.concatenate(labels),
            self._class_names(meta),
            scale=255.0,
        )

    def _folder(self, root: Path, members: tuple[str, ...]) -> Path | None:
        """The extracted folder holding ``members`` (``root`` itself may be it), or None."""
        for folder in (root / self.folder, root):
            if all((folder / m).is_file() for m in members):
                return folder
        return None

    def _read(
        self, folder: Path | None, archive: Path, members: tuple[str, ...]
    ) -> dict[str, tuple[bytes | None, str]]:
        """member -> (its bytes or None when absent, a name for messages)."""
        if folder is not None:
            return {m: (self._read_file(folder / m), str(folder / m)) for m in members}
        names = {m: f"{self.folder}/{m}" for m in members}
        found = read_members(archive, list(names.values()), self.max_member_bytes)  # one pass
        return {m: (found.get(n), f"{archive}:{n}") for m, n in names.items()}

    def _read_file(self, path: Path) -> bytes | None:
        if not path.is_file():
            return None
        size = path.stat().st_size
        if size > self.max_member_bytes:
            raise ValueError(
                f"{path}: {size} bytes, more than the {self.max_member_bytes} a "
                f"{type(self).__name__} batch file has; it is not this dataset's file"
            )
        return path.read_bytes()

    def _unpickle(self, raw: bytes, name: str, member: str) -> dict[str, Any]:
        if member in self.member_md5:
            got = hashlib.md5(raw, usedforsecurity=False).hexdigest()
            if got != self.member_md5[member]:
                what = f"{type(self).__name__}'s {member}"
                warnings.warn(
                    mismatch_message(name, got, [self.member_md5[member]], what),
                    ChecksumWarning,
                    stacklevel=4,
                )
        return load_pickle(raw, name)

    def _labels(self, batch: dict[str, Any], name: str) -> Any:
        raise NotImplementedError

    def _parse(self, batch: dict[str, Any], name: str) -> tuple[np.ndarray, np.ndarray]:
        data = batch.get("data")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
            raise ValueError(f"{name}: 'data' must be a uint8 (N, 3072) array")
        if data.shape[1] != 3072:
            raise ValueError(f"{name}: 'data' has {data.shape[1]} columns, expected 3072")
        labels = self._labels(batch, name)
        if isinstance(labels, list) and len(labels) == len(data):
            try:  # one int per image, never np.asarray: a list of lists sharing one list
                labels = np.fromiter(labels, dtype=np.int64, count=len(data))  # could be huge
            except (TypeError, ValueError, OverflowError):
                raise ValueError(f"{name}: the labels are not a list of integers") from None
        elif isinstance(labels, list):
            labels = np.zeros(len(labels), np.int64)  # the wrong length: reported below
        elif not isinstance(labels, np.ndarray):
            raise ValueError(f"{name}: the labels are a {type(labels).__name__}, not a list")
        if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"{name}: {len(data)} images but labels of shape {labels.shape} "
                f"and dtype {labels.dtype}"
            )
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"{name}: labels must lie in [0, {self.num_classes}), "
                f"got {labels.min()}..{labels.max()}"
            )
        return data, labels.astype(np.int64)

    def _class_names(self, meta: dict[str, Any] | None) -> tuple[str, ...]:
        raise NotImplementedError

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"{type(self).__name__}({split}, {len(self)} images, root={str(self.root)!r})"


def _names(meta: dict[str, Any] | None, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    names = (meta or {}).get(key)
    if not isinstance(names, list) or len(names) != len(default):
        return default
    return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)


class CIFAR10(_CIFAR):
    """CIFAR-10: 50,000 train / 10,000 test 32x32 RGB images, 10 classes.

    Args:
        root: folder holding ``cifar-10-python.tar.gz`` or ``cifar-10-batches-py/``
            (default: :func:`~minigrad.data.download.default_root`).
        train: the five training batches, else ``test_batch``.
        download: fetch and extract the tarball (md5-checked) when the files are missing.

    Samples are (3, 32, 32) float32 in [0, 1] and int labels; ``classes`` names them.

    Raises:
        FileNotFoundError: files missing (says where to put them and about ``download=True``).
        ValueError: a corrupt, truncated or malformed file (named in the message).
    """

    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    md5 = "c58f30108f718f92721af3b95e74349a"
    folder = "cifar-10-batches-py"
    train_members = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_members = ("test_batch",)
    meta_member = "batches.meta"
    member_md5 = {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
    }
    num_classes = 10
    max_member_bytes = 64 << 20  # the batches are 31 MB

    def __init__(
        self, root: str | Path | None = None, train: bool = True, download: bool = False
    ) -> None:
        super().__init__(root, train, download)

    def _labels(self, batch: dict[str, Any], name: str) -> Any:
        if "labels" not in batch:
            raise ValueError(f"{name}: no 'labels' entry (keys: {sorted(batch)})")
        return batch["labels"]

    def _class_names(self, meta: dict[str, Any] | None) -> tuple[str, ...]:
        return _names(meta, "label_names", CIFAR10_CLASSES)


class CIFAR100(_CIFAR):
    """CIFAR-100: 50,000 train / 10,000 test 32x32 RGB images, 100 fine or 20 coarse classes.

    Args:
        root: folder holding ``cifar-100-python.tar.gz`` or ``cifar-100-python/``.
        train: the ``train`` file, else ``test``.
        download: fetch and extract the tarball (md5-checked) when the files are missing.
        label: "fine" (100 classes) or "coarse" (20 superclasses).

    Raises:
        FileNotFoundError: files missing (says where to put them and about ``download=True``).
        ValueError: a bad ``label`` or a corrupt, truncated or malformed file.
    """

    url = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    md5 = "eb9058c3a382ffc7106e4002c42a8d85"
    folder = "cifar-100-python"
    train_members = ("train",)
    test_members = ("test",)
    meta_member = "meta"
    member_md5 = {
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    }
    max_member_bytes = 320 << 20  # train is 155 MB

    def __init__(
        self,
        root: str | Path | None = None,
        train: bool = True,
        download: bool = False,
        label: str = "fine",
    ) -> None:
        if label not in ("fine", "coarse"):
            raise ValueError(f"CIFAR100: label must be 'fine' or 'coarse', got {label!r}")
        self.label = label
        self.num_classes = 100 if label == "fine" else 20
        super().__init__(root, train, download)

    def _labels(self, batch: dict[str, Any], name: str) -> Any:
        key = f"{self.label}_labels"
        if key not in batch:
            raise ValueError(f"{name}: no {key!r} entry (keys: {sorted(batch)})")
        return batch[key]

    def _class_names(self, meta: dict[str, Any] | None) -> tuple[str, ...]:
        if self.label == "fine":
            return _names(meta, "fine_label_names", CIFAR100_CLASSES)
        return _names(meta, "coarse_label_names", CIFAR100_SUPERCLASSES)


def _known_files() -> dict[str, str]:
    known: dict[str, str] = {}
    for label, cls in (("CIFAR-10", CIFAR10), ("CIFAR-100", CIFAR100)):
        known.update({md5: f"{label}'s {name}" for name, md5 in cls.member_md5.items()})
        known[cls.md5] = f"{label}'s {cls.url.rsplit('/', 1)[-1]}"
    return known


register_known(_known_files)
