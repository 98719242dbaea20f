"""im2col / col2im and the output-size arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from _host import to_host
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minigrad import backend, devices
from minigrad.functional._im2col import (
    col2im,
    conv_output_size,
    im2col,
)
from minigrad.functional._layout import is_channel_major
from minigrad.functional._windows import pool_output_size
from minigrad.testing import conv_geometries, float_arrays

# the device fixture is stateless, so reusing it across hypothesis examples is fine
fixture_ok = settings(
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ]
)


def naive_im2col(x, KH, KW, stride, padding):
    """col[(c*KH + i)*KW + j, (n*OH + oh)*OW + ow] = x_pad[n, c, oh*sh + i, ow*sw + j]."""
    (sh, sw), (ph, pw) = stride, padding
    N, C, H, W = x.shape
    OH = (H + 2 * ph - KH) // sh + 1
    OW = (W + 2 * pw - KW) // sw + 1
    col = np.zeros((C * KH * KW, N * OH * OW), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(KH):
                for j in range(KW):
                    for oh in range(OH):
                        for ow in range(OW):
                            h, w = oh * sh + i - ph, ow * sw + j - pw
                            if 0 <= h < H and 0 <= w < W:
                                col[(c * KH + i) * KW + j, (n * OH + oh) * OW + ow] = x[n, c, h, w]
    return col


def naive_col2im(col, x_shape, KH, KW, stride, padding):
    (sh, sw), (ph, pw) = stride, padding
    N, C, H, W = x_shape
    OH = (H + 2 * ph - KH) // sh + 1
    OW = (W + 2 * pw - KW) // sw + 1
    x = np.zeros(x_shape, dtype=col.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(KH):
                for j in range(KW):
                    for oh in range(OH):
                        for ow in range(OW):
                            h, w = oh * sh + i - ph, ow * sw + j - pw
                            if 0 <= h < H and 0 <= w < W:
                                x[n, c, h, w] += col[(c * KH + i) * KW + j, (n * OH + oh) * OW + ow]
    return x


def test_output_sizes_match_pytorch_formulas():
    assert conv_output_size(32, 3, 1, 1) == 32
    assert conv_output_size(7, 3, 2, 0) == 3
    assert conv_output_size(8, 5, 3, 2) == 3
    assert pool_output_size(32, 3, 2, 0, ceil_mode=False) == 15
    assert pool_output_size(32, 3, 2, 0, ceil_mode=True) == 16
    # ceil_mode drops a last window that would start inside the right padding:
    # span 5 / stride 2 -> ceil 3 -> 4 windows, but window 3 starts at 6 >= 5 + 1
    assert pool_output_size(5, 2, 2, 1, ceil_mode=True) == 3
    assert pool_output_size(5, 2, 2, 1, ceil_mode=False) == 3


@pytest.mark.parametrize(
    "shape, KH, KW, stride, padding",
    [
        ((2, 3, 5, 6), 3, 2, (2, 1), (1, 0)),
        ((1, 2, 4, 4), 1, 1, (1, 1), (0, 0)),
        ((2, 1, 7, 5), 5, 3, (3, 2), (2, 1)),
        ((1, 2, 3, 3), 3, 3, (1, 1), (1, 1)),
    ],
)
def test_im2col_and_col2im_match_naive_loops(device, shape, KH, KW, stride, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape) - 0.5
    col = to_host(im2col(devices.to_device(x, device), KH, KW, stride, padding))
    np.testing.assert_array_equal(col, naive_im2col(x, KH, KW, stride, padding))
    c = rng.standard_normal(col.shape)
    back = col2im(devices.to_device(c, device), shape, KH, KW, stride, padding)
    assert back.shape == shape and is_channel_major(back)
    np.testing.assert_allclose(
        to_host(back), naive_col2im(c, shape, KH, KW, stride, padding), atol=1e-12
    )


@fixture_ok
@given(g=conv_geometries(max_kernel=4, max_stride=3, max_padding=2), data=st.data())
def test_col2im_is_the_adjoint_of_im2col(device, g, data):
    """<im2col(x), c> == <x, col2im(c)> for every geometry (float64, so to 1e-12)."""
    x = data.draw(float_arrays(g.input_shape))
    KH, KW, s, p = g.KH, g.KW, g.stride, g.padding
    col = im2col(devices.to_device(x, device), KH, KW, s, p)
    OH, OW = g.output_shape[2:]
    assert col.shape == (g.C * KH * KW, g.N * OH * OW)
    c = data.draw(float_arrays(tuple(col.shape)))
    back = to_host(col2im(devices.to_device(c, device), g.input_shape, KH, KW, s, p))
    lhs = float((to_host(col) * c).sum())
    rhs = float((x * back).sum())
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


def test_float32_stays_float32(device, xp):
    x = devices.to_device(np.ones((2, 3, 5, 5), dtype=np.float32), device)
    col = im2col(x, 3, 3, 1, 1)
    assert col.dtype == np.float32 and backend.get_array_module(col) is xp
    back = col2im(col, x.shape, 3, 3, 1, 1)
    assert back.dtype == np.float32 and backend.get_array_module(back) is xp
    # the centre pixel is covered by all 9 windows, a corner by 4
    assert float(back[0, 0, 2, 2]) == 9.0 and float(back[0, 0, 0, 0]) == 4.0


def test_col2im_writes_into_out(device, xp):
    rng = np.random.default_rng(6)
    col = devices.to_device(rng.standard_normal((2 * 9, 3 * 16)), device)
    out = xp.zeros((2, 5, 4, 4))  # (C, N, H, W) with room for more images
    back = col2im(col, (3, 2, 4, 4), 3, 3, 1, 1, out=out[:, 1:4])
    np.testing.assert_array_equal(to_host(out[:, 1:4]).swapaxes(0, 1), to_host(back))
    assert float(abs(out[:, 0]).sum()) == 0 and float(abs(out[:, 4]).sum()) == 0
