"""The embedded default dataset: UCI optical handwritten digits, 8x8, shipped in the package.

1,797 images of digits 0-9 by 43 writers (Alpaydin & Kaynak 1998, via scikit-learn's copy),
values 0..16, CC BY 4.0: see ``assets/DIGITS_LICENSE.txt``. A fixed stratified split
(1,437 train / 360 test, 36 test images per class) is stored in the file, so it never
changes. No download, no network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from minigrad.data import _resample
from minigrad.data.dataset import ArrayDataset

__all__ = ["DIGITS_PATH", "Digits"]

DIGITS_PATH = Path(__file__).with_name("assets") / "digits.npz"


class Digits(ArrayDataset):
    """UCI optical digits: (1, size, size) float32 images in [0, 1], labels 0-9.

    Args:
        train: the 1,437 training images, else the 360 test images.
        size: side of the returned images; 8 is the original, larger values upsample all
            images once at load time (bilinear, as Pillow does) since GoogLeNet's pooling
            needs more than 8 pixels (32 suits its CIFAR stem).
        interpolation: "bilinear" (default), "bicubic", "nearest" or "area" for upsampling.

    Raises:
        ValueError: a size below 1 or an unknown interpolation.
    """

    def __init__(self, train: bool = True, size: int = 8, interpolation: str = "bilinear") -> None:
        if not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"Digits: size must be a positive int, got {size!r}")
        fid = _resample.filter_id(interpolation, "Digits")
        with np.load(DIGITS_PATH, allow_pickle=False) as f:
            index = f["train_index"] if train else f["test_index"]
            images = f["images"][index][:, None]  # (N, 1, 8, 8) uint8, 0..16
            labels = f["labels"][index]
        self.train, self.size = train, int(size)
        if size == 8:
            super().__init__(images, labels, tuple(str(d) for d in range(10)), scale=16.0)
            return
        x = images.astype(np.float32) * np.float32(1 / 16)
        x = _resample.resize_batch(x, size, size, fid=fid)  # (N, 1, size, size)
        super().__init__(np.clip(x, 0, 1), labels, tuple(str(d) for d in range(10)), scale=1.0)

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"Digits({split}, {len(self)} images, {self.size}x{self.size})"
