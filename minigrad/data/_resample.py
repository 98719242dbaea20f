"""Resizing arrays the way Pillow resizes images: separable filters as weight matrices.

Pillow resamples each axis with a filter whose support widens by the downscaling factor
(antialiasing); an axis of ``n_in`` pixels becomes ``n_out`` pixels through an
(n_out, n_in) matrix of normalised filter weights. Building that matrix per sample, with a
per-sample crop box and filter, gives crop + resize of a whole batch in two batched matmuls:
``y = Wy @ x @ Wx.T``. Plain array code, no autograd.
"""

from __future__ import annotations

import numpy as np

# Filter ids; Pillow's names in brackets.
NEAREST, BILINEAR, BICUBIC, AREA = 0, 1, 2, 3
FILTERS = {"nearest": NEAREST, "bilinear": BILINEAR, "bicubic": BICUBIC, "area": AREA, "box": AREA}
_SUPPORT = np.array([0.0, 1.0, 2.0, 0.5])  # half-width of each filter at scale 1


def filter_id(name: str, where: str) -> int:
    """The id of an interpolation name ("nearest", "bilinear", "bicubic", "area"/"box")."""
    if name not in FILTERS:
        raise ValueError(
            f"{where}: unknown interpolation {name!r}; expected one of {sorted(FILTERS)}"
        )
    return FILTERS[name]


def _filter_values(fid: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Filter ``fid`` (broadcast against ``t``) evaluated at distances ``t``."""
    a = np.abs(t)
    bilinear = np.where(a < 1.0, 1.0 - a, 0.0)
    # Keys' cubic with a = -0.5, as in Pillow
    cubic = np.where(
        a < 1.0,
        (1.5 * a - 2.5) * a * a + 1.0,
        np.where(a < 2.0, ((-0.5 * a + 2.5) * a - 4.0) * a + 2.0, 0.0),
    )
    box = np.where((t >= -0.5) & (t < 0.5), 1.0, 0.0)
    return np.where(fid == BILINEAR, bilinear, np.where(fid == BICUBIC, cubic, box))


def weight_matrices(
    n_in: int, n_out: int, start: np.ndarray, stop: np.ndarray, fid: np.ndarray
) -> np.ndarray:
    """Per-sample resampling matrices (N, n_out, n_in), float64.

    Args:
        n_in: pixels along the axis in the source.
        n_out: pixels along the axis in the result.
        start, stop: (N,) crop box along the axis in source pixel coordinates (floats).
        fid: (N,) filter id of each sample.
    """
    start = np.asarray(start, dtype=np.float64)[:, None, None]  # (N, 1, 1)
    stop = np.asarray(stop, dtype=np.float64)[:, None, None]
    fid = np.asarray(fid)[:, None, None]
    scale = (stop - start) / n_out  # source pixels per result pixel
    fscale = np.maximum(scale, 1.0)  # the filter widens when downscaling
    support = _SUPPORT[fid] * fscale
    center = start + (np.arange(n_out)[None, :, None] + 0.5) * scale  # (N, n_out, 1)
    j = np.arange(n_in)[None, None, :]  # (1, 1, n_in)
    lo = np.maximum(np.floor(center - support + 0.5), 0)
    hi = np.minimum(np.floor(center + support + 0.5), n_in)
    w = _filter_values(fid, (j - center + 0.5) / fscale) * ((j >= lo) & (j < hi))
    total = w.sum(axis=2, keepdims=True)
    w = w / np.where(total == 0, 1.0, total)
    # nearest: Pillow takes the source pixel under the centre of each result pixel
    near = np.clip(np.floor(center), 0, n_in - 1) == j
    return np.where(fid == NEAREST, near.astype(np.float64), w)  # (N, n_out, n_in)


def resize_batch(
    x: np.ndarray,
    out_h: int,
    out_w: int,
    boxes: np.ndarray | None = None,
    fid: np.ndarray | int = BILINEAR,
) -> np.ndarray:
    """Crop ``boxes`` out of each image of ``x`` and resize them to (out_h, out_w).

    Args:
        x: (N, C, H, W) float array.
        out_h, out_w: result size.
        boxes: (N, 4) ``(left, top, right, bottom)`` per sample; None = the whole image.
        fid: filter id, one for all or (N,) per sample.

    Returns:
        (N, C, out_h, out_w) array of ``x``'s float dtype.
    """
    N, _, H, W = x.shape
    if boxes is None:
        boxes = np.tile(np.array([0.0, 0.0, W, H]), (N, 1))
    boxes = np.asarray(boxes, dtype=np.float64)
    fid = np.broadcast_to(np.asarray(fid), (N,))
    wy = weight_matrices(H, out_h, boxes[:, 1], boxes[:, 3], fid).astype(x.dtype)  # (N, OH, H)
    wx = weight_matrices(W, out_w, boxes[:, 0], boxes[:, 2], fid).astype(x.dtype)  # (N, OW, W)
    t = np.matmul(wy[:, None], x)  # (N, C, OH, W)
    return np.matmul(t, wx[:, None].transpose(0, 1, 3, 2))  # (N, C, OH, OW)
