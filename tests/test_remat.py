"""mg.recompute: bit-identical gradients (dropout, batch norm), one running-stat update,
less memory kept, GoogLeNet(recompute_blocks=True) and the --recompute flag."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from _host import to_host

import minigrad as mg
import minigrad.functional as F
from googlenet import GoogLeNet, build_model, loss_terms
from minigrad import nn, random


class Block(nn.Module):
    """conv -> BN+ReLU -> dropout -> conv, with x read twice (a fan-out inside)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 3, 1)

    def forward(self, x):
        h = F.relu(self.bn(self.conv1(x)))
        return self.conv2(F.dropout(h, 0.3)) + x * x


def _step(model, x, t, use_recompute, device):
    mg.manual_seed(5)
    xt = mg.tensor(x, device=device, requires_grad=True)
    h = F.tanh(xt)
    y = mg.recompute(model, h) if use_recompute else model(h)
    y2 = F.dropout(y, 0.2)  # a draw after fn: the stream must be where the plain run left it
    loss = F.cross_entropy(F.flatten(F.adaptive_avg_pool2d(y2, 1), 1), t)
    loss.backward()
    grads = [to_host(p.grad) for p in model.parameters()] + [to_host(xt.grad)]
    return float(loss.item()), grads, [to_host(b) for b in model.buffers()]


def test_recompute_gradients_are_bit_identical(device):
    x = np.random.default_rng(0).standard_normal((4, 3, 6, 6)).astype(np.float32)
    t = np.array([0, 1, 2, 1])
    runs = []
    for use in (False, True):
        mg.manual_seed(0)
        model = Block().to(device)
        runs.append(_step(model, x, t, use, device))
    (l0, g0, b0), (l1, g1, b1) = runs
    assert l0 == l1
    for a, b in zip(g0, g1):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(b0, b1):  # running stats and num_batches_tracked: updated once
        np.testing.assert_array_equal(a, b)


def test_recompute_of_a_function_with_two_outputs_and_closure_leaves(device):
    rng = np.random.default_rng(1)
    w = mg.tensor(rng.standard_normal((3, 3)), device=device, requires_grad=True)

    def fn(a, b):
        return F.matmul(a, w) * b, F.exp(a)

    results = []
    for use in (False, True):
        w.grad = None
        a = mg.tensor(rng.standard_normal((2, 3)), device=device, requires_grad=True)
        a.data[...] = mg.tensor(np.arange(6.0).reshape(2, 3) / 10, device=device).data
        b = mg.tensor(np.ones((2, 3)), device=device)  # needs no gradient
        y, z = mg.recompute(fn, a, b) if use else fn(a, b)
        (y.sum() + (z * z).sum()).backward()
        results.append((to_host(a.grad), to_host(w.grad)))
    for u, v in zip(*results):
        np.testing.assert_array_equal(u, v)


def test_recompute_without_grad_is_the_plain_call(device):
    model = Block().to(device)
    x = mg.randn(2, 3, 4, 4, device=device)
    with mg.no_grad():
        y = mg.recompute(model, x)
    assert y.grad_fn is None
    with pytest.raises(TypeError, match="recompute: input 0 is ndarray"):
        mg.recompute(model, np.zeros((2, 3, 4, 4)))


def _saved_peak(model, x, t):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        loss = loss_terms(model(mg.tensor(x)), t)["total"]
        after_forward, _ = tracemalloc.get_traced_memory()
        loss.backward()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return after_forward - start, peak - start


@pytest.mark.parametrize(
    "stem, size, bn", [("cifar", 16, True), ("imagenet", 64, True), ("imagenet", 64, False)]
)
def test_googlenet_recompute_is_bit_identical_and_keeps_less(stem, size, bn):
    """Small GoogLeNets (BN or the paper's LRN, aux heads, dropout): the same loss,
    gradients and buffers; what the forward leaves for backward is a fraction of the plain
    graph's."""
    x = np.random.default_rng(0).standard_normal((8, 1, size, size)).astype(np.float32)
    t = np.arange(8) % 10
    out = []
    for use in (False, True):
        mg.manual_seed(0)
        model = GoogLeNet(10, 1, stem, batch_norm=bn, width=0.125, recompute_blocks=use)
        mg.manual_seed(1)
        kept, peak = _saved_peak(model, x, t)
        grads = [p.grad.copy() for p in model.parameters()]
        out.append((kept, peak, grads, [b.data.copy() for b in model.buffers()]))
    (k0, p0, g0, b0), (k1, p1, g1, b1) = out
    for a, b in zip(g0 + b0, g1 + b1):
        np.testing.assert_array_equal(a, b)
    assert k1 < 0.5 * k0, (k0, k1)  # the forward keeps only the blocks' inputs
    assert p1 < p0, (p0, p1)


def test_build_model_reads_the_recompute_flag():
    cfg = {"num_classes": 10, "in_channels": 1, "stem": "cifar", "width": 0.125}
    assert not build_model(cfg).recompute_blocks
    model = build_model({**cfg, "recompute": True})
    assert model.recompute_blocks and model.inception3a.recompute
    assert random.dropout_offset() >= 0


def test_second_order_through_recompute(device):
    """mg.grad(create_graph=True) replays fn on the op's own inputs: the same gradient
    penalty as without recompute."""
    mg.manual_seed(0)
    model = Block().to(device=device, dtype="float64")
    x0 = np.random.default_rng(3).standard_normal((2, 3, 4, 4))
    vals = []
    for use in (False, True):
        mg.manual_seed(9)
        x = mg.tensor(x0, device=device, requires_grad=True)
        y = mg.recompute(model, x) if use else model(x)
        (gx,) = mg.grad((y * y).sum(), x, create_graph=True)
        (gw,) = mg.grad((gx * gx).sum(), model.conv1.weight)
        vals.append((to_host(gx), to_host(gw)))
    for a, b in zip(*vals):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
