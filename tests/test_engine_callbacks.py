"""Post-accumulate-grad hooks fire as soon as a leaf's gradient is final; queued callbacks
run once backward has finished (the two engine hooks that DistributedDataParallel uses)."""

from __future__ import annotations

import numpy as np
import pytest

from minigrad import engine
from minigrad.tensor import Tensor


def test_leaf_is_accumulated_when_its_last_consumer_has_run():
    # y = (w2 * (w1 * x)).sum(): w2's gradient is final before w1's backward runs
    events = []
    x = Tensor(np.arange(3.0))
    w1 = Tensor(np.full(3, 2.0), requires_grad=True)
    w2 = Tensor(np.full(3, 3.0), requires_grad=True)
    for name, w in (("w1", w1), ("w2", w2)):
        engine.register_post_accumulate_grad_hook(w, lambda t, n=name: events.append(n))
    h = w1 * x
    h.register_hook(lambda g: events.append("h"))  # runs when the first product's backward does
    (w2 * h).sum().backward()
    assert events == ["w2", "h", "w1"]
    np.testing.assert_array_equal(w2.grad, 2 * np.arange(3.0))


def test_leaf_used_twice_is_accumulated_once_with_the_sum():
    calls = []
    w = Tensor(np.ones(2), requires_grad=True)
    w.grad = np.full(2, 10.0)  # accumulation onto an existing .grad
    engine.register_post_accumulate_grad_hook(w, lambda t: calls.append(t.grad.copy()))
    (w * 2 + w * 3).sum().backward()
    assert len(calls) == 1
    np.testing.assert_array_equal(calls[0], np.full(2, 15.0))


def test_queue_callback_runs_after_every_grad_is_set():
    seen = []
    a = Tensor(np.ones(2), requires_grad=True)
    b = Tensor(np.ones(2), requires_grad=True)

    def hook(t):
        engine.queue_callback(lambda: seen.append((a.grad is not None, b.grad is not None)))

    engine.register_post_accumulate_grad_hook(b, hook)
    (a * b).sum().backward()
    assert seen == [(True, True)]
    (a * b).sum().backward()  # a new backward: the queue starts empty again
    assert len(seen) == 2


def test_hook_errors():
    with pytest.raises(RuntimeError, match="queue_callback: only callable while backward"):
        engine.queue_callback(lambda: None)
    with pytest.raises(RuntimeError, match="register_post_accumulate_grad_hook: only leaf"):
        engine.register_post_accumulate_grad_hook(Tensor(np.ones(2)), print)
    w = Tensor(np.ones(2), requires_grad=True)
    handle = engine.register_post_accumulate_grad_hook(w, lambda t: 1 / 0)
    handle.remove()
    (w * 2).sum().backward()  # removed: not called
