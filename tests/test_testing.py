"""minigrad.testing: the hypothesis strategies keep the promises their docstrings make."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad.testing import (
    conv_geometries,
    float_arrays,
    pool_geometries,
    separated_arrays,
    shapes,
)

many = settings(max_examples=150)  # the strategies are cheap: look at more examples


def torch_pool_size(size, kernel, stride, padding, ceil_mode):
    """PyTorch's pooling output size, written out independently of minigrad."""
    span = size + 2 * padding - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # the last window would start in the right padding: PyTorch drops it
    return out


@many
@given(g=conv_geometries())
def test_conv_geometries_give_a_non_empty_output(g):
    OH = (g.H + 2 * g.padding - g.KH) // g.stride + 1
    OW = (g.W + 2 * g.padding - g.KW) // g.stride + 1
    assert OH >= 1 and OW >= 1
    assert g.KH <= g.H + 2 * g.padding and g.KW <= g.W + 2 * g.padding
    assert g.stride >= 1 and g.padding >= 0 and min(g.N, g.C, g.C_out) >= 1
    assert g.output_shape == (g.N, g.C_out, OH, OW)


@given(g=conv_geometries())
def test_conv_geometries_are_accepted_by_conv2d(g):
    y = F.conv2d(mg.zeros(*g.input_shape), mg.zeros(*g.weight_shape), None, g.stride, g.padding)
    assert y.shape == g.output_shape


@many
@given(g=pool_geometries())
def test_pool_geometries_follow_pytorchs_rules_and_give_a_non_empty_output(g):
    assert 0 <= g.padding <= g.kernel // 2  # PyTorch: pad should be at most half of kernel
    assert g.kernel <= g.H + 2 * g.padding and g.kernel <= g.W + 2 * g.padding
    OH = torch_pool_size(g.H, g.kernel, g.stride, g.padding, g.ceil_mode)
    OW = torch_pool_size(g.W, g.kernel, g.stride, g.padding, g.ceil_mode)
    assert OH >= 1 and OW >= 1
    assert g.output_shape == (g.N, g.C, OH, OW)
    # every window starts inside the input or the left padding
    assert (OH - 1) * g.stride < g.H + g.padding and (OW - 1) * g.stride < g.W + g.padding


@given(g=pool_geometries(), cip=st.booleans())
def test_pool_geometries_are_accepted_by_the_pools(g, cip):
    x = mg.zeros(*g.input_shape)
    args = (g.kernel, g.stride, g.padding, g.ceil_mode)
    assert F.max_pool2d(x, *args).shape == g.output_shape
    assert F.avg_pool2d(x, *args, count_include_pad=cip).shape == g.output_shape


@settings(max_examples=20)
@given(g=pool_geometries(ceil_mode=st.just(True)))
def test_pool_geometries_ceil_mode_argument_is_honoured(g):
    assert g.ceil_mode is True


@many
@given(shape=shapes(0, 4, 1, 5), gap=st.sampled_from([0.1, 0.5]), data=st.data())
def test_separated_arrays_have_no_ties_and_nothing_near_zero(shape, gap, data):
    x = data.draw(separated_arrays(shape, gap=gap))
    assert x.shape == shape and x.dtype == np.float64
    flat = np.sort(x.reshape(-1))
    if flat.size > 1:
        assert np.diff(flat).min() >= gap * 0.5 * (1 - 1e-9)  # scale >= 0.5
    assert np.abs(flat).min() >= gap / 8 * (1 - 1e-9)  # ReLU's kink is far away
    assert np.abs(flat).min() > 1e3 * 1e-6  # a gradcheck step never crosses it
    assert np.isfinite(flat).all()


@given(shape=shapes(1, 3, 1, 4), data=st.data())
def test_separated_arrays_in_float32_are_still_separated(shape, data):
    x = data.draw(separated_arrays(shape, dtype=np.float32))
    assert x.dtype == np.float32
    assert len(np.unique(x)) == x.size and (x != 0).all()


@given(shape=shapes(0, 3, 1, 4), data=st.data())
def test_float_arrays_respect_bounds_and_dtype(shape, data):
    x = data.draw(float_arrays(shape, dtype=np.float32, low=-0.5, high=3.0))
    assert x.shape == shape and x.dtype == np.float32
    assert (x >= -0.5).all() and (x <= 3.0).all()


@many
@given(s=shapes(min_dims=2, max_dims=3, min_side=2, max_side=5))
def test_shapes_respect_their_bounds(s):
    assert isinstance(s, tuple) and 2 <= len(s) <= 3
    assert all(2 <= v <= 5 for v in s)
    assert math.prod(s) <= 125
