"""A convolution's output size and im2col/col2im: plain array code, no autograd.

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
padded ``(C, N, Hp, Wp)`` buffer. No ``add.at``, no loop over images or pixels. These are
the reference (a convolution's fast path calls them on a chunk of a few images, so the
copies stay in the cache); ``conv.im2col_cuda``/``conv.col2im_cuda`` are the same with one
CUDA kernel launch each, and the same signatures.
"""

from __future__ import annotations

from typing import Any

from minigrad.backend import get_array_module
from minigrad.functional._checks import pair


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """floor((size + 2 padding - kernel) / stride) + 1, as in PyTorch's conv2d."""
    return (size + 2 * padding - kernel) // stride + 1


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
    src = x.swapaxes(0, 1)  # (C, N, H, W) view: contiguous when x is channel-major
    if ph > 0 or pw > 0:
        src = xp.zeros((C, N, H + 2 * ph, W + 2 * pw), dtype=x.dtype)  # (C, N, Hp, Wp)
        src[:, :, ph : ph + H, pw : pw + W] = x.swapaxes(0, 1)
    col = xp.empty((C, KH, KW, N, OH, OW), dtype=x.dtype)
    for i in range(KH):
        for j in range(KW):
            rows = slice(i, i + sh * (OH - 1) + 1, sh)
            cols = slice(j, j + sw * (OW - 1) + 1, sw)
            col[:, i, j] = src[:, :, rows, cols]  # (C, N, OH, OW)
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
    col6 = col.reshape(C, KH, KW, N, OH, OW)
    gpad = xp.zeros((C, N, H + 2 * ph, W + 2 * pw), dtype=col.dtype)  # (C, N, Hp, Wp)
    for i in range(KH):
        for j in range(KW):
            rows = slice(i, i + sh * (OH - 1) + 1, sh)
            cols = slice(j, j + sw * (OW - 1) + 1, sw)
            gpad[:, :, rows, cols] += col6[:, i, j]
    gx = xp.empty((C, N, H, W), dtype=col.dtype) if out is None else out
    gx[...] = gpad[:, :, ph : ph + H, pw : pw + W]
    return gx.swapaxes(0, 1)  # (N, C, H, W) view
