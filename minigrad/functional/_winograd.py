"""Winograd's F(m x m, r x r): an r x r convolution (stride 1, padding r // 2) with fewer
multiply-adds: F(2x2, 3x3) 2.25x, F(4x4, 3x3) 4x, F(2x2, 5x5) 2.8x fewer; plain array code
for ``conv.py``, no autograd.

Each m x m block of outputs ("tile") reads a t x t block ``d`` (t = m + r - 1) of the
padded input (tiles overlap by r - 1). With the constant matrices of :class:`Transform`,
for one input and one output channel,

    y_tile = A^T [ (G w G^T) * (B^T d B) ] A            (* elementwise, t x t)

so a convolution is three stages, each linear:

    V = input_transform(x)     (t*t, C, T)      B^T d B of every tile
    M[k] = U[k] @ V[k]         (t*t, C_out, T)  U = weight_transform(w): G w G^T
    y = output_transform(M)    (C_out, N, H, W) A^T M A, the tiles back in place

t*t products of (C_out, C) @ (C, T), T = N * ceil(H/m) * ceil(W/m) tiles, instead of one
of (C_out, r*r*C) @ (r*r*C, N*H*W). Backward is the adjoint of each stage, in reverse:
``gM = output_transform_adjoint(gy)`` (A gy A^T), then ``gU[k] = gM[k] @ V[k]^T`` ->
``gw = weight_transform_adjoint(gU)`` (G^T gU G), and ``gV[k] = U[k]^T @ gM[k]`` ->
``gx = input_transform_adjoint(gV)`` (B gV B^T, the overlapping tiles added back).

Each transform is one small matrix product over all tiles at once: the two-sided
``B^T d B`` is ``kron(B^T, B^T)`` (t*t, t*t) times the tiles flattened, (t*t, C*T), so
BLAS does the arithmetic and NumPy only the t*t strided copies that gather the tiles
(``x_padded[i::m, j::m]`` is element (i, j) of every tile) or put them back; no loop
over tiles, images or pixels.

Layout: activations channel-major, x (C, N, H, W); a map whose size m does not divide
gets a last part tile (zeros past the edge). F(2x2, 3x3): the transforms add and subtract
only (B, A) or halve (G); F(4x4, 3x3) and F(2x2, 5x5) share their six points (0, 1, -1,
2, -2 and infinity: the same B^T) and multiply by up to 8 or 16 and divide by 24, so their
float32 rounding is a few times the direct sum's (the tests bound each).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np

from minigrad.backend import get_array_module


class Transform(NamedTuple):
    """The matrices of F(m x m, r x r) (Lavin & Gray, 2016): ``A^T`` (m, t), ``G`` (t, r),
    ``B^T`` (t, t), t = m + r - 1. With points p_k and infinity: ``A^T[i, k] = p_k^i``,
    ``G[k, a] = p_k^a / prod_{j != k} (p_k - p_j)``, and ``B^T`` solves
    ``sum_k A^T[i, k] G[k, a] B^T[k, b] = [b == i + a]`` (the tests check it)."""

    m: int
    r: int
    AT: tuple[tuple[float, ...], ...]
    G: tuple[tuple[float, ...], ...]
    BT: tuple[tuple[float, ...], ...]

    @property
    def t(self) -> int:
        """The tile's input side: m + r - 1."""
        return self.m + self.r - 1


#: F(2x2, 3x3): interpolation points 0, 1, -1
F2 = Transform(
    2,
    3,
    AT=((1, 1, 1, 0), (0, 1, -1, -1)),
    G=((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0)),
    BT=((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
)
#: F(4x4, 3x3): interpolation points 0, 1, -1, 2, -2
F4 = Transform(
    4,
    3,
    AT=((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1)),
    G=(
        (1 / 4, 0.0, 0.0),
        (-1 / 6, -1 / 6, -1 / 6),
        (-1 / 6, 1 / 6, -1 / 6),
        (1 / 24, 1 / 12, 1 / 6),
        (1 / 24, -1 / 12, 1 / 6),
        (0.0, 0.0, 1.0),
    ),
    BT=(
        (4, 0, -5, 0, 1, 0),
        (0, -4, -4, 1, 1, 0),
        (0, 4, -4, -1, 1, 0),
        (0, -2, -1, 2, 1, 0),
        (0, 2, -1, -2, 1, 0),
        (0, 4, 0, -5, 0, 1),
    ),
)
#: F(2x2, 5x5): the points of F4, so the same B^T (t = 6)
F2_5 = Transform(
    2,
    5,
    AT=((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 1)),
    G=(
        (1 / 4, 0.0, 0.0, 0.0, 0.0),
        (-1 / 6, -1 / 6, -1 / 6, -1 / 6, -1 / 6),
        (-1 / 6, 1 / 6, -1 / 6, 1 / 6, -1 / 6),
        (1 / 24, 1 / 12, 1 / 6, 1 / 3, 2 / 3),
        (1 / 24, -1 / 12, 1 / 6, -1 / 3, 2 / 3),
        (0.0, 0.0, 0.0, 0.0, 1.0),
    ),
    BT=F4.BT,
)
#: the transforms by (m, r): output tile side and kernel side
TRANSFORMS = {(2, 3): F2, (4, 3): F4, (2, 5): F2_5}


class TileGrid:
    """The tiles of an (H, W) map for F(m x m, r x r): ``TH, TW = ceil(H/m), ceil(W/m)`` of
    them, ``plane = TH * TW`` per image. Tile ``(a, b)`` reads rows ``m*a .. m*a + t - 1``
    and columns ``m*b .. m*b + t - 1`` of the input padded by ``pad = r // 2`` above and
    left and by ``Hp - pad - H`` below, ``Wp - pad - W`` right (``Hp, Wp = m*TH + r - 1,
    m*TW + r - 1``)."""

    def __init__(self, H: int, W: int, m: int = 2, r: int = 3) -> None:
        self.f = TRANSFORMS[m, r]
        self.m, self.t, self.pad, self.H, self.W = m, self.f.t, r // 2, H, W
        self.TH, self.TW = -(-H // m), -(-W // m)
        self.Hp, self.Wp = m * self.TH + r - 1, m * self.TW + r - 1
        self.plane = self.TH * self.TW

    def element(self, i: int, j: int) -> tuple[slice, slice]:
        """Element (i, j) of every tile in the padded map: rows ``i::m``, columns ``j::m``."""
        m = self.m
        return slice(i, i + m * self.TH, m), slice(j, j + m * self.TW, m)

    def outputs(self, p: int, q: int) -> tuple[slice, slice, int, int]:
        """Output (p, q) of every tile in the (H, W) map: its rows and columns, and how
        many tile rows and columns have it (fewer at an edge that m does not divide)."""
        m, H, W = self.m, self.H, self.W
        return slice(p, H, m), slice(q, W, m), len(range(p, H, m)), len(range(q, W, m))


@functools.cache
def _kron_host(mat: tuple[tuple[float, ...], ...], dtype: str) -> np.ndarray:
    """kron(mat, mat) in ``dtype``, made once per matrix and dtype (read-only)."""
    a = np.asarray(mat, dtype=dtype)
    k = np.kron(a, a)
    k.flags.writeable = False
    return k


def _kron(xp: Any, mat: Any, dtype: Any) -> Any:
    """kron(mat, mat): the two-sided ``mat @ X @ mat^T`` on X flattened (row-major); the
    cached host array itself for NumPy (a transform calls it once per chunk)."""
    return xp.asarray(_kron_host(mat, np.dtype(dtype).str))


def weight_transform(w: Any, f: Transform = F2) -> Any:
    """(C_out, C, r, r) -> U (t*t, C_out, C): ``U[t*i + j] = (G w G^T)[i, j]``, one product
    ``kron(G, G) @ wr^T`` with wr = w as (C_out*C, r*r) (a transposed view BLAS reads as
    it is)."""
    xp = get_array_module(w)
    C_out, C = w.shape[:2]
    wr = w.reshape(C_out * C, f.r**2)
    return (_kron(xp, f.G, w.dtype) @ wr.T).reshape(f.t**2, C_out, C)


def weight_transform_adjoint(gu: Any, f: Transform = F2) -> Any:
    """The adjoint of :func:`weight_transform`: gU (t*t, C_out, C) -> gw (C_out, C, r, r),
    gw = G^T gU G, as ``gU^T @ kron(G, G)``."""
    xp = get_array_module(gu)
    C_out, C = gu.shape[1:]
    gw = gu.reshape(f.t**2, C_out * C).T @ _kron(xp, f.G, gu.dtype)
    return gw.reshape(C_out, C, f.r, f.r)


def input_transform(x: Any, grid: TileGrid) -> Any:
    """x (C, N, H, W), padding r // 2 -> V (t*t, C, N*plane): B^T d B of every tile.

    The padded map once, its t*t tile elements gathered as D (t, t, C, N, TH, TW), then
    ``V = kron(B^T, B^T) @ D`` as one product over all tiles.
    """
    xp = get_array_module(x)
    C, N, H, W = x.shape
    t, p = grid.t, grid.pad
    xpad = xp.empty((C, N, grid.Hp, grid.Wp), dtype=x.dtype)
    xpad[:, :, :p] = 0
    xpad[:, :, H + p :] = 0
    xpad[:, :, p : H + p, :p] = 0
    xpad[:, :, p : H + p, W + p :] = 0
    xpad[:, :, p : H + p, p : W + p] = x
    D = xp.empty((t, t, C, N, grid.TH, grid.TW), dtype=x.dtype)
    for i in range(t):
        for j in range(t):
            D[i, j] = xpad[(slice(None), slice(None), *grid.element(i, j))]
    V = _kron(xp, grid.f.BT, x.dtype) @ D.reshape(t * t, -1)
    return V.reshape(t * t, C, N * grid.plane)


def input_transform_adjoint(gv: Any, grid: TileGrid, out: Any) -> Any:
    """The adjoint of :func:`input_transform`: gV (t*t, C, N*plane) -> ``out`` (C, N, H, W):
    ``gD = kron(B^T, B^T)^T @ gV`` (B gV B^T of every tile), each tile element added back
    to its place in the padded map, the padding dropped. Returns ``out``."""
    xp = get_array_module(gv)
    C, N, H, W = out.shape
    m, t, p = grid.m, grid.t, grid.pad
    gD = (_kron(xp, grid.f.BT, gv.dtype).T @ gv.reshape(t * t, -1)).reshape(
        t, t, C, N, grid.TH, grid.TW
    )
    g = xp.empty((C, N, grid.Hp, grid.Wp), dtype=gv.dtype)
    g[:, :, m * grid.TH :] = 0  # the last r - 1 rows and columns: only added to
    g[:, :, :, m * grid.TW :] = 0
    for i in range(t):  # elements (i < m, j < m) of all tiles cover the rest exactly once
        for j in range(t):
            where = (slice(None), slice(None), *grid.element(i, j))
            if i < m and j < m:
                g[where] = gD[i, j]
            else:
                g[where] += gD[i, j]
    out[...] = g[:, :, p : H + p, p : W + p]
    return out


def output_transform(mt: Any, grid: TileGrid, out: Any) -> Any:
    """M (t*t, C_out, N*plane) -> ``out`` (C_out, N, H, W) (a view is fine): A^T M A of
    every tile, ``kron(A^T, A^T) @ M`` as one product, each of its m*m outputs written
    to its place. Returns ``out``."""
    xp = get_array_module(mt)
    C_out, N = out.shape[:2]
    m, t = grid.m, grid.t
    Y = _kron(xp, grid.f.AT, mt.dtype) @ mt.reshape(t * t, -1)
    Y = Y.reshape(m, m, C_out, N, grid.TH, grid.TW)
    for p in range(m):
        for q in range(m):
            rows, cols, nr, nc = grid.outputs(p, q)
            out[:, :, rows, cols] = Y[p, q, :, :, :nr, :nc]
    return out


def output_transform_adjoint(gy: Any, grid: TileGrid) -> Any:
    """The adjoint of :func:`output_transform`: gy (C_out, N, H, W) -> gM (t*t, C_out,
    N*plane): each tile's m*m outputs gathered (zeros past an edge m does not divide),
    then ``kron(A^T, A^T)^T @`` them."""
    xp = get_array_module(gy)
    C_out, N = gy.shape[:2]
    m, t = grid.m, grid.t
    g = xp.empty((m, m, C_out, N, grid.TH, grid.TW), dtype=gy.dtype)
    for p in range(m):
        for q in range(m):
            rows, cols, nr, nc = grid.outputs(p, q)
            g[p, q, :, :, :nr, :nc] = gy[:, :, rows, cols]
            g[p, q, :, :, nr:] = 0
            g[p, q, :, :, :nr, nc:] = 0
    gm = _kron(xp, grid.f.AT, gy.dtype).T @ g.reshape(m * m, -1)
    return gm.reshape(t * t, C_out, N * grid.plane)
