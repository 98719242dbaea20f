"""2-D max pooling, with a hand-written backward pass, and what both window pools share:
the planes view of the input (``_PlanePool``) and the argument checks (``_geometry``).
Average pooling is in :mod:`~minigrad.functional.avg_pool`.

The reference (``forward``/``backward``) stacks the ``KH*KW`` strided window views of the
padded input (:func:`~minigrad.functional._windows.windows`) and takes their maximum and
argmax; backward adds ``gy`` back through the same views, one kernel offset at a time (the
windows of one offset never overlap, so no ``add.at`` is needed).

The fast paths also loop over the kernel offsets only, but through
:class:`~minigrad.functional._windows.WindowGrid` each offset is one contiguous 1-D slice
that covers every window of every plane at once, on cache-sized chunks of planes on the
host threads; max pooling is separable there (rows, then columns) and has a CUDA kernel.
"""

from __future__ import annotations

from typing import Any

from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.functional import _checks, _cuda, _pool3
from minigrad.functional._layout import like_planes, plane_major
from minigrad.functional._threads import for_blocks
from minigrad.functional._windows import (
    WindowGrid,
    argmax_into,
    pool_output_size,
    unwindows,
    windows,
)
from minigrad.tensor import Tensor

__all__ = ["max_pool2d"]


def _route(xp: Any, target: Any, arg: Any, g: Any, offsets: Any, hit: Any, part: Any) -> None:
    """The adjoint of ``_windows.argmax_into`` on one chunk: ``target[p]`` = the sum over
    offsets ``k = (p, shift)`` of ``g * (arg == k)`` shifted by ``shift``.

    The first offset of each phase ``p`` has shift 0 (offsets come in row-major order, and
    a stride-``s`` axis's first ``s`` kernel offsets are its ``s`` phases at shift 0): it
    writes its part instead of adding it, so only the tail of ``target[p]`` needs zeros
    first. A stride-2 pool routes a third of its offsets so, saving a zero fill and an add.
    """
    n = g.shape[0]
    seen = set()
    for k, (p, shift) in enumerate(offsets):
        xp.equal(arg, k, out=hit[:n])
        if p not in seen:  # shift == 0: write, then zeros past the chunk's windows
            seen.add(p)
            xp.multiply(g, hit[:n], out=target[p, :n])
            target[p, n:] = 0
        else:
            xp.multiply(g, hit[:n], out=part[:n])
            target[p, shift : shift + n] += part[:n]
    for p in range(target.shape[0]):
        if p not in seen:  # a phase no offset reads (a stride larger than the kernel)
            target[p] = 0


class _PlanePool(Function):
    """What the max and average pools share: they work on the input's (H, W) planes as one
    C-contiguous (P, H, W) array, in whichever plane order the input is stored."""

    def __init__(self, grid: WindowGrid) -> None:
        self.grid = grid

    def planes(self, x: Any) -> Any:
        """x (N, C, H, W) -> planes (P, H, W); the grid follows the plane order."""
        x, self.swap = plane_major(x)  # (N, C, H, W), or (C, N, H, W) if channel-major
        if self.swap:
            self.grid = self.grid.swapped()
        return x.reshape(self.grid.planes, *x.shape[2:])

    def grad_planes(self, gy: Any) -> Any:
        """gy (N, C, OH, OW) -> (P, OH, OW), C-contiguous, in the forward's plane order."""
        return like_planes(gy, self.swap).reshape(self.grid.planes, *self.grid.out_size)

    def unplanes(self, a3: Any) -> Any:
        """(P, h, w) -> (N, C, h, w), stored in the input's layout (a view)."""
        a4 = a3.reshape(*self.grid.x_shape[:2], *a3.shape[1:])
        return a4.swapaxes(0, 1) if self.swap else a4

    def input_grid(self) -> WindowGrid:
        """The grid on the (N, C, H, W) input, whichever plane order a fast path used."""
        return self.grid.swapped() if getattr(self, "swap", False) else self.grid


class MaxPool2d(_PlanePool):
    """y = max over each window; dL/dx gets dL/dy at the window's first maximum only.

    Shapes: x (N, C, H, W) -> y (N, C, OH, OW). Reference: ``argmax`` over the stacked
    windows (:func:`windows`, padding read as -inf) picks each window's first maximum in
    row-major order; backward sends ``gy`` through the window views where ``argmax == k``.

    ``forward_chunked`` is separable: first the maximum over each window row (kernel
    columns ``j``) for every input row, then the maximum of those row maxima over the
    kernel rows ``i``. The first row holding the window's maximum, and in it the first
    column, is exactly the window's first maximum in row-major order, so the two saved
    argmax arrays route the gradient to it. A ``KH x KW`` window costs ``KH + KW - 2``
    comparisons instead of ``KH*KW - 1``. Both passes run on cache-sized chunks of planes,
    shared out among the host threads. ``forward_cuda``: one kernel launch each way, which
    saves the window offset of each maximum.

    Paths (all in this module unless named):
        reference: ``forward``/``backward`` on :func:`windows`/:func:`unwindows`.
        chunked: ``forward_chunked``/``backward_chunked`` with ``_windows.argmax_into``/
            ``_route``, on a ``_windows.WindowGrid``; for 3x3, stride 1, padding 1
            (``_pool3.fits``) ``_forward_same3`` and the flat passes of ``_pool3.py``
            instead, on the planes where they lie; ``_threads.for_blocks`` splits the planes.
        cuda: ``forward_cuda``/``backward_cuda`` call ``maxpool_forward_cuda``/
            ``maxpool_backward_cuda``, the launchers of the kernels ``maxpool_fwd``/
            ``maxpool_bwd`` in ``CUDA_SOURCE`` (bottom of this module).
    """

    keeps_inputs = False  # backward reads the saved argmax, not x
    #: the chunked path took _pool3's flat passes (3x3, stride 1, padding 1)
    same3 = False

    # ------------------------------------------------------------ reference
    def forward(self, x: Any) -> Any:
        win = windows(x, self.grid, -float("inf"))  # (KH*KW, N, C, OH, OW)
        self.argmax = win.argmax(axis=0)  # (N, C, OH, OW): k = i*KW + j of the first max
        self.x_shape = x.shape
        return win.max(axis=0)  # (N, C, OH, OW)

    def backward(self, gy: Any) -> Any:
        xp = get_array_module(gy)
        KH, KW = self.grid.kernel
        ks = xp.arange(KH * KW).reshape(-1, 1, 1, 1, 1)
        gwin = gy * (self.argmax == ks)  # (KH*KW, N, C, OH, OW): gy at the argmax only
        return unwindows(gwin, self.x_shape, self.grid)  # (N, C, H, W)

    # ------------------------------------------------------------ differentiable form
    def window_argmax(self) -> Any:
        """k = i*KW + j of each window's first maximum, (N, C, OH, OW), from whichever
        path's saved state (the reference's argmax, the kernel's offsets, or the chunked
        path's row and column winners)."""
        if self.path == "reference":
            return self.argmax
        if self.path == "cuda":
            return self.unplanes(self.arg)
        if self.same3:
            return self.unplanes(_pool3.window_offsets(self.col_arg, self.row_arg))
        xp = get_array_module(self.row_arg)
        g = self.grid
        (OH, OW), sh, KW = g.out_size, g.stride[0], g.kernel[1]
        q = xp.arange(g.planes).reshape(-1, 1, 1)
        pos = (q * g.Hq + xp.arange(OH).reshape(1, -1, 1)) * g.Wq + xp.arange(OW)  # (P, OH, OW)
        i = self.row_arg[pos].astype(xp.int64)  # the kernel row that won each window
        j = self.col_arg[i % sh, pos + (i // sh) * g.Wq].astype(xp.int64)  # and its column
        return self.unplanes(i * KW + j)

    def backward_graph(self, gy: Tensor) -> Tensor:
        """gx = gy routed to each window's first maximum (:class:`MaxPoolRoute`, linear in
        gy; the argmax is a constant)."""
        return MaxPoolRoute(self.input_grid(), self.window_argmax()).apply(gy)

    # ------------------------------------------------------------ fast paths
    def forward_cuda(self, x: Any) -> Any:
        x3 = self.planes(x)  # (P, H, W)
        g = self.grid
        y3, self.arg = maxpool_forward_cuda(x3, g.kernel, g.stride, g.padding, g.out_size)
        return self.unplanes(y3)

    def backward_cuda(self, gy: Any) -> Any:
        g = self.grid
        gy3 = self.grad_planes(gy)  # (P, OH, OW)
        shape = (g.planes, *g.x_shape[2:])  # (P, H, W)
        return self.unplanes(
            maxpool_backward_cuda(gy3, self.arg, shape, g.kernel, g.stride, g.padding)
        )

    def forward_chunked(self, x: Any) -> Any:
        xp = get_array_module(x)
        x3 = self.planes(x)  # (P, H, W)
        g = self.grid
        self.same3 = _pool3.fits(g)
        if self.same3:
            return self._forward_same3(x3)
        P, (OH, OW), sh = g.planes, g.out_size, g.stride[0]
        rows = sorted({a for a, _ in g.row_offsets})  # the row phases a kernel row reads
        many = max(len(g.col_offsets), len(g.row_offsets)) > 256
        idx_dtype = xp.int32 if many else xp.uint8
        col_arg = xp.empty((sh, g.size), dtype=idx_dtype)  # per row maximum: its column
        row_arg = xp.empty(g.size, dtype=idx_dtype)  # per window: the row that won
        y3 = xp.empty((P, OH, OW), dtype=x.dtype)

        def chunk(ps: slice) -> None:  # planes ps; phases, m1, y are chunk-sized
            phases = g.split(x3, ps, -xp.inf)  # (sh, sw, B); the padding never wins
            lo, hi, L, L1 = g.span(ps)
            m1 = xp.empty((sh, L1), dtype=x.dtype)  # row maxima
            y = xp.empty(hi - lo, dtype=x.dtype)  # window maxima at [:L]
            better, step = xp.empty(L1, dtype=bool), xp.empty(L1, dtype=idx_dtype)
            for a in rows:  # stage 1: row maxima over the kernel columns
                views = [phases[a, b, s : s + L1] for b, s in g.col_offsets]
                argmax_into(xp, m1[a], col_arg[a, lo : lo + L1], views, better, step)
            views = [m1[a, s : s + L] for a, s in g.row_offsets]  # stage 2: over kernel rows
            argmax_into(xp, y[:L], row_arg[lo : lo + L], views, better[:L], step[:L])
            y3[ps] = g.crop(y)

        for_blocks(chunk, P, g.size, x)
        if self.requires_grad:
            self.row_arg, self.col_arg, self.rows = row_arg, col_arg, rows
        return self.unplanes(y3)

    def _forward_same3(self, x3: Any) -> Any:
        """3x3, stride 1, padding 1: :mod:`~minigrad.functional._pool3`'s flat passes on
        the planes where they lie, on chunks of planes."""
        xp = get_array_module(x3)
        y3 = xp.empty_like(x3)
        col, row = xp.empty(x3.shape, dtype=xp.uint8), xp.empty(x3.shape, dtype=xp.uint8)

        def chunk(ps: slice) -> None:
            _pool3.forward(x3[ps], y3[ps], col[ps], row[ps])

        for_blocks(chunk, x3.shape[0], x3.size, x3, _pool3.CHUNK_ELEMENTS)
        if self.requires_grad:
            self.col_arg, self.row_arg = col, row
        return self.unplanes(y3)

    def backward_chunked(self, gy: Any) -> Any:
        xp = get_array_module(gy)
        g = self.grid
        (P, H, W), sh = (g.planes, *g.x_shape[2:]), g.stride[0]
        gy3 = self.grad_planes(gy)  # (P, OH, OW)
        gx3 = xp.empty((P, H, W), dtype=gy.dtype)
        if self.same3:

            def route(ps: slice) -> None:
                _pool3.backward(gy3[ps], self.col_arg[ps], self.row_arg[ps], gx3[ps])

            for_blocks(route, P, gy3.size, gy, _pool3.CHUNK_ELEMENTS)
            return self.unplanes(gx3)

        def chunk(ps: slice) -> None:  # planes ps; gm1 and gphases are chunk-sized
            lo, hi, L, L1 = g.span(ps)
            gyg = g.pad(gy3[ps])[:L]  # zeros at grid positions that are no output
            hit, part = xp.empty(L1, dtype=bool), xp.empty(L1, dtype=gy.dtype)
            # stage 2 backward: each output's gradient to the row maximum that won
            gm1 = xp.empty((sh, hi - lo), dtype=gy.dtype)
            _route(xp, gm1, self.row_arg[lo : lo + L], gyg, g.row_offsets, hit, part)
            # stage 1 backward: each row maximum's gradient to the input column that won
            gphases = g.grad_phases(gx3, ps)  # (sh, sw, B)
            for a in range(sh):
                if a not in self.rows:
                    gphases[a] = 0
                    continue
                arg = self.col_arg[a, lo : lo + L1]
                _route(xp, gphases[a], arg, gm1[a, :L1], g.col_offsets, hit, part)
            g.merge(gphases, gx3, ps)

        for_blocks(chunk, P, g.size, gy)
        return self.unplanes(gx3)


# ---------------------------------------------------------------- backward as ops
# Max pooling's backward is linear in gy; as ops (reference array code) it makes the
# pool twice differentiable. Each pair of adjoint maps is one op's forward and backward.
def _route_max(gy: Any, k: Any, grid: WindowGrid) -> Any:
    """gy (N, C, OH, OW) to the window offsets k -> gx (N, C, H, W)."""
    xp = get_array_module(gy)
    KH, KW = grid.kernel
    gwin = gy * (k == xp.arange(KH * KW).reshape(-1, 1, 1, 1, 1))  # (KH*KW, N, C, OH, OW)
    return unwindows(gwin, grid.x_shape, grid)


def _gather_max(gx: Any, k: Any, grid: WindowGrid) -> Any:
    """The adjoint of :func:`_route_max`: gx (N, C, H, W) read at each window's offset k."""
    xp = get_array_module(gx)
    win = windows(gx, grid, 0.0)  # (KH*KW, N, C, OH, OW)
    return xp.take_along_axis(win, k[None].astype(xp.int64), axis=0)[0]


class MaxPoolRoute(Function):
    """gx = gy routed to each window's first maximum (offsets k, a constant);
    ggy = ggx read at those maxima (:class:`MaxPoolGather`)."""

    def __init__(self, grid: WindowGrid, k: Any) -> None:
        self.grid, self.k = grid, k

    def forward(self, gy: Any) -> Any:
        return _route_max(gy, self.k, self.grid)

    def backward(self, ggx: Any) -> Any:
        return _gather_max(ggx, self.k, self.grid)

    def backward_graph(self, ggx: Tensor) -> Tensor:
        return MaxPoolGather(self.grid, self.k).apply(ggx)


class MaxPoolGather(Function):
    """y = x read at each window's first maximum (offsets k); gx = :class:`MaxPoolRoute`."""

    def __init__(self, grid: WindowGrid, k: Any) -> None:
        self.grid, self.k = grid, k

    def forward(self, x: Any) -> Any:
        return _gather_max(x, self.k, self.grid)

    def backward(self, gy: Any) -> Any:
        return _route_max(gy, self.k, self.grid)

    def backward_graph(self, gy: Tensor) -> Tensor:
        return MaxPoolRoute(self.grid, self.k).apply(gy)


# ---------------------------------------------------------------- argument checks
def _geometry(
    op: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool
) -> tuple[WindowGrid, tuple[int, int]]:
    _checks.image_batch(op, x)
    k = _checks.int_pair(op, "kernel_size", kernel_size)
    s = k if stride is None else _checks.int_pair(op, "stride", stride)
    p = _checks.int_pair(op, "padding", padding)
    _checks.positive(op, "kernel_size", k)
    _checks.positive(op, "stride", s)
    _checks.non_negative(op, "padding", p)
    if 2 * p[0] > k[0] or 2 * p[1] > k[1]:
        raise ValueError(f"{op}: padding {p} must be at most half the kernel size {k}")
    _checks.window_fits(op, "kernel_size", k, x, p)
    H, W = x.shape[2], x.shape[3]
    OH = pool_output_size(H, k[0], s[0], p[0], bool(ceil_mode))
    OW = pool_output_size(W, k[1], s[1], p[1], bool(ceil_mode))
    return WindowGrid(x.shape, k, s, p, (OH, OW)), k


# ---------------------------------------------------------------- public API
def max_pool2d(
    x: Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    ceil_mode: bool = False,
) -> Tensor:
    """2-D max pooling, as ``torch.nn.functional.max_pool2d`` (no dilation, no indices).

    The input is padded with -inf, so padding never wins a window. Output size per axis:
    ``floor((H + 2p - k) / s) + 1`` (``ceil`` with ``ceil_mode``, dropping a last window
    that would start inside the right padding). NaN in a window gives NaN.

    Gradient: each output's gradient goes to the FIRST maximum of its window, scanning the
    window in row-major order (top row left to right, then the next row). With ties only
    that element gets it (PyTorch's CPU kernel, scanning with a strict ``>``, picks the same).

    Args:
        x: (N, C, H, W) floating-point tensor.
        kernel_size: int or (kh, kw), positive.
        stride: int or (sh, sw), positive; defaults to ``kernel_size``.
        padding: int or (ph, pw), at most half the kernel size.
        ceil_mode: round the output size up instead of down.

    Returns:
        (N, C, OH, OW) tensor of ``x``'s dtype.

    Raises:
        ValueError: input not 4-D, non-positive kernel or stride, negative padding, padding
            over half the kernel, kernel larger than the padded input.
        TypeError: non-float input; kernel_size/stride/padding not int or pair.
    """
    grid, _ = _geometry("max_pool2d", x, kernel_size, stride, padding, ceil_mode)
    return MaxPool2d(grid).apply(x)


# ---------------------------------------------------------------- CUDA kernels
# MaxPool2d's cuda path. A CUDA C++ template over $T (float/double) and $S (f32/f64);
# minigrad.functional._cuda compiles it with the other families' kernels (and gives
# FOR_EACH, window_out).
CUDA_SOURCE = _cuda.register(
    __name__,
    r"""
// y = max over the window (padding never wins), arg = its first maximum in row-major
// order (a later element must be strictly greater); a NaN makes the output NaN
extern "C" __global__ void maxpool_fwd_$S(const $T* x, $T* y, int* arg, long long H,
        long long W, int KH, int KW, int SH, int SW, int PH, int PW, long long OH,
        long long OW, long long total) {
    FOR_EACH(t, total) {
        long long ow = t % OW, r = t / OW;
        long long oh = r % OH, p = r / OH;
        const $T* plane = x + p * H * W;
        $T best = ($T)0;
        int k = -1, has_nan = 0;
        for (int i = 0; i < KH; i++) {
            long long h = oh * SH + i - PH;
            if (h < 0 || h >= H) continue;
            for (int j = 0; j < KW; j++) {
                long long w = ow * SW + j - PW;
                if (w < 0 || w >= W) continue;
                $T v = plane[h * W + w];
                if (v != v) has_nan = 1;
                else if (!has_nan && (k < 0 || v > best)) { best = v; k = i * KW + j; }
            }
        }
        y[t] = has_nan ? ($T)nan("") : best;
        arg[t] = k < 0 ? 0 : k;
    }
}

// gx[p, h, w] = sum of gy over the windows whose saved maximum is (h, w), as a gather
extern "C" __global__ void maxpool_bwd_$S(const $T* gy, const int* arg, $T* gx, long long H,
        long long W, int KH, int KW, int SH, int SW, int PH, int PW, long long OH,
        long long OW, long long total) {
    FOR_EACH(t, total) {
        long long w = t % W, r = t / W;
        long long h = r % H, p = r / H;
        $T acc = ($T)0;
        for (int i = 0; i < KH; i++) {
            long long oh = window_out(h, i, SH, PH, OH);
            for (int j = 0; j < KW && oh >= 0; j++) {
                long long ow = window_out(w, j, SW, PW, OW);
                long long o = (p * OH + oh) * OW + ow;
                if (ow >= 0 && arg[o] == i * KW + j) acc += gy[o];
            }
        }
        gx[t] = acc;
    }
}
""",
)


def maxpool_forward_cuda(
    x3: Any,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    out: tuple[int, int],
) -> tuple[Any, Any]:
    """Planes x3 (P, H, W), C-contiguous -> y (P, OH, OW) and the int32 window offset
    ``i*KW + j`` of each output's first maximum."""
    xp = get_array_module(x3)
    P, H, W = x3.shape
    y = xp.empty((P, *out), dtype=x3.dtype)
    arg = xp.empty((P, *out), dtype=xp.int32)
    window = _cuda.window_args(kernel, stride, padding, *out)
    _cuda.launch("maxpool_fwd", x3.dtype, y.size, x3, y, arg, _cuda.i64(H), _cuda.i64(W), *window)
    return y, arg


def maxpool_backward_cuda(
    gy3: Any,
    arg: Any,
    x_shape3: tuple[int, int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> Any:
    """gy3 (P, OH, OW), C-contiguous, and the saved offsets -> gx (P, H, W)."""
    xp = get_array_module(gy3)
    P, H, W = x_shape3
    gx = xp.empty((P, H, W), dtype=gy3.dtype)
    window = _cuda.window_args(kernel, stride, padding, *gy3.shape[1:])
    sizes = [_cuda.i64(H), _cuda.i64(W)]
    _cuda.launch("maxpool_bwd", gy3.dtype, gx.size, gy3, arg, gx, *sizes, *window)
    return gx
