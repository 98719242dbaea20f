"""Image transforms: batch-vectorized on arrays, per image on Pillow images.

Every transform is called as ``t(x, rng=None)`` and draws its randomness from ``rng`` (a
``numpy.random.Generator``; None = ``minigrad.random.generator("cpu")``), so the loader can
make augmentation a pure function of (seed, epoch, batch).

Arrays are one image ``(C, H, W)`` or a batch ``(N, C, H, W)``; a batch is transformed with a
few array operations, each image with its own random draw (no Python loop over images).
Pillow images (Imagenette's JPEGs) are handled by the geometric transforms and by
:class:`ToFloat`, which turns them into ``(C, H, W)`` float32 arrays in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from minigrad.data import _resample
from minigrad.data._transform_base import (
    Transform,
    _as_batch,
    _float_batch,
    _is_pil,
    _pil_filter,
    _rng,
    _size_hw,
)
from minigrad.data.augment import (
    IMAGENET_EIGVAL,
    IMAGENET_EIGVEC,
    PhotometricDistortion,
    RandomResizedCrop,
)

__all__ = [
    "IMAGENET_EIGVAL",
    "IMAGENET_EIGVEC",
    "CenterCrop",
    "Compose",
    "Normalize",
    "Pad",
    "PhotometricDistortion",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "Resize",
    "ToFloat",
    "Transform",
]


class Compose(Transform):
    """Apply ``transforms`` in order; plain one-argument callables are called as ``t(x)``."""

    def __init__(self, transforms: Sequence[Callable[..., Any]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Any, rng: np.random.Generator | None = None) -> Any:
        rng = _rng(rng)
        for t in self.transforms:
            x = t(x, rng) if isinstance(t, Transform) else t(x)
        return x


class ToFloat(Transform):
    """uint8 [0, 255] -> float32 [0, 1]; a Pillow image becomes (C, H, W) (C=1 for mode "L").

    Float arrays pass through as float32 (they are taken to be in [0, 1] already).
    """

    def __call__(self, x: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        if _is_pil(x):
            if x.mode != "L":
                x = x.convert("RGB")
            a = np.asarray(x)
            a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)  # (C, H, W)
            return a.astype(np.float32) * np.float32(1 / 255)
        a = np.asarray(x)
        if a.dtype == np.uint8:
            return a.astype(np.float32) * np.float32(1 / 255)
        if np.issubdtype(a.dtype, np.floating):
            return a.astype(np.float32, copy=False)
        raise TypeError(f"ToFloat: expects uint8 or float arrays or Pillow images, got {a.dtype}")


class Normalize(Transform):
    """``(x - mean[c]) / std[c]`` per channel, float32 out.

    Args:
        mean, std: one value per channel (or one value for all).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(f"Normalize: mean {self.mean} and std {self.std} differ in length")
        if min(self.std) <= 0:
            raise ValueError(f"Normalize: std must be > 0, got {self.std}")
        self._mean = np.asarray(self.mean, dtype=np.float32)[:, None, None]  # (C, 1, 1)
        self._inv_std = (1 / np.asarray(self.std, dtype=np.float32))[:, None, None]

    def __call__(self, x: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        xb, single = _float_batch(x, "Normalize")
        C = xb.shape[1]
        if len(self.mean) not in (1, C):
            raise ValueError(f"Normalize: {len(self.mean)} mean/std values for {C} channels")
        y = ((xb - self._mean) * self._inv_std).astype(np.float32, copy=False)
        return y[0] if single else y


class Pad(Transform):
    """Constant padding of the last two axes.

    Args:
        padding: int (all sides), (left/right, top/bottom) or (left, top, right, bottom).
        fill: the constant.
    """

    def __init__(self, padding: int | Sequence[int], fill: float = 0.0) -> None:
        p = (padding,) if isinstance(padding, (int, np.integer)) else tuple(padding)
        if len(p) not in (1, 2, 4) or min(p) < 0:
            raise ValueError(f"Pad: padding must be 1, 2 or 4 values >= 0, got {padding!r}")
        self.padding = padding
        self.fill = fill
        left, top, right, bottom = p * 4 if len(p) == 1 else (p * 2 if len(p) == 2 else p)
        self._pads = ((top, bottom), (left, right))

    def __call__(self, x: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        xb, single = _as_batch(x, "Pad")
        y = np.pad(xb, ((0, 0), (0, 0), *self._pads), constant_values=self.fill)
        return y[0] if single else y


class RandomCrop(Transform):
    """Zero-pad by ``padding`` then crop ``size`` at a random place (per image).

    Args:
        size: int or (h, w) of the crop.
        padding: zeros added on every side first.
    """

    def __init__(self, size: int | Sequence[int], padding: int = 0) -> None:
        self.size = size
        self.padding = int(padding)
        self._hw = _size_hw(size, "RandomCrop")
        if self.padding < 0:
            raise ValueError(f"RandomCrop: padding must be >= 0, got {padding}")

    def __call__(self, x: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        xb, single = _as_batch(x, "RandomCrop")
        p = self.padding
        if p:
            xb = np.pad(xb, ((0, 0), (0, 0), (p, p), (p, p)))
        N, C, H, W = xb.shape
        h, w = self._hw
        if h > H or w > W:
            raise ValueError(f"RandomCrop: crop {h}x{w} larger than padded image {H}x{W}")
        rng = _rng(rng)
        top = rng.integers(0, H - h + 1, size=N)
        left = rng.integers(0, W - w + 1, size=N)
        windows = np.lib.stride_tricks.sliding_window_view(xb, (h, w), axis=(2, 3))
        y = windows[np.arange(N), :, top, left]  # (N, C, h, w)
        return y[0] if single else y


class RandomHorizontalFlip(Transform):
    """Mirror left-right with probability ``p`` (each image its own coin)."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, x: Any, rng: np.random.Generator | None = None) -> Any:
        rng = _rng(rng)
        if _is_pil(x):
            from PIL import Image  # noqa: PLC0415 - Pillow is optional (the 'train' extra)

            return x.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < self.p else x
        xb, single = _as_batch(x, "RandomHorizontalFlip")
        flip = rng.random(len(xb)) < self.p
        y = np.where(flip[:, None, None, None], xb[..., ::-1], xb)
        return y[0] if single else y


def _resized_hw(size: int | Sequence[int], H: int, W: int, where: str) -> tuple[int, int]:
    """torchvision's rule: an int sets the shorter side, keeping the aspect ratio."""
    if isinstance(size, (int, np.integer)):
        if size <= 0:
            raise ValueError(f"{where}: size must be positive, got {size}")
        if H <= W:
            return int(size), int(size * W / H)
        return int(size * H / W), int(size)
    return _size_hw(size, where)


class Resize(Transform):
    """Resize with Pillow's filters (antialiased when shrinking); arrays match Pillow.

    Args:
        size: int = length of the shorter side (aspect ratio kept), or (h, w).
        interpolation: "bilinear", "bicubic", "nearest" or "area".
    """

    def __init__(self, size: int | Sequence[int], interpolation: str = "bilinear") -> None:
        self.size = size
        self.interpolation = interpolation
        self._fid = _resample.filter_id(interpolation, "Resize")
        _resized_hw(size, 1, 1, "Resize")

    def __call__(self, x: Any, rng: np.random.Generator | None = None) -> Any:
        if _is_pil(x):
            h, w = _resized_hw(self.size, x.height, x.width, "Resize")
            return x.resize((w, h), _pil_filter(self._fid))
        xb, single = _float_batch(x, "Resize")
        h, w = _resized_hw(self.size, xb.shape[2], xb.shape[3], "Resize")
        y = _resample.resize_batch(xb, h, w, fid=self._fid)
        return y[0] if single else y


class CenterCrop(Transform):
    """The central ``size`` crop (top/left offsets rounded like torchvision)."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = size
        self._hw = _size_hw(size, "CenterCrop")

    def __call__(self, x: Any, rng: np.random.Generator | None = None) -> Any:
        h, w = self._hw
        H, W = (x.height, x.width) if _is_pil(x) else np.shape(x)[-2:]
        if h > H or w > W:
            raise ValueError(f"CenterCrop: crop {h}x{w} larger than image {H}x{W}; Resize first")
        top, left = int(round((H - h) / 2)), int(round((W - w) / 2))
        if _is_pil(x):
            return x.crop((left, top, left + w, top + h))
        _as_batch(x, "CenterCrop")
        return np.asarray(x)[..., top : top + h, left : left + w]
