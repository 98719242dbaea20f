"""Decoding one image file for a model: clear errors, and high-bit-depth images scaled right.

    image = load_image("scan.png", channels=1)  # Pillow "L"/"RGB", or float32 (C, H, W)

* :func:`open_image` decodes the whole file now (not lazily) and turns every way a file can
  fail to be an image (not an image, empty, truncated, a decompression bomb) into a
  ``ValueError`` that names the file, so a caller can report it on one line and go on.
* :func:`model_image` converts a decoded image to what the model's transforms take. 8-bit
  images become Pillow ``"L"``/``"RGB"`` images as before; 16-bit and 32-bit integer images
  (modes ``I;16``, ``I``: a 16-bit PNG) are divided by 65535 and float images (mode ``F``)
  kept as they are when within [0, 1] (else read on the 8-bit scale, / 255), giving a float32
  (C, H, W) array in [0, 1] instead of Pillow's ``convert("L")``, which clips every value
  over 255 to white.
"""

from __future__ import annotations

import contextlib
import os
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["HIGH_DEPTH_MODES", "load_image", "model_image", "open_image"]

HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


@contextlib.contextmanager
def bomb_checks(name: str | Path) -> Iterator[None]:
    """Pillow's decompression-bomb checks as a ``ValueError`` naming ``name``, around
    opening an image and around resizing or cropping it (Pillow 12.3 checks the size of a
    crop too): its ``DecompressionBombWarning`` (over ``Image.MAX_IMAGE_PIXELS``) counts
    as an error, as its ``DecompressionBombError`` (over twice that) does."""
    from PIL import Image  # noqa: PLC0415 - Pillow is optional (the 'train' extra)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(
            f"{name}: refused as a possible decompression bomb ({e}); raise "
            "PIL.Image.MAX_IMAGE_PIXELS if you trust it"
        ) from None


def open_image(path: str | Path) -> Any:
    """Open and fully decode an image file with Pillow.

    Raises:
        ValueError: naming the file when it is empty, not an image Pillow can read,
            truncated or corrupt, or larger than Pillow's ``Image.MAX_IMAGE_PIXELS`` (a
            decompression bomb; Pillow's warning counts as an error here).
        FileNotFoundError, PermissionError, IsADirectoryError: as ``open`` raises them.
    """
    from PIL import Image  # noqa: PLC0415 - Pillow is optional (the 'train' extra)

    path = Path(path)
    if os.path.getsize(path) == 0:  # raises FileNotFoundError for a missing file
        raise ValueError(f"{path}: the file is empty (0 bytes), not an image")
    try:
        with bomb_checks(path):
            with Image.open(path) as f:
                f.load()  # decode now: a truncated file fails here, not later
                return f.copy()  # in memory, the file closed
    except Image.UnidentifiedImageError:
        raise ValueError(f"{path}: not an image file Pillow can read") from None
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
        raise ValueError(f"{path}: truncated or corrupt image ({type(e).__name__}: {e})") from None


def model_image(image: Any, channels: int, name: str = "image") -> Any:
    """A decoded Pillow image as the transforms take it, with ``channels`` (1 or 3).

    Returns:
        A Pillow ``"L"`` (channels 1) or ``"RGB"`` image for 8-bit images; a float32
        (channels, H, W) array in [0, 1] for the modes in :data:`HIGH_DEPTH_MODES`.

    Raises:
        ValueError: a float image with NaN/inf pixels (``name`` says which).
    """
    if image.mode not in HIGH_DEPTH_MODES:
        return image.convert("L" if channels == 1 else "RGB")
    a = np.asarray(image).astype(np.float32)  # (H, W)
    if image.mode == "F":
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: float image with NaN/inf pixels")
        if a.size and (a.min() < 0 or a.max() > 1):  # not [0, 1]: on the 8-bit scale
            a = a * np.float32(1 / 255)
    else:  # 16-bit samples (a 16-bit PNG decodes as I;16 or I)
        a = a * np.float32(1 / 65535)
    a = np.clip(a, 0.0, 1.0)[None]  # (1, H, W)
    return np.repeat(a, channels, axis=0) if channels != 1 else a


def load_image(path: str | Path, channels: int) -> Any:
    """:func:`open_image` then :func:`model_image` (errors name ``path``)."""
    return model_image(open_image(path), channels, str(path))
