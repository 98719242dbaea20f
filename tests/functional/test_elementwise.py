"""Elementwise ops and the Tensor operators: loop references, gradients, broadcasting, dtypes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _host import to_host
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
import minigrad.functional as F
from minigrad.gradcheck import gradcheck
from minigrad.testing import float_arrays, separated_arrays, shapes

fixture_ok = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)

broadcast_pairs = hnp.mutually_broadcastable_shapes(
    num_shapes=2, min_dims=0, max_dims=3, max_side=3
)


def t64(a, device, grad=False):
    return mg.tensor(np.asarray(a, dtype=np.float64), device=device, requires_grad=grad)


def loop_binary(f, a, b):
    """f applied element by element on Python floats over the broadcast shape."""
    a2, b2 = np.broadcast_arrays(a, b)
    out = np.zeros(a2.shape)
    for idx in np.ndindex(*a2.shape):
        out[idx] = f(float(a2[idx]), float(b2[idx]))
    return out


def loop_unary(f, x):
    out = np.zeros(x.shape)
    for idx in np.ndindex(*x.shape):
        out[idx] = f(float(x[idx]))
    return out


BINARY = {
    "add": (F.add, lambda a, b: a + b, lambda a, b: a + b),
    "sub": (F.sub, lambda a, b: a - b, lambda a, b: a - b),
    "mul": (F.mul, lambda a, b: a * b, lambda a, b: a * b),
    "div": (F.div, lambda a, b: a / b, lambda a, b: a / b),
}

UNARY = {
    "exp": (F.exp, math.exp, (-2.0, 2.0)),
    "log": (F.log, math.log, (0.2, 3.0)),
    "sqrt": (F.sqrt, math.sqrt, (0.2, 3.0)),
    "tanh": (F.tanh, math.tanh, (-3.0, 3.0)),
    "sigmoid": (F.sigmoid, lambda v: 1 / (1 + math.exp(-v)), (-5.0, 5.0)),
    "neg": (F.neg, lambda v: -v, (-2.0, 2.0)),
    "pow3": (lambda x: F.pow(x, 3), lambda v: v**3, (-2.0, 2.0)),
    "pow-1.5": (lambda x: F.pow(x, -1.5), lambda v: v**-1.5, (0.3, 2.0)),
}


def _operands(data, shapes_, positive_b):
    sa, sb = shapes_.input_shapes
    a = data.draw(float_arrays(sa))
    b = data.draw(float_arrays(sb, low=0.5, high=2.0) if positive_b else float_arrays(sb))
    if not positive_b:
        return a, b
    sign = data.draw(st.sampled_from([-1.0, 1.0]))  # divisors away from 0, either sign
    return a, b * sign


@pytest.mark.parametrize("name", BINARY)
@fixture_ok
@given(shapes_=broadcast_pairs, data=st.data())
def test_binary_forward_matches_loops_with_broadcasting(device, name, shapes_, data):
    fn, op, ref = BINARY[name]
    a, b = _operands(data, shapes_, positive_b=name == "div")
    for y in (fn(t64(a, device), t64(b, device)), op(t64(a, device), t64(b, device))):
        assert y.shape == shapes_.result_shape
        np.testing.assert_allclose(y.numpy(), loop_binary(ref, a, b), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("name", BINARY)
@fixture_ok
@given(shapes_=broadcast_pairs, data=st.data())
def test_binary_backward_reduces_broadcasting_back(device, name, shapes_, data):
    fn, _, _ = BINARY[name]
    a, b = _operands(data, shapes_, positive_b=name == "div")
    ta, tb = t64(a, device, grad=True), t64(b, device, grad=True)
    assert gradcheck(fn, [ta, tb])
    fn(ta, tb).sum().backward()
    assert ta.grad.shape == a.shape and tb.grad.shape == b.shape
    assert ta.grad.dtype == np.float64 and tb.grad.dtype == np.float64


def test_broadcast_gradient_is_the_sum_over_expanded_axes(device):
    a = t64(np.ones((2, 1, 3)), device, grad=True)
    b = t64(np.arange(4.0).reshape(4, 1), device, grad=True)
    (a * b).sum().backward()  # y (2, 4, 3): dy/da sums b over 4 rows, dy/db sums a over 2*3
    np.testing.assert_array_equal(to_host(a.grad), np.full((2, 1, 3), 6.0))
    np.testing.assert_array_equal(to_host(b.grad), np.full((4, 1), 6.0))


@pytest.mark.parametrize("name", UNARY)
@fixture_ok
@given(shape=shapes(0, 3, 1, 4), data=st.data())
def test_unary_forward_matches_math_and_backward_gradchecks(device, name, shape, data):
    fn, ref, (low, high) = UNARY[name]
    x = data.draw(float_arrays(shape, low=low, high=high))
    y = fn(t64(x, device))
    np.testing.assert_allclose(y.numpy(), loop_unary(ref, x), rtol=1e-13, atol=1e-15)
    assert gradcheck(fn, [t64(x, device, grad=True)])


@fixture_ok
@given(shape=shapes(1, 3, 1, 4), data=st.data())
def test_relu_forward_and_backward_away_from_the_kink(device, shape, data):
    x = data.draw(separated_arrays(shape))
    np.testing.assert_array_equal(
        F.relu(t64(x, device)).numpy(), loop_unary(lambda v: max(v, 0), x)
    )
    assert gradcheck(F.relu, [t64(x, device, grad=True)])


def test_relu_gradient_at_zero_is_zero_as_in_pytorch(device):
    x = t64([-1.0, 0.0, 2.0], device, grad=True)
    F.relu(x).sum().backward()
    np.testing.assert_array_equal(to_host(x.grad), [0.0, 0.0, 1.0])


def test_sigmoid_saturates_without_overflow_in_both_dtypes(device):
    for dtype in ("float32", "float64"):
        x = mg.tensor([-1000.0, 0.0, 1000.0], dtype=dtype, device=device, requires_grad=True)
        y = F.sigmoid(x)  # filterwarnings=error: an exp overflow warning would fail here
        assert y.dtype == dtype
        np.testing.assert_array_equal(y.numpy(), [0.0, 0.5, 1.0])
        y.sum().backward()
        np.testing.assert_array_equal(to_host(x.grad), [0.0, 0.25, 0.0])


def test_operators_with_python_scalars_on_either_side(device):
    x = t64([1.0, 2.0, 4.0], device, grad=True)
    v = np.array([1.0, 2.0, 4.0])
    cases = [
        (lambda x: x + 3, v + 3, [1, 1, 1]),
        (lambda x: 3 + x, 3 + v, [1, 1, 1]),
        (lambda x: x - 3, v - 3, [1, 1, 1]),
        (lambda x: 3 - x, 3 - v, [-1, -1, -1]),
        (lambda x: x * 3, v * 3, [3, 3, 3]),
        (lambda x: 3 * x, 3 * v, [3, 3, 3]),
        (lambda x: x / 4, v / 4, [0.25] * 3),
        (lambda x: 4 / x, 4 / v, -4 / v**2),
        (lambda x: x**2, v**2, 2 * v),
        (lambda x: x**0.5, v**0.5, 0.5 * v**-0.5),
        (lambda x: -x, -v, [-1, -1, -1]),
        (lambda x: 2**x, 2**v, np.log(2) * 2**v),
    ]
    for fn, want, grad in cases:
        x.grad = None
        y = fn(x)
        np.testing.assert_allclose(y.numpy(), want, rtol=1e-15)
        y.sum().backward()
        np.testing.assert_allclose(to_host(x.grad), grad, rtol=1e-15)


def test_numpy_values_on_the_left_defer_to_the_tensor_operators(device):
    x = mg.tensor([1.0, 2.0], device=device)
    for y in (np.float64(2.0) * x, np.float64(1.0) - x, np.ones(2) + x):
        assert isinstance(y, mg.Tensor) and y.dtype == np.float32


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_integer_and_float_operands_keep_the_float_dtype(device, op):
    fn = BINARY[op][0]
    x32 = mg.tensor([1.0, 2.0], device=device)
    i64 = mg.tensor([3, 4], device=device)
    i32 = mg.tensor(np.array([3, 4], dtype=np.int32), device=device)
    for a, b in ((x32, i64), (i64, x32), (x32, i32), (i64, 0.5), (0.5, i64)):
        y = fn(a, b)
        assert y.dtype == np.float32, (op, a, b)
        np.testing.assert_allclose(y.numpy(), BINARY[op][1](_np(a), _np(b)), rtol=1e-6)
    assert fn(i64, i64).dtype == (np.float32 if op == "div" else np.int64)
    assert fn(i64, 2).dtype == (np.float32 if op == "div" else np.int64)


def _np(v):
    return v.numpy() if isinstance(v, mg.Tensor) else v


def test_pow_exponent_rules(device):
    x = mg.tensor([0.0, 2.0], device=device, requires_grad=True)
    for c in (np.float64(2.5), np.int64(2), 2.5, 3):
        assert (x**c).dtype == np.float32, c  # NumPy scalars do not promote float32
    y = x**0  # constant 1: gradient 0 everywhere, also at x = 0
    y.sum().backward()
    np.testing.assert_array_equal(to_host(x.grad), [0.0, 0.0])
    np.testing.assert_array_equal(y.numpy(), [1.0, 1.0])
    with pytest.raises(TypeError, match="pow: the exponent must be a Python number"):
        x**x
    with pytest.raises(TypeError, match="pow: the exponent must be a number, got '2'"):
        F.pow(x, "2")
    with pytest.raises(ValueError, match="rpow: base \\*\\* tensor needs a positive number base"):
        (-2) ** x


def test_binary_op_without_any_tensor_is_refused():
    with pytest.raises(TypeError, match="add: expected at least one Tensor, got int and float"):
        F.add(1, 2.0)
