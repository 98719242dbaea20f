"""Winograd's F(2x2, 3x3), F(4x4, 3x3) and F(2x2, 5x5): their matrices, their stages
against loops, each stage's adjoint, conv2d's chunked path through each against the
reference, and the rule that picks the tile per layer."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad.functional import _winograd as wg
from minigrad.functional import conv
from minigrad.gradcheck import gradcheck

#: (m, r): F(m x m, r x r)
TILES = pytest.mark.parametrize("m, r", [(2, 3), (4, 3), (2, 5)])


def loop_conv(xc, w):
    """xc (C, N, H, W), w (C_out, C, r, r) -> (C_out, N, H, W): padding r // 2, stride 1,
    by nested loops in float64."""
    C, N, H, W = xc.shape
    r = w.shape[-1]
    y = np.zeros((w.shape[0], N, H, W))
    for o in range(w.shape[0]):
        for n in range(N):
            for h in range(H):
                for v in range(W):
                    acc = 0.0
                    for c in range(C):
                        for i in range(r):
                            for j in range(r):
                                hh, vv = h + i - r // 2, v + j - r // 2
                                if 0 <= hh < H and 0 <= vv < W:
                                    acc += xc[c, n, hh, vv] * w[o, c, i, j]
                    y[o, n, h, v] = acc
    return y


@TILES
def test_the_matrices_compute_a_1d_convolution(m, r):
    """F(m, r) in one dimension: y = A^T [(G g) * (B^T d)], i.e.
    sum_k A^T[i, k] G[k, a] B^T[k, b] = [b == i + a] for every output i, tap a, input b."""
    f = wg.TRANSFORMS[m, r]
    AT, G, BT = np.array(f.AT), np.array(f.G), np.array(f.BT)
    assert (AT.shape, G.shape, BT.shape) == ((m, f.t), (f.t, r), (f.t, f.t))
    got = np.einsum("ik,ka,kb->iab", AT, G, BT)
    i, a, b = np.ogrid[:m, :r, : f.t]
    np.testing.assert_allclose(got, (b == i + a).astype(float), atol=1e-14)


def stages(xc, w, m):
    """y by the three stages: output_transform(U @ input_transform(x))."""
    grid = wg.TileGrid(*xc.shape[2:], m, w.shape[-1])
    y = np.empty((w.shape[0], *xc.shape[1:]))
    U = wg.weight_transform(w, grid.f)
    return wg.output_transform(U @ wg.input_transform(xc, grid), grid, y)


maps = st.tuples(st.integers(1, 9), st.integers(1, 9))


@TILES
@settings(deadline=None)
@given(
    C=st.integers(1, 3),
    C_out=st.integers(1, 3),
    N=st.integers(1, 2),
    hw=maps,
    seed=st.integers(0, 99),
)
def test_the_three_stages_compute_the_convolution(m, r, C, C_out, N, hw, seed):
    rng = np.random.default_rng(seed)
    xc = rng.standard_normal((C, N, *hw))
    w = rng.standard_normal((C_out, C, r, r))
    np.testing.assert_allclose(stages(xc, w, m), loop_conv(xc, w), rtol=1e-10, atol=1e-10)


@TILES
def test_weight_transform_is_G_w_G_transposed_per_channel_pair(m, r):
    f = wg.TRANSFORMS[m, r]
    G = np.array(f.G)
    w = np.random.default_rng(0).standard_normal((2, 3, r, r))
    U = wg.weight_transform(w, f)
    assert U.shape == (f.t**2, 2, 3)
    for o in range(2):
        for c in range(3):
            np.testing.assert_allclose(U[:, o, c].reshape(f.t, f.t), G @ w[o, c] @ G.T)


@TILES
def test_the_transforms_are_the_papers_matrices_on_one_tile(m, r):
    """An m x m map is one tile: V = B^T d B of its zero-padded t x t block, y = A^T M A."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 1, m, m))
    grid = wg.TileGrid(m, m, m, r)
    t = grid.t
    d = np.pad(x[0, 0], r // 2)  # the padded t x t block
    V = wg.input_transform(x, grid)
    assert V.shape == (t * t, 1, 1)
    BT, AT = np.array(grid.f.BT), np.array(grid.f.AT)
    np.testing.assert_allclose(V.reshape(t, t), BT @ d @ BT.T, rtol=1e-14)
    M = rng.standard_normal((t * t, 1, 1))
    y = wg.output_transform(M, grid, np.empty((1, 1, m, m)))
    np.testing.assert_allclose(y[0, 0], AT @ M.reshape(t, t) @ AT.T, rtol=1e-13)


def test_the_tile_grid_covers_the_map_with_part_tiles_at_the_edges():
    grid = wg.TileGrid(14, 9, 4)
    assert (grid.TH, grid.TW, grid.plane, grid.Hp, grid.Wp) == (4, 3, 12, 18, 14)
    assert grid.outputs(3, 0) == (slice(3, 14, 4), slice(0, 9, 4), 3, 3)
    assert grid.outputs(1, 1)[2:] == (4, 2)
    grid5 = wg.TileGrid(7, 6, 2, 5)  # F(2x2, 5x5): padding 2, tiles of 6 overlap by 4
    assert (grid5.TH, grid5.TW, grid5.t, grid5.pad, grid5.Hp, grid5.Wp) == (4, 3, 6, 2, 12, 10)


@TILES
@settings(deadline=None)
@given(C=st.integers(1, 3), N=st.integers(1, 2), hw=maps, seed=st.integers(0, 99))
def test_each_stage_and_its_adjoint_are_adjoint(m, r, C, N, hw, seed):
    """<T(a), b> = <a, T^T(b)> for the input, output and weight transforms."""
    rng = np.random.default_rng(seed)
    grid = wg.TileGrid(*hw, m, r)
    t2 = grid.t**2
    x = rng.standard_normal((C, N, *hw))
    V = wg.input_transform(x, grid)
    assert V.shape == (t2, C, N * grid.plane)
    gV = rng.standard_normal(V.shape)
    back = wg.input_transform_adjoint(gV, grid, np.empty_like(x))
    assert np.isclose((V * gV).sum(), (x * back).sum(), rtol=1e-10, atol=1e-10)

    M = rng.standard_normal((t2, C, N * grid.plane))
    gy = rng.standard_normal((C, N, *hw))
    y = wg.output_transform(M, grid, np.empty_like(gy))
    gM = wg.output_transform_adjoint(gy, grid)
    assert gM.shape == M.shape
    assert np.isclose((y * gy).sum(), (M * gM).sum(), rtol=1e-10, atol=1e-10)

    w = rng.standard_normal((2, C, r, r))
    gU = rng.standard_normal((t2, 2, C))
    lhs = (wg.weight_transform(w, grid.f) * gU).sum()
    rhs = (w * wg.weight_transform_adjoint(gU, grid.f)).sum()
    assert np.isclose(lhs, rhs, rtol=1e-10, atol=1e-10)


@contextlib.contextmanager
def winograd_everywhere(m):
    """Every 3x3 convolution with stride 1 and padding 1 takes Winograd's tile m on the
    chunked path, every 5x5 one with padding 2 F(2x2, 5x5) (the rule's map, pixel and
    channel thresholds at 0), restored after."""
    names = ("WINOGRAD", "WINOGRAD_TILE", "WINOGRAD_MIN_MAP", "WINOGRAD_MIN_PIXELS",
             "WINOGRAD_5X5_MIN_CHANNELS")  # fmt: skip
    saved = {name: getattr(conv, name) for name in names}
    conv.WINOGRAD, conv.WINOGRAD_TILE = True, m
    conv.WINOGRAD_MIN_MAP = conv.WINOGRAD_MIN_PIXELS = conv.WINOGRAD_5X5_MIN_CHANNELS = 0
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(conv, name, value)


def _conv_and_grads(x, w, b, gy, need, reference, retain=False):
    """y, [gx, gw, gb], the Winograd tile it ran (0: none) and whether its forward kept V
    (both read before backward frees the op's state); with ``retain``, backward runs twice
    through the retained graph and the gradients are the second pass's."""
    xt = mg.tensor(x, requires_grad=need[0])
    wt = mg.tensor(w, requires_grad=need[1])
    bt = None if b is None else mg.tensor(b, requires_grad=True)
    with mg.reference_ops(reference):
        y = F.conv2d(xt, wt, bt, 1, w.shape[-1] // 2)
        winograd, kept = y._ctx.winograd, getattr(y._ctx, "kept", None) is not None
        if retain:
            y.backward(gy, retain_graph=True)
            for t in (xt, wt, bt):
                if t is not None:
                    t.grad = None
        y.backward(gy)
    grads = [None if t is None or t.grad is None else np.asarray(t.grad) for t in (xt, wt, bt)]
    return y, grads, winograd, kept


@TILES
@settings(deadline=None, max_examples=30)
@given(
    N=st.integers(1, 3),
    C=st.integers(1, 4),
    C_out=st.integers(1, 4),
    hw=maps,
    bias=st.booleans(),
    need=st.sampled_from([(True, True), (True, False), (False, True)]),
    channel_major=st.booleans(),
    seed=st.integers(0, 99),
)
def test_conv2d_through_winograd_equals_the_reference(
    m, r, N, C, C_out, hw, bias, need, channel_major, seed
):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, *hw))
    if channel_major:  # as a layer hands it on; else a C-contiguous batch
        x = np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)
    w = rng.standard_normal((C_out, C, r, r))
    b = rng.standard_normal(C_out) if bias else None
    gy = rng.standard_normal((N, C_out, *hw))
    with winograd_everywhere(m):
        y, grads, winograd, _ = _conv_and_grads(x, w, b, gy, need, reference=False)
    assert winograd == m
    y_ref, grads_ref, _, _ = _conv_and_grads(x, w, b, gy, need, reference=True)
    np.testing.assert_allclose(y.numpy(), y_ref.numpy(), rtol=1e-10, atol=1e-10)
    for g, g_ref in zip(grads, grads_ref):
        assert (g is None) == (g_ref is None)
        if g is not None:
            np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-10)


@TILES
@pytest.mark.parametrize("retain", [False, True])
def test_backward_takes_the_v_forward_kept_within_the_budget(monkeypatch, m, r, retain):
    """Forward keeps each chunk's V for the weight gradient while WINOGRAD_KEEP_BYTES has
    room: the gradients are bit for bit those of a backward that transforms the input
    again (budget 0), also on a second pass through a retained graph (V was taken by the
    first); the bytes are reserved by the forward and given back with the graph."""
    rng = np.random.default_rng(4)
    N, C, H, W = 3, 2, 6, 7
    x, w = rng.standard_normal((N, C, H, W)), rng.standard_normal((4, C, r, r))
    gy = rng.standard_normal((N, 4, H, W))
    grid = wg.TileGrid(H, W, m, r)
    v_bytes = N * grid.t**2 * C * grid.plane * 8
    monkeypatch.setattr(conv, "WINOGRAD_CHUNK_ELEMENTS", 1)  # a chunk per image
    start = conv.winograd_kept_bytes()

    with winograd_everywhere(m):
        xt, wt = mg.tensor(x, requires_grad=True), mg.tensor(w, requires_grad=True)
        y = F.conv2d(xt, wt, None, 1, r // 2)
    assert sorted(y._ctx.kept) == [(n, n + 1) for n in range(N)]
    assert conv.winograd_kept_bytes() == start + v_bytes
    del y  # a graph dropped without backward gives the bytes back too
    assert conv.winograd_kept_bytes() == start

    both = (True, True)
    with winograd_everywhere(m):
        _, (gx, gw, _), tile, kept = _conv_and_grads(x, w, None, gy, both, False, retain)
    assert (tile, kept) == (m, True)
    assert conv.winograd_kept_bytes() == start  # backward released the graph
    monkeypatch.setattr(conv, "WINOGRAD_KEEP_BYTES", 0)
    with winograd_everywhere(m):
        _, (gx0, gw0, _), tile, kept = _conv_and_grads(x, w, None, gy, both, False, retain)
    assert (tile, kept) == (m, False)
    np.testing.assert_array_equal(gx, gx0)
    np.testing.assert_array_equal(gw, gw0)


def test_a_forward_past_the_budget_keeps_nothing(monkeypatch):
    monkeypatch.setattr(conv, "WINOGRAD_KEEP_BYTES", conv.winograd_kept_bytes() + 100)
    x = mg.tensor(np.ones((1, 2, 8, 8)), requires_grad=True)
    w = mg.tensor(np.ones((2, 2, 3, 3)), requires_grad=True)
    with winograd_everywhere(4):
        y = F.conv2d(x, w, None, 1, 1)
        frozen = F.conv2d(x, w.detach(), None, 1, 1)  # no weight gradient: no V to keep
    assert y._ctx.winograd == frozen._ctx.winograd == 4
    assert y._ctx.kept is None and frozen._ctx.kept is None


@TILES
def test_gradcheck_through_winograd(m, r):
    rng = np.random.default_rng(3)
    x = mg.tensor(rng.standard_normal((2, 2, 5, 6)), requires_grad=True)
    w = mg.tensor(rng.standard_normal((3, 2, r, r)), requires_grad=True)
    b = mg.tensor(rng.standard_normal(3), requires_grad=True)
    with winograd_everywhere(m):
        assert F.conv2d(x, w, b, 1, r // 2)._ctx.winograd == m
        assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, 1, r // 2), [x, w, b])


@pytest.mark.parametrize("m, r, bound", [(2, 3, 1e-5), (4, 3, 3e-5), (2, 5, 3e-5)])
def test_float32_rounding_through_winograd_stays_near_the_direct_sums(m, r, bound):
    """At a GoogLeNet layer's size the float32 results lie within a few float32 ulps,
    relative to the largest value, of the float64 result: im2col and F(2x2, 3x3) within
    1e-5, F(4x4, 3x3) and F(2x2, 5x5) (transforms that scale by up to 8 or 16 and 1/24)
    within 3e-5."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 64, 16, 16))
    w = rng.standard_normal((64, 64, r, r)) * 0.05 * 3 / r
    gy = rng.standard_normal((4, 64, 16, 16))
    exact = _conv_and_grads(x, w, None, gy, (True, True), reference=True)
    x32, w32, gy32 = (a.astype(np.float32) for a in (x, w, gy))
    for reference in (False, True):
        with winograd_everywhere(m):
            y, grads, winograd, _ = _conv_and_grads(x32, w32, None, gy32, (True, True), reference)
        assert winograd == (0 if reference else m)
        pairs = [(y.numpy(), exact[0].numpy())] + list(zip(grads[:2], exact[1][:2]))
        for got, want in pairs:
            error = np.abs(got - want).max() / np.abs(want).max()
            assert error < (1e-5 if reference else bound)


@pytest.mark.parametrize(
    "x_shape, w_shape, stride, padding, tile",
    [
        ((8, 64, 56, 56), (192, 64, 3, 3), (1, 1), (1, 1), 4),  # 224 px, 2nd stem conv
        ((8, 128, 28, 28), (192, 128, 3, 3), (1, 1), (1, 1), 4),  # 224 px, 3b
        ((32, 128, 32, 32), (192, 128, 3, 3), (1, 1), (1, 1), 4),  # CIFAR w1, 3b
        ((32, 160, 8, 8), (320, 160, 3, 3), (1, 1), (1, 1), 4),  # CIFAR w1, 5a
        ((64, 32, 32, 32), (48, 32, 3, 3), (1, 1), (1, 1), 4),  # CIFAR w0.25, 3b
        ((64, 24, 32, 32), (32, 24, 3, 3), (1, 1), (1, 1), 4),  # CIFAR w0.25, 3a: 24 channels
        ((64, 16, 32, 32), (48, 16, 3, 3), (1, 1), (1, 1), 0),  # CIFAR w0.25, stem: 16
        ((8, 160, 14, 14), (320, 160, 3, 3), (1, 1), (1, 1), 2),  # 224 px batch 8, 4e
        ((8, 48, 14, 14), (96, 48, 3, 3), (1, 1), (1, 1), 0),  # 14 px, under 64 channels
        ((4, 160, 14, 14), (320, 160, 3, 3), (1, 1), (1, 1), 0),  # batch 4: few tiles
        ((32, 192, 7, 7), (384, 192, 3, 3), (1, 1), (1, 1), 0),  # 7 px: mostly padding
        ((8, 32, 28, 28), (96, 32, 5, 5), (1, 1), (2, 2), 2),  # 224 px, 3b 5x5: F(2x2, 5x5)
        ((32, 16, 32, 32), (32, 16, 5, 5), (1, 1), (2, 2), 2),  # CIFAR w1, 3a 5x5: 16
        ((64, 8, 32, 32), (24, 8, 5, 5), (1, 1), (2, 2), 0),  # CIFAR w0.25, 3b: 8 channels
        ((8, 48, 7, 7), (128, 48, 5, 5), (1, 1), (2, 2), 0),  # 7 px, batch 8: few tiles
        ((8, 32, 28, 28), (96, 32, 5, 5), (1, 1), (1, 1), 0),  # 5x5, padding 1
        ((8, 64, 56, 56), (192, 64, 3, 3), (2, 2), (1, 1), 0),  # stride 2
        ((8, 64, 56, 56), (192, 64, 3, 3), (1, 1), (0, 0), 0),  # no padding
    ],
)
def test_winograd_takes_the_layers_it_pays_on(x_shape, w_shape, stride, padding, tile):
    assert conv.winograd_tile(x_shape, w_shape, stride, padding) == tile


def test_the_switch_turns_winograd_off(monkeypatch):
    monkeypatch.setattr(conv, "WINOGRAD", False)
    assert conv.winograd_tile((8, 64, 56, 56), (192, 64, 3, 3), (1, 1), (1, 1)) == 0


def test_a_forced_tile_applies_wherever_winograd_can_run(monkeypatch):
    monkeypatch.setattr(conv, "WINOGRAD_TILE", 2)
    assert conv.winograd_tile((8, 64, 56, 56), (192, 64, 3, 3), (1, 1), (1, 1)) == 2
    assert conv.winograd_tile((8, 64, 56, 56), (192, 64, 5, 5), (1, 1), (2, 2)) == 2
    assert conv.winograd_tile((8, 64, 56, 56), (192, 64, 5, 5), (1, 1), (1, 1)) == 0
