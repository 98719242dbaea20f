"""Issue 2's "Bad input" list, one test per case: a ValueError/TypeError that names the op
and the offending values, never a deep NumPy traceback or a silent wrong result."""

from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad import devices
from minigrad.gradcheck import gradcheck


def ones(*shape, dtype="float32"):
    return mg.ones(*shape, dtype=dtype)


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: F.conv2d(ones(3, 5, 5), ones(2, 3, 3, 3)),
            r"conv2d: input must be 4-D \(N, C, H, W\), got shape \(3, 5, 5\)",
        ),
        (
            lambda: F.conv2d(ones(1, 3, 5, 5), ones(2, 3, 3)),
            r"conv2d: weight must be 4-D \(C_out, C_in, KH, KW\), got shape \(2, 3, 3\)",
        ),
        (
            lambda: F.max_pool2d(ones(3, 5, 5), 2),
            r"max_pool2d: input must be 4-D \(N, C, H, W\), got shape \(3, 5, 5\)",
        ),
        (
            lambda: F.avg_pool2d(ones(1, 1, 3, 5, 5), 2),
            r"avg_pool2d: input must be 4-D \(N, C, H, W\), got shape \(1, 1, 3, 5, 5\)",
        ),
        (
            lambda: F.adaptive_avg_pool2d(ones(5, 5), 1),
            r"adaptive_avg_pool2d: input must be 4-D \(N, C, H, W\), got shape \(5, 5\)",
        ),
    ],
)
def test_wrong_ndim_for_conv_and_pool(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_channel_mismatch_between_input_and_weight():
    with pytest.raises(ValueError, match=r"conv2d: input has 3 channels .* weight expects 4"):
        F.conv2d(ones(1, 3, 5, 5), ones(2, 4, 3, 3))


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: F.conv2d(ones(1, 3, 5, 5), ones(2, 3, 8, 8), padding=1),
            r"conv2d: kernel size \(8, 8\) is larger than the padded input \(7, 7\)",
        ),
        (
            lambda: F.max_pool2d(ones(1, 1, 5, 5), 7),
            r"max_pool2d: kernel_size \(7, 7\) is larger than the padded input \(5, 5\)",
        ),
        (
            lambda: F.avg_pool2d(ones(1, 1, 2, 6), (3, 1), padding=0),
            r"avg_pool2d: kernel_size \(3, 1\) is larger than the padded input \(2, 6\)",
        ),
    ],
)
def test_kernel_larger_than_the_padded_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: F.conv2d(ones(1, 3, 5, 5), ones(2, 3, 3, 3), stride=0),
            r"conv2d: stride must be positive, got \(0, 0\)",
        ),
        (
            lambda: F.conv2d(ones(1, 3, 5, 5), ones(2, 3, 3, 3), stride=(1, -2)),
            r"conv2d: stride must be positive, got \(1, -2\)",
        ),
        (lambda: F.max_pool2d(ones(1, 1, 4, 4), 2, 0), r"max_pool2d: stride must be positive"),
        (lambda: F.avg_pool2d(ones(1, 1, 4, 4), 2, -1), r"avg_pool2d: stride must be positive"),
    ],
)
def test_non_positive_stride(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("pool", ["max_pool2d", "avg_pool2d"])
def test_pool_padding_larger_than_half_the_kernel(pool):
    msg = rf"{pool}: padding \(2, 2\) must be at most half the kernel size \(3, 3\)"
    with pytest.raises(ValueError, match=msg):
        getattr(F, pool)(ones(1, 1, 6, 6), 3, padding=2)


@pytest.mark.parametrize("label", [3, -1, 100])
def test_cross_entropy_label_out_of_range(label):
    msg = rf"cross_entropy: target label {label} is out of range for 3 classes \[0, 3\)"
    with pytest.raises(ValueError, match=msg):
        F.cross_entropy(ones(2, 3), mg.tensor([0, label]))


def test_cross_entropy_label_not_integer():
    msg = "cross_entropy: target must hold integer class indices, got dtype float32"
    with pytest.raises(TypeError, match=msg):
        F.cross_entropy(ones(2, 3), mg.tensor([0.0, 1.0]))


def test_cross_entropy_batch_size_mismatch():
    msg = "cross_entropy: input batch size 2 does not match target batch size 3"
    with pytest.raises(ValueError, match=msg):
        F.cross_entropy(ones(2, 3), mg.tensor([0, 1, 2]))


@pytest.mark.parametrize(
    "name, shape_a, shape_b, call",
    [
        ("Add", (4,), (4,), lambda a, b: a + b),
        ("Conv2d", (1, 1, 3, 3), (1, 1, 2, 2), F.conv2d),
        ("Cat", (2,), (3,), lambda a, b: F.cat([a, b], dim=0)),
        ("MatMul", (2, 2), (2, 2), lambda a, b: a @ b),
    ],
)
def test_mixed_devices(monkeypatch, name, shape_a, shape_b, call):
    """A fake second device: b's array reports cuda:0, so no GPU is needed."""
    a, b = ones(*shape_a), ones(*shape_b)
    real = devices.device_of
    monkeypatch.setattr(devices, "device_of", lambda x: "cuda:0" if x is b.data else real(x))
    assert (a.device, b.device) == ("cpu", "cuda:0")
    msg = f"{name}: inputs are on different devices: cpu and cuda:0"
    with pytest.raises(ValueError, match=msg):
        call(a, b)


@pytest.mark.gpu
def test_mixed_devices_on_a_real_gpu():
    a, b = ones(4), mg.ones(4, device="cuda")
    with pytest.raises(ValueError, match="Add: inputs are on different devices: cpu and cuda:0"):
        a + b
    with pytest.raises(ValueError, match="MatMul: inputs are on different devices: cuda:0 and cpu"):
        mg.ones(2, 2, device="cuda") @ ones(2, 2)


@pytest.mark.parametrize(
    "name, call",
    [
        ("Add", lambda a, b: a + b),
        ("Conv2d", lambda a, b: F.conv2d(a.reshape(1, 1, 2, 2), b.reshape(1, 1, 2, 2))),
        ("Linear", lambda a, b: F.linear(a.reshape(2, 2), b.reshape(2, 2))),
        ("Cat", lambda a, b: F.cat([a, b], dim=0)),
    ],
)
def test_mixed_float_dtypes(name, call):
    a, b = ones(4, dtype="float32"), ones(4, dtype="float64")
    msg = f"{name}: mixed float dtypes float32 and float64; convert one side explicitly"
    with pytest.raises(TypeError, match=msg):
        call(a, b)


def test_backward_on_a_non_scalar_without_a_gradient():
    y = ones(2, 3).requires_grad_() * 2
    msg = r"backward: grad can be omitted only for a one-element tensor, got shape \(2, 3\)"
    with pytest.raises(ValueError, match=msg):
        y.backward()


def test_requires_grad_on_an_integer_tensor():
    msg = "tensor: only floating-point tensors can require grad, got dtype int64"
    with pytest.raises(TypeError, match=msg):
        mg.tensor([1, 2], requires_grad=True)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_passed_to_gradcheck(bad):
    x = mg.tensor([1.0, bad, 3.0], dtype="float64", requires_grad=True)
    msg = r"gradcheck: input 0 contains NaN or inf \(1 element\(s\), first at index \(1,\)\)"
    with pytest.raises(ValueError, match=msg):
        gradcheck(lambda x: x * 2, [x])
