"""batch_norm and local_response_norm: loop references, running statistics, gradients, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad.gradcheck import gradcheck
from minigrad.testing import float_arrays

fixture_ok = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def t64(a, device, grad=False):
    return mg.tensor(np.asarray(a, dtype=np.float64), device=device, requires_grad=grad)


def naive_batch_norm(x, mean, var, w, b, eps):
    """y[n, c, ...] = (x - mean[c]) / sqrt(var[c] + eps) * w[c] + b[c], one element at a time."""
    y = np.zeros(x.shape)
    for idx in np.ndindex(*x.shape):
        c = idx[1]
        y[idx] = (x[idx] - mean[c]) / math.sqrt(var[c] + eps) * w[c] + b[c]
    return y


def naive_channel_stats(x):
    """Per-channel mean, biased and unbiased variance by loops over every value."""
    C = x.shape[1]
    mean, var, unbiased = np.zeros(C), np.zeros(C), np.zeros(C)
    for c in range(C):
        values = [x[idx] for idx in np.ndindex(*x.shape) if idx[1] == c]
        m = sum(values) / len(values)
        ss = sum((v - m) ** 2 for v in values)
        mean[c], var[c], unbiased[c] = m, ss / len(values), ss / (len(values) - 1)
    return mean, var, unbiased


def bn_shapes():
    """(N, C) and (N, C, H, W) shapes with at least 2 values per channel."""
    two = st.tuples(st.integers(2, 4), st.integers(1, 3))
    four = st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3))
    return st.one_of(two, four).filter(lambda s: math.prod(s) // s[1] >= 2)


# ---------------------------------------------------------------- batch_norm forward
@fixture_ok
@given(shape=bn_shapes(), data=st.data(), reference=st.booleans())
def test_batch_norm_training_matches_loops_and_updates_running_stats(
    device, shape, data, reference
):
    C = shape[1]
    x = data.draw(float_arrays(shape, low=-3, high=5))
    w, b = data.draw(float_arrays((C,))), data.draw(float_arrays((C,)))
    rm0, rv0 = data.draw(float_arrays((C,))), data.draw(float_arrays((C,), low=0.5, high=2))
    rm, rv = t64(rm0, device), t64(rv0, device)
    with mg.reference_ops(reference):  # the fast path, or the library's reference
        y = F.batch_norm(t64(x, device), rm, rv, t64(w, device), t64(b, device), True, 0.3, 1e-3)
    mean, var, unbiased = naive_channel_stats(x)
    np.testing.assert_allclose(y.numpy(), naive_batch_norm(x, mean, var, w, b, 1e-3), atol=1e-12)
    np.testing.assert_allclose(rm.numpy(), 0.7 * rm0 + 0.3 * mean, atol=1e-14)
    np.testing.assert_allclose(rv.numpy(), 0.7 * rv0 + 0.3 * unbiased, atol=1e-14)


def test_batch_norm_training_output_has_zero_mean_unit_variance(device):
    x = np.random.default_rng(0).normal(3.0, 5.0, size=(8, 3, 4, 5))
    y = F.batch_norm(t64(x, device), None, None, training=True, eps=0.0).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1.0, rtol=1e-12)


def test_running_stats_after_two_steps_match_a_hand_computation(device):
    rng = np.random.default_rng(1)
    x1, x2 = rng.normal(1.0, 2.0, size=(4, 2, 3, 3)), rng.normal(-2.0, 0.5, size=(4, 2, 3, 3))
    rm, rv = t64(np.zeros(2), device), t64(np.ones(2), device)
    for x in (x1, x2):
        F.batch_norm(t64(x, device), rm, rv, training=True, momentum=0.1)
    m1, m2 = x1.mean(axis=(0, 2, 3)), x2.mean(axis=(0, 2, 3))
    v1, v2 = x1.var(axis=(0, 2, 3), ddof=1), x2.var(axis=(0, 2, 3), ddof=1)  # unbiased (M = 36)
    np.testing.assert_allclose(rm.numpy(), 0.9 * (0.9 * 0 + 0.1 * m1) + 0.1 * m2, rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), 0.9 * (0.9 * 1 + 0.1 * v1) + 0.1 * v2, rtol=1e-12)


def test_batch_norm_eval_is_the_affine_map_of_the_running_stats(device):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 4, 2, 2))
    rm0, rv0 = rng.normal(size=4), rng.uniform(0.5, 2.0, size=4)
    w, b = rng.normal(size=4), rng.normal(size=4)
    rm, rv = t64(rm0, device), t64(rv0, device)
    y = F.batch_norm(t64(x, device), rm, rv, t64(w, device), t64(b, device), eps=1e-5).numpy()
    np.testing.assert_allclose(y, naive_batch_norm(x, rm0, rv0, w, b, 1e-5), rtol=1e-12)
    scale = (w / np.sqrt(rv0 + 1e-5))[:, None, None]
    np.testing.assert_allclose(y, x * scale + (b - rm0 * w / np.sqrt(rv0 + 1e-5))[:, None, None])
    np.testing.assert_array_equal(rm.numpy(), rm0)  # eval leaves the running stats alone
    np.testing.assert_array_equal(rv.numpy(), rv0)
    y2 = F.batch_norm(t64(x[:, :, 0, 0], device), rm, rv, eps=1e-5).numpy()  # (N, C), no affine
    ones, zeros = np.ones(4), np.zeros(4)
    np.testing.assert_allclose(y2, naive_batch_norm(x[:, :, 0, 0], rm0, rv0, ones, zeros, 1e-5))


# ---------------------------------------------------------------- batch_norm backward
@fixture_ok
@given(shape=bn_shapes(), training=st.booleans(), data=st.data(), reference=st.booleans())
def test_batch_norm_gradcheck(device, shape, training, data, reference):
    C = shape[1]
    x = t64(data.draw(float_arrays(shape)), device, grad=True)
    w = t64(data.draw(float_arrays((C,))), device, grad=True)
    b = t64(data.draw(float_arrays((C,))), device, grad=True)
    rm = t64(data.draw(float_arrays((C,))), device)
    rv = t64(data.draw(float_arrays((C,), low=0.5, high=2.0)), device)
    stats = (None, None) if training else (rm, rv)  # gradcheck needs a function without effects
    with mg.reference_ops(reference):
        assert gradcheck(
            lambda x, w, b: F.batch_norm(x, *stats, w, b, training, eps=1e-3), [x, w, b]
        )


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("which", ["x", "w", "b", "none_affine"])
def test_batch_norm_gradient_subsets(device, training, which):
    """Each input alone needing grad (the op skips the others' work) still gets it right."""
    rng = np.random.default_rng(3)
    x = t64(rng.normal(size=(3, 2, 2, 1)), device, grad=which in ("x", "none_affine"))
    w = t64(rng.normal(size=2), device, grad=which == "w")
    b = t64(rng.normal(size=2), device, grad=which == "b")
    rm, rv = t64(rng.normal(size=2), device), t64(rng.uniform(1, 2, size=2), device)
    stats = (None, None) if training else (rm, rv)
    if which == "none_affine":
        assert gradcheck(lambda x: F.batch_norm(x, *stats, training=training), [x])
    else:
        assert gradcheck(lambda x, w, b: F.batch_norm(x, *stats, w, b, training), [x, w, b])


def test_batch_norm_float32_stays_float32(device):
    rng = np.random.default_rng(4)
    x = mg.tensor(rng.normal(size=(4, 3, 2, 2)), dtype="float32", device=device)
    x.requires_grad = True
    w = mg.ones(3, device=device, requires_grad=True)
    b = mg.zeros(3, device=device, requires_grad=True)
    rm, rv = mg.zeros(3, device=device), mg.ones(3, device=device)
    for training in (True, False):
        y = F.batch_norm(x, rm, rv, w, b, training=training)
        assert y.dtype == np.float32
        (y * y).sum().backward()
        assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32
        assert rm.dtype == rv.dtype == np.float32


# ---------------------------------------------------------------- batch_norm errors
def test_batch_norm_errors(device):
    x = t64(np.zeros((2, 3, 2, 2)), device)
    c3, c4 = t64(np.ones(3), device), t64(np.ones(4), device)
    cases = [
        (lambda: F.batch_norm(x, c4, c3), r"running_mean has shape \(4,\) .* 3 channels"),
        (lambda: F.batch_norm(x, c3, c4), r"running_var has shape \(4,\)"),
        (lambda: F.batch_norm(x, c3, c3, c4), r"weight has shape \(4,\) .* 3 channels"),
        (lambda: F.batch_norm(x, c3, c3, c3, c4), r"bias has shape \(4,\)"),
        (lambda: F.batch_norm(t64(np.ones(3), device), None, None, training=True), "2 or more"),
        (
            lambda: F.batch_norm(t64(np.ones((1, 3)), device), c3, c3, training=True),
            r"more than 1 value per channel when training, got input of shape \(1, 3\)",
        ),
        (
            lambda: F.batch_norm(t64(np.ones((1, 3, 1, 1)), device), None, None, training=True),
            r"more than 1 value per channel .* \(1, 3, 1, 1\)",
        ),
        (lambda: F.batch_norm(x, None, None), "running_mean and running_var are required"),
        (lambda: F.batch_norm(x, c3, None, training=True), "both running_mean and running_var"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match="batch_norm: .*" + match):
            call()
    with pytest.raises(TypeError, match="batch_norm: running_mean must be a Tensor or None"):
        F.batch_norm(x, np.zeros(3), c3)
    with pytest.raises(TypeError, match="batch_norm: weight must be floating point"):
        F.batch_norm(x, c3, c3, mg.tensor(np.ones(3, int), device=device))


# ---------------------------------------------------------------- local_response_norm
def naive_lrn(x, size, alpha, beta, k):
    """PyTorch's LRN by loops: channels c - size//2 .. c + (size-1)//2, alpha / size."""
    y = np.zeros(x.shape)
    C = x.shape[1]
    for idx in np.ndindex(*x.shape):
        c = idx[1]
        window = range(max(0, c - size // 2), min(C, c + (size - 1) // 2 + 1))
        sq = sum(x[(idx[0], j, *idx[2:])] ** 2 for j in window)
        y[idx] = x[idx] / (k + alpha / size * sq) ** beta
    return y


@fixture_ok
@given(
    shape=st.tuples(st.integers(1, 2), st.integers(1, 6), st.integers(1, 3), st.integers(1, 2)),
    size=st.integers(1, 7),
    params=st.sampled_from([(1e-4, 0.75, 1.0), (0.5, 0.75, 2.0), (2.0, 1.3, 0.5), (0.5, 0.5, 1.0)]),
    data=st.data(),
    reference=st.booleans(),
)
def test_local_response_norm_matches_loops_and_gradcheck(
    device, shape, size, params, data, reference
):
    alpha, beta, k = params
    x = data.draw(float_arrays(shape))
    with mg.reference_ops(reference):  # the chunked path, or the library's reference
        y = F.local_response_norm(t64(x, device), size, alpha, beta, k)
        assert y.grad_fn is None or y.grad_fn.path == ("reference" if reference else "chunked")
        np.testing.assert_allclose(y.numpy(), naive_lrn(x, size, alpha, beta, k), rtol=1e-12)
        xt = t64(x, device, grad=True)
        assert gradcheck(lambda x: F.local_response_norm(x, size, alpha, beta, k), [xt])


def test_local_response_norm_3d_input_and_float32(device):
    x = np.random.default_rng(5).normal(size=(2, 5, 4))
    y = F.local_response_norm(t64(x, device), 4, alpha=0.5, beta=0.75, k=1.0).numpy()
    np.testing.assert_allclose(y, naive_lrn(x, 4, 0.5, 0.75, 1.0), rtol=1e-12)
    x32 = mg.tensor(x, dtype="float32", device=device, requires_grad=True)
    y32 = F.local_response_norm(x32, 5)
    assert y32.dtype == np.float32
    y32.sum().backward()
    assert x32.grad.dtype == np.float32


def test_local_response_norm_errors(device):
    with pytest.raises(ValueError, match=r"local_response_norm: .* 3 or more dims .* \(2, 3\)"):
        F.local_response_norm(t64(np.ones((2, 3)), device), 3)
    for size in (0, -1, 2.0):
        with pytest.raises(ValueError, match="local_response_norm: size must be a positive int"):
            F.local_response_norm(t64(np.ones((1, 3, 2)), device), size)


@pytest.mark.parametrize("relu, name", [(False, "BatchNorm"), (True, "BatchNormReLU")])
def test_a_second_backward_names_the_freed_batch_norm(device, relu, name):
    x = t64(np.random.default_rng(7).standard_normal((3, 2, 2, 2)), device, grad=True)
    y = F.batch_norm(x, None, None, training=True, relu=relu)
    assert y.grad_fn.name == name
    (y * y).sum().backward()
    with pytest.raises(RuntimeError, match=f"the graph through {name} was already freed"):
        (y * y).sum().backward()
