"""softmax, log_softmax, cross_entropy, nll_loss: loop references, gradients, properties, errors."""

from __future__ import annotations

import math

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


def naive_softmax_rows(x):
    """Softmax of each row of a 2-D array by loops (shifted by the row max)."""
    y = np.zeros_like(x, dtype=np.float64)
    for i in range(x.shape[0]):
        m = max(x[i])
        e = [math.exp(v - m) for v in x[i]]
        y[i] = [v / sum(e) for v in e]
    return y


def naive_softmax(x, dim):
    """Softmax along ``dim`` via the row version on the axis moved last."""
    moved = np.moveaxis(x, dim, -1)
    rows = naive_softmax_rows(moved.reshape(-1, moved.shape[-1]))
    return np.moveaxis(rows.reshape(moved.shape), -1, dim)


def naive_cross_entropy(x, t, reduction="mean", smoothing=0.0, ignore_index=-100):
    """PyTorch's class-index cross-entropy by loops."""
    N, C = x.shape
    losses, count = [], 0
    for i in range(N):
        if t[i] == ignore_index:
            losses.append(0.0)
            continue
        count += 1
        m = max(x[i])
        lse = m + math.log(sum(math.exp(v - m) for v in x[i]))
        logp = [v - lse for v in x[i]]
        q = [(1 - smoothing) * (c == t[i]) + smoothing / C for c in range(C)]
        losses.append(-sum(qc * lc for qc, lc in zip(q, logp)))
    if reduction == "none":
        return np.array(losses)
    if reduction == "sum":
        return sum(losses)
    return sum(losses) / count if count else float("nan")


# ---------------------------------------------------------------- softmax / log_softmax
@fixture_ok
@given(shape=shapes(1, 3, 1, 4), data=st.data())
def test_softmax_and_log_softmax_match_loops(device, shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(float_arrays(shape, low=-5, high=5))
    ref = naive_softmax(x, dim)
    y = F.softmax(t64(x, device), dim).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(F.log_softmax(t64(x, device), dim).numpy(), np.log(ref), atol=1e-12)
    np.testing.assert_allclose(y.sum(axis=dim), 1.0, rtol=1e-12)  # rows sum to 1
    const_shape = tuple(1 if a == dim % len(shape) else n for a, n in enumerate(shape))
    shifted = x + data.draw(float_arrays(const_shape, low=-50, high=50))  # a constant per row
    np.testing.assert_allclose(F.softmax(t64(shifted, device), dim).numpy(), y, atol=1e-12)


def test_softmax_is_stable_for_huge_logits(device):
    x = t64([[1000.0, 0.0, -1000.0], [-800.0, -800.0, -801.0]], device)
    y = F.softmax(x, 1).numpy()  # filterwarnings=error would turn an overflow into a failure
    np.testing.assert_allclose(y[0], [1.0, 0.0, 0.0], atol=1e-300)
    np.testing.assert_allclose(y[1], naive_softmax_rows(np.array([[0.0, 0.0, -1.0]]))[0])
    assert np.isfinite(F.log_softmax(x, 1).numpy()).all()
    assert F.log_softmax(x, 1).numpy()[0, 2] == -2000.0


@fixture_ok
@given(shape=shapes(1, 3, 1, 3), data=st.data())
def test_softmax_and_log_softmax_gradcheck(device, shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = t64(data.draw(float_arrays(shape, low=-3, high=3)), device, grad=True)
    assert gradcheck(lambda x: F.softmax(x, dim), [x])
    assert gradcheck(lambda x: F.log_softmax(x, dim), [x])


def test_tensor_methods_call_softmax(device):
    x = t64([[1.0, 2.0, 3.0]], device)
    np.testing.assert_array_equal(x.softmax(1).numpy(), F.softmax(x, 1).numpy())
    np.testing.assert_array_equal(x.log_softmax(-1).numpy(), F.log_softmax(x, 1).numpy())


# ---------------------------------------------------------------- cross_entropy / nll_loss
def draw_targets(data, N, C, ignore=True):
    """Labels in [0, C), with some rows set to -100 (ignored) when ``ignore``."""
    labels = data.draw(st.lists(st.integers(0, C - 1), min_size=N, max_size=N))
    if ignore:
        drop = data.draw(st.lists(st.booleans(), min_size=N, max_size=N))
        labels = [-100 if d else v for v, d in zip(labels, drop)]
    return np.array(labels, dtype=np.int64)


@fixture_ok
@given(
    N=st.integers(1, 5),
    C=st.integers(1, 5),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    smoothing=st.sampled_from([0.0, 0.1, 0.35, 1.0]),
    data=st.data(),
)
def test_cross_entropy_matches_loops(device, N, C, reduction, smoothing, data):
    x = data.draw(float_arrays((N, C), low=-6, high=6))
    t = draw_targets(data, N, C, ignore=reduction != "mean")
    y = F.cross_entropy(t64(x, device), t, reduction=reduction, label_smoothing=smoothing)
    np.testing.assert_allclose(
        y.numpy(), naive_cross_entropy(x, t, reduction, smoothing), atol=1e-12
    )


def test_cross_entropy_mean_ignores_rows_in_numerator_and_denominator(device):
    x = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0], [1.0, 1.0, 1.0], [-1.0, 0.0, 4.0]])
    for ignore_index, t in [(-100, [0, -100, 2, -100]), (1, [0, 1, 2, 1])]:
        got = F.cross_entropy(t64(x, device), t, label_smoothing=0.2, ignore_index=ignore_index)
        kept = naive_cross_entropy(x[[0, 2]], [0, 2], "mean", 0.2)
        np.testing.assert_allclose(got.item(), kept, rtol=1e-12)


def test_cross_entropy_all_ignored_is_nan_with_zero_gradient(device):
    x = t64(np.ones((2, 3)), device, grad=True)
    y = F.cross_entropy(x, [-100, -100])
    assert math.isnan(y.item())
    y.backward()
    np.testing.assert_array_equal(to_host(x.grad), np.zeros((2, 3)))
    assert F.cross_entropy(x.detach(), [-100, -100], reduction="sum").item() == 0.0


@fixture_ok
@given(
    N=st.integers(1, 3),
    C=st.integers(1, 4),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    smoothing=st.sampled_from([0.0, 0.25]),
    data=st.data(),
)
def test_cross_entropy_gradcheck(device, N, C, reduction, smoothing, data):
    x = t64(data.draw(float_arrays((N, C), low=-3, high=3)), device, grad=True)
    t = draw_targets(data, N, C, ignore=True)
    if reduction == "mean" and (t == -100).all():
        t[0] = 0  # an all-ignored mean is nan by definition
    assert gradcheck(
        lambda x: F.cross_entropy(x, t, reduction=reduction, label_smoothing=smoothing), [x]
    )


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n(device):
    rng = np.random.default_rng(0)
    N, C = 6, 5
    x = t64(rng.normal(size=(N, C)) * 3, device, grad=True)
    t = rng.integers(0, C, size=N)
    F.cross_entropy(x, mg.tensor(t, device=device)).backward()
    onehot = np.eye(C)[t]
    np.testing.assert_allclose(
        to_host(x.grad), (naive_softmax_rows(x.numpy()) - onehot) / N, atol=1e-15
    )
    np.testing.assert_allclose(to_host(x.grad).sum(axis=1), 0.0, atol=1e-15)
    x.grad = None  # with smoothing the target row is (1 - s) onehot + s / C, still summing to 1
    F.cross_entropy(x, t, reduction="sum", label_smoothing=0.3).backward()
    q = 0.7 * onehot + 0.3 / C
    np.testing.assert_allclose(to_host(x.grad), naive_softmax_rows(x.numpy()) - q, atol=1e-15)
    np.testing.assert_allclose(to_host(x.grad).sum(axis=1), 0.0, atol=1e-15)


def test_cross_entropy_equals_nll_of_log_softmax(device):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3))
    t = np.array([2, -100, 0, 1])
    for reduction in ("mean", "sum", "none"):
        a = t64(x, device, grad=True)
        b = t64(x, device, grad=True)
        ya = F.cross_entropy(a, t, reduction=reduction)
        yb = F.nll_loss(F.log_softmax(b, 1), t, reduction=reduction)
        np.testing.assert_allclose(ya.numpy(), yb.numpy(), rtol=1e-12)
        ya.sum().backward()
        yb.sum().backward()
        np.testing.assert_allclose(to_host(a.grad), to_host(b.grad), atol=1e-15)


@fixture_ok
@given(N=st.integers(1, 4), C=st.integers(1, 4), data=st.data())
def test_nll_loss_matches_loops_and_gradcheck(device, N, C, data):
    x = data.draw(float_arrays((N, C)))
    t = draw_targets(data, N, C)
    reduction = data.draw(st.sampled_from(["sum", "none"]))
    ref = [0.0 if t[i] == -100 else -x[i, t[i]] for i in range(N)]
    got = F.nll_loss(t64(x, device), t, reduction=reduction).numpy()
    np.testing.assert_allclose(got, sum(ref) if reduction == "sum" else ref, atol=1e-15)
    xt = t64(x, device, grad=True)
    assert gradcheck(lambda x: F.nll_loss(x, t, reduction=reduction), [xt])


def test_target_may_be_a_tensor_an_array_or_a_list(device):
    x = t64([[1.0, 2.0], [0.5, -0.5]], device)
    ref = F.cross_entropy(x, [1, 0]).item()
    assert F.cross_entropy(x, np.array([1, 0], dtype=np.uint8)).item() == ref
    assert F.cross_entropy(x, mg.tensor(np.array([1, 0], np.int32), device=device)).item() == ref


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_float32_stays_float32(device, reduction):
    x = mg.tensor(np.random.default_rng(0).normal(size=(3, 4)), dtype="float32", device=device)
    x.requires_grad = True
    for y in (
        F.cross_entropy(x, [0, 3, -100], reduction=reduction, label_smoothing=0.1),
        F.nll_loss(x, [0, 3, 1], reduction=reduction),
        F.softmax(x, 1),
        F.log_softmax(x, 0),
    ):
        assert y.dtype == np.float32
        x.grad = None
        y.sum().backward()
        assert x.grad.dtype == np.float32


# ---------------------------------------------------------------- errors
def test_cross_entropy_errors(device):
    x = t64(np.zeros((2, 3)), device)
    t = [0, 1]
    cases = [
        (lambda: F.cross_entropy(t64(np.zeros(3), device), [0]), r"expected 2-D input \(N, C\)"),
        (lambda: F.cross_entropy(x, np.zeros((2, 1), int)), r"expected 1-D target .* \(2, 1\)"),
        (lambda: F.cross_entropy(x, [0, 1, 2]), "input batch size 2 .* target batch size 3"),
        (lambda: F.cross_entropy(x, [0, 3]), r"target label 3 is out of range for 3 classes"),
        (lambda: F.cross_entropy(x, [-1, 0]), r"target label -1 is out of range"),
        (lambda: F.cross_entropy(x, [-100, 0], ignore_index=-1), "target label -100"),
        (lambda: F.cross_entropy(x, t, reduction="avg"), "reduction must be .* got 'avg'"),
        (lambda: F.cross_entropy(x, t, label_smoothing=1.5), r"label_smoothing .* got 1.5"),
        (lambda: F.cross_entropy(x, t, label_smoothing=-0.1), r"in \[0, 1\], got -0.1"),
        (lambda: F.nll_loss(x, [0, 5]), "nll_loss: target label 5 is out of range"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()
    with pytest.raises(TypeError, match="cross_entropy: target must hold integer class indices"):
        F.cross_entropy(x, np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="cross_entropy: target .* got dtype bool"):
        F.cross_entropy(x, np.array([True, False]))
    with pytest.raises(TypeError, match="nll_loss: expected a floating-point tensor"):
        F.nll_loss(mg.tensor(np.zeros((2, 3), int), device=device), t)


def test_softmax_errors(device):
    x = t64(np.zeros((2, 3)), device)
    with pytest.raises(ValueError, match="softmax: dim 2 out of range for a 2-D tensor"):
        F.softmax(x, 2)
    with pytest.raises(ValueError, match="log_softmax: dim -3 out of range"):
        F.log_softmax(x, -3)
    with pytest.raises(TypeError, match="softmax: dim must be an int, got None"):
        F.softmax(x, None)
    with pytest.raises(TypeError, match="log_softmax: expected a floating-point tensor"):
        F.log_softmax(mg.tensor(np.zeros(3, int), device=device), 0)


@pytest.mark.gpu
def test_target_on_another_device_is_rejected():
    x = mg.tensor(np.zeros((2, 3)), device="cuda")
    with pytest.raises(ValueError, match="cross_entropy: input is on cuda:0 but target is on cpu"):
        F.cross_entropy(x, mg.tensor(np.array([0, 1])))
    assert F.cross_entropy(x, np.array([0, 1])).device == "cuda:0"  # host arrays are moved
