"""2-D average pooling, with a hand-written backward pass.

The reference (``forward``/``backward``) sums the ``KH*KW`` strided window views of the
zero-padded input (:func:`~minigrad.functional._windows.windows`) and divides by PyTorch's
divisor; backward spreads ``gy / divisor`` back through the same views. The fast path
sums each kernel offset as one contiguous slice of a
:class:`~minigrad.functional._windows.WindowGrid`, on chunks of planes on the host
threads; on a small map (GoogLeNet's aux heads: 5x5/3 on 14 or 16 px) it is one product
of the planes with the pool's (H*W, OH*OW) matrix instead. The planes view and the
argument checks are max pooling's (:mod:`~minigrad.functional.pool`).
"""

from __future__ import annotations

from typing import Any

from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.functional._threads import for_blocks, gemm_threads
from minigrad.functional._windows import WindowGrid, unwindows, windows
from minigrad.functional.pool import _geometry, _PlanePool
from minigrad.tensor import Tensor

__all__ = ["avg_pool2d"]


def _avg_divisor(xp: Any, size: int, k: int, s: int, p: int, count: int, with_pad: bool) -> Any:
    """Per-output-row window sizes along one axis, by PyTorch's avg_pool2d rule.

    A window counts the padding it covers (``count_include_pad``) but never what lies past
    the right padding (only reachable with ``ceil_mode``).
    """
    start = xp.arange(count) * s - p
    end = xp.minimum(start + k, size + p)
    if with_pad:
        return end - start
    return xp.minimum(end, size) - xp.maximum(start, 0)


class AvgPool2d(_PlanePool):
    """y = window sum / divisor; dL/dx gets dL/dy / divisor at every element of the window.

    Shapes: x (N, C, H, W) -> y (N, C, OH, OW); ``divisor`` (OH, OW) by PyTorch's rule
    (:func:`_avg_divisor`). Reference: the sum of the stacked windows (:func:`windows`,
    padding read as 0). ``forward_chunked``: each kernel offset one contiguous slice of a
    :class:`WindowGrid`, on cache-sized chunks of planes on the host threads.
    ``ceil_mode`` lives in the grid (its ``out_size``; the divisor clips the last window).

    Paths (all in this module unless named):
        reference: ``forward``/``backward`` on :func:`windows`/:func:`unwindows`.
        chunked: ``forward_chunked``/``backward_chunked`` on a ``_windows.WindowGrid``;
            ``_threads.for_blocks`` splits the planes. Where :func:`matrix_fits` (a small
            map), ``y = planes @ M`` and ``gx = gy @ M^T`` instead, ``M`` =
            :meth:`matrix`. No CUDA kernel: on CuPy the chunked code runs as one chunk.
    """

    def __init__(self, grid: WindowGrid, kernel: tuple[int, int], count_include_pad: bool) -> None:
        super().__init__(grid)
        self.kernel = kernel
        self.count_include_pad = count_include_pad

    def divisor_of(self, x: Any) -> Any:
        """The (OH, OW) window sizes of PyTorch's rule, in ``x``'s dtype."""
        xp = get_array_module(x)
        H, W = x.shape[2:]
        (KH, KW), (sh, sw), (ph, pw), (OH, OW) = (
            self.kernel, self.grid.stride, self.grid.padding, self.grid.out_size
        )  # fmt: skip
        dh = _avg_divisor(xp, H, KH, sh, ph, OH, self.count_include_pad)
        dw = _avg_divisor(xp, W, KW, sw, pw, OW, self.count_include_pad)
        return (dh[:, None] * dw[None, :]).astype(x.dtype)  # (OH, OW)

    # ------------------------------------------------------------ reference
    def forward(self, x: Any) -> Any:
        self.divisor, self.x_shape = self.divisor_of(x), x.shape
        return windows(x, self.grid, 0.0).sum(axis=0) / self.divisor  # (N, C, OH, OW)

    def backward(self, gy: Any) -> Any:
        xp = get_array_module(gy)
        share = gy / self.divisor  # (N, C, OH, OW): what each element of a window gets
        KH, KW = self.kernel
        gwin = xp.broadcast_to(share, (KH * KW, *share.shape))  # (KH*KW, N, C, OH, OW)
        return unwindows(gwin, self.x_shape, self.grid)  # (N, C, H, W)

    def backward_graph(self, gy: Tensor) -> Tensor:
        """gx = :class:`AvgPoolGrad` of gy (linear; its own backward is this pool again)."""
        return AvgPoolGrad(self).apply(gy)

    def matrix(self, x: Any) -> Any:
        """The pool as a linear map of one plane: (H*W, OH*OW), entry ``(h*W + w,
        oh*OW + ow)`` = 1 / divisor[oh, ow] where (h, w) lies in window (oh, ow), else 0:
        ``kron`` of the per-axis window indicators (padding reads zeros, so it adds no
        entry), each column scaled by its divisor (``self.divisor``, set first)."""
        xp = get_array_module(x)
        H, W = x.shape[2:]
        (KH, KW), (sh, sw), (ph, pw), (OH, OW) = (
            self.kernel, self.grid.stride, self.grid.padding, self.grid.out_size
        )  # fmt: skip

        def inside(size: int, k: int, s: int, p: int, count: int) -> Any:  # (size, count)
            start = xp.arange(count) * s - p
            at = xp.arange(size)[:, None]
            return (at >= start) & (at < start + k)

        rows, cols = inside(H, KH, sh, ph, OH), inside(W, KW, sw, pw, OW)
        m = xp.kron(rows.astype(x.dtype), cols.astype(x.dtype))  # (H*W, OH*OW)
        return m / self.divisor.reshape(1, OH * OW)

    @staticmethod
    def _times(a: Any, m: Any) -> Any:
        """a (P, K) @ m (K, L) -> (P, L), on chunks of planes on the host threads."""
        out = get_array_module(a).empty((a.shape[0], m.shape[1]), dtype=a.dtype)

        def chunk(ps: slice) -> None:
            get_array_module(a).matmul(a[ps], m, out=out[ps])

        for_blocks(chunk, a.shape[0], a.size, a, threads=gemm_threads())
        return out

    # ------------------------------------------------------------ fast path
    def forward_chunked(self, x: Any) -> Any:
        xp = get_array_module(x)
        self.divisor = self.divisor_of(x)  # (OH, OW)
        H, W = x.shape[2:]
        self.matrix_path = matrix_fits(H * W, self.divisor.size)
        if self.matrix_path:
            self.m = self.matrix(x)  # (H*W, OH*OW)
            x2 = self.planes(x).reshape(self.grid.planes, H * W)
            return self.unplanes(self._times(x2, self.m).reshape(-1, *self.grid.out_size))
        x3 = self.planes(x)  # (P, H, W)
        g = self.grid
        P, (OH, OW) = g.planes, g.out_size
        y3 = xp.empty((P, OH, OW), dtype=x.dtype)

        def chunk(ps: slice) -> None:  # planes ps; phases and y are chunk-sized
            phases = g.split(x3, ps, 0.0)  # (sh, sw, B)
            lo, hi, L, _ = g.span(ps)
            y = xp.empty(hi - lo, dtype=x.dtype)  # window sums at [:L]
            (a, b, s), *rest = g.offsets
            y[:L] = phases[a, b, s : s + L]
            for a, b, s in rest:
                y[:L] += phases[a, b, s : s + L]
            xp.divide(g.crop(y), self.divisor, out=y3[ps])

        for_blocks(chunk, P, g.size, x)
        return self.unplanes(y3)

    def backward_chunked(self, gy: Any) -> Any:
        xp = get_array_module(gy)
        g = self.grid
        gy3 = self.grad_planes(gy)  # (P, OH, OW)
        if self.matrix_path:
            gx = self._times(gy3.reshape(g.planes, self.divisor.size), self.m.T)  # (P, H*W)
            return self.unplanes(gx.reshape(g.planes, *g.x_shape[2:]))
        gx3 = xp.empty((g.planes, *g.x_shape[2:]), dtype=gy.dtype)

        def chunk(ps: slice) -> None:  # planes ps; gphases is chunk-sized
            _, _, L, _ = g.span(ps)
            share = g.pad(gy3[ps] / self.divisor)[:L]  # what each element of a window gets
            gphases = g.grad_phases(gx3, ps)  # (sh, sw, B)
            gphases[...] = 0
            for a, b, s in g.offsets:
                gphases[a, b, s : s + L] += share
            g.merge(gphases, gx3, ps)

        for_blocks(chunk, g.planes, g.size, gy)
        return self.unplanes(gx3)


#: the matrix path where a plane's (H*W, OH*OW) matrix has at most this many entries:
#: 14 -> 4 px (GoogLeNet's aux heads at 224 px, 3136) and 16 -> 4 px (CIFAR size, 4096);
#: ``benchmarks/bench_pools.py --avg``: 1.8-3x faster forward + backward there
MATRIX_MAX_ENTRIES = 1 << 14


def matrix_fits(plane: int, out_plane: int) -> bool:
    """Whether the chunked path takes the pool's matrix (a plane of ``plane`` values
    pooled to ``out_plane``)."""
    return plane * out_plane <= MATRIX_MAX_ENTRIES


class AvgPoolGrad(Function):
    """gx = gy / divisor spread over each window (avg_pool2d's backward);
    ggy = avg_pool2d(ggx) (the same pool)."""

    def __init__(self, pool: AvgPool2d) -> None:
        self.grid, self.kernel = pool.input_grid(), pool.kernel
        self.count_include_pad, self.divisor = pool.count_include_pad, pool.divisor

    def forward(self, gy: Any) -> Any:
        xp = get_array_module(gy)
        share = gy / self.divisor  # (N, C, OH, OW)
        KH, KW = self.kernel
        gwin = xp.broadcast_to(share, (KH * KW, *share.shape))  # (KH*KW, N, C, OH, OW)
        return unwindows(gwin, self.grid.x_shape, self.grid)  # (N, C, H, W)

    def backward(self, ggx: Any) -> Any:
        return windows(ggx, self.grid, 0.0).sum(axis=0) / self.divisor  # (N, C, OH, OW)

    def backward_graph(self, ggx: Tensor) -> Tensor:
        return AvgPool2d(self.grid, self.kernel, self.count_include_pad).apply(ggx)


def avg_pool2d(
    x: Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d`` (no ``divisor_override``).

    Padding is zeros. The divisor follows PyTorch: the window clipped to the padded input
    (``count_include_pad=True``), or clipped to the input itself (``False``). A window that
    ``ceil_mode`` lets hang past the right padding is always clipped there, so its divisor
    is smaller than ``kh*kw`` even with ``count_include_pad=True``.

    Args:
        x: (N, C, H, W) floating-point tensor.
        kernel_size: int or (kh, kw), positive.
        stride: int or (sh, sw), positive; defaults to ``kernel_size``.
        padding: int or (ph, pw), at most half the kernel size.
        ceil_mode: round the output size up instead of down.
        count_include_pad: count zero padding in the divisor.

    Returns:
        (N, C, OH, OW) tensor of ``x``'s dtype.

    Raises:
        ValueError / TypeError: as :func:`max_pool2d`.
    """
    grid, k = _geometry("avg_pool2d", x, kernel_size, stride, padding, ceil_mode)
    return AvgPool2d(grid, k, bool(count_include_pad)).apply(x)
