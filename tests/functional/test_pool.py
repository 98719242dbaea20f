"""max_pool2d, avg_pool2d, adaptive_avg_pool2d: loop references, gradients, properties, errors.

The nested-loop references here check both paths' forward (the default fast path and the
library's reference, ``mg.reference_ops()``); the library's reference is the oracle of the
fast path's gradients (and ``tests/functional/test_reference_paths.py`` compares the two
over drawn geometries).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _host import to_host
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad.gradcheck import gradcheck
from minigrad.testing import float_arrays, pool_geometries, separated_arrays

fixture_ok = settings(
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ]
)


def naive_pool(x, k, s, p, ceil_mode, mode, count_include_pad=True):
    """Float64 max/avg pooling by nested loops, following PyTorch's window rules."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = k, s, p

    def out_size(size, k, s, p):
        span = size + 2 * p - k
        n = (math.ceil(span / s) if ceil_mode else span // s) + 1
        if ceil_mode and (n - 1) * s >= size + p:  # last window starts in the right padding
            n -= 1
        return n

    OH, OW = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    y = np.zeros((N, C, OH, OW))
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    h0, w0 = i * sh - ph, j * sw - pw
                    h1, w1 = min(h0 + kh, H + ph), min(w0 + kw, W + pw)  # clipped at padding
                    padded_count = (h1 - h0) * (w1 - w0)
                    h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, H), min(w1, W)
                    window = [x[n, c, h, w] for h in range(h0, h1) for w in range(w0, w1)]
                    if mode == "max":
                        y[n, c, i, j] = max(window)
                    else:
                        div = padded_count if count_include_pad else len(window)
                        y[n, c, i, j] = sum(window) / div
    return y


def naive_adaptive(x, OH, OW):
    N, C, H, W = x.shape
    y = np.zeros((N, C, OH, OW))
    for i in range(OH):
        for j in range(OW):
            h0, h1 = (i * H) // OH, -(-((i + 1) * H) // OH)
            w0, w1 = (j * W) // OW, -(-((j + 1) * W) // OW)
            for n in range(N):
                for c in range(C):
                    y[n, c, i, j] = sum(
                        x[n, c, h, w] for h in range(h0, h1) for w in range(w0, w1)
                    ) / ((h1 - h0) * (w1 - w0))
    return y


def t64(a, device, grad=False):
    return mg.tensor(np.asarray(a, dtype=np.float64), device=device, requires_grad=grad)


CASES = [
    # shape, kernel, stride, padding, ceil_mode
    ((2, 2, 5, 7), (3, 3), (2, 2), (1, 1), True),
    ((1, 2, 6, 6), (2, 2), (2, 2), (1, 1), False),
    ((1, 1, 7, 5), (3, 3), (3, 3), (1, 1), True),  # ceil_mode window clipped at the padding
    ((1, 1, 5, 5), (2, 2), (2, 2), (1, 1), True),  # a last window in the padding is dropped
    ((2, 1, 4, 6), (2, 3), (1, 2), (0, 1), False),  # non-square everything
    ((1, 3, 8, 8), (3, 3), (1, 1), (1, 1), False),  # the Inception pool branch
]


@pytest.mark.parametrize("reference", [False, True])
@pytest.mark.parametrize("shape, k, s, p, ceil_mode", CASES)
def test_max_pool_matches_loop_reference(device, shape, k, s, p, ceil_mode, reference):
    x = -np.abs(np.random.default_rng(0).standard_normal(shape)) - 0.1  # all negative
    with mg.reference_ops(reference):
        y = F.max_pool2d(t64(x, device), k, s, p, ceil_mode)
    np.testing.assert_array_equal(y.numpy(), naive_pool(x, k, s, p, ceil_mode, "max"))
    assert (y.numpy() < 0).all()  # padding is -inf, never 0


@pytest.mark.parametrize("reference", [False, True])
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("shape, k, s, p, ceil_mode", CASES)
def test_avg_pool_matches_loop_reference(
    device, shape, k, s, p, ceil_mode, count_include_pad, reference
):
    x = np.random.default_rng(1).standard_normal(shape) - 0.5
    with mg.reference_ops(reference):
        y = F.avg_pool2d(t64(x, device), k, s, p, ceil_mode, count_include_pad)
    ref = naive_pool(x, k, s, p, ceil_mode, "avg", count_include_pad)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)


def test_avg_pool_divisor_of_a_window_clipped_by_ceil_mode(device):
    # H=3, k=2, s=2, p=0, ceil: the last window covers row 2 only and divides by 1 (not 4)
    x = t64(np.arange(9.0).reshape(1, 1, 3, 3), device)
    y = F.avg_pool2d(x, 2, 2, 0, ceil_mode=True, count_include_pad=True).numpy()
    np.testing.assert_allclose(y[0, 0], [[2.0, 3.5], [6.5, 8.0]])


@fixture_ok
@given(g=pool_geometries(), data=st.data(), reference=st.booleans())
def test_pools_match_loop_reference_on_drawn_geometries(device, g, data, reference):
    x = data.draw(float_arrays(g.input_shape))
    args = ((g.kernel,) * 2, (g.stride,) * 2, (g.padding,) * 2, g.ceil_mode)
    with mg.reference_ops(reference):  # the fast path, or the library's reference
        y = F.max_pool2d(t64(x, device), g.kernel, g.stride, g.padding, g.ceil_mode)
        assert y.shape == g.output_shape
        np.testing.assert_array_equal(y.numpy(), naive_pool(x, *args, "max"))
        cip = data.draw(st.booleans())
        y = F.avg_pool2d(t64(x, device), g.kernel, g.stride, g.padding, g.ceil_mode, cip)
        ref = naive_pool(x, *args, "avg", cip)
        np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)


@fixture_ok
@given(g=pool_geometries(max_size=5), data=st.data())
def test_max_pool_gradcheck(device, g, data):
    x = t64(data.draw(separated_arrays(g.input_shape)), device, grad=True)
    assert gradcheck(lambda t: F.max_pool2d(t, g.kernel, g.stride, g.padding, g.ceil_mode), [x])


@fixture_ok
@given(g=pool_geometries(max_size=5), data=st.data(), cip=st.booleans())
def test_avg_pool_gradcheck(device, g, data, cip):
    x = t64(data.draw(float_arrays(g.input_shape)), device, grad=True)
    assert gradcheck(
        lambda t: F.avg_pool2d(t, g.kernel, g.stride, g.padding, g.ceil_mode, cip), [x]
    )


def test_max_pool_gradient_goes_to_the_first_maximum(device):
    # ties everywhere: each window's gradient goes to its top-left element (row-major first)
    x = t64(np.ones((1, 1, 4, 4)), device, grad=True)
    F.max_pool2d(x, 2).backward(mg.ones(1, 1, 2, 2, device=device).double())
    expected = np.zeros((4, 4))
    expected[::2, ::2] = 1
    np.testing.assert_array_equal(to_host(x.grad)[0, 0], expected)
    # overlapping windows (stride 1); the top-right window has a tie 5 = 5 in its first row,
    # and the left 5 (seen first) takes the gradient of both windows that contain it
    x = t64([[[[0.0, 5.0, 5.0], [1.0, 2.0, 3.0], [5.0, 0.0, 0.0]]]], device, grad=True)
    F.max_pool2d(x, 2, stride=1).backward(mg.ones(1, 1, 2, 2, device=device).double())
    np.testing.assert_array_equal(to_host(x.grad)[0, 0], [[0, 2, 0], [0, 0, 1], [1, 0, 0]])


@st.composite
def _tied_pool_case(draw):
    """Non-square geometry and small-integer data (ties in most windows)."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H = draw(st.integers(max(1, kh - 2 * ph), 7))
    W = draw(st.integers(max(1, kw - 2 * pw), 7))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), H, W)
    x = np.random.default_rng(draw(st.integers(0, 2**16))).integers(-1, 2, shape)
    return x.astype(np.float64), (kh, kw), (sh, sw), (ph, pw), draw(st.booleans())


def _max_pool_grad(x, k, s, p, ceil_mode, gy, device, reference):
    xt = t64(x, device, grad=True)
    with mg.reference_ops(reference):
        F.max_pool2d(xt, k, s, p, ceil_mode).backward(t64(gy, device))
    return to_host(xt.grad)


@fixture_ok
@given(case=_tied_pool_case())
def test_max_pool_gradient_with_ties_matches_the_reference_and_a_loop(device, case):
    # the separable (rows, then columns) argmax must pick the row-major first maximum, as
    # the library's reference (argmax over the stacked windows) does
    x, k, s, p, ceil_mode = case
    y = F.max_pool2d(t64(x, device), k, s, p, ceil_mode)
    gy = np.random.default_rng(1).standard_normal(y.shape)
    fast = _max_pool_grad(x, k, s, p, ceil_mode, gy, device, reference=False)
    reference = _max_pool_grad(x, k, s, p, ceil_mode, gy, device, reference=True)
    np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-12)
    expected = np.zeros_like(x)  # and the reference itself against a loop
    N, C, H, W = x.shape
    for n, c, i, j in np.ndindex(*y.shape):
        h0, w0 = i * s[0] - p[0], j * s[1] - p[1]
        window = [
            (h, w)
            for h in range(max(h0, 0), min(h0 + k[0], H))
            for w in range(max(w0, 0), min(w0 + k[1], W))
        ]
        h, w = max(window, key=lambda hw: (x[n, c, hw[0], hw[1]], -window.index(hw)))
        expected[n, c, h, w] += gy[n, c, i, j]
    np.testing.assert_allclose(reference, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k, s, p, ceil_mode", [(3, 2, 0, True), (3, 1, 1, False)])
def test_max_pool_googlenet_geometries_over_many_chunks_equal_the_reference(
    device, k, s, p, ceil_mode
):
    # GoogLeNet's two pools, float32, big enough for several chunks on two host threads
    # (4 and 12 chunks of 768 planes), ties in most windows: the fast path's output
    # is the reference's bit for bit, and its gradient reaches the same pixels; a pixel in
    # several windows sums their shares in another order (rows, then columns), so its
    # value agrees to float32 rounding of a sum of at most 9 terms
    rng = np.random.default_rng(5)
    x = rng.integers(-2, 3, (8, 96, 57, 56)).astype(np.float32)
    gy = None
    grads = []
    for reference in (False, True):
        xt = mg.tensor(x, device=device, requires_grad=True)
        with mg.reference_ops(reference):
            y = F.max_pool2d(xt, k, s, p, ceil_mode)
            if gy is None:
                gy = rng.standard_normal(y.shape, dtype=np.float32)
            y.backward(mg.tensor(gy, device=device))
        grads.append((to_host(y), to_host(xt.grad)))
    (y_fast, gx_fast), (y_ref, gx_ref) = grads
    np.testing.assert_array_equal(y_fast, y_ref)
    np.testing.assert_array_equal(gx_fast != 0, gx_ref != 0)
    np.testing.assert_allclose(gx_fast, gx_ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("reference", [False, True])
def test_max_pool_propagates_nan(device, reference):
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 3, 2] = np.nan
    with mg.reference_ops(reference):
        y = F.max_pool2d(t64(x, device), 2).numpy()
    assert np.isnan(y[0, 0, 1, 1]) and not np.isnan(y[0, 0, :1]).any()


@fixture_ok
@given(g=pool_geometries(ceil_mode=st.just(False)), data=st.data())
def test_avg_pool_equals_conv_with_a_constant_kernel(device, g, data):
    x = data.draw(float_arrays(g.input_shape))
    N, C, H, W = g.input_shape
    k = g.kernel
    y = F.avg_pool2d(t64(x, device), k, g.stride, g.padding, count_include_pad=True)
    w = t64(np.full((1, 1, k, k), 1.0 / (k * k)), device)
    z = F.conv2d(t64(x.reshape(N * C, 1, H, W), device), w, None, g.stride, g.padding)
    np.testing.assert_allclose(y.numpy().reshape(z.shape), z.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "shape, output_size",
    [
        ((2, 3, 7, 5), (3, 2)),  # uneven windows that overlap: matrix path
        ((1, 2, 6, 4), (3, 2)),  # equal blocks
        ((1, 2, 6, 4), (3, 3)),  # blocks along H only: matrix path
        ((2, 2, 5, 5), 1),  # global average pooling
        ((1, 1, 3, 3), (5, 4)),  # output larger than input
        ((1, 1, 4, 4), 4),  # identity
    ],
)
def test_adaptive_avg_pool_matches_loop_reference_and_gradcheck(device, shape, output_size):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape) - 0.5
    OH, OW = output_size if isinstance(output_size, tuple) else (output_size,) * 2
    y = F.adaptive_avg_pool2d(t64(x, device), output_size)
    assert y.shape == shape[:2] + (OH, OW)
    np.testing.assert_allclose(y.numpy(), naive_adaptive(x, OH, OW), rtol=1e-12, atol=1e-12)
    xt = t64(x, device, grad=True)
    assert gradcheck(lambda t: F.adaptive_avg_pool2d(t, output_size), [xt])


@pytest.mark.parametrize(
    "pool",
    [
        lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True),
        lambda t: F.avg_pool2d(t, 3, 2, 1, ceil_mode=True, count_include_pad=False),
        lambda t: F.adaptive_avg_pool2d(t, 1),
        lambda t: F.adaptive_avg_pool2d(t, 3),
        lambda t: F.adaptive_avg_pool2d(t, (2, 4)),
    ],
)
def test_float32_in_float32_out_and_grads(device, pool):
    x = mg.tensor(
        np.random.default_rng(3).standard_normal((2, 3, 6, 8), dtype=np.float32),
        device=device,
        requires_grad=True,
    )
    y = pool(x)
    assert y.dtype == np.float32
    y.backward(mg.ones(*y.shape, device=device))
    assert x.grad.dtype == np.float32 and x.grad.shape == x.shape
    assert x.grad.flags.c_contiguous


def test_stride_defaults_to_kernel_size(device):
    x = t64(np.random.default_rng(4).standard_normal((1, 2, 6, 6)), device)
    for pool in (F.max_pool2d, F.avg_pool2d):
        np.testing.assert_array_equal(pool(x, 3).numpy(), pool(x, 3, 3).numpy())
        assert pool(x, (3, 2)).shape == (1, 2, 2, 3)


# ---------------------------------------------------------------- errors
def _x(device, shape=(1, 2, 5, 5), dtype=np.float32):
    return mg.tensor(np.zeros(shape, dtype=dtype), device=device)


POOLS = {"max_pool2d": F.max_pool2d, "avg_pool2d": F.avg_pool2d}


@pytest.mark.parametrize("name", POOLS)
@pytest.mark.parametrize(
    "shape, args, match",
    [
        ((2, 5, 5), (2,), r"input must be 4-D \(N, C, H, W\), got shape \(2, 5, 5\)"),
        ((1, 2, 5, 5), (0,), r"kernel_size must be positive, got \(0, 0\)"),
        ((1, 2, 5, 5), (2, 0), r"stride must be positive, got \(0, 0\)"),
        ((1, 2, 5, 5), (2, (1, -1)), r"stride must be positive, got \(1, -1\)"),
        ((1, 2, 5, 5), (3, 1, -1), r"padding must be non-negative, got \(-1, -1\)"),
        (
            (1, 2, 5, 5),
            (3, 1, 2),
            r"padding \(2, 2\) must be at most half the kernel size \(3, 3\)",
        ),
        ((1, 2, 2, 5), (3,), r"kernel_size \(3, 3\) is larger than the padded input \(2, 5\)"),
        ((1, 2, 2, 5), (5, 1, 1), r"kernel_size \(5, 5\) is larger than the padded input \(4, 7\)"),
    ],
)
def test_bad_arguments_raise_value_error(device, name, shape, args, match):
    with pytest.raises(ValueError, match=f"{name}: {match}"):
        POOLS[name](_x(device, shape), *args)


@pytest.mark.parametrize("name", POOLS)
def test_bad_argument_types_raise_type_error(device, name):
    with pytest.raises(TypeError, match=rf"{name}: kernel_size must be an int or a pair.*2.0"):
        POOLS[name](_x(device), 2.0)
    with pytest.raises(TypeError, match=rf"{name}: stride must be an int or a pair.*\(1, 1, 1\)"):
        POOLS[name](_x(device), 2, (1, 1, 1))
    with pytest.raises(TypeError, match=rf"{name}: input must be floating point, got dtype int64"):
        POOLS[name](_x(device, dtype=np.int64), 2)
    with pytest.raises(TypeError, match=rf"{name}: input must be a Tensor, got ndarray"):
        POOLS[name](np.zeros((1, 1, 4, 4)), 2)


def test_adaptive_avg_pool_errors(device):
    op = "adaptive_avg_pool2d"
    with pytest.raises(ValueError, match=rf"{op}: output_size must be positive, got \(0, 0\)"):
        F.adaptive_avg_pool2d(_x(device), 0)
    with pytest.raises(ValueError, match=rf"{op}: output_size must be positive, got \(2, -1\)"):
        F.adaptive_avg_pool2d(_x(device), (2, -1))
    with pytest.raises(ValueError, match=rf"{op}: input must be 4-D .*\(2, 5\)"):
        F.adaptive_avg_pool2d(_x(device, (2, 5)), 1)
    with pytest.raises(TypeError, match=rf"{op}: output_size must be an int or a pair.*None"):
        F.adaptive_avg_pool2d(_x(device), (None, 2))
    with pytest.raises(TypeError, match=rf"{op}: input must be floating point, got dtype int64"):
        F.adaptive_avg_pool2d(_x(device, dtype=np.int64), 1)


@pytest.mark.parametrize("shape, k, s, p, ceil_mode", [
    ((2, 3, 14, 14), (5, 5), (3, 3), (0, 0), False),  # GoogLeNet's aux heads at 224 px
    ((2, 3, 16, 16), (5, 5), (3, 3), (0, 0), False),  # ... at CIFAR size
    ((1, 2, 7, 6), (3, 2), (2, 2), (1, 1), True),  # padding, a window clipped by ceil_mode
])  # fmt: skip
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_on_a_small_map_is_one_product_with_its_matrix(
    device, shape, k, s, p, ceil_mode, count_include_pad
):
    x = np.random.default_rng(2).standard_normal(shape)
    xt = t64(x, device, grad=True)
    y = F.avg_pool2d(xt, k, s, p, ceil_mode, count_include_pad)
    assert y._ctx.matrix_path
    ref = naive_pool(x, k, s, p, ceil_mode, "avg", count_include_pad)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)
    # each column of the matrix: 1 / divisor over its window's elements, so summing to 1
    m = to_host(y._ctx.m)
    assert m.shape == (shape[2] * shape[3], ref.shape[2] * ref.shape[3])
    if count_include_pad is False:
        np.testing.assert_allclose(m.sum(axis=0), 1.0, rtol=1e-12)
    assert gradcheck(lambda t: F.avg_pool2d(t, k, s, p, ceil_mode, count_include_pad), [xt])
