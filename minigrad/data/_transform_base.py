"""What every transform shares: the base class and the argument/array helpers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from minigrad import random
from minigrad.data import _resample
from minigrad.functional import _checks


def _is_pil(x: Any) -> bool:
    return hasattr(x, "getbands") and hasattr(x, "resize")


def _pil_filter(fid: int) -> Any:
    from PIL import Image  # noqa: PLC0415 - Pillow is optional (the 'train' extra)

    return {
        _resample.NEAREST: Image.Resampling.NEAREST,
        _resample.BILINEAR: Image.Resampling.BILINEAR,
        _resample.BICUBIC: Image.Resampling.BICUBIC,
        _resample.AREA: Image.Resampling.BOX,
    }[fid]


def _size_hw(size: int | Sequence[int], where: str) -> tuple[int, int]:
    """(h, w) from an int or a pair of ints, both positive (the ops' checks, in
    :mod:`minigrad.functional._checks`, with the transform's name in the message).

    Raises:
        TypeError: not an int or a pair of ints. ValueError: a size below 1.
    """
    return _checks.positive(where, "size", _checks.int_pair(where, "size", size))


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
    return random.generator("cpu") if rng is None else rng


class Transform:
    """Base class: ``__call__(x, rng=None)``; ``repr`` shows the arguments."""

    def __call__(self, x: Any, rng: np.random.Generator | None = None) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"
