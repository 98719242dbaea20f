"""conv2d: forward against a loop reference, gradients, properties, errors."""

from __future__ import annotations

import numpy as np
import pytest
from _host import to_host
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad.functional._im2col import im2col
from minigrad.functional._layout import is_channel_major
from minigrad.gradcheck import gradcheck
from minigrad.testing import conv_geometries, float_arrays

fixture_ok = settings(
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ]
)


def naive_conv2d(x, w, b, stride, padding):
    """Float64 cross-correlation by seven nested loops."""
    (sh, sw), (ph, pw) = stride, padding
    N, C, H, W = x.shape
    C_out, _, KH, KW = w.shape
    OH = (H + 2 * ph - KH) // sh + 1
    OW = (W + 2 * pw - KW) // sw + 1
    y = np.zeros((N, C_out, OH, OW))
    for n in range(N):
        for o in range(C_out):
            for oh in range(OH):
                for ow in range(OW):
                    acc = 0.0 if b is None else float(b[o])
                    for c in range(C):
                        for i in range(KH):
                            for j in range(KW):
                                h, v = oh * sh + i - ph, ow * sw + j - pw
                                if 0 <= h < H and 0 <= v < W:
                                    acc += float(x[n, c, h, v]) * float(w[o, c, i, j])
                    y[n, o, oh, ow] = acc
    return y


def t64(a, device, grad=False):
    return mg.tensor(np.asarray(a, dtype=np.float64), device=device, requires_grad=grad)


@pytest.mark.parametrize(
    "x_shape, w_shape, stride, padding, bias",
    [
        ((2, 3, 5, 6), (4, 3, 3, 2), (2, 1), (1, 0), True),
        ((1, 2, 7, 7), (3, 2, 5, 5), 2, 2, False),
        ((2, 4, 3, 3), (5, 4, 1, 1), 1, 0, True),  # 1x1 fast path
        ((1, 2, 5, 4), (2, 2, 1, 1), 2, 1, True),  # 1x1 with stride and padding: im2col path
        ((1, 1, 2, 2), (1, 1, 4, 4), 1, 1, False),  # kernel covers the whole padded input
        ((1, 2, 16, 17), (3, 2, 3, 3), 1, 1, True),
        ((2, 1, 16, 16), (2, 1, 3, 3), 1, 1, False),
    ],
)
def test_forward_matches_loop_reference(device, x_shape, w_shape, stride, padding, bias):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape) - 0.5  # mostly negative inputs
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0]) if bias else None
    y = F.conv2d(
        t64(x, device),
        t64(w, device),
        None if b is None else t64(b, device),
        stride=stride,
        padding=padding,
    )
    s = stride if isinstance(stride, tuple) else (stride, stride)
    p = padding if isinstance(padding, tuple) else (padding, padding)
    np.testing.assert_allclose(y.numpy(), naive_conv2d(x, w, b, s, p), rtol=1e-12, atol=1e-12)
    assert is_channel_major(y.data)  # an (N, C, H, W) view of a C-contiguous (C, N, H, W)


@fixture_ok
@given(g=conv_geometries(), data=st.data(), reference=st.booleans())
def test_forward_matches_loop_reference_on_drawn_geometries(device, g, data, reference):
    x = data.draw(float_arrays(g.input_shape))
    w = data.draw(float_arrays(g.weight_shape))
    b = data.draw(float_arrays((g.C_out,)))
    with mg.reference_ops(reference):  # the fast path, or the library's reference
        y = F.conv2d(t64(x, device), t64(w, device), t64(b, device), g.stride, g.padding)
    assert y.shape == g.output_shape
    ref = naive_conv2d(x, w, b, (g.stride,) * 2, (g.padding,) * 2)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)


@fixture_ok
@given(
    g=conv_geometries(max_batch=2, max_channels=2, max_size=5),
    data=st.data(),
    reference=st.booleans(),
)
def test_gradcheck_on_drawn_geometries(device, g, data, reference):
    x = t64(data.draw(float_arrays(g.input_shape)), device, grad=True)
    w = t64(data.draw(float_arrays(g.weight_shape)), device, grad=True)
    b = t64(data.draw(float_arrays((g.C_out,))), device, grad=True)
    with mg.reference_ops(reference):
        assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, g.stride, g.padding), [x, w, b])


@pytest.mark.parametrize(
    "x_shape, w_shape, stride, padding",
    [
        ((2, 2, 4, 5), (3, 2, 3, 2), (2, 1), (0, 1)),  # im2col path
        ((2, 3, 3, 3), (2, 3, 1, 1), 1, 0),  # 1x1: no im2col
        ((2, 8, 1, 1), (8, 8, 1, 1), 1, 0),  # 1x1 on 1x1 maps
        ((1, 1, 16, 16), (2, 1, 3, 3), 1, 1),
    ],
)
@pytest.mark.parametrize("which", ["x", "w", "b", "xw"])
def test_gradcheck_when_only_some_inputs_need_grad(
    device, x_shape, w_shape, stride, padding, which
):
    rng = np.random.default_rng(2)
    x = t64(rng.standard_normal(x_shape), device, grad="x" in which)
    w = t64(rng.standard_normal(w_shape), device, grad="w" in which)
    b = t64(rng.standard_normal(w_shape[0]), device, grad="b" in which)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride, padding), [x, w, b])
    x.grad = w.grad = b.grad = None
    F.conv2d(x, w, b, stride, padding).sum().backward()
    for name, t in (("x", x), ("w", w), ("b", b)):
        assert (t.grad is not None) == (name in which)


def test_saves_only_what_backward_needs(device):
    rng = np.random.default_rng(3)
    x = mg.tensor(rng.standard_normal((1, 2, 5, 5)), device=device)
    w = mg.tensor(rng.standard_normal((3, 2, 3, 3)), device=device, requires_grad=True)
    y = F.conv2d(x, w, padding=1)  # only w needs a gradient: keep x (for im2col), not w
    assert hasattr(y.grad_fn, "x") and not hasattr(y.grad_fn, "w2")
    x.requires_grad, w.requires_grad = True, False
    y = F.conv2d(x, w, padding=1)  # only x needs a gradient: keep w, not x
    assert hasattr(y.grad_fn, "w2") and not hasattr(y.grad_fn, "x")
    # the im2col buffer (KH*KW times the input) is never kept: backward makes it again
    assert not any(hasattr(y.grad_fn, name) for name in ("col", "x3"))
    with mg.no_grad():
        assert F.conv2d(x, w, padding=1).grad_fn is None


@pytest.mark.parametrize("x_shape, C_out", [((2, 3, 4, 4), 2), ((2, 8, 1, 2), 8)])
def test_pointwise_fast_path_equals_im2col_path(device, x_shape, C_out):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((C_out, x_shape[1], 1, 1))
    gy = rng.standard_normal((x_shape[0], C_out, *x_shape[2:]))
    xt, wt = t64(x, device, grad=True), t64(w, device, grad=True)
    F.conv2d(xt, wt).backward(t64(gy, device))  # the gradient on the output's device
    # the general path, by hand: col = im2col(x) with a 1x1 kernel
    N, C, H, W = x_shape
    col = im2col(x, 1, 1, 1, 0)  # (C, N*H*W)
    w2 = w.reshape(C_out, C)
    y = (w2 @ col).reshape(C_out, N, H, W).transpose(1, 0, 2, 3)
    gy2 = gy.transpose(1, 0, 2, 3).reshape(C_out, -1)
    gx = (w2.T @ gy2).reshape(C, N, H, W).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(F.conv2d(t64(x, device), t64(w, device)).numpy(), y, rtol=1e-12)
    np.testing.assert_allclose(to_host(xt.grad), gx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_host(wt.grad).reshape(C_out, C), gy2 @ col.T, rtol=1e-12)


@fixture_ok
@given(g=conv_geometries(), data=st.data(), a=st.floats(-2, 2), c=st.floats(-2, 2))
def test_conv_is_linear_in_x_and_in_w(device, g, data, a, c):
    x1, x2 = (data.draw(float_arrays(g.input_shape)) for _ in range(2))
    w1, w2 = (data.draw(float_arrays(g.weight_shape)) for _ in range(2))

    def conv(x, w):
        return F.conv2d(t64(x, device), t64(w, device), None, g.stride, g.padding).numpy()

    np.testing.assert_allclose(
        conv(a * x1 + c * x2, w1), a * conv(x1, w1) + c * conv(x2, w1), rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(
        conv(x1, a * w1 + c * w2), a * conv(x1, w1) + c * conv(x1, w2), rtol=1e-9, atol=1e-9
    )


@pytest.mark.parametrize("kernel, padding", [(3, 1), (1, 0)])
def test_float32_in_float32_out_and_grads(device, kernel, padding):
    rng = np.random.default_rng(5)
    x = mg.tensor(rng.standard_normal((2, 3, 4, 4), dtype=np.float32), device=device)
    w = mg.tensor(rng.standard_normal((4, 3, kernel, kernel), dtype=np.float32), device=device)
    b = mg.tensor(rng.standard_normal(4, dtype=np.float32), device=device)
    for t in (x, w, b):
        t.requires_grad = True
    y = F.conv2d(x, w, b, padding=padding)
    assert y.dtype == np.float32
    y.backward(mg.ones(*y.shape, device=device))
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32
    assert x.grad.shape == x.shape and w.grad.shape == w.shape and b.grad.shape == b.shape
    # against the float64 computation
    x64, w64, b64 = (t64(t.numpy(), device, grad=True) for t in (x, w, b))
    F.conv2d(x64, w64, b64, padding=padding).backward(mg.ones(*y.shape, device=device).double())
    np.testing.assert_allclose(to_host(w.grad), to_host(w64.grad), rtol=1e-4)
    np.testing.assert_allclose(to_host(x.grad), to_host(x64.grad), rtol=1e-4)


# ---------------------------------------------------------------- errors
def _x(device, shape=(1, 2, 5, 5), dtype=np.float32):
    return mg.tensor(np.zeros(shape, dtype=dtype), device=device)


@pytest.mark.parametrize(
    "x_shape, w_shape, b_shape, kwargs, match",
    [
        ((2, 5, 5), (3, 2, 3, 3), None, {}, r"conv2d: input must be 4-D .*\(2, 5, 5\)"),
        ((1, 2, 5, 5), (3, 2, 3), None, {}, r"conv2d: weight must be 4-D .*\(3, 2, 3\)"),
        ((1, 2, 5, 5), (3, 4, 3, 3), None, {}, r"conv2d: input has 2 channels .* expects 4"),
        ((1, 2, 5, 5), (3, 2, 3, 3), (4,), {}, r"conv2d: bias shape \(4,\) != \(3,\)"),
        ((1, 2, 5, 5), (3, 2, 3, 3), (3, 1), {}, r"conv2d: bias shape \(3, 1\)"),
        (
            (1, 2, 2, 5),
            (3, 2, 3, 3),
            None,
            {},
            r"conv2d: kernel size \(3, 3\) is larger .* \(2, 5\)",
        ),
        (
            (1, 2, 1, 1),
            (3, 2, 4, 4),
            None,
            {"padding": 1},
            r"larger than the padded input \(3, 3\)",
        ),
        ((1, 2, 5, 5), (3, 2, 3, 3), None, {"stride": 0}, r"conv2d: stride must be positive.*0"),
        ((1, 2, 5, 5), (3, 2, 3, 3), None, {"stride": (1, -2)}, r"stride must be positive.*-2"),
        ((1, 2, 5, 5), (3, 2, 3, 3), None, {"padding": -1}, r"padding must be non-negative.*-1"),
    ],
)
def test_bad_shapes_and_arguments_raise_value_error(
    device, x_shape, w_shape, b_shape, kwargs, match
):
    x, w = _x(device, x_shape), _x(device, w_shape)
    b = None if b_shape is None else _x(device, b_shape)
    with pytest.raises(ValueError, match=match):
        F.conv2d(x, w, b, **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"stride": 1.5}, r"conv2d: stride must be an int or a pair of ints, got 1.5"),
        ({"padding": (1, 1, 1)}, r"conv2d: padding must be an int or a pair"),
    ],
)
def test_bad_argument_types_raise_type_error(device, kwargs, match):
    with pytest.raises(TypeError, match=match):
        F.conv2d(_x(device), _x(device, (3, 2, 3, 3)), **kwargs)


def test_integer_input_raises_type_error(device):
    x = _x(device, dtype=np.int64)
    with pytest.raises(TypeError, match=r"conv2d: input must be floating point, got dtype int64"):
        F.conv2d(x, _x(device, (3, 2, 3, 3)))


def test_mixed_float_dtypes_reach_the_user_with_the_op_name(device):
    x, w = _x(device), _x(device, (3, 2, 3, 3), dtype=np.float64)
    with pytest.raises(TypeError, match=r"Conv2d: mixed float dtypes float32 and float64"):
        F.conv2d(x, w)
    with pytest.raises(TypeError, match=r"Conv2d: mixed float dtypes"):
        F.conv2d(x, _x(device, (3, 2, 3, 3)), _x(device, (3,), dtype=np.float64))


@pytest.mark.gpu
def test_mixed_devices_reach_the_user_with_the_op_name():
    x = mg.tensor(np.zeros((1, 2, 5, 5), dtype=np.float32))
    w = mg.tensor(np.zeros((3, 2, 3, 3), dtype=np.float32), device="cuda")
    with pytest.raises(
        ValueError, match=r"Conv2d: inputs are on different devices: cpu and cuda:0"
    ):
        F.conv2d(x, w)


@pytest.mark.parametrize("k, p", [(3, 1), (1, 0)])
def test_an_empty_batch_gives_zero_weight_and_bias_gradients(device, k, p):
    x = t64(np.zeros((0, 2, 4, 4)), device, grad=True)
    w = t64(np.ones((3, 2, k, k)), device, grad=True)
    b = t64(np.ones(3), device, grad=True)
    y = F.conv2d(x, w, b, padding=p)
    assert y.shape == (0, 3, 4, 4)
    y.sum().backward()
    assert x.grad.shape == (0, 2, 4, 4)
    np.testing.assert_array_equal(to_host(w.grad), np.zeros((3, 2, k, k)))
    np.testing.assert_array_equal(to_host(b.grad), np.zeros(3))
