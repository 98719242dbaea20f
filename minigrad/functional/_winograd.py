"""Winograd's F(2x2, 3x3): a 3x3 convolution (stride 1, padding 1) with 2.25x fewer
multiply-adds; plain array code for ``conv.py``, no autograd.

Each 2x2 block of outputs ("tile") reads a 4x4 block ``d`` of the padded input (tiles
overlap by 2). With the constant matrices below, for one input and one output channel,

    y_tile = A^T [ (G w G^T) * (B^T d B) ] A            (* elementwise, 4x4)

so a convolution is three stages, each linear:

    V = input_transform(x)     (16, C, T)       B^T d B of every tile
    M[k] = U[k] @ V[k]         (16, C_out, T)   U = weight_transform(w): G w G^T
    y = output_transform(M)    (C_out, N, H, W) A^T M A, the tiles back in place

16 products of (C_out, C) @ (C, T), T about N*H*W/4 tiles (the positions of a
:class:`TileGrid`), instead of one of (C_out, 9C) @ (9C, N*H*W): 2.25x fewer
multiply-adds. Backward is the adjoint of each stage, in reverse:
``gM = output_transform_adjoint(gy)`` (A gy A^T), then ``gU[k] = gM[k] @ V[k]^T`` ->
``gw = weight_transform_adjoint(gU)`` (G^T gU G), and ``gV[k] = U[k]^T @ gM[k]`` ->
``gx = input_transform_adjoint(gV)`` (B gV B^T, the overlapping tiles added back). Each
transform is separable (rows, then columns), a few additions of whole shifted slices of
the input's stride phases (:class:`TileGrid`); no loop over tiles, images or pixels.

Layout: activations channel-major, x (C, N, H, W); an odd H or W gets a last half tile
(zeros past the edge). The transforms add and subtract only (B, A) or scale by 1/2 (G),
so float32 rounding stays close to the direct sum's (the tests bound it).
"""

from __future__ import annotations

from typing import Any

from minigrad.backend import get_array_module
from minigrad.functional._windows import WindowGrid

#: G (4x3): the weight transform; B^T (4x4): the input transform; A^T (2x4): the output
G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))
BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
AT = ((1, 1, 1, 0), (0, 1, -1, -1))


class TileGrid(WindowGrid):
    """The tiles of an (H, W) map: the 4x4 windows at stride 2 with padding 1, one per 2x2
    block of outputs (``TH, TW = ceil(H/2), ceil(W/2)`` of them), as a
    :class:`~minigrad.functional._windows.WindowGrid`. Its stride phases
    ``Q[ph, pw][a, b] = x_padded[2a + ph, 2b + pw]`` are ``(Hq, Wq) = (TH + 1, TW + 1)`` per
    plane, and element ``i, j`` of every tile's 4x4 block is phase ``(i % 2, j % 2)``
    shifted by ``(i // 2) * Wq + j // 2`` in the flat (C, N, Hq, Wq) array
    (``row_offsets``, ``col_offsets``): ONE contiguous slice covers that element of every
    tile of every plane, so each transform step is a long 1-D NumPy pass. Grid positions
    with ``a = TH`` or ``b = TW`` are not tiles; their values are never read back
    (forward) or are zeros (backward).
    """

    def __init__(self, H: int, W: int) -> None:
        self.TH, self.TW = -(-H // 2), -(-W // 2)
        super().__init__((1, 1, H, W), (4, 4), (2, 2), (1, 1), (self.TH, self.TW))
        self.H, self.W = H, W


def _kron_g(xp: Any, dtype: Any) -> Any:
    """(16, 9): row ``4r + s``, column ``3i + j`` holds ``G[r, i] * G[s, j]``, so that
    ``(G w G^T)[r, s]`` is row ``4r + s`` times ``w`` flattened."""
    g = xp.asarray(G, dtype=dtype)
    return xp.kron(g, g)


def weight_transform(w: Any) -> Any:
    """(C_out, C, 3, 3) -> U (16, C_out, C): U[4r + s] = (G w G^T)[r, s], one product
    ``kron(G, G) @ w9^T`` with w9 = w as (C_out*C, 9) (a transposed view BLAS reads as
    it is)."""
    xp = get_array_module(w)
    C_out, C = w.shape[:2]
    return (_kron_g(xp, w.dtype) @ w.reshape(C_out * C, 9).T).reshape(16, C_out, C)


def weight_transform_adjoint(gu: Any) -> Any:
    """The adjoint of :func:`weight_transform`: gU (16, C_out, C) -> gw (C_out, C, 3, 3),
    gw = G^T gU G, as ``gU^T @ kron(G, G)``."""
    xp = get_array_module(gu)
    C_out, C = gu.shape[1:]
    return (gu.reshape(16, C_out * C).T @ _kron_g(xp, gu.dtype)).reshape(C_out, C, 3, 3)


def _bt(d0: Any, d1: Any, d2: Any, d3: Any, out: list[Any]) -> None:
    """out[r] = sum_i B^T[r, i] d_i: d0 - d2, d1 + d2, d2 - d1, d1 - d3."""
    xp = get_array_module(d0)
    xp.subtract(d0, d2, out=out[0])
    xp.add(d1, d2, out=out[1])
    xp.subtract(d2, d1, out=out[2])
    xp.subtract(d1, d3, out=out[3])


def _b(g0: Any, g1: Any, g2: Any, g3: Any) -> tuple[Any, Any, Any, Any]:
    """The adjoint of :func:`_bt`: d_i = sum_r B^T[r, i] g_r = g0, g1 - g2 + g3,
    g1 + g2 - g0, -g3."""
    return g0, g1 - g2 + g3, g1 + g2 - g0, -g3


def input_transform(x: Any, grid: TileGrid) -> Any:
    """x (C, N, H, W), padding 1 -> V (16, C, N*Hq*Wq): B^T d B of every tile, on the
    grid (see :class:`TileGrid`).

    Rows first: ``R[r][pw] = B^T`` over a tile's 4 rows, for both column phases ``pw``;
    then columns: ``V[4r + s] = B^T`` over ``R[r]``'s 4 columns. Every operand is a
    shifted flat slice.
    """
    xp = get_array_module(x)
    C, N = x.shape[:2]
    q = grid.split_planes(x, 0.0)  # (2, 2, L)
    L = q.shape[2]
    L1 = L - grid.Wq  # positions whose tile rows all lie inside the array
    R = xp.empty((4, 2, L1), dtype=x.dtype)
    for pw in range(2):
        rows = [q[ph, pw, s : s + L1] for ph, s in grid.row_offsets]
        _bt(*rows, [R[r, pw] for r in range(4)])
    L2 = L1 - 1  # ... and whose tile columns too
    V = xp.empty((16, L), dtype=x.dtype)
    V[:, L2:] = 0  # the last plane's last grid positions: no tile
    for r in range(4):
        cols = [R[r, pw, s : s + L2] for pw, s in grid.col_offsets]
        _bt(*cols, [V[4 * r + s, :L2] for s in range(4)])
    return V.reshape(16, C, N * grid.plane)


def input_transform_adjoint(gv: Any, grid: TileGrid, out: Any) -> Any:
    """The adjoint of :func:`input_transform`: gV (16, C, N*Hq*Wq), zero at the grid
    positions that are no tile, -> ``out`` (C, N, H, W): B gV B^T of every tile, the
    overlapping tiles added. Returns ``out``."""
    xp = get_array_module(gv)
    L = gv.shape[1] * gv.shape[2]
    v = gv.reshape(4, 4, L)
    gR = xp.empty((4, 2, L), dtype=gv.dtype)
    for r in range(4):  # columns: piece j lands at column phase j % 2, shifted by j // 2
        g0, g1, g2, g3 = _b(*v[r])
        gR[r, 0] = g0
        gR[r, 0, 1:] += g2[:-1]
        gR[r, 1] = g1
        gR[r, 1, 1:] += g3[:-1]
    gq = xp.empty((2, 2, L), dtype=gv.dtype)
    s = grid.Wq
    for pw in range(2):  # rows: piece i lands at row phase i % 2, shifted by (i // 2) Wq
        d0, d1, d2, d3 = _b(*gR[:, pw])
        gq[0, pw] = d0
        gq[0, pw, s:] += d2[:-s]
        gq[1, pw] = d1
        gq[1, pw, s:] += d3[:-s]
    grid.merge_planes(gq, out)
    return out


def output_transform(m: Any, grid: TileGrid, out: Any) -> Any:
    """M (16, C_out, N*Hq*Wq) -> ``out`` (C_out, N, H, W) (a view is fine): A^T M A of
    every tile, each of its 4 outputs written to its place. Returns ``out``."""
    xp = get_array_module(m)
    C_out, N = out.shape[:2]
    m3 = m.reshape(4, 4, -1)
    S = xp.empty((2, 4, m3.shape[2]), dtype=m.dtype)  # S[p, s] = sum_r A^T[p, r] M[r, s]
    for s in range(4):
        xp.add(m3[1, s], m3[2, s], out=S[0, s])
        S[0, s] += m3[0, s]
        xp.subtract(m3[1, s], m3[2, s], out=S[1, s])
        S[1, s] -= m3[3, s]
    y = xp.empty((2, 2, m3.shape[2]), dtype=m.dtype)  # y[p, q] = sum_s S[p, s] A[s, q]
    for p in range(2):
        xp.add(S[p, 1], S[p, 2], out=y[p, 0])
        y[p, 0] += S[p, 0]
        xp.subtract(S[p, 1], S[p, 2], out=y[p, 1])
        y[p, 1] -= S[p, 3]
    y6 = y.reshape(2, 2, C_out, N, grid.Hq, grid.Wq)
    for p in range(2):
        for q in range(2):
            rows, cols = slice(p, grid.H, 2), slice(q, grid.W, 2)
            nr, nc = len(range(p, grid.H, 2)), len(range(q, grid.W, 2))
            out[:, :, rows, cols] = y6[p, q, :, :, :nr, :nc]
    return out


def output_transform_adjoint(gy: Any, grid: TileGrid) -> Any:
    """The adjoint of :func:`output_transform`: gy (C_out, N, H, W) -> gM (16, C_out,
    N*Hq*Wq), A gY A^T of every tile, zeros where the grid has no tile or the tile no
    output (past an odd edge)."""
    xp = get_array_module(gy)
    C_out, N = gy.shape[:2]
    g = xp.zeros((2, 2, C_out, N, grid.Hq, grid.Wq), dtype=gy.dtype)
    for p in range(2):
        for q in range(2):
            nr, nc = len(range(p, grid.H, 2)), len(range(q, grid.W, 2))
            g[p, q, :, :, :nr, :nc] = gy[:, :, p : grid.H : 2, q : grid.W : 2]
    g = g.reshape(2, 2, -1)
    L = g.shape[2]
    T = xp.empty((4, 2, L), dtype=gy.dtype)  # T[r, q] = sum_p A[r, p] gY[p, q]
    for q in range(2):
        T[0, q] = g[0, q]
        xp.add(g[0, q], g[1, q], out=T[1, q])
        xp.subtract(g[0, q], g[1, q], out=T[2, q])
        xp.negative(g[1, q], out=T[3, q])
    gm = xp.empty((4, 4, L), dtype=gy.dtype)  # gM[r, s] = sum_q T[r, q] A[s, q]
    for r in range(4):
        gm[r, 0] = T[r, 0]
        xp.add(T[r, 0], T[r, 1], out=gm[r, 1])
        xp.subtract(T[r, 0], T[r, 1], out=gm[r, 2])
        xp.negative(T[r, 1], out=gm[r, 3])
    return gm.reshape(16, C_out, L // C_out)
