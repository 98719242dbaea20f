"""Image transforms: batch-vectorized on arrays, per image on Pillow images.

Every transform is called as ``t(x, rng=None)`` and draws its randomness from ``rng`` (a
``numpy.random.Generator``; None = ``minigrad.backend.generator("cpu")``), so the loader can
make augmentation a pure function of (seed, epoch, batch).

Arrays are one image ``(C, H, W)`` or a batch ``(N, C, H, W)``; a batch is transformed with a
few array operations, each image with its own random draw (no Python loop over images).
Pillow images (Imagenette's JPEGs) are handled by the geometric transforms and by
:class:`ToFloat`, which turns them into ``(C, H, W)`` float32 arrays in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from minigrad import backend
from minigrad.data import _resample

__all__ = [
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


def _is_pil(x: Any) -> bool:
    return hasattr(x, "getbands") and hasattr(x, "resize")


def _pil_filter(fid: int) -> Any:
    from PIL import Image

    return {
        _resample.NEAREST: Image.Resampling.NEAREST,
        _resample.BILINEAR: Image.Resampling.BILINEAR,
        _resample.BICUBIC: Image.Resampling.BICUBIC,
        _resample.AREA: Image.Resampling.BOX,
    }[fid]


def _pair(size: int | Sequence[int], where: str) -> tuple[int, int]:
    """(h, w) from an int or a pair, checked positive."""
    if isinstance(size, (int, np.integer)):
        hw = (int(size), int(size))
    elif isinstance(size, Sequence) and len(size) == 2:
        hw = (int(size[0]), int(size[1]))
    else:
        raise ValueError(f"{where}: size must be an int or (h, w), got {size!r}")
    if min(hw) <= 0:
        raise ValueError(f"{where}: size must be positive, got {size!r}")
    return hw


def _as_batch(x: Any, where: str) -> tuple[np.ndarray, bool]:
    """``x`` as (N, C, H, W) and whether it was one (C, H, W) image."""
    if _is_pil(x):
        raise TypeError(f"{where}: expects an array (C, H, W) or (N, C, H, W); apply ToFloat first")
    x = np.asarray(x)
    if x.ndim == 3:
        return x[None], True
    if x.ndim == 4:
        return x, False
    raise ValueError(f"{where}: expects (C, H, W) or (N, C, H, W), got shape {x.shape}")


def _float_batch(x: Any, where: str) -> tuple[np.ndarray, bool]:
    xb, single = _as_batch(x, where)
    if not np.issubdtype(xb.dtype, np.floating):
        raise TypeError(f"{where}: expects float images (apply ToFloat first), got {xb.dtype}")
    return xb, single


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return backend.generator("cpu") if rng is None else rng


class Transform:
    """Base class: ``__call__(x, rng=None)``; ``repr`` shows the arguments."""

    def __call__(self, x: Any, rng: np.random.Generator | None = None) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


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
        self._hw = _pair(size, "RandomCrop")
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
            from PIL import Image

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
    return _pair(size, where)


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
        self._hw = _pair(size, "CenterCrop")

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
        self._hw = _pair(size, "RandomResizedCrop")
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
