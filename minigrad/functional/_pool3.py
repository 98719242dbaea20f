"""3x3 max pooling with stride 1 and padding 1 (the pool branch of every Inception block)
as flat shifted passes over the planes themselves; plain array code for ``pool.py``.

The general chunked path (:class:`~minigrad.functional._windows.WindowGrid`) copies each
chunk into a padded grid and back, row by row: at 14 or 16 px rows those short copies and
the grid's padding (a 16x16 grid for a 14x14 map: 31 % more positions) cost more than the
comparisons. Here the planes are read where they lie, flattened: a window row's three
columns are the flat views shifted by -1, 0, +1, its three rows by -W, 0, +W. Every
position is first computed as if it were inside the map; then the first and last column of
every row (or row of every plane), where a shifted view reads the next row (plane) instead
of padding, is recomputed from the neighbours that exist. So the maps never move and no
padding is read; the argmax keeps the first maximum among the window's own pixels, so a
window of -inf pixels routes its gradient to its first pixel (as the CUDA kernel and
PyTorch do; the reference reads the padding as -inf and routes it there). A window holding
a NaN outputs NaN; its gradient goes where the comparisons put it, as on the general
chunked path, not to the NaN as the reference's argmax sends it.

Both stages save a 1-byte offset per position (0, 1, 2: the window's first, middle, last
column or row), and the backward routes the gradient back through them with the same three
shifts; it needs no fixing at the borders, because no saved offset points outside the map.
"""

from __future__ import annotations

from typing import Any

from minigrad.backend import get_array_module
from minigrad.functional._windows import WindowGrid, argmax_into

#: elements per chunk of planes: each chunk's ~40 NumPy calls hold the GIL between their
#: loops, so smaller chunks leave the two threads queueing for it (2^17: 1.6-2x slower
#: than 2^19 at GoogLeNet's sizes; 2^18 and 2^20 within 5-25 % of it)
CHUNK_ELEMENTS = 1 << 19


def fits(grid: WindowGrid) -> bool:
    """This module's case: a 3x3 window, stride 1, padding 1, on maps of at least 2x2 (a
    window then never reaches both edges of the map)."""
    H, W = grid.x_shape[2:]
    same = grid.kernel == (3, 3) and grid.stride == (1, 1) and grid.padding == (1, 1)
    return same and H >= 2 and W >= 2 and grid.out_size == (H, W)


def _stage(xp: Any, a: Any, s: int, rows: Any, first: Any, last: Any, best: Any, arg: Any) -> None:
    """One separable stage on flat ``a``: best[p] = max(a[p - s], a[p], a[p + s]) over the
    neighbours inside the map. ``rows(v)`` views a flat array as (lines, length) with
    ``first``/``last`` picking the lines' first and last element (columns for ``s = 1``,
    rows of a plane for ``s = W``)."""
    n = a.shape[0]
    m = n - 2 * s
    better = xp.empty(m, dtype=bool)
    # everywhere as if inside: the middle of every window (p in [s, n - s))
    views = [a[:m], a[s : n - s], a[2 * s :]]
    argmax_into(xp, best[s : n - s], arg[s : n - s], views, better, None)  # arg: uint8
    A, B, R = rows(a), rows(best), rows(arg)
    # the first line element has no neighbour before it: window (p, p + s), offsets 1, 2
    argmax_into(xp, B[first(0)], R[first(0)], [A[first(0)], A[first(1)]], None, None)
    R[first(0)] += 1
    # the last has none after it: window (p - s, p), offsets 0, 1
    argmax_into(xp, B[last(0)], R[last(0)], [A[last(1)], A[last(0)]], None, None)


def forward(x3: Any, y: Any, col: Any, row: Any) -> None:
    """x3 (n, H, W) planes (H, W >= 2) -> ``y`` (n, H, W), and the offsets (uint8, (n, H, W)
    each) of the row stage (``col``: which column of a window row won) and the column
    stage (``row``: which window row won). Outputs are C-contiguous (a slice of planes)."""
    xp = get_array_module(x3)
    n, H, W = x3.shape
    flat, y1, col1, row1 = x3.reshape(-1), y.reshape(-1), col.reshape(-1), row.reshape(-1)
    m1 = xp.empty_like(flat)  # the row maxima
    _stage(xp, flat, 1, lambda v: v.reshape(n * H, W), _col, _col_end, m1, col1)
    _stage(xp, m1, W, lambda v: v.reshape(n, H * W), _row(W), _row_end(W), y1, row1)


def window_offsets(col: Any, row: Any) -> Any:
    """k = i*3 + j of each window's first maximum, (n, H, W) int64, from the saved offsets:
    ``i`` the winning row, ``j`` the column that won within it."""
    xp = get_array_module(col)
    n, H, W = col.shape
    i = row.astype(xp.int64)
    p = xp.arange(n * H * W).reshape(n, H, W) + (i - 1) * W  # the winning row's position
    return i * 3 + col.reshape(-1)[p]


def _col(k: int) -> tuple[slice, int]:
    return (slice(None), k)


def _col_end(k: int) -> tuple[slice, int]:
    return (slice(None), -1 - k)


def _row(W: int) -> Any:
    return lambda k: (slice(None), slice(k * W, (k + 1) * W))


def _row_end(W: int) -> Any:
    return lambda k: (slice(None), slice(-(k + 1) * W, -k * W or None))


def _route(xp: Any, g: Any, arg: Any, s: int, out: Any) -> None:
    """The adjoint of one stage: out[p + (k - 1) s] += g[p] where arg[p] == k."""
    n = g.shape[0]
    hit = xp.empty(n, dtype=bool)
    part = xp.empty(n, dtype=g.dtype)
    xp.equal(arg, 1, out=hit)
    xp.multiply(g, hit, out=out)  # the middle offset: no shift, written
    xp.equal(arg[s:], 0, out=hit[: n - s])
    xp.multiply(g[s:], hit[: n - s], out=part[: n - s])
    out[: n - s] += part[: n - s]
    xp.equal(arg[: n - s], 2, out=hit[: n - s])
    xp.multiply(g[: n - s], hit[: n - s], out=part[: n - s])
    out[s:] += part[: n - s]


def backward(gy3: Any, col: Any, row: Any, out: Any) -> Any:
    """gy3 (n, H, W) -> ``out`` (n, H, W): each window's gradient to its first maximum,
    through the saved row offsets, then the column offsets. Returns ``out``."""
    xp = get_array_module(gy3)
    n, H, W = gy3.shape
    gm1 = xp.empty(n * H * W, dtype=gy3.dtype)
    _route(xp, gy3.reshape(-1), row.reshape(-1), W, gm1)
    _route(xp, gm1, col.reshape(-1), 1, out.reshape(-1))
    return out
