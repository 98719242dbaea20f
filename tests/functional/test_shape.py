"""reshape, permute/transpose, flatten, indexing, cat/split: references, gradients, errors."""

from __future__ import annotations

import numpy as np
import pytest
from _host import to_host
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad.gradcheck import gradcheck
from minigrad.testing import float_arrays, shapes

fixture_ok = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def t64(a, device, grad=False):
    return mg.tensor(np.asarray(a, dtype=np.float64), device=device, requires_grad=grad)


@fixture_ok
@given(shape=shapes(1, 4, 1, 4), data=st.data())
def test_reshape_keeps_row_major_order_and_gradchecks(device, shape, data):
    x = data.draw(float_arrays(shape))
    n = x.size
    target = data.draw(st.sampled_from([(n,), (-1,), (1, n), (n, -1), (-1, 1, 1)]))
    y = t64(x, device).reshape(target)
    assert y.numel() == n and -1 not in y.shape
    assert [float(v) for v in y.numpy().reshape(-1)] == [float(x[i]) for i in np.ndindex(*shape)]
    assert gradcheck(lambda x: F.reshape(x, target) * 2, [t64(x, device, grad=True)])
    assert t64(x, device).view(*y.shape).shape == y.shape


@fixture_ok
@given(shape=shapes(1, 4, 1, 3), data=st.data())
def test_permute_and_transpose_move_every_element_and_gradcheck(device, shape, data):
    x = data.draw(float_arrays(shape))
    dims = tuple(data.draw(st.permutations(range(len(shape)))))
    y = t64(x, device).permute(*dims).numpy()
    for idx in np.ndindex(*y.shape):  # y[i0, i1, ...] = x[i at position dims^-1]
        src = [0] * len(shape)
        for k, d in enumerate(dims):
            src[d] = idx[k]
        assert y[idx] == x[tuple(src)]
    assert gradcheck(lambda x: F.permute(x, dims), [t64(x, device, grad=True)])
    a, b = data.draw(st.integers(-len(shape), len(shape) - 1)), 0
    np.testing.assert_array_equal(t64(x, device).transpose(a, b).numpy(), np.swapaxes(x, a, b))
    assert gradcheck(lambda x: F.transpose(x, a, b), [t64(x, device, grad=True)])
    np.testing.assert_array_equal(t64(x, device).T.numpy(), x.T)


@pytest.mark.parametrize(
    "shape, start, end, want",
    [
        ((2, 3, 4, 5), 0, -1, (120,)),
        ((2, 3, 4, 5), 1, -1, (2, 60)),
        ((2, 3, 4, 5), 1, 2, (2, 12, 5)),
        ((2, 3, 4, 5), -2, -1, (2, 3, 20)),
        ((2, 3), 1, 1, (2, 3)),
        ((), 0, -1, (1,)),
    ],
)
def test_flatten_shapes_as_in_pytorch(device, shape, start, end, want):
    x = mg.tensor(np.arange(np.prod(shape, dtype=int)).reshape(shape) * 1.0, device=device)
    y = x.flatten(start, end)
    assert y.shape == want and F.flatten(x, start, end).shape == want
    np.testing.assert_array_equal(y.numpy().reshape(-1), x.numpy().reshape(-1))


def test_flatten_gradient(device):
    x = t64(np.random.default_rng(0).standard_normal((2, 3, 2)), device, grad=True)
    assert gradcheck(lambda x: F.flatten(x, 1) * F.flatten(x, 1), [x])


KEYS = [
    (1,),
    (-1,),
    (slice(None, None, 2),),
    (slice(None), 1),
    (slice(3, 0, -1), slice(None), 0),
    (Ellipsis, None, 1),
    (np.array([0, 0, 2]),),  # a repeated row: its gradient must add up
    (np.array([1, 1, 3]), slice(None), np.array([0, 0, 2])),
    ([2, 0],),
]


@pytest.mark.parametrize("key", KEYS, ids=lambda k: repr(k).replace(" ", ""))
def test_indexing_forward_and_gradient_count_selections(device, key):
    x = np.random.default_rng(1).standard_normal((4, 3, 3))
    t = t64(x, device, grad=True)
    on_device = tuple(mg.tensor(k, device=device) if isinstance(k, np.ndarray) else k for k in key)
    y = t[on_device]
    np.testing.assert_array_equal(y.numpy(), x[key])
    y.backward(mg.ones(*y.shape, dtype="float64", device=device))
    counts = np.zeros(x.shape)  # how often each element of x appears in y, by loops
    positions = np.arange(x.size).reshape(x.shape)[key]
    for p in positions.reshape(-1):
        counts[np.unravel_index(int(p), x.shape)] += 1
    np.testing.assert_array_equal(to_host(t.grad), counts)
    assert gradcheck(lambda t: t[on_device] * t[on_device], [t64(x, device, grad=True)])


def test_indexing_with_boolean_masks_and_tensors(device):
    x = t64([[1.0, -2.0], [3.0, -4.0]], device, grad=True)
    y = x[x > 0]
    np.testing.assert_array_equal(y.numpy(), [1.0, 3.0])
    y.sum().backward()
    np.testing.assert_array_equal(to_host(x.grad), [[1, 0], [1, 0]])
    rows = mg.tensor([1, 1], device=device)
    np.testing.assert_array_equal(x[rows, 0].numpy(), [3.0, 3.0])


@st.composite
def cat_inputs(draw):
    ndim = draw(st.integers(1, 3))
    dim = draw(st.integers(-ndim, ndim - 1))
    base = list(draw(shapes(ndim, ndim, 1, 3)))
    sizes = draw(st.lists(st.integers(0, 3), min_size=1, max_size=4).filter(lambda s: sum(s) > 0))
    out = []
    for s in sizes:
        shape = list(base)
        shape[dim] = s
        out.append(tuple(shape))
    return out, dim, sizes


@fixture_ok
@given(spec=cat_inputs(), data=st.data())
def test_cat_split_round_trip(device, spec, data):
    shapes_, dim, sizes = spec
    xs = [data.draw(float_arrays(s)) for s in shapes_]
    y = F.cat([t64(x, device) for x in xs], dim)
    np.testing.assert_array_equal(y.numpy(), np.concatenate(xs, axis=dim))
    parts = F.split(y, sizes, dim)
    assert len(parts) == len(xs)
    for p, x in zip(parts, xs):
        np.testing.assert_array_equal(p.numpy(), x)
    back = F.cat(list(F.split(y, 2, dim)), dim)  # chunks of 2, the last may be smaller
    np.testing.assert_array_equal(back.numpy(), y.numpy())
    ts = [t64(x, device, grad=True) for x in xs]
    assert gradcheck(lambda *ts: F.cat(list(ts), dim) ** 2, ts)
    assert gradcheck(lambda y: F.split(y, sizes, dim), [t64(y.numpy(), device, grad=True)])


def test_split_chunks_and_cat_default_dim(device):
    x = mg.tensor(np.arange(10.0), device=device)
    assert [p.shape for p in F.split(x, 4)] == [(4,), (4,), (2,)]
    assert [p.shape for p in mg.split(x, [3, 0, 7])] == [(3,), (0,), (7,)]
    a, b = mg.ones(2, 3, 4, 4, device=device), mg.zeros(2, 5, 4, 4, device=device)
    assert F.cat([a, b]).shape == (2, 8, 4, 4)  # dim=1: channels, minigrad's default
    assert mg.cat([a, a], dim=0).shape == (4, 3, 4, 4)


def test_split_outputs_that_are_not_used_get_zero_gradient(device):
    x = t64(np.arange(6.0).reshape(2, 3), device, grad=True)
    a, _ = F.split(x, 1, dim=0)
    (a * 2).sum().backward()
    np.testing.assert_array_equal(to_host(x.grad), [[2, 2, 2], [0, 0, 0]])


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda x: x.reshape(5), ValueError, r"reshape: cannot view shape \(2, 3\) .* as \(5,\)"),
        (lambda x: x.reshape(-1, -1), ValueError, "reshape: cannot view"),
        (lambda x: x.permute(0, 0), ValueError, r"permute: \(0, 0\) is not a permutation"),
        (lambda x: x.transpose(0, 2), ValueError, "transpose: dim 2 out of range for a 2-D"),
        (lambda x: x.flatten(1, 0), ValueError, "flatten: start_dim 1 comes after end_dim 0"),
        (lambda x: F.cat([]), ValueError, "cat: expected a non-empty sequence"),
        (
            lambda x: F.cat([x, mg.ones(3, 4)], dim=0),
            ValueError,
            r"cat: tensor 1 has shape \(3, 4\), incompatible with \(2, 3\)",
        ),
        (lambda x: F.cat([x, x], dim=2), ValueError, "cat: dim 2 out of range"),
        (lambda x: F.split(x, 0), ValueError, "split: split_size must be positive, got 0"),
        (lambda x: F.split(x, [1, 2], 0), ValueError, r"split: sections \[1, 2\] do not add"),
    ],
)
def test_shape_errors_name_the_op_and_values(call, err, match):
    with pytest.raises(err, match=match):
        call(mg.ones(2, 3))


def test_split_backward_chunked_is_channel_major_like_its_input():
    from minigrad.functional._layout import is_channel_major
    from minigrad.functional.shape import Split

    rng = np.random.default_rng(0)
    gys = [rng.standard_normal((c, 2, 3, 3)).swapaxes(0, 1) for c in (2, 3)]  # channel-major
    gys[1] = np.ascontiguousarray(gys[1])  # NCHW: any layout is copied in
    gx = Split([2, 3], 1).backward_chunked(*gys)
    assert is_channel_major(gx)
    np.testing.assert_array_equal(gx, np.concatenate(gys, axis=1))
