"""No op silently turns float32 into float64: one table with every public op of F."""

from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F


def _inputs(device, dtype):
    mg.manual_seed(0)

    def r(*shape, positive=False):
        t = mg.randn(*shape, dtype=dtype, device=device)
        if positive:
            t = mg.tensor(abs(t.numpy()) + 0.5, dtype=dtype, device=device)
        t.requires_grad = True
        return t

    return r


def _bn(r, device, dtype):
    running = [mg.zeros(3, dtype=dtype, device=device), mg.ones(3, dtype=dtype, device=device)]
    return lambda: F.batch_norm(r(2, 3, 4, 4), *running, r(3), r(3), training=True)


# name -> builder(r, device, dtype) -> a zero-argument call returning the op's output(s)
OPS = {
    "conv2d": lambda r, d, t: lambda: F.conv2d(r(2, 3, 5, 5), r(4, 3, 3, 3), r(4), 2, 1),
    "dropout": lambda r, d, t: lambda: F.dropout(r(4, 5), 0.3),
    "add": lambda r, d, t: lambda: F.add(r(2, 3), r(3)),
    "sub": lambda r, d, t: lambda: F.sub(r(2, 3), 1.5),
    "mul": lambda r, d, t: lambda: F.mul(r(2, 3), mg.tensor([1, 2, 3], device=d)),
    "div": lambda r, d, t: lambda: F.div(r(2, 3), r(2, 1, positive=True)),
    "neg": lambda r, d, t: lambda: F.neg(r(3)),
    "pow": lambda r, d, t: lambda: F.pow(r(3, positive=True), 1.5),
    "exp": lambda r, d, t: lambda: F.exp(r(3)),
    "log": lambda r, d, t: lambda: F.log(r(3, positive=True)),
    "sqrt": lambda r, d, t: lambda: F.sqrt(r(3, positive=True)),
    "tanh": lambda r, d, t: lambda: F.tanh(r(3)),
    "sigmoid": lambda r, d, t: lambda: F.sigmoid(r(3)),
    "relu": lambda r, d, t: lambda: F.relu(r(3)),
    "matmul": lambda r, d, t: lambda: F.matmul(r(2, 3, 4), r(4, 2)),
    "linear": lambda r, d, t: lambda: F.linear(r(2, 4), r(3, 4), r(3)),
    "softmax": lambda r, d, t: lambda: F.softmax(r(2, 5), dim=1),
    "log_softmax": lambda r, d, t: lambda: F.log_softmax(r(2, 5), dim=1),
    "cross_entropy": lambda r, d, t: (
        lambda: F.cross_entropy(r(3, 5), mg.tensor([0, 4, 2], device=d), label_smoothing=0.1)
    ),
    "nll_loss": lambda r, d, t: lambda: F.nll_loss(r(3, 5), mg.tensor([0, 4, 2], device=d)),
    "batch_norm": lambda r, d, t: _bn(r, d, t),
    "local_response_norm": lambda r, d, t: lambda: F.local_response_norm(r(2, 6, 3, 3), 5),
    "max_pool2d": lambda r, d, t: lambda: F.max_pool2d(r(2, 3, 5, 5), 3, 2, 1, ceil_mode=True),
    "avg_pool2d": lambda r, d, t: lambda: F.avg_pool2d(r(2, 3, 5, 5), 3, 2, 1),
    "adaptive_avg_pool2d": lambda r, d, t: lambda: F.adaptive_avg_pool2d(r(2, 3, 5, 5), (2, 3)),
    "sum": lambda r, d, t: lambda: F.sum(r(2, 3), 1),
    "mean": lambda r, d, t: lambda: F.mean(r(2, 3), (0, 1), keepdim=True),
    "max": lambda r, d, t: lambda: F.max(r(2, 3), 1),
    "reshape": lambda r, d, t: lambda: F.reshape(r(2, 3), (3, 2)),
    "permute": lambda r, d, t: lambda: F.permute(r(2, 3, 4), (2, 0, 1)),
    "transpose": lambda r, d, t: lambda: F.transpose(r(2, 3), 0, 1),
    "flatten": lambda r, d, t: lambda: F.flatten(r(2, 3, 4), 1),
    "getitem": lambda r, d, t: lambda: F.getitem(r(4, 3), (slice(1, 3), [0, 0])),
    "cat": lambda r, d, t: lambda: F.cat([r(2, 3), r(2, 1)], dim=1),
    "split": lambda r, d, t: lambda: F.split(r(5, 2), 2, dim=0),
}
NOT_OPS = {"MaxResult"}  # the named tuple F.max returns


def test_the_table_covers_every_public_op():
    assert set(OPS) == set(F.__all__) - NOT_OPS


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_op_keeps_the_float_dtype_forward_and_backward(device, name, dtype):
    r = _inputs(device, dtype)
    leaves = []

    def tracked(*shape, positive=False):
        t = r(*shape, positive=positive)
        leaves.append(t)
        return t

    out = OPS[name](tracked, device, dtype)()
    outs = list(out) if isinstance(out, tuple) else [out]
    floats = [o for o in outs if o.dtype.kind == "f"]
    assert floats, name
    for o in floats:
        assert o.dtype == dtype, f"{name} returned {o.dtype} for {dtype} inputs"
    total = None
    for o in floats:
        g = mg.ones(*o.shape, dtype=dtype, device=device)
        term = (o * g).sum()
        total = term if total is None else total + term
    total.backward()
    for t in leaves:
        assert t.grad is not None and t.grad.dtype == dtype, f"{name}: grad {t.grad.dtype}"
        assert np.isfinite(mg.tensor(t.grad).numpy()).all()
