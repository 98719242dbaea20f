"""matmul (batched, broadcast, 1-D operands) and linear: loop references, gradients, errors."""

from __future__ import annotations

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


def loop_matmul(a, b):
    """NumPy matmul semantics by loops: promote 1-D operands, broadcast batch dims."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    A = np.broadcast_to(a2, batch + a2.shape[-2:])
    B = np.broadcast_to(b2, batch + b2.shape[-2:])
    M, K, N = A.shape[-2], A.shape[-1], B.shape[-1]
    out = np.zeros(batch + (M, N))
    for bi in np.ndindex(*batch):
        for i in range(M):
            for j in range(N):
                out[bi + (i, j)] = sum(
                    float(A[bi + (i, k)]) * float(B[bi + (k, j)]) for k in range(K)
                )
    if a.ndim == 1:
        out = out[..., 0, :]
    if b.ndim == 1:
        out = out[..., 0]
    return out


@st.composite
def matmul_shapes(draw):
    M, K, N = (draw(st.integers(1, 3)) for _ in range(3))
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    # each operand takes a suffix of the batch dims, some of them squeezed to 1
    ba = tuple(1 if draw(st.booleans()) else s for s in batch[draw(st.integers(0, len(batch))) :])
    bb = tuple(1 if draw(st.booleans()) else s for s in batch[draw(st.integers(0, len(batch))) :])
    a = (K,) if draw(st.integers(0, 4)) == 0 else ba + (M, K)
    b = (K,) if draw(st.integers(0, 4)) == 0 else bb + (K, N)
    return a, b


@fixture_ok
@given(sh=matmul_shapes(), data=st.data())
def test_matmul_matches_loops_and_gradchecks(device, sh, data):
    a, b = (data.draw(float_arrays(s)) for s in sh)
    y = t64(a, device) @ t64(b, device)
    want = loop_matmul(a, b)
    assert y.shape == want.shape
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-13, atol=1e-14)
    np.testing.assert_array_equal(F.matmul(t64(a, device), t64(b, device)).numpy(), y.numpy())
    assert gradcheck(F.matmul, [t64(a, device, grad=True), t64(b, device, grad=True)])


@fixture_ok
@given(
    lead=st.lists(st.integers(1, 3), max_size=2),
    n_in=st.integers(1, 4),
    n_out=st.integers(1, 4),
    bias=st.booleans(),
    data=st.data(),
)
def test_linear_matches_loops_and_gradchecks(device, lead, n_in, n_out, bias, data):
    x = data.draw(float_arrays((*lead, n_in)))
    w = data.draw(float_arrays((n_out, n_in)))
    b = data.draw(float_arrays((n_out,))) if bias else None
    y = F.linear(t64(x, device), t64(w, device), None if b is None else t64(b, device))
    want = np.zeros((*lead, n_out))
    for idx in np.ndindex(*lead):
        for o in range(n_out):
            acc = 0.0 if b is None else float(b[o])
            want[idx + (o,)] = acc + sum(float(x[idx + (i,)]) * float(w[o, i]) for i in range(n_in))
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-13, atol=1e-14)
    ts = [t64(x, device, True), t64(w, device, True)] + ([t64(b, device, True)] if bias else [])
    assert gradcheck(F.linear, ts)


def test_linear_gradient_when_only_the_weight_needs_it(device):
    x = t64(np.arange(6.0).reshape(3, 2), device)
    w = t64([[1.0, -1.0]], device, grad=True)
    F.linear(x, w).sum().backward()
    np.testing.assert_array_equal(mg.tensor(w.grad).numpy(), [[6.0, 9.0]])
    assert x.grad is None


def test_float32_stays_float32(device):
    a = mg.randn(2, 3, 4, device=device, requires_grad=True)
    b = mg.randn(4, 5, device=device, requires_grad=True)
    y = a @ b
    y.sum().backward()
    assert y.dtype == a.grad.dtype == b.grad.dtype == np.float32


@pytest.mark.parametrize(
    "call, err, match",
    [
        (
            lambda: mg.ones(2, 3) @ mg.ones(4, 2),
            ValueError,
            r"matmul: shapes \(2, 3\) and \(4, 2\) do not align",
        ),
        (
            lambda: mg.ones(2, 3, 4) @ mg.ones(3, 4, 2),
            ValueError,
            r"matmul: batch dims \(2,\) and \(3,\) .* do not broadcast",
        ),
        (lambda: mg.ones(3) @ mg.tensor(2.0), ValueError, "matmul: both operands need >= 1 dim"),
        (
            lambda: mg.ones(2, 3) @ mg.tensor(np.ones((3, 2), dtype=np.int64)),
            TypeError,
            "matmul: operands must all be floating point or all integer, got float32, int64",
        ),
        (
            lambda: F.linear(mg.ones(2, 3), mg.ones(4, 5)),
            ValueError,
            r"linear: input has 3 features \(shape \(2, 3\)\) but weight expects 5",
        ),
        (lambda: F.linear(mg.ones(2, 3), mg.ones(3)), ValueError, "linear: weight must be 2-D"),
        (
            lambda: F.linear(mg.ones(2, 3), mg.ones(4, 3), mg.ones(3)),
            ValueError,
            r"linear: bias shape \(3,\) != \(4,\)",
        ),
        (
            lambda: F.linear(mg.ones(2, 3), mg.tensor([[1, 2, 3]])),
            TypeError,
            "linear: operands must all be floating point or all integer, got float32, int64",
        ),
        (
            lambda: F.linear(mg.ones(2, 3), mg.ones(4, 3, dtype="float64")),
            TypeError,
            "Linear: mixed float dtypes float32 and float64",
        ),
    ],
)
def test_linalg_errors_name_the_op_and_values(call, err, match):
    with pytest.raises(err, match=match):
        call()
