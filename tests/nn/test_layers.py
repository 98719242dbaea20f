"""Layers: output shapes, agreement with the functional call, gradients, modes, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import minigrad as mg
import minigrad.functional as F
from minigrad import nn
from minigrad.gradcheck import gradcheck
from minigrad.testing import conv_geometries, pool_geometries


def _x(*shape, device, requires_grad=False, dtype="float64"):
    rng = np.random.default_rng(sum(shape))
    return mg.tensor(
        rng.standard_normal(shape), dtype=dtype, device=device, requires_grad=requires_grad
    )


def test_linear_matches_functional_and_a_loop(device):
    lin = nn.Linear(3, 2, dtype="float64", device=device)
    x = _x(4, 5, 3, device=device)
    y = lin(x)
    assert y.shape == (4, 5, 2)
    np.testing.assert_array_equal(y.numpy(), F.linear(x, lin.weight, lin.bias).numpy())
    w, b, xs = lin.weight.numpy(), lin.bias.numpy(), x.numpy()
    ref = np.zeros((4, 5, 2))
    for i in range(4):
        for j in range(5):
            for o in range(2):
                ref[i, j, o] = b[o] + sum(xs[i, j, k] * w[o, k] for k in range(3))
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12)
    assert nn.Linear(3, 2, bias=False).bias is None


def test_linear_and_conv_gradcheck_through_their_parameters(device):
    lin = nn.Linear(3, 2, dtype="float64", device=device)
    x = _x(2, 3, device=device, requires_grad=True)
    assert gradcheck(lambda x, w, b: lin(x), [x, lin.weight, lin.bias])
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, dtype="float64", device=device)
    x = _x(2, 2, 5, 5, device=device, requires_grad=True)
    assert gradcheck(lambda x, w, b: conv(x), [x, conv.weight, conv.bias], mode="random")


@settings(max_examples=6)
@given(g=conv_geometries())
def test_conv2d_shape_and_functional_agreement(g):
    conv = nn.Conv2d(g.C, g.C_out, (g.KH, g.KW), stride=g.stride, padding=g.padding)
    x = _x(*g.input_shape, device="cpu", dtype="float32")
    y = conv(x)
    assert y.shape == g.output_shape and y.dtype == np.float32
    ref = F.conv2d(x, conv.weight, conv.bias, g.stride, g.padding)
    np.testing.assert_array_equal(y.numpy(), ref.numpy())
    assert conv.weight.shape == g.weight_shape


def test_conv2d_on_device_without_bias(device):
    conv = nn.Conv2d(3, 4, 1, bias=False, device=device)
    x = _x(2, 3, 5, 5, device=device, dtype="float32")
    y = conv(x)
    assert y.shape == (2, 4, 5, 5) and y.device == device
    np.testing.assert_allclose(
        y.numpy(),
        np.einsum("oc,nchw->nohw", conv.weight.numpy()[:, :, 0, 0], x.numpy()),
        rtol=1e-5,
        atol=1e-6,
    )
    assert [n for n, _ in conv.named_parameters()] == ["weight"]


@settings(max_examples=6)
@given(g=pool_geometries())
def test_pool_layers_match_functional(g):
    x = _x(*g.input_shape, device="cpu")
    k, s, p, c = g.kernel, g.stride, g.padding, g.ceil_mode
    y = nn.MaxPool2d(k, s, p, ceil_mode=c)(x)
    np.testing.assert_array_equal(y.numpy(), F.max_pool2d(x, k, s, p, c).numpy())
    assert y.shape == g.output_shape
    for cip in (True, False):
        y = nn.AvgPool2d(k, s, p, ceil_mode=c, count_include_pad=cip)(x)
        ref = F.avg_pool2d(x, k, s, p, ceil_mode=c, count_include_pad=cip)
        np.testing.assert_array_equal(y.numpy(), ref.numpy())


def test_pool_defaults_and_adaptive(device):
    x = _x(2, 3, 8, 6, device=device)
    mp = nn.MaxPool2d(2)
    assert mp.stride == 2 and mp(x).shape == (2, 3, 4, 3)
    assert nn.AvgPool2d(3, stride=2, padding=1)(x).shape == (2, 3, 4, 3)
    gap = nn.AdaptiveAvgPool2d((1, 1))(x)
    assert gap.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(gap.numpy()[..., 0, 0], x.numpy().mean(axis=(2, 3)), rtol=1e-12)
    assert repr(mp) == "MaxPool2d(kernel_size=2, stride=2, padding=0, ceil_mode=False)"
    assert repr(nn.AdaptiveAvgPool2d(4)) == "AdaptiveAvgPool2d(output_size=4)"


def test_relu_flatten_identity(device):
    x = _x(2, 3, 4, 5, device=device)
    np.testing.assert_array_equal(nn.ReLU()(x).numpy(), np.maximum(x.numpy(), 0))
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Identity()(x) is x


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="Linear: in_features must be a positive int, got 0"):
        nn.Linear(0, 3)
    with pytest.raises(ValueError, match="Conv2d: out_channels must be a positive int"):
        nn.Conv2d(3, -1, 3)
    with pytest.raises(TypeError, match=r"Conv2d: kernel_size must be an int or a pair of ints"):
        nn.Conv2d(3, 4, (3, 3, 3))
    with pytest.raises(
        TypeError, match=r"Conv2d: stride must be an int or a pair of ints, got True"
    ):
        nn.Conv2d(3, 4, 3, stride=True)
    assert nn.Conv2d(3, 4, np.int64(3)).kernel_size == (3, 3)  # NumPy ints count as ints
    with pytest.raises(ValueError, match=r"Conv2d: need kernel_size >= 1, stride >= 1, padding"):
        nn.Conv2d(3, 4, 3, padding=-1)
    with pytest.raises(ValueError, match="linear: input has 4 features"):
        nn.Linear(3, 2)(mg.zeros(2, 4))
