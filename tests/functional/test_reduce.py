"""sum, mean, max with dim/keepdim: loop references, gradients, ties, errors."""

from __future__ import annotations

import numpy as np
import pytest
from _host import to_host
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad.gradcheck import gradcheck
from minigrad.testing import float_arrays, separated_arrays, shapes

fixture_ok = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def t64(a, device, grad=False):
    return mg.tensor(np.asarray(a, dtype=np.float64), device=device, requires_grad=grad)


def out_index(idx, dims, keepdim):
    return tuple(0 if d in dims else i for d, i in enumerate(idx) if keepdim or d not in dims)


def loop_reduce(x, dims, keepdim, op):
    """Sum/mean/max over ``dims`` by visiting every element once."""
    shape = tuple(1 if d in dims else s for d, s in enumerate(x.shape) if keepdim or d not in dims)
    acc: dict = {}
    for idx in np.ndindex(*x.shape):
        acc.setdefault(out_index(idx, dims, keepdim), []).append(float(x[idx]))
    out = np.zeros(shape)
    for k, vals in acc.items():
        out[k] = {"sum": sum, "mean": lambda v: sum(v) / len(v), "max": max}[op](vals)
    return out


@st.composite
def shape_and_dims(draw):
    """(shape, dim argument, the non-negative axes it means): None, an int or a tuple."""
    shape = draw(shapes(1, 4, 1, 3))
    n = len(shape)
    axes = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    signed = tuple(a - n if draw(st.booleans()) else a for a in axes)  # some negative
    dim = draw(st.sampled_from([None, signed[0], signed]))
    if dim is None:
        return shape, None, tuple(range(n))
    return shape, dim, (axes[0],) if isinstance(dim, int) else tuple(sorted(axes))


@pytest.mark.parametrize("op", ["sum", "mean"])
@fixture_ok
@given(sd=shape_and_dims(), keepdim=st.booleans(), data=st.data())
def test_sum_and_mean_match_loops_and_gradcheck(device, op, sd, keepdim, data):
    shape, dim, dims = sd
    x = data.draw(float_arrays(shape))
    fn = getattr(F, op)
    y = fn(t64(x, device), dim, keepdim)
    want = loop_reduce(x, dims, keepdim, op)
    assert y.shape == want.shape
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-13, atol=1e-14)
    method = getattr(t64(x, device), op)(dim=dim, keepdim=keepdim)
    np.testing.assert_array_equal(method.numpy(), y.numpy())
    assert gradcheck(lambda x: fn(x, dim, keepdim), [t64(x, device, grad=True)])


@fixture_ok
@given(shape=shapes(1, 3, 1, 4), keepdim=st.booleans(), data=st.data())
def test_max_along_a_dim_matches_loops_and_gradchecks(device, shape, keepdim, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(separated_arrays(shape))  # no ties: the maximum is unique
    values, indices = F.max(t64(x, device), dim, keepdim)
    d = dim % len(shape)
    np.testing.assert_array_equal(values.numpy(), loop_reduce(x, (d,), keepdim, "max"))
    want_idx = np.argmax(x, axis=d)
    np.testing.assert_array_equal(
        indices.numpy(), np.expand_dims(want_idx, d) if keepdim else want_idx
    )
    assert indices.dtype.kind == "i" and not indices.requires_grad
    assert gradcheck(lambda x: F.max(x, dim, keepdim).values, [t64(x, device, grad=True)])


@fixture_ok
@given(shape=shapes(0, 3, 1, 4), data=st.data())
def test_max_over_everything_is_a_scalar(device, shape, data):
    x = data.draw(separated_arrays(shape))
    y = t64(x, device).max()
    assert y.shape == () and y.item() == x.max()
    assert gradcheck(F.max, [t64(x, device, grad=True)])


def test_max_gradient_goes_to_the_first_maximum_on_ties(device):
    x = t64([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], device, grad=True)
    values, indices = x.max(dim=1)
    np.testing.assert_array_equal(indices.numpy(), [1, 0])
    values.sum().backward()
    np.testing.assert_array_equal(to_host(x.grad), [[0, 1, 0], [1, 0, 0]])
    x.grad = None
    x.max().backward()
    np.testing.assert_array_equal(to_host(x.grad), [[0, 1, 0], [0, 0, 0]])


def test_keepdim_gradient_shapes_and_dtypes(device):
    x = mg.tensor(np.ones((2, 3, 4)), dtype="float32", device=device, requires_grad=True)
    for y in (x.sum(1, keepdim=True), x.mean((0, 2), keepdim=True), x.max(2, keepdim=True)[0]):
        x.grad = None
        assert y.dtype == np.float32
        y.sum().backward()
        assert x.grad.shape == (2, 3, 4) and x.grad.dtype == np.float32


def test_mean_of_integers_and_bools_is_float32(device):
    labels = mg.tensor([1, 2, 3, 6], device=device)
    assert labels.mean().dtype == np.float32 and labels.mean().item() == 3.0
    hits = labels == mg.tensor([1, 0, 3, 0], device=device)
    assert hits.mean().item() == 0.5
    assert labels.sum().dtype == np.int64


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda x: x.sum(dim=2), ValueError, "sum: dim 2 out of range for a 2-D tensor"),
        (lambda x: x.mean(dim=-3), ValueError, "mean: dim -3 out of range for a 2-D tensor"),
        (lambda x: x.max(dim=5), ValueError, "max: dim 5 out of range for a 2-D tensor"),
        (lambda x: x.sum(dim=True), TypeError, "sum: dim must be an int or a tuple of ints"),
        (lambda x: x.max(dim=(0, 1)), TypeError, r"max: dim must be an int or None, got \(0, 1\)"),
        (lambda x: x.mean(dim="0"), TypeError, "mean: dim must be an int"),
        (lambda x: F.max(x[:0]), ValueError, "max: empty tensor"),
    ],
)
def test_bad_dims_are_named(device, call, err, match):
    with pytest.raises(err, match=match):
        call(mg.ones(2, 3, device=device))
