"""The optimizer step on the host threads gives the one-thread step's values exactly."""

from __future__ import annotations

import numpy as np

import minigrad as mg
from minigrad import runtime
from minigrad.functional import _threads
from minigrad.optim import SGD, Adam


def _params(seed):
    rng = np.random.default_rng(seed)
    shapes = [(300, 200), (7,), (1000, 64), (3, 3, 3, 3), (50_000,)]
    ps = [mg.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in shapes]
    for p in ps:
        p.grad = rng.standard_normal(p.shape).astype(np.float32)
    return ps


def test_a_threaded_step_equals_the_serial_one(monkeypatch):
    monkeypatch.setattr(_threads, "ITEMS_MIN_SIZE", 0)
    results = []
    for threads in (1, 2):
        monkeypatch.setattr(runtime, "host_threads", lambda threads=threads: threads)
        for make in (
            lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True),
            lambda ps: Adam(ps, lr=1e-3),
        ):
            ps = _params(0)
            opt = make(ps)
            for _ in range(3):
                opt.step()
            results.append([p.numpy().copy() for p in ps])
    for serial, threaded in zip(results[:2], results[2:]):
        for a, b in zip(serial, threaded):
            np.testing.assert_array_equal(a, b)
