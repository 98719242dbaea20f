"""The GoogLeNet paper's ImageNet augmentation: random-resized crops, photometric distortion.

Szegedy et al. (2015), section 6: crops of 8%-100% of the image area with aspect ratio in
[3/4, 4/3], resized with an interpolation method drawn at random among bilinear, area,
nearest and cubic; photometric distortions as in Howard (2013); AlexNet's PCA lighting noise.
Re-exported by :mod:`minigrad.data.transforms`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from minigrad.data import _resample
from minigrad.data._transform_base import (
    Transform,
    _float_batch,
    _is_pil,
    _pil_filter,
    _rng,
    _size_hw,
)

__all__ = ["IMAGENET_EIGVAL", "IMAGENET_EIGVEC", "PhotometricDistortion", "RandomResizedCrop"]


class RandomResizedCrop(Transform):
    """A random crop of ``scale`` of the area and aspect ``ratio``, resized to ``size``.

    As in the GoogLeNet paper: 8%-100% of the area, aspect ratio in [3/4, 4/3], and with
    ``interpolation="random"`` the method drawn per image among bilinear, area, nearest and
    bicubic. The box is drawn with torchvision's rule (10 tries, then a central crop).

    Args:
        size: int or (h, w) of the result.
        scale: range of the crop's area as a fraction of the image's.
        ratio: range of the crop's width / height (sampled log-uniformly).
        interpolation: "random" or one of "bilinear", "area", "nearest", "bicubic".
    """

    METHODS = ("bilinear", "area", "nearest", "bicubic")

    def __init__(
        self,
        size: int | Sequence[int],
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        interpolation: str = "random",
    ) -> None:
        self.size = size
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.interpolation = interpolation
        self._hw = _size_hw(size, "RandomResizedCrop")
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"RandomResizedCrop: scale must be 0 < lo <= hi <= 1, got {scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"RandomResizedCrop: ratio must satisfy 0 < lo <= hi, got {ratio}")
        if interpolation != "random":
            _resample.filter_id(interpolation, "RandomResizedCrop")

    def boxes(
        self, N: int, H: int, W: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw (N, 4) crop boxes ``(left, top, right, bottom)`` and (N,) filter ids."""
        tries = 10
        area = rng.uniform(self.scale[0], self.scale[1], size=(N, tries)) * (H * W)
        log_r = rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), size=(N, tries))
        aspect = np.exp(log_r)
        w = np.rint(np.sqrt(area * aspect)).astype(np.int64)
        h = np.rint(np.sqrt(area / aspect)).astype(np.int64)
        ok = (w > 0) & (w <= W) & (h > 0) & (h <= H)
        first = np.argmax(ok, axis=1)  # first successful try of each image
        rows = np.arange(N)
        w, h, found = w[rows, first], h[rows, first], ok[rows, first]
        # fallback: the largest central crop whose aspect ratio lies in range
        in_ratio = W / H
        if in_ratio < self.ratio[0]:
            fw, fh = W, int(round(W / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            fw, fh = int(round(H * self.ratio[1])), H
        else:
            fw, fh = W, H
        w, h = np.where(found, w, fw), np.where(found, h, fh)
        u = rng.random((N, 2))
        top = np.where(found, np.floor(u[:, 0] * (H - h + 1)), (H - h) // 2).astype(np.int64)
        left = np.where(found, np.floor(u[:, 1] * (W - w + 1)), (W - w) // 2).astype(np.int64)
        if self.interpolation == "random":
            names = np.array(self.METHODS)[rng.integers(0, len(self.METHODS), size=N)]
        else:
            names = np.full(N, self.interpolation)
        fid = np.array([_resample.FILTERS[str(n)] for n in names])
        return np.stack([left, top, left + w, top + h], axis=1), fid

    def __call__(self, x: Any, rng: np.random.Generator | None = None) -> Any:
        rng = _rng(rng)
        oh, ow = self._hw
        if _is_pil(x):
            box, fid = self.boxes(1, x.height, x.width, rng)
            return x.resize((ow, oh), _pil_filter(int(fid[0])), box=tuple(map(int, box[0])))
        xb, single = _float_batch(x, "RandomResizedCrop")
        box, fid = self.boxes(len(xb), xb.shape[2], xb.shape[3], rng)
        y = _resample.resize_batch(xb, oh, ow, box, fid)
        return y[0] if single else y


# AlexNet-style PCA lighting: eigen-decomposition of ImageNet's RGB covariance on [0, 1]
# pixels (the values fb.resnet.torch and most ImageNet pipelines use).
IMAGENET_EIGVAL = np.array([0.2175, 0.0188, 0.0045], dtype=np.float32)
IMAGENET_EIGVEC = np.array(
    [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]],
    dtype=np.float32,
)
_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601 luma, as Pillow's "L"


class PhotometricDistortion(Transform):
    """Brightness, contrast, saturation jitter, then AlexNet PCA lighting noise.

    On float images in [0, 1]. Each image draws factors uniformly in ``[1 - b, 1 + b]``
    (brightness scales the pixels, contrast blends with the image's mean gray, saturation
    with each pixel's gray), applied in that order and clipped to [0, 1] after each, like
    torchvision's ColorJitter; then adds ``eigvec @ (alpha * eigval)`` to every pixel with
    ``alpha ~ N(0, lighting)`` (Krizhevsky et al. 2012) and clips again.

    Args:
        brightness, contrast, saturation: jitter strengths (0 turns one off).
        lighting: standard deviation of the PCA noise (0 turns it off).

    Saturation and lighting need 3 channels (RGB); set them to 0 for grayscale.
    """

    def __init__(
        self,
        brightness: float = 0.4,
        contrast: float = 0.4,
        saturation: float = 0.4,
        lighting: float = 0.1,
    ) -> None:
        for name, v in [("brightness", brightness), ("contrast", contrast),
                        ("saturation", saturation), ("lighting", lighting)]:  # fmt: skip
            if v < 0:
                raise ValueError(f"PhotometricDistortion: {name} must be >= 0, got {v}")
        self.brightness = brightness
        self.contrast = contrast
        self.saturation = saturation
        self.lighting = lighting

    def __call__(self, x: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = _rng(rng)
        xb, single = _float_batch(x, "PhotometricDistortion")
        N, C = xb.shape[:2]
        if C != 3 and (self.saturation or self.lighting):
            raise ValueError(
                f"PhotometricDistortion: saturation and lighting need 3 channels, got {C}; "
                "set saturation=0 and lighting=0 for grayscale images"
            )
        dt = xb.dtype

        def factors(strength: float) -> np.ndarray:
            f = rng.uniform(max(0.0, 1 - strength), 1 + strength, size=N)
            return f.astype(dt)[:, None, None, None]  # (N, 1, 1, 1)

        def gray(y: np.ndarray) -> np.ndarray:
            if C == 1:
                return y
            return np.einsum("nchw,c->nhw", y, _GRAY.astype(dt))[:, None]  # (N, 1, H, W)

        y = xb
        if self.brightness:
            y = np.clip(y * factors(self.brightness), 0, 1)
        if self.contrast:
            m = gray(y).mean(axis=(1, 2, 3), keepdims=True)  # (N, 1, 1, 1)
            f = factors(self.contrast)
            y = np.clip(m + f * (y - m), 0, 1)
        if self.saturation:
            g = gray(y)
            f = factors(self.saturation)
            y = np.clip(g + f * (y - g), 0, 1)
        if self.lighting:
            alpha = rng.normal(0.0, self.lighting, size=(N, 3)).astype(np.float32)
            rgb = (alpha * IMAGENET_EIGVAL) @ IMAGENET_EIGVEC.T  # (N, 3)
            y = np.clip(y + rgb.astype(dt)[:, :, None, None], 0, 1)
        y = y.astype(dt, copy=False)
        return y[0] if single else y
