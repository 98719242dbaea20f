"""Imagenette (fastai): 10 easy ImageNet classes as folders of JPEGs, decoded lazily by Pillow.

Each archive (``imagenette2-160.tgz``, ``imagenette2-320.tgz``, ``imagenette2.tgz``) extracts
to a folder of the same name with ``train/`` and ``val/``, each holding one folder per WordNet
id. The archives were re-uploaded in 2021 and projects publish different md5s for them, so a
download with an unknown md5 only warns; the folder structure is what gets checked.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from minigrad import random
from minigrad.data.checksums import register_known
from minigrad.data.dataset import Dataset, check_index
from minigrad.data.download import default_root, describe_missing, download_url, extract_archive
from minigrad.data.images import open_image
from minigrad.data.transforms import ToFloat, Transform

__all__ = ["IMAGENETTE_CLASSES", "IMAGENETTE_WNIDS", "Imagenette"]

IMAGENETTE_WNIDS = (
    "n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
    "n03394916", "n03417042", "n03425413", "n03445777", "n03888257",
)  # fmt: skip
IMAGENETTE_CLASSES = (
    "tench", "English springer", "cassette player", "chain saw", "church",
    "French horn", "garbage truck", "gas pump", "golf ball", "parachute",
)  # fmt: skip
_BASE = "https://s3.amazonaws.com/fast-ai-imageclas/"
# size -> (folder name, known md5s of its archive)
SIZES: dict[str, tuple[str, tuple[str, ...]]] = {
    "160": ("imagenette2-160", ("e793b78cc4c9e9a4ccc0c1155377a412",)),
    "320": ("imagenette2-320", ("3df6f0d01a2c9592104656642f5e78a3",)),
    "full": ("imagenette2", ("fe2fc210e6bb7c5664d602c3cd71e612",)),
}
_EXTENSIONS = {".jpeg", ".jpg", ".png"}
_to_float = ToFloat()


class Imagenette(Dataset):
    """Imagenette: about 9,469 train / 3,925 val ImageNet photos of 10 classes.

    Args:
        root: folder holding ``imagenette2-160/`` (or its ``.tgz``, extracted on first use).
        split: "train" or "val".
        size: "160" or "320" (shorter side resized to that) or "full".
        download: fetch the archive when it is missing (an unknown md5 warns) and extract it.
        transform: called as ``transform(pil_image, rng)`` on each RGB image (e.g.
            ``RandomResizedCrop``); its result, if still a Pillow image, goes through
            :class:`ToFloat`. Images differ in size, so batching needs a transform that
            makes them equal.

    Samples are (3, H, W) float32 in [0, 1] and labels 0-9 in sorted WordNet-id order.

    Raises:
        FileNotFoundError: files missing (says where to put them and about ``download=True``).
        ValueError: a bad split/size, a folder structure that is not Imagenette's, or an
            image Pillow cannot decode (named in the message).
    """

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "train",
        size: str = "160",
        download: bool = False,
        transform: Callable[..., Any] | None = None,
    ) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"Imagenette: split must be 'train' or 'val', got {split!r}")
        size = str(size)
        if size not in SIZES:
            raise ValueError(f"Imagenette: size must be one of {sorted(SIZES)}, got {size!r}")
        root = Path(root).expanduser() if root is not None else default_root()
        name, md5s = SIZES[size]
        folder, archive = root / name, root / f"{name}.tgz"
        self.root, self.split, self.size, self.transform = root, split, size, transform
        self.url = _BASE + archive.name
        if not (folder / split).is_dir():
            if download and not archive.exists():
                download_url(self.url, archive, md5s, unknown_md5="warn")
            if archive.exists():
                extract_archive(archive, root)
        if not (folder / split).is_dir():
            raise FileNotFoundError(
                describe_missing(
                    f"Imagenette {split} images",
                    [folder / split, archive],
                    f"Pass download=True (--download on the command line) to fetch {self.url}, "
                    f"or put {archive.name} or its extracted {name}/ folder in {root}.",
                )
            )
        self.folder = folder
        self.samples = self._scan(folder / split)
        self.classes = IMAGENETTE_CLASSES
        self.wnids = IMAGENETTE_WNIDS

    @staticmethod
    def _scan(split_dir: Path) -> list[tuple[Path, int]]:
        found = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
        missing = [w for w in IMAGENETTE_WNIDS if w not in found]
        extra = [w for w in found if w not in IMAGENETTE_WNIDS]
        if missing or extra:
            raise ValueError(
                f"Imagenette: {split_dir} should hold one folder per class "
                f"{list(IMAGENETTE_WNIDS)}; missing {missing}, unexpected {extra}"
            )
        samples = []
        for label, wnid in enumerate(IMAGENETTE_WNIDS):
            files = sorted(
                p for p in (split_dir / wnid).iterdir() if p.suffix.lower() in _EXTENSIONS
            )
            if not files:
                raise ValueError(f"Imagenette: {split_dir / wnid} has no images")
            samples += [(p, label) for p in files]
        return samples

    def __len__(self) -> int:
        return len(self.samples)

    def load_image(self, index: int) -> Any:
        """The RGB Pillow image at ``index`` (grayscale and CMYK converted).

        Raises:
            ValueError: one line naming the file when it is not an image, is truncated, or
                is a decompression bomb (more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels:
                refused before its pixels are decoded, Pillow's warning included).
        """
        path = self.samples[check_index(index, len(self), "Imagenette")][0]
        try:
            image = open_image(path)
        except ValueError as e:  # its message starts with the path
            raise ValueError(f"Imagenette: cannot decode {e}") from None
        return image.convert("RGB")

    def get(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        img = self.load_image(index)
        label = self.samples[index][1]
        if self.transform is not None:
            img = (
                self.transform(img, rng)
                if isinstance(self.transform, Transform)
                else (self.transform(img))
            )
        return _to_float(img), label

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.get(index, random.generator("cpu"))

    def __repr__(self) -> str:
        root = str(self.root)
        return f"Imagenette({self.split}, size={self.size}, {len(self)} images, root={root!r})"


def _known_files() -> dict[str, str]:
    return {md5: f"Imagenette's {folder}.tgz" for folder, md5s in SIZES.values() for md5 in md5s}


register_known(_known_files)
