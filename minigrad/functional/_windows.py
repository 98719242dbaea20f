"""Pooling windows: their output size, the windows as shifted flat views (the fast paths),
the window argmax, and the windows as a stack of strided views (the references); plain
array code for ``pool.py`` and ``avg_pool.py`` (and Winograd's tiles), no autograd. (A
convolution's output size is beside its im2col, in :mod:`~minigrad.functional._im2col`:
ceil_mode is pooling's alone.)"""

from __future__ import annotations

import math
from typing import Any

from minigrad.backend import get_array_module


def pool_output_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output size; with ceil_mode a last window that would start inside
    the right padding is dropped."""
    span = size + 2 * padding - kernel
    out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


class WindowGrid:
    """Every ``KH x KW`` pooling window of an (N, C, H, W) input as shifted flat views.

    The input is seen as ``P = N*C`` planes of ``H x W`` (any C-contiguous 4-D array of
    planes works: a channel-major input's (C, N, H, W) array through :meth:`swapped`). The
    padded input is split by stride phase into ``sh*sw`` arrays
    ``phases[a, b] = x_padded[..., a::sh, b::sw]``, each flattened over ``(P, Hq, Wq)``.
    Kernel offset ``(i, j)`` then reads phase ``(i % sh, j % sw)`` shifted by
    ``(i // sh) * Wq + j // sw`` elements, and output ``(oh, ow)`` of plane ``q`` sits at
    flat position ``(q*Hq + oh)*Wq + ow`` of every view. So each kernel offset is ONE
    contiguous 1-D slice over all planes and windows: long, fast inner loops even on 8x8
    or 4x4 maps, where strided 4-D slices spend their time in loop overhead. Grid positions
    with ``oh >= OH`` or ``ow >= OW`` compute garbage that :meth:`crop` drops (and
    :meth:`pad` fills with zeros).

    Work is done on chunks of whole planes (a slice ``ps`` of ``range(P)``, see
    :mod:`~minigrad.functional._threads`) with chunk-sized phase arrays that stay in
    cache: the last ``max_shift`` positions of a plane are never an output, so the views
    of a chunk's outputs stay inside the chunk's own flat range.
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
        self.kernel, self.stride, self.padding = kernel, stride, padding
        # rows per phase: enough for every window and for every input row
        self.Hq = max(OH + (KH - 1) // sh, -(-(ph + H) // sh))
        self.Wq = max(OW + (KW - 1) // sw, -(-(pw + W) // sw))
        self.planes = N * C
        self.plane = self.Hq * self.Wq  # grid positions per plane
        self.size = self.planes * self.plane
        #: (phase row, phase column, flat shift) per kernel offset, in row-major window order
        self.offsets = [
            (i % sh, j % sw, (i // sh) * self.Wq + j // sw) for i in range(KH) for j in range(KW)
        ]
        # the same offsets one axis at a time, for separable (row, then column) reductions
        #: (phase column, flat shift) of each kernel column j
        self.col_offsets = [(j % sw, j // sw) for j in range(KW)]
        #: (phase row, flat shift) of each kernel row i
        self.row_offsets = [(i % sh, (i // sh) * self.Wq) for i in range(KH)]
        self.max_shift = max(shift for _, _, shift in self.offsets)
        self.max_col_shift = (KW - 1) // sw

    def swapped(self) -> WindowGrid:
        """The same windows on the (C, N, H, W) array of a channel-major (N, C, H, W) input:
        a grid only needs its two leading axes to be the planes, in either order."""
        N, C, H, W = self.x_shape
        return WindowGrid((C, N, H, W), self.kernel, self.stride, self.padding, self.out_size)

    def span(self, ps: slice) -> tuple[int, int, int, int]:
        """Flat range ``lo, hi`` of planes ``ps``, and how many positions from ``lo`` a full
        window view (``length``) and a row view (``row_length``) cover inside it."""
        lo, hi = ps.start * self.plane, ps.stop * self.plane
        return lo, hi, hi - lo - self.max_shift, hi - lo - self.max_col_shift

    def is_identity(self) -> bool:
        """True when the phases are the input itself (stride 1, no padding, no overhang)."""
        H, W = self.x_shape[2], self.x_shape[3]
        return self.stride == (1, 1) and self.padding == (0, 0) and (self.Hq, self.Wq) == (H, W)

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

    def split(self, x3: Any, ps: slice, fill: float) -> Any:
        """planes ``ps`` of x3 (P, H, W) -> their phases (sh, sw, len(ps)*plane), ``fill`` in
        the padding (a view of ``x3`` when :meth:`is_identity`)."""
        n = ps.stop - ps.start
        if self.is_identity():
            return x3[ps].reshape(1, 1, n * self.plane)
        return self.split_planes(x3[ps], fill)

    def split_planes(self, x: Any, fill: float) -> Any:
        """Planes x (..., H, W), any leading axes and strides -> their phases (sh, sw,
        planes*plane), the planes in x's leading order, ``fill`` in the padding."""
        xp = get_array_module(x)
        sh, sw = self.stride
        # filling everything first is faster than filling only the border: its columns
        # are single elements at a stride, which NumPy writes one by one
        q = xp.full((sh, sw, *x.shape[:-2], self.Hq, self.Wq), fill, dtype=x.dtype)
        for a, b, rows_x, cols_x, rows_q, cols_q in self._phase_slices():
            q[a, b, ..., rows_q, cols_q] = x[..., rows_x, cols_x]
        return q.reshape(sh, sw, -1)

    def grad_phases(self, gx3: Any, ps: slice) -> Any:
        """Where a backward writes the phase gradients of planes ``ps``: gx3[ps] itself when
        :meth:`is_identity` (then :meth:`merge` has nothing to do), else a new array."""
        n = ps.stop - ps.start
        if self.is_identity():
            return gx3[ps].reshape(1, 1, n * self.plane)
        xp = get_array_module(gx3)
        return xp.empty((*self.stride, n * self.plane), dtype=gx3.dtype)

    def merge(self, gphases: Any, gx3: Any, ps: slice) -> None:
        """The adjoint of :meth:`split`: the phases of planes ``ps`` -> gx3[ps] (P, H, W)."""
        if self.is_identity():  # gphases is gx3[ps] already (see grad_phases)
            return
        self.merge_planes(gphases, gx3[ps])

    def merge_planes(self, gphases: Any, out: Any) -> None:
        """The adjoint of :meth:`split_planes`: phases -> ``out`` (..., H, W), a view is fine."""
        sh, sw = self.stride
        q = gphases.reshape(sh, sw, *out.shape[:-2], self.Hq, self.Wq)
        for a, b, rows_x, cols_x, rows_q, cols_q in self._phase_slices():
            out[..., rows_x, cols_x] = q[a, b, ..., rows_q, cols_q]  # every pixel once

    def crop(self, grid: Any) -> Any:
        """The flat grid (n*plane,) of n planes -> their outputs, an (n, OH, OW) view."""
        OH, OW = self.out_size
        return grid.reshape(-1, self.Hq, self.Wq)[:, :OH, :OW]

    def pad(self, yb: Any) -> Any:
        """(n, OH, OW) outputs of n planes -> their flat grid, zeros where no output is."""
        xp = get_array_module(yb)
        OH, OW = self.out_size
        if (self.Hq, self.Wq) == (OH, OW) and yb.flags.c_contiguous:
            return yb.reshape(-1)
        grid = xp.zeros((yb.shape[0], self.Hq, self.Wq), dtype=yb.dtype)
        grid[:, :OH, :OW] = yb
        return grid.reshape(-1)


def argmax_into(xp: Any, best: Any, idx: Any, views: list[Any], better: Any, step: Any) -> None:
    """best = max of the views, idx = index of the first view that holds it (ties keep the
    first: a later view must be strictly greater).

    ``maximum``, not a masked copy, so NaN propagates; the index update is arithmetic
    (``idx = max(idx, better * k)``, valid because ``k`` only grows): masked copies such as
    ``copyto(where=)`` are ~20x slower on NumPy. ``better``/``step`` are scratch arrays of
    ``best``'s shape (bool, idx's dtype; ``step`` unused for a 1-byte ``idx``, neither for
    two views). Both max pooling paths take their window maxima with it (``pool.py``,
    ``_pool3.py``).
    """
    if len(views) == 1:
        best[...] = views[0]
        idx[...] = 0
        return
    if idx.dtype.itemsize == 1:  # the comparison's 0/1 bytes are the index already
        xp.greater(views[1], views[0], out=idx.view(xp.bool_))
    else:
        xp.greater(views[1], views[0], out=better)
        idx[...] = better
    xp.maximum(views[0], views[1], out=best)
    for k, v in enumerate(views[2:], start=2):
        xp.greater(v, best, out=better)
        xp.maximum(best, v, out=best)
        if idx.dtype.itemsize == 1:  # k times the comparison's own bytes: no bool cast
            step = better.view(idx.dtype)
            xp.multiply(step, idx.dtype.type(k), out=step)
        else:
            xp.multiply(better, idx.dtype.type(k), out=step)
        xp.maximum(idx, step, out=idx)


# ---------------------------------------------------------------- the pools' reference
def windows(x: Any, grid: WindowGrid, fill: float) -> Any:
    """Every pooling window of x (N, C, H, W) as a stack (KH*KW, N, C, OH, OW): entry
    ``k = i*KW + j`` holds each window's element at kernel offset (i, j) (row-major), the
    padding (and a ``ceil_mode`` window's overhang) read as ``fill``."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    (KH, KW), (sh, sw), (ph, pw), (OH, OW) = grid.kernel, grid.stride, grid.padding, grid.out_size
    Hp, Wp = max(H + 2 * ph, (OH - 1) * sh + KH), max(W + 2 * pw, (OW - 1) * sw + KW)
    xpad = xp.full((N, C, Hp, Wp), fill, dtype=x.dtype)  # (N, C, Hp, Wp)
    xpad[:, :, ph : ph + H, pw : pw + W] = x
    return xp.stack([xpad[:, :, _span(i, sh, OH), _span(j, sw, OW)] for i, j in _offsets(grid)])


def unwindows(gwin: Any, x_shape: tuple[int, ...], grid: WindowGrid) -> Any:
    """The adjoint of :func:`windows`: (KH*KW, N, C, OH, OW) -> gx (N, C, H, W), each entry
    added back where it was read (the padding's share dropped)."""
    xp = get_array_module(gwin)
    N, C, H, W = x_shape
    (KH, KW), (sh, sw), (ph, pw), (OH, OW) = grid.kernel, grid.stride, grid.padding, grid.out_size
    Hp, Wp = max(H + 2 * ph, (OH - 1) * sh + KH), max(W + 2 * pw, (OW - 1) * sw + KW)
    gpad = xp.zeros((N, C, Hp, Wp), dtype=gwin.dtype)  # (N, C, Hp, Wp)
    for k, (i, j) in enumerate(_offsets(grid)):
        gpad[:, :, _span(i, sh, OH), _span(j, sw, OW)] += gwin[k]
    return gpad[:, :, ph : ph + H, pw : pw + W]


def _offsets(grid: WindowGrid) -> list[tuple[int, int]]:
    """Kernel offsets (i, j) in row-major window order."""
    KH, KW = grid.kernel
    return [(i, j) for i in range(KH) for j in range(KW)]


def _span(start: int, step: int, count: int) -> slice:
    """The padded rows (or columns) that kernel offset ``start`` reads, one per output."""
    return slice(start, start + step * (count - 1) + 1, step)
