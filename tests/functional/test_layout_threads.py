"""The channel-major layout and the chunked, threaded array passes.

Layout changes strides, never values: every op must give the same values and gradients
for an NCHW input and for a channel-major one. Chunks and threads change who computes
what, never the result: pooling, batch norm, im2col/col2im and cat must give exactly the
serial arrays with any chunk size and thread count (a convolution's weight gradient is a
sum over chunks, so it is compared to rounding).
"""

from __future__ import annotations

import numpy as np
import pytest
from _host import to_host
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad import runtime
from minigrad.functional import _threads, conv
from minigrad.functional._im2col import col2im, im2col
from minigrad.functional._layout import (
    channel_major,
    from_channel_major,
    is_channel_major,
    plane_major,
)
from minigrad.gradcheck import gradcheck
from minigrad.testing import float_arrays

fixture_ok = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def as_channel_major(a):
    """The same values as ``a`` (N, C, ...) stored channel-major."""
    return from_channel_major(np.ascontiguousarray(np.swapaxes(a, 0, 1)))


# ---------------------------------------------------------------- the layout helpers
def test_channel_major_helpers_round_trip_and_report_the_layout():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    xc = channel_major(x)  # a copy for NCHW input
    assert xc.shape == (3, 2, 4, 5) and xc.flags.c_contiguous
    y = from_channel_major(xc)
    np.testing.assert_array_equal(y, x)
    assert is_channel_major(y) and not is_channel_major(x)
    assert np.shares_memory(channel_major(y), xc)  # a view for channel-major input
    planes, swapped = plane_major(y)
    assert swapped and planes.shape == (3, 2, 4, 5) and np.shares_memory(planes, xc)
    planes, swapped = plane_major(x)
    assert not swapped and planes is x
    odd = x[:, :, ::2]  # neither layout: a contiguous copy
    planes, swapped = plane_major(odd)
    assert not swapped and planes.flags.c_contiguous
    np.testing.assert_array_equal(planes, odd)


# ---------------------------------------------------------------- layout-independence
def _ops():
    """(name, f(x) -> Tensor) for every op that has a channel-major path."""
    rng = np.random.default_rng(7)
    w3 = mg.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    w1 = mg.tensor(rng.standard_normal((5, 3, 1, 1)), requires_grad=True)
    b = mg.tensor(rng.standard_normal(4), requires_grad=True)
    gamma = mg.tensor(rng.standard_normal(3) + 1.5, requires_grad=True)
    beta = mg.tensor(rng.standard_normal(3), requires_grad=True)
    other = mg.tensor(as_channel_major(rng.standard_normal((2, 2, 5, 6))))
    return [
        ("conv3x3", lambda x: F.conv2d(x, w3, b, stride=1, padding=1), [w3, b]),
        ("conv3x3/2", lambda x: F.conv2d(x, w3, None, stride=2, padding=0), [w3]),
        ("conv1x1", lambda x: F.conv2d(x, w1), [w1]),
        ("bn", lambda x: F.batch_norm(x, None, None, gamma, beta, training=True), [gamma, beta]),
        (
            "bn_relu",
            lambda x: F.batch_norm(x, None, None, gamma, beta, training=True, relu=True),
            [gamma, beta],
        ),
        ("relu", F.relu, []),
        ("max_pool", lambda x: F.max_pool2d(x, 3, 1, 1, ceil_mode=True), []),
        ("max_pool/2", lambda x: F.max_pool2d(x, 3, 2, 0, ceil_mode=True), []),
        ("avg_pool", lambda x: F.avg_pool2d(x, 3, 2, 1), []),
        ("cat", lambda x: F.cat([x, other], dim=1), []),
    ]


@pytest.mark.parametrize("name", [name for name, _, _ in _ops()])
def test_every_op_gives_the_same_values_and_gradients_in_both_layouts(name):
    _, f, params = next(op for op in _ops() if op[0] == name)
    rng = np.random.default_rng(1)
    x_nchw = rng.standard_normal((2, 3, 5, 6))
    results = []
    for layout in ("nchw", "channel-major"):
        data = x_nchw if layout == "nchw" else as_channel_major(x_nchw)
        x = mg.tensor(data, requires_grad=True)
        for p in params:
            p.grad = None
        y = f(x)
        gy = np.linspace(-1, 1, y.numel()).reshape(y.shape)
        y.backward(mg.tensor(gy))
        results.append((y.numpy(), x.grad.copy(), [p.grad.copy() for p in params]))
    (y0, gx0, gp0), (y1, gx1, gp1) = results
    np.testing.assert_allclose(y1, y0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx1, gx0, rtol=1e-12, atol=1e-12)
    for a, b in zip(gp1, gp0):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_the_convolution_family_hands_channel_major_arrays_on():
    rng = np.random.default_rng(2)
    x = mg.tensor(rng.standard_normal((2, 3, 6, 6)), requires_grad=True)
    w = mg.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    z = F.batch_norm(y, None, None, training=True, relu=True)
    p = F.max_pool2d(z, 3, 1, 1)
    c = F.cat([z, p], dim=1)
    for t in (y, z, p, c):
        assert is_channel_major(t.data), t
    c.backward(mg.ones(*c.shape))
    assert is_channel_major(w.grad.reshape(4, 27)[None]) or w.grad.flags.c_contiguous
    assert x.grad.shape == x.shape


# ---------------------------------------------------------------- fused batch norm + ReLU
@settings(deadline=None)
@given(data=st.data(), training=st.booleans())
def test_batch_norm_relu_is_relu_of_batch_norm(data, training):
    shape = data.draw(st.tuples(st.integers(2, 3), st.integers(1, 3), st.integers(1, 3)))
    x = data.draw(float_arrays(shape))
    rng = np.random.default_rng(3)
    gamma, beta = rng.standard_normal(shape[1]) + 2, rng.standard_normal(shape[1])
    grads = []
    for fused in (True, False):
        xt = mg.tensor(x, requires_grad=True)
        g, b = mg.tensor(gamma, requires_grad=True), mg.tensor(beta, requires_grad=True)
        rm, rv = mg.tensor(np.zeros(shape[1])), mg.tensor(np.ones(shape[1]))
        if fused:
            y = F.batch_norm(xt, rm, rv, g, b, training=training, relu=True)
        else:
            y = F.relu(F.batch_norm(xt, rm, rv, g, b, training=training))
        y.backward(mg.tensor(np.cos(np.arange(y.numel())).reshape(y.shape)))
        grads.append((y.numpy(), xt.grad, g.grad, b.grad, rm.numpy()))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_batch_norm_relu_gradcheck_and_name():
    rng = np.random.default_rng(4)
    # values drawn away from the ReLU kink: y = x * w + b with |y| >= 0.1 after normalizing
    x = mg.tensor(rng.standard_normal((3, 2, 2, 2)), requires_grad=True)
    g = mg.tensor(np.array([1.3, -0.7]), requires_grad=True)
    b = mg.tensor(np.array([0.05, 0.02]), requires_grad=True)

    def f(x, g, b):
        return F.batch_norm(x, None, None, g, b, training=True, relu=True)

    y = f(x, g, b)
    assert y._ctx.name == "BatchNormReLU"
    pre = F.batch_norm(x, None, None, g, b, training=True).numpy()
    assert np.abs(pre).min() > 1e-3  # no kink within gradcheck's step
    assert gradcheck(f, [x, g, b])


# ---------------------------------------------------------------- chunks and threads
def test_blocks_cover_the_rows_once_in_order_and_share_them_out():
    # 5 chunks of 200_000 asked for, rounded up to 6 (a multiple of the 3 threads)
    parts = _threads.blocks(10, 10**6, np.zeros(1), chunk_elements=200_000, threads=3)
    chunks = [c for run in parts for c in run]
    assert [(c.start, c.stop) for c in chunks] == [(0, 1), (1, 3), (3, 5), (5, 6), (6, 8), (8, 10)]
    assert [len(run) for run in parts] == [2, 2, 2]  # three threads, equal runs
    # a layer smaller than one chunk still goes to both threads, in equal halves
    halves = _threads.blocks(8, 600_000, np.zeros(1), chunk_elements=1 << 20, threads=2)
    assert halves == [[slice(0, 4)], [slice(4, 8)]]
    small = _threads.blocks(10, 1000, np.zeros(1), chunk_elements=200, threads=3)
    assert len(small) == 1  # under PARALLEL_MIN_SIZE: the calling thread only
    assert _threads.blocks(0, 0, np.zeros(1)) == [[]]
    assert _threads.blocks(1, 10**9, np.zeros(1)) == [[slice(0, 1)]]


def test_for_blocks_sums_results_in_chunk_order_and_reraises_worker_errors(monkeypatch):
    monkeypatch.setattr(_threads, "PARALLEL_MIN_SIZE", 0)
    runs = _threads.blocks(9, 9, np.zeros(1), 1, threads=2)
    out = _threads.run(lambda s: s.start, runs)
    assert out == list(range(9))  # one result per chunk, in chunk order, whoever ran it
    # float sums in chunk order: the same bits as a one-thread loop over the same chunks
    parts = [np.float32(1e8), np.float32(1.0), np.float32(-1e8), np.float32(0.5)] * 2
    total = _threads.for_blocks(lambda s: parts[s.start], 8, 8, np.zeros(1), 1, threads=2)
    assert total == ((((((parts[0] + parts[1]) + parts[2]) + parts[3]) + parts[4]) + parts[5])
                     + parts[6]) + parts[7]  # fmt: skip
    assert _threads.for_blocks(lambda s: s.stop - s.start, 9, 9, np.zeros(1), 1, threads=2) == 9
    pairs = _threads.for_blocks(lambda s: (1, None), 4, 4, np.zeros(1), 1, threads=1)
    assert pairs == (4, None)

    def fail(s):
        if s.start == 3:
            raise RuntimeError("chunk 3 failed")

    with pytest.raises(RuntimeError, match="chunk 3 failed"):
        _threads.for_blocks(fail, 4, 4, np.zeros(1), 1, threads=2)


def test_a_thread_that_is_ahead_takes_the_remaining_chunks(monkeypatch):
    """No core waits while chunks are left: with one thread held up on its first chunk,
    the other runs all the rest (a static share would have left it half of them)."""
    import threading

    monkeypatch.setattr(_threads, "PARALLEL_MIN_SIZE", 0)
    first_taken, rest_done = threading.Event(), threading.Event()
    ran_by: dict[int, str] = {}

    def task(s):
        ran_by[s.start] = threading.current_thread().name
        if s.start == 0:  # the slow chunk: waits until every other chunk has run
            first_taken.set()
            assert rest_done.wait(10)
        else:
            assert first_taken.wait(10)
            if len(ran_by) == 8:
                rest_done.set()

    _threads.for_blocks(task, 8, 8, np.zeros(1), 1, threads=2)
    assert len(ran_by) == 8
    others = {ran_by[i] for i in range(1, 8)}
    assert len(others) == 1 and ran_by[0] not in others  # one thread ran chunks 1..7
    stats = _threads.idle_stats()
    assert stats["sections"] >= 1 and stats["idle_s"] >= 0.0


def test_work_nested_in_a_task_runs_as_one_chunk_on_the_tasks_thread(monkeypatch):
    monkeypatch.setattr(_threads, "PARALLEL_MIN_SIZE", 0)
    inner = []

    def outer(s):
        inner.append(_threads.blocks(8, 8000, np.zeros(1), chunk_elements=1, threads=2))

    _threads.for_blocks(outer, 2, 2, np.zeros(1), 1, threads=2)
    assert inner == [[[slice(0, 8)]], [[slice(0, 8)]]]


def test_set_host_threads_validates_and_resets(monkeypatch):
    monkeypatch.setattr(runtime, "ENV_NUM_THREADS", 3)  # MINIGRAD_NUM_THREADS=3 at import
    runtime.set_host_threads(None)
    assert runtime.host_threads() == 3
    runtime.set_host_threads(5)
    try:
        assert runtime.host_threads() == 5
    finally:
        runtime.set_host_threads(None)
    with pytest.raises(ValueError, match="set_host_threads"):
        runtime.set_host_threads(0)


def _run_ops(x, w):
    """Forward and gradients of the chunked ops on one input."""
    xt = mg.tensor(x, requires_grad=True)
    wt = mg.tensor(w, requires_grad=True)
    y = F.conv2d(xt, wt, padding=1)
    z = F.batch_norm(y, None, None, training=True, relu=True)
    m = F.max_pool2d(z, 3, 2, 1, ceil_mode=True)
    c = F.cat([F.max_pool2d(z, 3, 1, 1), F.avg_pool2d(z, 3, 1, 1)], dim=1)
    wc = mg.tensor(np.sin(np.arange(c.numel())).reshape(c.shape))
    wm = mg.tensor(np.cos(np.arange(m.numel())).reshape(m.shape))
    ((c * wc).sum() + (m * wm).sum()).backward()
    col = im2col(x, 3, 3, 2, 1)
    back = col2im(col * 1.5, x.shape, 3, 3, 2, 1)
    return [c.numpy(), m.numpy(), xt.grad, col, to_host(back)], wt.grad


@pytest.mark.parametrize("threads, chunk", [(1, 1 << 30), (2, 64), (3, 1), (4, 300)])
def test_chunks_and_threads_give_exactly_the_serial_arrays(monkeypatch, threads, chunk):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 3, 9, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    ref, gw_ref = _run_ops(x, w)
    monkeypatch.setattr(_threads, "PARALLEL_MIN_SIZE", 0)
    monkeypatch.setattr(_threads, "CHUNK_ELEMENTS", chunk)
    monkeypatch.setattr(conv, "CONV_CHUNK_ELEMENTS", chunk)
    monkeypatch.setattr(conv, "gemm_threads", lambda: threads)  # as with one BLAS thread
    runtime.set_host_threads(threads)
    try:
        got, gw = _run_ops(x, w)
    finally:
        runtime.set_host_threads(None)
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(gw, gw_ref, rtol=1e-12, atol=1e-12)  # a sum over chunks


def test_gemm_chunks_use_host_threads_only_with_a_single_threaded_blas(monkeypatch):
    monkeypatch.setattr(runtime, "blas_threads", lambda: 1)
    assert _threads.gemm_threads() == runtime.host_threads()
    monkeypatch.setattr(runtime, "blas_threads", lambda: 4)
    assert _threads.gemm_threads() == 1
    monkeypatch.setattr(runtime, "blas_threads", lambda: None)  # another BLAS
    assert _threads.gemm_threads() == 1


# ---------------------------------------------------------------- the engine's sums
def test_gradient_sums_in_place_never_write_into_a_shared_gradient():
    # x feeds cat (whose backward hands out views of one gradient), a product and a sum:
    # its gradient is a sum of three, made in a new array; the views stay untouched
    rng = np.random.default_rng(6)
    x = mg.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    h = x * 1.0
    c = F.cat([h, h], dim=1)  # backward: two views of c's gradient, both for h
    c.retain_grad()
    loss = (c * 2.0).sum() + (h * 3.0).sum() + h.sum()
    loss.backward()
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 2.0 + 2.0 + 3.0 + 1.0))
    np.testing.assert_array_equal(c.grad, np.full((2, 6), 2.0))  # not added into


@fixture_ok
@given(data=st.data())
def test_a_tensor_used_many_times_gets_the_sum_of_its_gradients(data):
    uses = data.draw(st.integers(2, 6))
    x = mg.tensor(data.draw(float_arrays((3, 4))), requires_grad=True)
    coeffs = [float(k + 1) for k in range(uses)]
    loss = sum((x * k).sum() for k in coeffs)
    loss.backward()
    np.testing.assert_allclose(x.grad, np.full((3, 4), sum(coeffs)), rtol=1e-12)


def test_a_few_rows_per_chunk_are_shared_out_equally():
    """8 images in 6 chunks would be 1, 1, 2, 1, 1, 2 images: one thread would end a
    whole image later. A count up to twice as large that divides the rows is taken."""
    runs = _threads.blocks(8, 6 * (1 << 20), np.zeros(1), chunk_elements=1 << 20, threads=2)
    chunks = [c for run in runs for c in run]
    assert [c.stop - c.start for c in chunks] == [1] * 8
    runs = _threads.blocks(32, 22 * 100, np.zeros(1), chunk_elements=100, threads=2)
    assert {c.stop - c.start for run in runs for c in run} == {1}  # 32 chunks, not 22
    # many rows per chunk: left as they were (a row more or less is a small share)
    runs = _threads.blocks(1000, 6 * 100, np.zeros(1), chunk_elements=100, threads=2)
    assert len([c for run in runs for c in run]) == 6
    # no divisor within twice the count (10 rows, 3 threads): unequal chunks stay
    runs = _threads.blocks(10, 10**6, np.zeros(1), chunk_elements=200_000, threads=3)
    assert len([c for run in runs for c in run]) == 6


def test_for_items_covers_each_item_once_in_runs_of_about_equal_size(monkeypatch):
    monkeypatch.setattr(_threads, "ITEMS_MIN_SIZE", 0)
    sizes = [2_000_000, 64, 64, 500_000, 1_000_000, 3, 700_000, 1_000_000]
    seen: list[int] = []
    parts: list[int] = []

    def task(items):
        seen.extend(range(items.start, items.stop))
        parts.append(sum(sizes[items]))

    _threads.for_items(task, sizes, np.zeros(1))
    assert sorted(seen) == list(range(len(sizes)))  # every item once
    assert len(parts) > 2 and max(parts) <= max(sizes) + sum(sizes) // 8  # shared out
    # under ITEMS_MIN_SIZE in all: a single call on the calling thread
    calls: list[slice] = []
    monkeypatch.setattr(_threads, "ITEMS_MIN_SIZE", sum(sizes) + 1)
    _threads.for_items(calls.append, sizes, np.zeros(1))
    assert calls == [slice(0, len(sizes))]


def test_relu_into_is_max_with_zero_and_keeps_nan():
    from minigrad.functional._simd import relu_into, zero_row

    x = np.array([[-1.0, 0.0, 2.0, np.nan], [3.0, -0.5, np.inf, -np.inf]], np.float32)
    out = np.empty_like(x)
    relu_into(x, out)
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    assert np.isnan(out[0, 3])
    relu_into(x, x)  # in place
    np.testing.assert_array_equal(x, out)
    z = zero_row(np.zeros(3, np.float64), 5)
    assert z.shape == (5,) and z.dtype == np.float64 and not z.any()
    assert zero_row(np.zeros(3, np.float64), 2).base is z.base  # one cached row
