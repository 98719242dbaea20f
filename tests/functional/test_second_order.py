"""Second derivatives of every op in ``F.__all__``: gradgradcheck over drawn geometries.

Each test draws a geometry (strides, padding, ``ceil_mode``, batch norm in training and
eval, ignore_index and label smoothing, the channel-major layout that conv2d outputs) and
runs ``gradgradcheck`` in float64 on the device under test, on the fast path or the
reference (drawn). ``test_every_op_is_covered`` keeps the list in step with ``F.__all__``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad.gradcheck import gradgradcheck
from minigrad.testing import (
    conv_geometries,
    float_arrays,
    pool_geometries,
    separated_arrays,
    shapes,
)

fixture_ok = settings(
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ]
)

#: the ops each test below covers (``test_every_op_is_covered`` checks the union)
COVERED: set[str] = set()


def covers(*names: str):
    COVERED.update(names)
    return lambda f: f


def t64(a, device, grad=True):
    return mg.tensor(np.asarray(a, dtype=np.float64), device=device, requires_grad=grad)


def channel_major_input(x, channel_major: bool):
    """``x`` (a leaf) itself, or (when channel_major) x's (C, N, ...) leaf seen as (N, C, ...)
    through a permute: the op then gets the layout conv2d gives its outputs."""
    if not channel_major:
        return x, lambda t: t
    dims = (1, 0, *range(2, x.ndim))
    xc = mg.tensor(np.ascontiguousarray(x.numpy().transpose(dims)), device=x.device)
    xc.requires_grad_(True)
    return xc, lambda t: F.permute(t, dims)


def check(fn, inputs, reference, mode="full"):
    with mg.reference_ops(reference):
        assert gradgradcheck(fn, inputs, mode=mode, n_directions=3, atol=1e-5, rtol=1e-3)


# ---------------------------------------------------------------- image ops
@covers("conv2d")
@fixture_ok
@given(g=conv_geometries(max_channels=2, max_size=5), bias=st.booleans(), data=st.data())
def test_conv2d_gradgrad(device, g, bias, data):
    x = t64(data.draw(float_arrays(g.input_shape)), device)
    w = t64(data.draw(float_arrays(g.weight_shape)), device)
    b = t64(data.draw(float_arrays((g.C_out,))), device)
    args = [x, w, b] if bias else [x, w]
    fn = lambda x, w, *b: F.conv2d(x, w, *b, stride=g.stride, padding=g.padding)  # noqa: E731
    check(fn, args, data.draw(st.booleans()), mode="random")


@covers("max_pool2d", "avg_pool2d")
@fixture_ok
@given(
    g=pool_geometries(max_size=6),
    kind=st.sampled_from(["max", "avg", "avg_exclude_pad"]),
    layout=st.booleans(),
    data=st.data(),
)
def test_pools_gradgrad(device, g, kind, layout, data):
    x0 = t64(data.draw(separated_arrays(g.input_shape)), device)
    x, view = channel_major_input(x0, layout)
    args = (g.kernel, g.stride, g.padding, g.ceil_mode)
    if kind == "max":
        fn = lambda x: F.max_pool2d(view(x), *args)  # noqa: E731
    else:
        cip = kind == "avg"
        fn = lambda x: F.avg_pool2d(view(x), *args, count_include_pad=cip)  # noqa: E731
    check(fn, [x], data.draw(st.booleans()), mode="random")


@covers("adaptive_avg_pool2d")
@fixture_ok
@given(
    hw=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    out=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    data=st.data(),
)
def test_adaptive_avg_pool_gradgrad(device, hw, out, data):
    x = t64(data.draw(float_arrays((2, 2, *hw))), device)
    check(lambda x: F.adaptive_avg_pool2d(x, out), [x], data.draw(st.booleans()), mode="random")


@covers("batch_norm")
@fixture_ok
@given(
    shape=st.sampled_from([(3, 2), (2, 3, 2, 2), (4, 2, 1, 3), (2, 2, 3)]),
    training=st.booleans(),
    relu=st.booleans(),
    affine=st.booleans(),
    layout=st.booleans(),
    data=st.data(),
)
def test_batch_norm_gradgrad(device, shape, training, relu, affine, layout, data):
    C = shape[1]
    x0 = t64(data.draw(separated_arrays(shape, gap=0.3)), device)
    x, view = channel_major_input(x0, layout)
    w = t64(data.draw(float_arrays((C,), low=0.5, high=2.0)), device)
    b = t64(data.draw(float_arrays((C,))), device)
    rm = t64(data.draw(float_arrays((C,))), device, grad=False)
    rv = t64(data.draw(float_arrays((C,), low=0.5, high=2.0)), device, grad=False)
    stats = (None, None) if training else (rm, rv)
    args = [x, w, b] if affine else [x]

    def fn(x, *wb):
        w_, b_ = wb if wb else (None, None)
        return F.batch_norm(view(x), *stats, w_, b_, training, eps=1e-3, relu=relu)

    check(fn, args, data.draw(st.booleans()), mode="random")


@covers("local_response_norm")
@fixture_ok
@given(shape=st.sampled_from([(2, 5, 2, 2), (1, 3, 3), (2, 4, 1, 2)]), size=st.integers(1, 5))
def test_local_response_norm_gradgrad(device, shape, size):
    x = t64(np.random.default_rng(size).uniform(-2, 2, shape), device)
    fn = lambda x: F.local_response_norm(x, size, alpha=0.5, beta=0.75, k=1.0)  # noqa: E731
    check(fn, [x], reference=size % 2 == 0)


@covers("dropout")
@fixture_ok
@given(shape=shapes(1, 3, 1, 4), p=st.sampled_from([0.2, 0.5, 1.0]), data=st.data())
def test_dropout_gradgrad_uses_the_same_mask(device, shape, p, data):
    x = t64(data.draw(float_arrays(shape)), device)

    def fn(x):
        mg.manual_seed(7)  # the same mask at every evaluation
        return F.dropout(x, p) * x

    check(fn, [x], data.draw(st.booleans()))


# ---------------------------------------------------------------- losses and softmax
@covers("cross_entropy", "nll_loss", "softmax", "log_softmax")
@fixture_ok
@given(
    n=st.integers(1, 4),
    c=st.integers(2, 4),
    kind=st.sampled_from(["ce", "nll", "softmax", "log_softmax"]),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    smoothing=st.sampled_from([0.0, 0.2]),
    ignore=st.booleans(),
    data=st.data(),
)
def test_losses_gradgrad(device, n, c, kind, reduction, smoothing, ignore, data):
    x = t64(data.draw(float_arrays((n, c))), device)
    target = np.arange(n) % c
    if ignore:
        target[0] = -100
    if kind == "ce":
        fn = lambda x: F.cross_entropy(x, target, reduction, smoothing)  # noqa: E731
    elif kind == "nll":
        fn = lambda x: F.nll_loss(F.log_softmax(x, 1), target, reduction)  # noqa: E731
    elif kind == "softmax":
        dim = data.draw(st.integers(0, 1))
        fn = lambda x: F.softmax(x, dim)  # noqa: E731
    else:
        fn = lambda x: F.log_softmax(x, 1)  # noqa: E731
    if kind in ("ce", "nll") and reduction != "none" and ignore and n == 1:
        return  # every row ignored: the mean is nan, nothing to check
    check(fn, [x], data.draw(st.booleans()))


# ---------------------------------------------------------------- elementwise, products
UNARY = {
    "neg": lambda x: F.neg(x) * x,
    "exp": F.exp,
    "log": lambda x: F.log(x * x + 0.5),
    "sqrt": lambda x: F.sqrt(x * x + 0.5),
    "tanh": F.tanh,
    "sigmoid": F.sigmoid,
    "relu": lambda x: F.relu(x) * x,
    "pow": lambda x: F.pow(x, 3) + F.pow(x * x + 1, -0.5) + F.pow(x, 1) * F.pow(x, 0),
}


@covers(*UNARY)
@fixture_ok
@given(name=st.sampled_from(sorted(UNARY)), shape=shapes(0, 3, 1, 3), data=st.data())
def test_unary_gradgrad(device, name, shape, data):
    x = t64(data.draw(separated_arrays(shape)), device)
    check(UNARY[name], [x], data.draw(st.booleans()))


BINARY = {"add": F.add, "sub": F.sub, "mul": F.mul, "div": lambda a, b: F.div(a, b * b + 0.5)}


@covers(*BINARY)
@fixture_ok
@given(
    name=st.sampled_from(sorted(BINARY)),
    shapes_=st.sampled_from([((2, 3), (2, 3)), ((2, 3), (3,)), ((1, 3), (2, 1)), ((), (2,))]),
    data=st.data(),
)
def test_binary_gradgrad_with_broadcasting(device, name, shapes_, data):
    a = t64(data.draw(float_arrays(shapes_[0])), device)
    b = t64(data.draw(float_arrays(shapes_[1])), device)
    op = BINARY[name]
    check(lambda a, b: op(a, b) * op(b, a), [a, b], data.draw(st.booleans()))


@covers("matmul", "linear")
@fixture_ok
@given(
    case=st.sampled_from(
        [
            ((2, 3), (3, 4)),
            ((2, 2, 3), (3, 2)),
            ((3,), (3, 2)),
            ((2, 3), (3,)),
            ((1, 2, 3), (2, 3, 2)),
        ]
    ),
    bias=st.booleans(),
    data=st.data(),
)
def test_matmul_and_linear_gradgrad(device, case, bias, data):
    a = t64(data.draw(float_arrays(case[0])), device)
    b = t64(data.draw(float_arrays(case[1])), device)
    check(lambda a, b: F.matmul(a, b) * F.matmul(a, b), [a, b], data.draw(st.booleans()))
    w = t64(data.draw(float_arrays((2, case[0][-1]))), device)
    bb = t64(data.draw(float_arrays((2,))), device)
    args = [a, w, bb] if bias else [a, w]
    check(lambda *t: F.tanh(F.linear(*t)), args, data.draw(st.booleans()))


# ---------------------------------------------------------------- reductions and shapes
@covers("sum", "mean", "max", "MaxResult")
@fixture_ok
@given(
    shape=shapes(1, 3, 1, 3),
    kind=st.sampled_from(["sum", "mean", "max", "max_all"]),
    keepdim=st.booleans(),
    data=st.data(),
)
def test_reductions_gradgrad(device, shape, kind, keepdim, data):
    x = t64(data.draw(separated_arrays(shape)), device)
    d = data.draw(st.integers(0, len(shape) - 1))
    fns = {
        "sum": lambda x: F.sum(x * x, d, keepdim),
        "mean": lambda x: F.mean(x * x, (d,), keepdim),
        "max": lambda x: F.max(x * x * x, d, keepdim).values,
        "max_all": lambda x: F.max(x * x * x),
    }
    check(fns[kind], [x], data.draw(st.booleans()))


@covers("reshape", "permute", "transpose", "flatten", "getitem", "cat", "split")
@fixture_ok
@given(
    kind=st.sampled_from(["reshape", "permute", "transpose", "flatten", "getitem", "fancy", "cat"]),
    data=st.data(),
)
def test_shape_ops_gradgrad(device, kind, data):
    x = t64(data.draw(float_arrays((2, 3, 2))), device)
    fns = {
        "reshape": lambda x: F.reshape(x, (3, 4)) ** 2,
        "permute": lambda x: F.permute(x, (2, 0, 1)) ** 2,
        "transpose": lambda x: F.transpose(x, 0, 2) ** 2,
        "flatten": lambda x: F.flatten(x, 1) ** 2,
        "getitem": lambda x: x[1:, ::2] ** 2,
        "fancy": lambda x: x[[0, 0, 1], 1] ** 2,  # a repeated index: gradients add up
        "cat": lambda x: F.cat([*F.split(x * x, [1, 2], 1), x], 1),
    }
    check(fns[kind], [x], data.draw(st.booleans()))


def test_every_op_is_covered():
    assert set(F.__all__) <= COVERED, sorted(set(F.__all__) - COVERED)


@pytest.mark.parametrize("reference", [False, True])
def test_third_order_through_conv_and_pool(device, reference):
    """create_graph to any order: the gradient's gradient is differentiable again."""
    rng = np.random.default_rng(0)
    x = t64(rng.standard_normal((1, 2, 4, 4)), device)
    w = t64(rng.standard_normal((2, 2, 3, 3)), device)

    def second(x, w):
        with mg.enable_grad():  # gradcheck's evaluations run under no_grad
            y = F.max_pool2d(F.tanh(F.conv2d(x, w, padding=1)), 2)
            (gx,) = mg.grad(y.sum(), [x], create_graph=True)
            (gw,) = mg.grad((gx * gx).sum(), [w], create_graph=True)
            return gw

    with mg.reference_ops(reference):
        assert gradgradcheck(second, [x, w], mode="random")


def test_a_self_consistent_but_wrong_backward_graph_is_caught(device, monkeypatch):
    """Max pool's backward_graph with the window offsets transposed is a linear map whose
    own finite differences agree with it; gradgradcheck still catches it by comparing with
    the first-order backward."""
    from minigrad.functional.pool import MaxPool2d

    right = MaxPool2d.window_argmax

    def transposed(self):
        k = right(self)
        KW = self.grid.kernel[1]
        return (k % KW) * KW + k // KW

    monkeypatch.setattr(MaxPool2d, "window_argmax", transposed)
    x = t64(
        np.random.default_rng(0).permutation(np.arange(2 * 6 * 6.0)).reshape(1, 2, 6, 6), device
    )
    with pytest.raises(AssertionError, match="differs from the first-order backward"):
        gradgradcheck(lambda x: F.max_pool2d(x, 3, 2), [x])
