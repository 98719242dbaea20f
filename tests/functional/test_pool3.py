"""3x3 max pooling with stride 1 and padding 1 as flat passes (``_pool3``): against a loop
reference with ties, the saved offsets, and ``max_pool2d``'s chunked path through it."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad.functional import _pool3, _threads


def loop_pool(x):
    """x (n, H, W) -> y, k (the first maximum's offset i*3 + j in row-major window order,
    over the window's pixels inside the map), gx routing of ones: by loops."""
    n, H, W = x.shape
    y = np.empty_like(x)
    k = np.zeros(x.shape, dtype=np.int64)
    for q in range(n):
        for h in range(H):
            for v in range(W):
                best, arg = None, None
                for i in range(3):
                    for j in range(3):
                        hh, vv = h + i - 1, v + j - 1
                        if 0 <= hh < H and 0 <= vv < W and (best is None or x[q, hh, vv] > best):
                            best, arg = x[q, hh, vv], i * 3 + j
                y[q, h, v], k[q, h, v] = best, arg
    return y, k


def loop_route(gy, k):
    """Each window's gradient to its first maximum, by loops."""
    gx = np.zeros_like(gy)
    n, H, W = gy.shape
    for q in range(n):
        for h in range(H):
            for v in range(W):
                i, j = divmod(int(k[q, h, v]), 3)
                gx[q, h + i - 1, v + j - 1] += gy[q, h, v]
    return gx


@settings(deadline=None)
@given(
    n=st.integers(1, 3),
    H=st.integers(2, 6),
    W=st.integers(2, 6),
    levels=st.integers(1, 4),
    seed=st.integers(0, 99),
)
def test_flat_passes_match_loops_with_ties(n, H, W, levels, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, levels, (n, H, W)).astype(np.float64)  # few levels: ties everywhere
    y = np.empty_like(x)
    col, row = np.empty(x.shape, np.uint8), np.empty(x.shape, np.uint8)
    _pool3.forward(x, y, col, row)
    y_ref, k_ref = loop_pool(x)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(_pool3.window_offsets(col, row), k_ref)
    gy = rng.standard_normal(x.shape)
    gx = _pool3.backward(gy, col, row, np.empty_like(gy))
    np.testing.assert_allclose(gx, loop_route(gy, k_ref), rtol=1e-12, atol=1e-12)


def test_max_pool2d_takes_the_flat_passes_over_many_chunks(monkeypatch):
    """GoogLeNet's Inception pool, float32, several chunks on two threads, ties in most
    windows: the same output as the reference bit for bit, the same gradient to rounding,
    and the same double backward (the saved offsets give the reference's argmax)."""
    monkeypatch.setattr(_pool3, "CHUNK_ELEMENTS", 4096)
    monkeypatch.setattr(_threads, "PARALLEL_MIN_SIZE", 0)
    rng = np.random.default_rng(5)
    x = rng.integers(-2, 3, (4, 24, 14, 14)).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    out = []
    for reference in (False, True):
        xt = mg.tensor(x, requires_grad=True)
        gyt = mg.tensor(gy, requires_grad=True)
        with mg.reference_ops(reference):
            y = F.max_pool2d(xt, 3, 1, 1)
            assert y._ctx.same3 == (not reference)
            (gx,) = mg.grad(y, [xt], gyt, create_graph=True)  # gx as a function of gy
            (ggy,) = mg.grad((gx * gx).sum(), [gyt])  # 2 gx read back at each argmax
            y.backward(mg.tensor(gy))  # the path's own backward (the above: the graph's)
        out.append((y.numpy(), np.asarray(xt.grad), gx.numpy(), ggy.numpy()))
    for fast, ref in zip(*out):
        np.testing.assert_allclose(fast, ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(out[0][0], out[1][0])  # y: bit for bit


def test_nan_reaches_every_window_that_holds_it():
    x = np.arange(20.0).reshape(1, 1, 4, 5)
    x[0, 0, 0, 0] = np.nan  # a corner: the fixed-up first row and column read it
    y = F.max_pool2d(mg.tensor(x, requires_grad=True), 3, 1, 1)
    assert y._ctx.same3
    nan = np.isnan(y.numpy()[0, 0])
    np.testing.assert_array_equal(nan, [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0] * 5, [0] * 5])


def test_other_pools_keep_the_grid_path():
    x = mg.tensor(np.zeros((1, 2, 6, 6)), requires_grad=True)
    assert F.max_pool2d(x, 3, 1, 1)._ctx.same3
    assert not F.max_pool2d(x, 3, 2, 1)._ctx.same3  # stride 2
    assert not F.max_pool2d(x, 3, 1, 0)._ctx.same3  # no padding
    row = mg.tensor(np.zeros((1, 2, 1, 6)), requires_grad=True)
    assert not F.max_pool2d(row, 3, 1, 1)._ctx.same3  # one row: windows of one row
