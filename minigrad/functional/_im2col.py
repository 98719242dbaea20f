"""Output-size arithmetic and im2col/col2im: plain array code, no autograd.

Layout of the im2col matrix ("col"): rows are ``(c, i, j)`` (channel, kernel row, kernel
column), columns are ``(n, oh, ow)`` (image, output row, output column)::

    col[(c*KH + i)*KW + j, (n*OH + oh)*OW + ow] = x_padded[n, c, oh*sh + i, ow*sw + j]

Why this layout: with ``w2 = w.reshape(C_out, C*KH*KW)`` (a free view) all three products
of a convolution are single 2-D GEMMs on C-contiguous operands or their transposed views,
which BLAS/cuBLAS take without a copy:

    forward   y2  = w2   @ col      (C_out, N*OH*OW)
    backward  gw  = gy2  @ col.T    (C_out, C*KH*KW)
              gcol = w2.T @ gy2     (C*KH*KW, N*OH*OW)

With the channel-major activations of :mod:`~minigrad.functional._layout` (an
``(N, C, H, W)`` view of a ``(C, N, H, W)`` array) these columns are exactly the layout of
the activations: ``y2`` *is* the output, ``gy2`` is the incoming gradient as it is, and the
input's ``(C, N, H, W)`` array is read without a transposed copy.
The im2col copy itself is ``KH*KW`` strided slice assignments, each writing one contiguous
``(C, N, OH, OW)`` block of ``col``; col2im is the same loop with ``+=`` into a zeroed,
padded ``(C, N, Hp, Wp)`` buffer. No ``add.at``, no loop over images or pixels. Both work
on cache-sized chunks of channels on the host threads (:mod:`~minigrad.functional._threads`).
"""

from __future__ import annotations

import math
from typing import Any

from minigrad.backend import get_array_module
from minigrad.functional import _cuda
from minigrad.functional._threads import for_blocks


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """floor((size + 2 padding - kernel) / stride) + 1, as in PyTorch's conv2d."""
    return (size + 2 * padding - kernel) // stride + 1


def pool_output_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output size; with ceil_mode a last window that would start inside
    the right padding is dropped."""
    span = size + 2 * padding - kernel
    out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def pair(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``(v, v)`` for an int, the pair itself for a 2-sequence (no validation of values)."""
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def im2col(
    x: Any, KH: int, KW: int, stride: int | tuple[int, int], padding: int | tuple[int, int]
) -> Any:
    """Unfold every ``KH x KW`` window of ``x`` into one column of a matrix.

    Args:
        x: (N, C, H, W) NumPy or CuPy array.
        KH, KW: window size.
        stride, padding: int or (h, w) pair; padding adds zeros on both sides.

    Returns:
        col of shape (C*KH*KW, N*OH*OW), C-contiguous (see the module docstring for the
        order of rows and columns).
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    OH = conv_output_size(H, KH, sh, ph)
    OW = conv_output_size(W, KW, sw, pw)
    if _cuda.use_kernels(x):  # GPU kernel: one launch instead of KH*KW copies
        return _cuda.im2col(x, KH, KW, (sh, sw), (ph, pw), OH, OW)
    x_t = x.swapaxes(0, 1)  # (C, N, H, W) view: contiguous when x is channel-major
    col = xp.empty((C, KH, KW, N, OH, OW), dtype=x.dtype)

    def fill(cs: slice) -> None:  # channels cs: pad (in cache), then one copy per offset
        src = x_t[cs]
        if ph > 0 or pw > 0:
            src = xp.zeros((cs.stop - cs.start, N, H + 2 * ph, W + 2 * pw), dtype=x.dtype)
            src[:, :, ph : ph + H, pw : pw + W] = x_t[cs]
        for i in range(KH):
            for j in range(KW):
                rows = slice(i, i + sh * (OH - 1) + 1, sh)
                cols = slice(j, j + sw * (OW - 1) + 1, sw)
                col[cs, i, j] = src[:, :, rows, cols]

    for_blocks(fill, C, col.size, x)
    return col.reshape(C * KH * KW, N * OH * OW)


def col2im(
    col: Any,
    x_shape: tuple[int, int, int, int],
    KH: int,
    KW: int,
    stride: int | tuple[int, int],
    padding: int | tuple[int, int],
    out: Any = None,
) -> Any:
    """The adjoint of :func:`im2col`: add every column back onto the window it came from.

    Args:
        col: (C*KH*KW, N*OH*OW) array in :func:`im2col`'s layout.
        x_shape: (N, C, H, W) of the image.
        KH, KW, stride, padding: as given to :func:`im2col`.
        out: optional (C, N, H, W) array (a view is fine) to write the result into.

    Returns:
        (N, C, H, W) array stored channel-major (a view of a C-contiguous (C, N, H, W)
        array, see :mod:`~minigrad.functional._layout`); entries of padding are dropped.
    """
    xp = get_array_module(col)
    N, C, H, W = x_shape
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    OH = conv_output_size(H, KH, sh, ph)
    OW = conv_output_size(W, KW, sw, pw)
    gx = xp.empty((C, N, H, W), dtype=col.dtype) if out is None else out
    if _cuda.use_kernels(col):  # GPU kernel: one gather launch instead of KH*KW adds
        _cuda.col2im(col, x_shape, KH, KW, (sh, sw), (ph, pw), OH, OW, gx)
        return gx.swapaxes(0, 1)
    col6 = col.reshape(C, KH, KW, N, OH, OW)

    def add(cs: slice) -> None:  # channels cs: add every offset's block (in cache), crop
        gpad = xp.zeros((cs.stop - cs.start, N, H + 2 * ph, W + 2 * pw), dtype=col.dtype)
        for i in range(KH):
            for j in range(KW):
                rows = slice(i, i + sh * (OH - 1) + 1, sh)
                cols = slice(j, j + sw * (OW - 1) + 1, sw)
                gpad[:, :, rows, cols] += col6[cs, i, j]
        gx[cs] = gpad[:, :, ph : ph + H, pw : pw + W]

    for_blocks(add, C, col.size, col)
    return gx.swapaxes(0, 1)  # (N, C, H, W) view
