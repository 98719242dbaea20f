"""2-D convolution: im2col + one matrix product, with a hand-written backward."""

from __future__ import annotations

import threading
import weakref
from typing import Any

from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.functional import _checks, _cuda
from minigrad.functional._im2col import col2im, conv_output_size, im2col
from minigrad.functional._layout import channel_major, from_channel_major
from minigrad.functional._threads import for_blocks, gemm_threads
from minigrad.functional._winograd import (
    TileGrid,
    input_transform,
    input_transform_adjoint,
    output_transform,
    output_transform_adjoint,
    weight_transform,
    weight_transform_adjoint,
)
from minigrad.functional.reduce import sum
from minigrad.tensor import Tensor

__all__ = ["conv2d"]


#: im2col elements per chunk of images (a few MiB: the chunk's col stays in the cache)
CONV_CHUNK_ELEMENTS = 1 << 20
#: Winograd's transformed input (V) elements per chunk of images: larger than an im2col
#: chunk, because the weight gradient's t*t products (16 or 36) run over the chunk's tiles
#: (their inner dimension) and are summed over chunks
WINOGRAD_CHUNK_ELEMENTS = 1 << 21
#: bytes of Winograd's V that forwards may keep for their backwards, all ops of the process
#: together (0: every backward transforms its input again). The weight gradient needs V;
#: kept, backward skips the input transform. GoogLeNet's V: 224 px batch 8 41 MiB, batch
#: 32 165 MiB; CIFAR size width 1 batch 32 114 MiB, width 0.25 batch 64 57 MiB, all kept;
#: width 1 batch 128 457 MiB, of which the budget keeps the first layers' (that step's
#: peak stays under its 4 GiB target)
WINOGRAD_KEEP_BYTES = 192 << 20


class _KeptTiles(dict):
    """A Winograd forward's V per chunk of images, ``(start, stop) -> V``, for its backward;
    gives its bytes back to :data:`WINOGRAD_KEEP_BYTES` when dropped (after backward, with
    the graph's saved arrays)."""


_kept_bytes = [0]  # reserved by the live _KeptTiles
_kept_lock = threading.Lock()


def _keep_tiles(nbytes: int) -> _KeptTiles | None:
    """A holder for ``nbytes`` of V, or None when the budget has no room left."""
    with _kept_lock:
        if _kept_bytes[0] + nbytes > WINOGRAD_KEEP_BYTES:
            return None
        _kept_bytes[0] += nbytes
    holder = _KeptTiles()
    weakref.finalize(holder, _give_back, nbytes)
    return holder


def _give_back(nbytes: int) -> None:
    with _kept_lock:
        _kept_bytes[0] -= nbytes


def winograd_kept_bytes() -> int:
    """Bytes of Winograd's V kept by live forwards for their backwards (for tests and
    benchmarks)."""
    return _kept_bytes[0]


class Conv2d(Function):
    """y2 = w2 @ col + b; gw = gy2 @ col^T, gx = col2im(w2^T @ gy2), gb = row sums of gy2.

    Shapes: x (N, C, H, W), w (C_out, C, KH, KW), b (C_out,) -> y (N, C_out, OH, OW), with
    ``w2 = w`` as (C_out, C*KH*KW), ``col = im2col(x)`` (C*KH*KW, N*OH*OW) and
    ``y2 = y`` as (C_out, N*OH*OW) (the channel-major layout, see
    :mod:`~minigrad.functional._layout`: ``y2`` *is* the output's memory).

    ``forward``/``backward`` are the reference. The fast paths run the same products on
    chunks of a few images (:mod:`~minigrad.functional._threads`): im2col of the chunk,
    then its products, while its ``col`` is still in the cache; chunks run on the host
    threads when BLAS runs one thread per product. The full ``col`` never exists, backward
    makes each chunk's again from the input instead of keeping it, and a 1x1 convolution
    with stride 1 and no padding uses the input's (C, N*H*W) rows in place of ``col``.
    ``forward_cuda`` is the same code with im2col and col2im as one CUDA kernel each.
    On the chunked path a 3x3 convolution with stride 1 and padding 1 takes Winograd's
    F(4x4, 3x3) or F(2x2, 3x3) instead, and a 5x5 one with padding 2 F(2x2, 5x5), where
    :func:`winograd_tile` says it pays (:mod:`~minigrad.functional._winograd`): the same
    gradients from 4x, 2.25x or 2.8x fewer multiply-adds, ``gx`` and ``gw`` the adjoints
    of its three linear stages; forward keeps its transformed input V for the weight
    gradient while :data:`WINOGRAD_KEEP_BYTES` has room, else backward transforms the input
    again.

    Paths (all in this module unless named):
        reference: ``forward``/``backward``, on ``im2col``/``col2im`` of ``_im2col.py``.
        chunked: ``_forward_in_chunks``/``_backward_in_chunks`` with that im2col/col2im,
            or (``winograd_tile``) ``_forward_winograd``/``_backward_winograd`` on the
            transforms of ``_winograd.py``; ``_threads.for_blocks`` splits the images
            into chunks (``gemm_threads``).
        cuda: the same two methods with ``im2col_cuda``/``col2im_cuda``, the launchers of
            the kernels ``im2col``/``col2im`` in ``CUDA_SOURCE`` (bottom of this module).
    """

    #: the Winograd tile the chunked forward took, 2 or 4 (set there; 0: im2col, and on
    #: the other paths); the kernel side is the weight's
    winograd = 0

    def __init__(self, stride: tuple[int, int], padding: tuple[int, int]) -> None:
        self.stride = stride
        self.padding = padding

    # ------------------------------------------------------------ reference
    def forward(self, x: Any, w: Any, b: Any = None) -> Any:
        N = x.shape[0]
        C_out, _, KH, KW = w.shape
        OH = conv_output_size(x.shape[2], KH, self.stride[0], self.padding[0])
        OW = conv_output_size(x.shape[3], KW, self.stride[1], self.padding[1])
        col = im2col(x, KH, KW, self.stride, self.padding)  # (C*KH*KW, N*OH*OW)
        y2 = w.reshape(C_out, -1) @ col  # (C_out, N*OH*OW)
        if b is not None:
            y2 += b[:, None]
        self.x_shape, self.w, self.col = x.shape, w, col
        return y2.reshape(C_out, N, OH, OW).swapaxes(0, 1)  # (N, C_out, OH, OW)

    def backward(self, gy: Any) -> tuple[Any, ...]:
        C_out, _, KH, KW = self.w.shape
        gy2 = gy.swapaxes(0, 1).reshape(C_out, -1)  # (C_out, N*OH*OW)
        gw = (gy2 @ self.col.T).reshape(self.w.shape)  # (C_out, C, KH, KW)
        gcol = self.w.reshape(C_out, -1).T @ gy2  # (C*KH*KW, N*OH*OW)
        gx = col2im(gcol, self.x_shape, KH, KW, self.stride, self.padding)  # (N, C, H, W)
        gb = gy2.sum(axis=1)  # (C_out,)
        return self._grads_out(gx, gw, gb)

    def backward_graph(self, gy: Tensor) -> tuple[Any, ...]:
        """The same gradients as ops: gx = :class:`Conv2dGradInput`, gw =
        :class:`Conv2dGradWeight` (whose own backwards are conv2d again), gb = sum of gy."""
        x, w = self.inputs[:2]
        need = self.needs_input_grad
        gx = Conv2dGradInput(self.stride, self.padding, x.shape).apply(gy, w) if need[0] else None
        gw = Conv2dGradWeight(self.stride, self.padding, w.shape).apply(x, gy) if need[1] else None
        if len(need) == 2:
            return gx, gw
        return gx, gw, (sum(gy, (0, 2, 3)) if need[2] else None)

    def _wanted(self) -> tuple[bool, bool, bool]:
        """Which of gx, gw, gb a backward computes (gb: only for a convolution with bias)."""
        need = self.needs_input_grad
        return need[0], need[1], len(need) == 3 and need[2]

    def _grads_out(self, gx: Any, gw: Any, gb: Any) -> tuple[Any, ...]:
        """What a backward returns: (gx, gw, gb), or (gx, gw) without a bias."""
        return (gx, gw, gb) if len(self.needs_input_grad) == 3 else (gx, gw)

    # ------------------------------------------------------------ fast paths
    def forward_chunked(self, x: Any, w: Any, b: Any = None) -> Any:
        self.winograd = winograd_tile(x.shape, w.shape, self.stride, self.padding)
        if self.winograd:
            return self._forward_winograd(x, w, b)
        return self._forward_in_chunks(x, w, b, im2col)

    def backward_chunked(self, gy: Any) -> tuple[Any, ...]:
        if self.winograd:
            return self._backward_winograd(gy)
        return self._backward_in_chunks(gy, im2col, col2im)

    def forward_cuda(self, x: Any, w: Any, b: Any = None) -> Any:
        return self._forward_in_chunks(x, w, b, im2col_cuda)

    def backward_cuda(self, gy: Any) -> tuple[Any, ...]:
        return self._backward_in_chunks(gy, im2col_cuda, col2im_cuda)

    def _forward_in_chunks(self, x: Any, w: Any, b: Any, unfold: Any) -> Any:
        xp = get_array_module(x)
        N, C, H, W = x.shape
        C_out, _, KH, KW = w.shape
        (sh, sw), (ph, pw) = self.stride, self.padding
        OH = conv_output_size(H, KH, sh, ph)
        OW = conv_output_size(W, KW, sw, pw)
        L = OH * OW  # columns per image
        self.x_shape, self.w_shape = x.shape, w.shape
        w2 = w.reshape(C_out, C * KH * KW)
        if self.needs_input_grad[0]:
            self.w2 = w2
        self.pointwise = KH == KW == sh == sw == 1 and ph == pw == 0
        x2 = channel_major(x).reshape(C, N * L) if self.pointwise else None  # (C, N*H*W)
        if self.needs_input_grad[1]:  # gw needs x (the 1x1 case: its rows, a view)
            self.x = x2 if self.pointwise else x
        y2 = xp.empty((C_out, N * L), dtype=x.dtype)  # (C_out, N*OH*OW)

        def chunk(ns: slice) -> None:  # images ns: their columns of col and of y2
            cols = slice(ns.start * L, ns.stop * L)
            col = (
                x2[:, cols] if self.pointwise else unfold(x[ns], KH, KW, self.stride, self.padding)
            )
            xp.matmul(w2, col, out=y2[:, cols])
            if b is not None:
                y2[:, cols] += b.reshape(C_out, 1)

        for_blocks(chunk, N, N * C * KH * KW * L, x, CONV_CHUNK_ELEMENTS, gemm_threads())
        return from_channel_major(y2.reshape(C_out, N, OH, OW))  # (N, C_out, OH, OW) view

    def _backward_in_chunks(self, gy: Any, unfold: Any, fold: Any) -> tuple[Any, ...]:
        xp = get_array_module(gy)
        N, C, H, W = self.x_shape
        C_out, _, KH, KW = self.w_shape
        need_x, need_w, need_b = self._wanted()
        gy2 = channel_major(gy).reshape(C_out, -1)  # (C_out, N*OH*OW): a view, usually
        L = gy.shape[2] * gy.shape[3]  # columns per image
        gxc = xp.empty((C, N, H, W), dtype=gy.dtype) if need_x else None  # channel-major gx

        def chunk(ns: slice) -> tuple[Any, Any]:  # images ns -> (their gw, their gb)
            cols = slice(ns.start * L, ns.stop * L)
            g = gy2[:, cols]  # (C_out, n*OH*OW)
            gw = gb = None
            if self.pointwise:
                if need_w:
                    gw = g @ self.x[:, cols].T  # (C_out, C)
                if need_x:
                    xp.matmul(self.w2.T, g, out=gxc.reshape(C, N * H * W)[:, cols])
            else:
                col = None
                if need_w:
                    col = unfold(self.x[ns], KH, KW, self.stride, self.padding)
                    gw = g @ col.T  # (C_out, C*KH*KW)
                if need_x:  # gcol has col's shape: into col's buffer when there is one
                    gcol = self.w2.T @ g if col is None else xp.matmul(self.w2.T, g, out=col)
                    shape = (ns.stop - ns.start, C, H, W)
                    fold(gcol, shape, KH, KW, self.stride, self.padding, out=gxc[:, ns])
            if need_b:
                gb = g.sum(axis=1)  # (C_out,)
            return gw, gb

        K = C * KH * KW
        sums = for_blocks(chunk, N, N * K * L, gy, CONV_CHUNK_ELEMENTS, gemm_threads())
        gw, gb = sums or (xp.zeros((C_out, K), gy.dtype), xp.zeros(C_out, gy.dtype))  # N = 0
        gx = from_channel_major(gxc) if need_x else None
        gw = gw.reshape(self.w_shape) if need_w else None
        return self._grads_out(gx, gw, gb)

    def _forward_winograd(self, x: Any, w: Any, b: Any) -> Any:
        """y = output_transform(U @ input_transform(x)) per chunk of images, U = the
        transformed w (:mod:`~minigrad.functional._winograd`)."""
        xp = get_array_module(x)
        N, C, H, W = x.shape
        C_out = w.shape[0]
        grid = TileGrid(H, W, self.winograd, w.shape[-1])
        U = weight_transform(w, grid.f)  # (t*t, C_out, C)
        xc = x.swapaxes(0, 1)  # (C, N, H, W): a view, contiguous when x is channel-major
        y4 = xp.empty((C_out, N, H, W), dtype=x.dtype)  # channel-major y

        work = N * grid.t**2 * C * grid.plane  # elements of V
        # gw needs V: keep each chunk's for backward while the budget has room
        kept = _keep_tiles(work * x.dtype.itemsize) if self.needs_input_grad[1] else None

        def chunk(ns: slice) -> None:  # images ns: their tiles, products and outputs
            V = input_transform(xc[:, ns], grid)  # (t*t, C, n*plane)
            if kept is not None:
                kept[ns.start, ns.stop] = V
            output_transform(xp.matmul(U, V), grid, y4[:, ns])
            if b is not None:
                y4[:, ns] += b.reshape(C_out, 1, 1, 1)

        for_blocks(chunk, N, work, x, WINOGRAD_CHUNK_ELEMENTS, gemm_threads())
        self.kept = kept
        self.x_shape, self.w_shape, self.grid = x.shape, w.shape, grid
        if self.needs_input_grad[0]:  # gx needs U, gw needs x
            self.U = U
        if self.needs_input_grad[1]:
            self.x = x
        return from_channel_major(y4)  # (N, C_out, H, W) view

    def _backward_winograd(self, gy: Any) -> tuple[Any, ...]:
        """gM = output_transform_adjoint(gy); gw = weight_transform_adjoint(sum of
        gM @ V^T); gx = input_transform_adjoint(U^T @ gM); per chunk of images (V: the
        one forward kept, else ``input_transform`` of the input again)."""
        xp = get_array_module(gy)
        N, C, H, W = self.x_shape
        C_out = self.w_shape[0]
        need_x, need_w, need_b = self._wanted()
        grid = self.grid
        UT = self.U.transpose(0, 2, 1) if need_x else None  # (t*t, C, C_out)
        gyc = gy.swapaxes(0, 1)  # (C_out, N, H, W)
        gxc = xp.empty((C, N, H, W), dtype=gy.dtype) if need_x else None  # channel-major gx

        def chunk(ns: slice) -> tuple[Any, Any]:  # images ns -> (their gU, their gb)
            g = gyc[:, ns]  # (C_out, n, H, W)
            gM = output_transform_adjoint(g, grid)  # (t*t, C_out, n*plane)
            gU = gb = None
            V = None
            if need_w:  # V as forward made it (taken: gV overwrites it), else made again
                V = self.kept.pop((ns.start, ns.stop), None) if self.kept is not None else None
                if V is None:
                    V = input_transform(self.x.swapaxes(0, 1)[:, ns], grid)  # (t*t, C, n*plane)
                gU = xp.matmul(gM, V.transpose(0, 2, 1))  # (t*t, C_out, C)
            if need_x:  # gV has V's shape: into V's buffer when there is one
                gV = xp.matmul(UT, gM) if V is None else xp.matmul(UT, gM, out=V)
                input_transform_adjoint(gV, grid, gxc[:, ns])
            if need_b:
                gb = g.sum(axis=(1, 2, 3))  # (C_out,)
            return gU, gb

        work = N * grid.t**2 * C * grid.plane  # elements of V
        sums = for_blocks(chunk, N, work, gy, WINOGRAD_CHUNK_ELEMENTS, gemm_threads())
        zeros = (xp.zeros((grid.t**2, C_out, C), gy.dtype), xp.zeros(C_out, gy.dtype))
        gU, gb = sums or zeros  # N = 0
        gx = from_channel_major(gxc) if need_x else None
        gw = weight_transform_adjoint(gU, grid.f) if need_w else None
        return self._grads_out(gx, gw, gb)


#: Winograd on the chunked path where it pays (False: im2col everywhere;
#: ``benchmarks/ab_winograd.py`` switches it to compare)
WINOGRAD = True
#: None: :func:`winograd_tile` picks the tile by the thresholds below; 2 or 4: that tile
#: wherever Winograd can run and the map and pixel thresholds allow (``ab_winograd.py``
#: and the tests force each tile this way)
WINOGRAD_TILE: int | None = None
#: where each tile pays, measured per layer by ``benchmarks/ab_winograd.py --all`` (2 cores,
#: forward + backward; GoogLeNet at 224 px batch 8, CIFAR size batch 32 at width 1 and
#: batch 64 at width 0.25). F(4x4): 1.05-1.5x faster than F(2x2) and 1.15-1.9x faster
#: than im2col on maps that 4 divides (56, 32, 28, 16, 8 px) from 24 channels on (since
#: forward keeps V, backward is cheaper: at width 0.25, 24 -> 32 @ 32 px 28.9 ms against
#: im2col's 43.9, 24 -> 52 and 28 -> 56 @ 16 px 1.4x; with 16 still slower); on 14 px maps
#: its 4x4 tile grid covers 16 x 16 (31 % padding) and F(2x2) is faster (1.1-1.25x over
#: im2col from 64 channels on; with fewer it is even or slower, the transforms outweigh the
#: products saved). On 7 px maps both lose to im2col (their grids are mostly padding), as
#: they do with 16 channels on 32 px maps. A layer needs enough pixels a channel for
#: its products to be of a useful size (1568 = batch 8 at 14 px, the smallest measured win)
WINOGRAD_MIN_MAP = 8
WINOGRAD_MIN_PIXELS = 1568
WINOGRAD_F2_MIN_CHANNELS = 64
WINOGRAD_F4_MIN_CHANNELS = 24
#: F(4x4) only where its tile grid's area is at most this times the map's
WINOGRAD_F4_MAX_PADDING = 1.15
#: F(2x2, 5x5) for the 5x5 convolutions (stride 1, padding 2, the Inception blocks' "5x5"
#: column) from this many channels (the fewer of in and out), under the same map and pixel
#: thresholds. Measured per layer by ``ab_winograd.py --kernel 5 --all`` (forward +
#: backward, 2 cores): GoogLeNet's 5x5 layers at 224 px batch 8 55.0 ms by im2col, 45.6 by
#: this rule (32 -> 96 @ 28 px 21.9 -> 18.3 ms); at CIFAR size batch 32 273.5 -> 237.3 ms;
#: with the 4-12 channels of width 0.25 even or slower (8 -> 24 @ 32 px 32.5 -> 37.9 ms):
#: the 36 products' inner dimension is C, too small for BLAS to pay
WINOGRAD_5X5_MIN_CHANNELS = 16


def winograd_tile(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], stride: Any, padding: Any
) -> int:
    """The tile the chunked path takes for this convolution: 4 (Winograd's F(4x4, 3x3)),
    2 (F(2x2, 3x3), or F(2x2, 5x5) for a 5x5 kernel) or 0 (im2col). Winograd needs a 3x3
    kernel with padding 1 or a 5x5 one with padding 2, stride 1 (every 3x3 and 5x5
    convolution of GoogLeNet) and a layer where it pays (the ``WINOGRAD_*`` thresholds
    above; a forced ``WINOGRAD_TILE`` applies to 3x3 kernels)."""
    kernel = tuple(w_shape[2:])
    if not WINOGRAD or kernel not in ((3, 3), (5, 5)) or tuple(stride) != (1, 1):
        return 0
    if tuple(padding) != (kernel[0] // 2,) * 2:
        return 0
    N, _, H, W = x_shape
    if min(H, W) < WINOGRAD_MIN_MAP or N * H * W < WINOGRAD_MIN_PIXELS:
        return 0
    channels = min(w_shape[:2])
    if kernel == (5, 5):  # F(2x2, 5x5), the one 5x5 tile
        return 2 if channels >= WINOGRAD_5X5_MIN_CHANNELS else 0
    if WINOGRAD_TILE:
        return WINOGRAD_TILE
    grid_area = -(-H // 4) * 4 * (-(-W // 4) * 4)
    if channels >= WINOGRAD_F4_MIN_CHANNELS and grid_area <= WINOGRAD_F4_MAX_PADDING * H * W:
        return 4
    return 2 if channels >= WINOGRAD_F2_MIN_CHANNELS else 0


# ---------------------------------------------------------------- conv2d's gradients as ops
# Reference array code only (for second derivatives, not for a training step): each is
# conv2d's backward for one input, and linear in each of its two inputs, so its own
# backward is conv2d or the other gradient op.
def _conv(x: Any, w: Any, stride: tuple[int, int], padding: tuple[int, int]) -> Any:
    """conv2d's forward without bias: (N, C, H, W), (C_out, C, KH, KW) -> (N, C_out, OH, OW)."""
    N = x.shape[0]
    C_out, _, KH, KW = w.shape
    OH = conv_output_size(x.shape[2], KH, stride[0], padding[0])
    OW = conv_output_size(x.shape[3], KW, stride[1], padding[1])
    col = im2col(x, KH, KW, stride, padding)  # (C*KH*KW, N*OH*OW)
    y2 = w.reshape(C_out, -1) @ col  # (C_out, N*OH*OW)
    return y2.reshape(C_out, N, OH, OW).swapaxes(0, 1)  # (N, C_out, OH, OW)


def _conv_grad_input(gy: Any, w: Any, x_shape: tuple[int, ...], stride: Any, padding: Any) -> Any:
    """gx = col2im(w2^T @ gy2): the adjoint of :func:`_conv` in x."""
    C_out, _, KH, KW = w.shape
    gy2 = gy.swapaxes(0, 1).reshape(C_out, -1)  # (C_out, N*OH*OW)
    gcol = w.reshape(C_out, -1).T @ gy2  # (C*KH*KW, N*OH*OW)
    return col2im(gcol, x_shape, KH, KW, stride, padding)  # (N, C, H, W)


def _conv_grad_weight(x: Any, gy: Any, w_shape: tuple[int, ...], stride: Any, padding: Any) -> Any:
    """gw = gy2 @ im2col(x)^T: the adjoint of :func:`_conv` in w."""
    C_out, _, KH, KW = w_shape
    gy2 = gy.swapaxes(0, 1).reshape(C_out, -1)  # (C_out, N*OH*OW)
    col = im2col(x, KH, KW, stride, padding)  # (C*KH*KW, N*OH*OW)
    # (col @ gy2^T)^T, not gy2 @ col^T: the same product, several times faster through
    # OpenBLAS for these long, thin shapes
    return (col @ gy2.T).T.reshape(w_shape)  # (C_out, C, KH, KW)


class Conv2dGradInput(Function):
    """gx = conv2d's input gradient of (gy, w) (a transposed convolution);
    ggy = conv2d(ggx, w), gw = Conv2dGradWeight(ggx, gy)."""

    def __init__(self, stride: tuple[int, int], padding: tuple[int, int], x_shape: Any) -> None:
        self.stride, self.padding, self.x_shape = stride, padding, tuple(x_shape)

    def forward(self, gy: Any, w: Any) -> Any:
        self.gy, self.w = gy, w
        return _conv_grad_input(gy, w, self.x_shape, self.stride, self.padding)

    def backward(self, ggx: Any) -> tuple[Any, Any]:
        s, p = self.stride, self.padding
        ggy = _conv(ggx, self.w, s, p) if self.needs_input_grad[0] else None
        gw = (
            _conv_grad_weight(ggx, self.gy, self.w.shape, s, p)
            if self.needs_input_grad[1]
            else None
        )
        return ggy, gw

    def backward_graph(self, ggx: Tensor) -> tuple[Any, Any]:
        gy, w = self.inputs
        s, p = self.stride, self.padding
        ggy = Conv2d(s, p).apply(ggx, w) if self.needs_input_grad[0] else None
        gw = Conv2dGradWeight(s, p, w.shape).apply(ggx, gy) if self.needs_input_grad[1] else None
        return ggy, gw


class Conv2dGradWeight(Function):
    """gw = conv2d's weight gradient of (x, gy); gx = Conv2dGradInput(gy, ggw),
    ggy = conv2d(x, ggw)."""

    def __init__(self, stride: tuple[int, int], padding: tuple[int, int], w_shape: Any) -> None:
        self.stride, self.padding, self.w_shape = stride, padding, tuple(w_shape)

    def forward(self, x: Any, gy: Any) -> Any:
        self.x, self.gy = x, gy
        return _conv_grad_weight(x, gy, self.w_shape, self.stride, self.padding)

    def backward(self, ggw: Any) -> tuple[Any, Any]:
        s, p = self.stride, self.padding
        gx = (
            _conv_grad_input(self.gy, ggw, self.x.shape, s, p) if self.needs_input_grad[0] else None
        )
        ggy = _conv(self.x, ggw, s, p) if self.needs_input_grad[1] else None
        return gx, ggy

    def backward_graph(self, ggw: Tensor) -> tuple[Any, Any]:
        x, gy = self.inputs
        s, p = self.stride, self.padding
        gx = Conv2dGradInput(s, p, x.shape).apply(gy, ggw) if self.needs_input_grad[0] else None
        ggy = Conv2d(s, p).apply(x, ggw) if self.needs_input_grad[1] else None
        return gx, ggy


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> Tensor:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d`` (no dilation, no groups).

    ``y[n, o, p, q] = b[o] + sum_{c,i,j} w[o, c, i, j] * x_pad[n, c, p*sh + i, q*sw + j]``,
    with ``x_pad`` zero-padded by ``padding`` on each side and
    ``OH = floor((H + 2 ph - KH) / sh) + 1`` (likewise ``OW``).

    Computed as im2col + one matrix product; a 1x1 convolution with stride 1 and no padding
    skips im2col. The backward pass is hand-written (``gw`` from the im2col buffer, ``gx``
    through col2im) and only computes the gradients that are needed.

    Departure from PyTorch: the output is stored channel-major, an (N, C_out, OH, OW) view
    of a C-contiguous (C_out, N, OH, OW) array (see ``minigrad.functional._layout``); the
    values are the same, only the strides differ. Inputs may have any layout.

    Args:
        x: input (N, C_in, H, W), floating point.
        weight: (C_out, C_in, KH, KW), same dtype and device as ``x``.
        bias: optional (C_out,).
        stride: int or (sh, sw), positive.
        padding: int or (ph, pw), non-negative (zeros).

    Returns:
        (N, C_out, OH, OW) tensor of ``x``'s dtype, stored channel-major.

    Raises:
        ValueError: wrong ndim, channel mismatch, bad bias shape, non-positive stride,
            negative padding, or a kernel larger than the padded input.
        TypeError: non-float input, mixed float dtypes, stride/padding not int or pair.
    """
    op = "conv2d"
    _checks.tensor_arg(op, "input", x)
    _checks.tensor_arg(op, "weight", weight)
    _checks.tensor_arg(op, "bias", bias, optional=True)
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(
            f"{op}: weight must be 4-D (C_out, C_in, KH, KW), got shape {weight.shape}"
        )
    _checks.floating(op, "input", x)
    if x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"{op}: input has {x.shape[1]} channels (shape {x.shape}) but weight expects "
            f"{weight.shape[1]} (weight shape {weight.shape})"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"{op}: bias shape {bias.shape} != ({weight.shape[0]},)")
    s = _checks.positive(op, "stride", _checks.int_pair(op, "stride", stride))
    p = _checks.non_negative(op, "padding", _checks.int_pair(op, "padding", padding))
    k = (weight.shape[2], weight.shape[3])
    _checks.positive(op, "kernel size", k)
    _checks.window_fits(op, "kernel size", k, x, p)
    args = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d(s, p).apply(*args)


# ---------------------------------------------------------------- CUDA kernels
# Conv2d's cuda path: the chunked code above with im2col and col2im as one kernel launch
# each. A CUDA C++ template over $T (float/double) and $S (f32/f64); minigrad.functional.
# _cuda compiles it with the other families' kernels (and gives FOR_EACH, window_out).
CUDA_SOURCE = _cuda.register(
    __name__,
    r"""
// col[(c*KH + i)*KW + j][(n*OH + oh)*OW + ow] = x[n, c, oh*SH + i - PH, ow*SW + j - PW]
extern "C" __global__ void im2col_$S(const $T* x, $T* col, long long N, long long C,
        long long H, long long W, long long sn, long long sc, long long sh, long long sw,
        int KH, int KW, int SH, int SW, int PH, int PW, long long OH, long long OW,
        long long total) {
    FOR_EACH(t, total) {
        long long ow = t % OW, r = t / OW;
        long long oh = r % OH; r /= OH;
        long long n = r % N; r /= N;
        long long j = r % KW; r /= KW;
        long long i = r % KH, c = r / KH;
        long long h = oh * SH + i - PH, w = ow * SW + j - PW;
        col[t] = (h >= 0 && h < H && w >= 0 && w < W) ? x[n * sn + c * sc + h * sh + w * sw]
                                                      : ($T)0;
    }
}

// the adjoint, as a gather: gx[c, n, h, w] = sum of the col entries that read (h, w),
// added in (i, j) order (as the generic path adds them), written at out's strides
extern "C" __global__ void col2im_$S(const $T* col, $T* gx, long long N, long long C,
        long long H, long long W, long long oc, long long on, long long oh_, long long ow_,
        int KH, int KW, int SH, int SW, int PH, int PW, long long OH, long long OW,
        long long total) {
    FOR_EACH(t, total) {
        long long w = t % W, r = t / W;
        long long h = r % H; r /= H;
        long long n = r % N, c = r / N;
        long long L = N * OH * OW;
        $T acc = ($T)0;
        for (int i = 0; i < KH; i++) {
            long long oh = window_out(h, i, SH, PH, OH);
            for (int j = 0; j < KW && oh >= 0; j++) {
                long long ow = window_out(w, j, SW, PW, OW);
                if (ow >= 0) acc += col[((c * KH + i) * KW + j) * L + (n * OH + oh) * OW + ow];
            }
        }
        gx[c * oc + n * on + h * oh_ + w * ow_] = acc;
    }
}
""",
)


def im2col_cuda(x: Any, KH: int, KW: int, stride: tuple[int, int], padding: tuple[int, int]) -> Any:
    """x (N, C, H, W), any strides -> col (C*KH*KW, N*OH*OW), as ``_im2col.im2col``."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    OH = conv_output_size(H, KH, stride[0], padding[0])
    OW = conv_output_size(W, KW, stride[1], padding[1])
    col = xp.empty((C * KH * KW, N * OH * OW), dtype=x.dtype)
    sizes = [_cuda.i64(N), _cuda.i64(C), _cuda.i64(H), _cuda.i64(W), *_cuda.strides(x)]
    window = _cuda.window_args((KH, KW), stride, padding, OH, OW)
    _cuda.launch("im2col", x.dtype, col.size, x, col, *sizes, *window)
    return col


def col2im_cuda(
    col: Any,
    x_shape: tuple[int, int, int, int],
    KH: int,
    KW: int,
    stride: tuple[int, int],
    padding: tuple[int, int],
    out: Any = None,
) -> Any:
    """col -> gx (N, C, H, W), channel-major, written into ``out`` (C, N, H, W) (any
    strides) when given; as ``_im2col.col2im``."""
    N, C, H, W = x_shape
    OH = conv_output_size(H, KH, stride[0], padding[0])
    OW = conv_output_size(W, KW, stride[1], padding[1])
    if out is None:
        out = get_array_module(col).empty((C, N, H, W), dtype=col.dtype)
    sizes = [_cuda.i64(N), _cuda.i64(C), _cuda.i64(H), _cuda.i64(W), *_cuda.strides(out)]
    window = _cuda.window_args((KH, KW), stride, padding, OH, OW)
    _cuda.launch("col2im", col.dtype, N * C * H * W, col, out, *sizes, *window)
    return out.swapaxes(0, 1)
