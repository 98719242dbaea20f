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

The per-image layout ``(N, C*KH*KW, OH*OW)`` would make the forward product land directly
in NCHW, but then ``gw`` is a sum over images of N small products (a batch loop, or an
(N, C_out, C*KH*KW) temporary). Here the only transposes are of the input and the output
((N, C) <-> (C, N) axis swaps), which are ``KH*KW`` times smaller than ``col``.
The im2col copy itself is ``KH*KW`` strided slice assignments, each writing one contiguous
``(C, N, OH, OW)`` block of ``col``; col2im is the same loop with ``+=`` into a zeroed,
padded ``(C, N, Hp, Wp)`` buffer. No ``add.at``, no loop over images or pixels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from minigrad.backend import get_array_module, is_cupy_array

#: below this many col elements the copies run on the calling thread only
PARALLEL_MIN_SIZE = 1 << 18
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def host_threads() -> int:
    """Threads for the host copies of im2col/col2im: BLAS's thread limit when one is set
    (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``), else the CPU count."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


def _channel_blocks(C: int, size: int, a: Any) -> list[slice]:
    """Split channels 0..C into one block per host thread (one block on a GPU or when small).

    NumPy releases the GIL inside its copy and add loops, so blocks run in parallel; every
    block writes only its own channels, so no two threads touch the same element.
    """
    n = 1 if is_cupy_array(a) or size < PARALLEL_MIN_SIZE else min(host_threads(), C)
    bounds = [C * k // n for k in range(n + 1)]
    return [slice(lo, hi) for lo, hi in zip(bounds, bounds[1:])]


def _run(task: Callable[[slice], None], blocks: list[slice]) -> None:
    """``task(block)`` for every block, on the thread pool when there is more than one."""
    global _pool, _pool_size
    if len(blocks) == 1:
        task(blocks[0])
        return
    if _pool is None or _pool_size < len(blocks):
        _pool_size = len(blocks)
        _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="minigrad-im2col")
    for future in [_pool.submit(task, cs) for cs in blocks]:
        future.result()


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
    x_t = x.transpose(1, 0, 2, 3)  # (C, N, H, W) view
    padded = ph > 0 or pw > 0
    # (C, N, Hp, Wp) with zero borders (zeros: the pages are cleared as they are first used)
    xpad = xp.zeros((C, N, H + 2 * ph, W + 2 * pw), dtype=x.dtype) if padded else x_t
    col = xp.empty((C, KH, KW, N, OH, OW), dtype=x.dtype)

    def fill(cs: slice) -> None:  # channels cs: pad, then one strided copy per offset
        if padded:
            xpad[cs, :, ph : ph + H, pw : pw + W] = x_t[cs]
        for i in range(KH):
            for j in range(KW):
                rows = slice(i, i + sh * (OH - 1) + 1, sh)
                cols = slice(j, j + sw * (OW - 1) + 1, sw)
                col[cs, i, j] = xpad[cs, :, rows, cols]

    _run(fill, _channel_blocks(C, col.size, x))
    return col.reshape(C * KH * KW, N * OH * OW)


def col2im(
    col: Any,
    x_shape: tuple[int, int, int, int],
    KH: int,
    KW: int,
    stride: int | tuple[int, int],
    padding: int | tuple[int, int],
) -> Any:
    """The adjoint of :func:`im2col`: add every column back onto the window it came from.

    Args:
        col: (C*KH*KW, N*OH*OW) array in :func:`im2col`'s layout.
        x_shape: (N, C, H, W) of the image.
        KH, KW, stride, padding: as given to :func:`im2col`.

    Returns:
        (N, C, H, W) C-contiguous array; entries of padding are dropped.
    """
    xp = get_array_module(col)
    N, C, H, W = x_shape
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    OH = conv_output_size(H, KH, sh, ph)
    OW = conv_output_size(W, KW, sw, pw)
    col6 = col.reshape(C, KH, KW, N, OH, OW)
    gpad = xp.zeros((C, N, H + 2 * ph, W + 2 * pw), dtype=col.dtype)
    gx = xp.empty((N, C, H, W), dtype=col.dtype)

    def add(cs: slice) -> None:  # channels cs: add every offset's block, then crop
        for i in range(KH):
            for j in range(KW):
                rows = slice(i, i + sh * (OH - 1) + 1, sh)
                cols = slice(j, j + sw * (OW - 1) + 1, sw)
                gpad[cs, :, rows, cols] += col6[cs, i, j]
        gx[:, cs] = gpad[cs, :, ph : ph + H, pw : pw + W].transpose(1, 0, 2, 3)

    _run(add, _channel_blocks(C, col.size, col))
    return gx


class WindowGrid:
    """Every ``KH x KW`` pooling window of an (N, C, H, W) input as shifted flat views.

    The padded input is split by stride phase into ``sh*sw`` contiguous planes
    ``phases[a, b] = x_padded[:, :, a::sh, b::sw]``, each flattened over
    ``(N, C, Hq, Wq)``. Kernel offset ``(i, j)`` then reads phase ``(i % sh, j % sw)``
    shifted by ``(i // sh) * Wq + j // sw`` elements, and output ``(oh, ow)`` of image-channel
    ``nc`` sits at flat position ``(nc*Hq + oh)*Wq + ow`` of every view. So each kernel offset
    is ONE contiguous 1-D slice over all images, channels and windows: long, fast inner
    loops even on 8x8 or 4x4 maps, where strided 4-D slices spend their time in loop
    overhead. Grid positions with ``oh >= OH`` or ``ow >= OW`` compute garbage that
    :meth:`to_output` drops (and :meth:`from_output` fills with zeros).
    """

    def __init__(
        self,
        x_shape: tuple[int, ...],
        kernel: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int],
        out_size: tuple[int, int],
    ) -> None:
        N, C, H, W = x_shape
        (KH, KW), (sh, sw), (ph, pw) = kernel, stride, padding
        OH, OW = out_size
        self.x_shape, self.out_size = tuple(x_shape), out_size
        self.stride, self.padding = stride, padding
        # rows per phase: enough for every window and for every input row
        self.Hq = max(OH + (KH - 1) // sh, -(-(ph + H) // sh))
        self.Wq = max(OW + (KW - 1) // sw, -(-(pw + W) // sw))
        self.size = N * C * self.Hq * self.Wq
        #: (phase row, phase column, flat shift) per kernel offset, in row-major window order
        self.offsets = [
            (i % sh, j % sw, (i // sh) * self.Wq + j // sw) for i in range(KH) for j in range(KW)
        ]
        #: grid positions every view covers (all valid outputs lie below it)
        self.length = self.size - max(shift for _, _, shift in self.offsets)
        # the same offsets one axis at a time, for separable (row, then column) reductions
        #: (phase column, flat shift) of each kernel column j
        self.col_offsets = [(j % sw, j // sw) for j in range(KW)]
        #: (phase row, flat shift) of each kernel row i
        self.row_offsets = [(i % sh, (i // sh) * self.Wq) for i in range(KH)]
        #: positions a row reduction covers (every position a column shift can still read)
        self.row_length = self.size - (KW - 1) // sw

    def _phase_slices(self) -> list[tuple[int, int, slice, slice, slice, slice]]:
        """(a, b, input rows, input cols, phase rows, phase cols) of every non-empty phase."""
        (sh, sw), (ph, pw) = self.stride, self.padding
        H, W = self.x_shape[2], self.x_shape[3]
        out = []
        for a in range(sh):
            h0 = (a - ph) % sh  # first input row whose padded row is in phase a
            nh = len(range(h0, H, sh))
            for b in range(sw):
                w0 = (b - pw) % sw
                nw = len(range(w0, W, sw))
                if nh and nw:
                    r0, c0 = (h0 + ph) // sh, (w0 + pw) // sw
                    rows_x, cols_x = slice(h0, H, sh), slice(w0, W, sw)
                    out.append((a, b, rows_x, cols_x, slice(r0, r0 + nh), slice(c0, c0 + nw)))
        return out

    def _is_identity(self) -> bool:
        H, W = self.x_shape[2], self.x_shape[3]
        return self.stride == (1, 1) and self.padding == (0, 0) and (self.Hq, self.Wq) == (H, W)

    def split(self, x: Any, fill: float) -> Any:
        """x (N, C, H, W) -> phases (sh, sw, N*C*Hq*Wq), ``fill`` in the padding."""
        xp = get_array_module(x)
        N, C = self.x_shape[:2]
        (sh, sw), Hq, Wq = self.stride, self.Hq, self.Wq
        if self._is_identity():
            return x.reshape(1, 1, self.size)  # a view when x is contiguous
        # filling everything first is faster than filling only the border: its columns
        # are single elements at a stride, which NumPy writes one by one
        phases = xp.full((sh, sw, N, C, Hq, Wq), fill, dtype=x.dtype)
        for a, b, rows_x, cols_x, rows_q, cols_q in self._phase_slices():
            phases[a, b, :, :, rows_q, cols_q] = x[:, :, rows_x, cols_x]
        return phases.reshape(sh, sw, self.size)

    def merge(self, gphases: Any) -> Any:
        """The adjoint of :meth:`split`: phases -> (N, C, H, W), padding dropped."""
        xp = get_array_module(gphases)
        N, C = self.x_shape[:2]
        (sh, sw), Hq, Wq = self.stride, self.Hq, self.Wq
        if self._is_identity():
            return gphases.reshape(self.x_shape)
        g6 = gphases.reshape(sh, sw, N, C, Hq, Wq)
        gx = xp.empty(self.x_shape, dtype=gphases.dtype)
        for a, b, rows_x, cols_x, rows_q, cols_q in self._phase_slices():
            gx[:, :, rows_x, cols_x] = g6[a, b, :, :, rows_q, cols_q]  # every pixel once
        return gx

    def to_output(self, grid: Any) -> Any:
        """Flat grid (N*C*Hq*Wq,) -> C-contiguous (N, C, OH, OW)."""
        xp = get_array_module(grid)
        N, C = self.x_shape[:2]
        OH, OW = self.out_size
        y = grid.reshape(N, C, self.Hq, self.Wq)[:, :, :OH, :OW]
        return xp.ascontiguousarray(y)

    def from_output(self, y: Any) -> Any:
        """(N, C, OH, OW) -> flat grid with zeros at the positions that are no output."""
        xp = get_array_module(y)
        N, C = self.x_shape[:2]
        OH, OW = self.out_size
        if (self.Hq, self.Wq) == (OH, OW):
            return y.reshape(self.size)
        grid = xp.zeros((N, C, self.Hq, self.Wq), dtype=y.dtype)
        grid[:, :, :OH, :OW] = y
        return grid.reshape(self.size)
