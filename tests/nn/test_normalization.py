"""BatchNorm2d, LocalResponseNorm and Dropout layers: math, buffers, modes, errors."""

from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad import nn
from minigrad.gradcheck import gradcheck


def _x(*shape, device, requires_grad=False, dtype="float64"):
    rng = np.random.default_rng(sum(shape))
    return mg.tensor(
        rng.standard_normal(shape), dtype=dtype, device=device, requires_grad=requires_grad
    )


def test_dropout_modes(device):
    mg.manual_seed(0)
    d = nn.Dropout(0.25)
    x = mg.ones(100, 100, device=device)
    y = d(x).numpy()
    assert abs((y == 0).mean() - 0.25) < 0.02
    np.testing.assert_allclose(y[y != 0], 1 / 0.75, rtol=1e-6)
    d.eval()
    np.testing.assert_array_equal(d(x).numpy(), x.numpy())
    assert repr(d) == "Dropout(p=0.25)"


def _bn_reference(x, w, b, eps):
    N, C, H, W = x.shape
    y = np.zeros_like(x)
    means, vars_ = np.zeros(C), np.zeros(C)
    for c in range(C):
        vals = [x[n, c, i, j] for n in range(N) for i in range(H) for j in range(W)]
        m = sum(vals) / len(vals)
        v = sum((t - m) ** 2 for t in vals) / len(vals)
        means[c], vars_[c] = m, v * len(vals) / (len(vals) - 1)
        y[:, c] = (x[:, c] - m) / np.sqrt(v + eps) * w[c] + b[c]
    return y, means, vars_


def test_batchnorm2d_train_updates_running_stats_and_eval_uses_them(device):
    bn = nn.BatchNorm2d(3, eps=1e-3, momentum=0.2, dtype="float64", device=device)
    bn.weight.data[...] = bn.weight.data * 0 + mg.tensor([1.0, 2.0, 0.5], "float64", device).data
    x = _x(4, 3, 2, 2, device=device)
    y = bn(x)
    ref, mean, var = _bn_reference(x.numpy(), bn.weight.numpy(), bn.bias.numpy(), 1e-3)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.2 * mean, rtol=1e-10)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.8 + 0.2 * var, rtol=1e-10)
    assert int(bn.num_batches_tracked.item()) == 1
    bn.eval()
    y = bn(x)
    rm, rv = bn.running_mean.numpy(), bn.running_var.numpy()
    expect = (x.numpy() - rm[:, None, None]) / np.sqrt(rv[:, None, None] + 1e-3)
    np.testing.assert_allclose(y.numpy(), expect * bn.weight.numpy()[:, None, None], rtol=1e-10)
    assert int(bn.num_batches_tracked.item()) == 1
    assert list(bn.state_dict()) == [
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ]
    assert repr(bn) == (
        "BatchNorm2d(3, eps=0.001, momentum=0.2, affine=True, track_running_stats=True)"
    )


def test_batchnorm2d_cumulative_average_and_no_running_stats(device):
    bn = nn.BatchNorm2d(2, momentum=None, dtype="float64", device=device)
    xs = [_x(3, 2, 2, 2, device=device), _x(5, 2, 2, 2, device=device)]
    for x in xs:
        bn(x)
    means = [_bn_reference(x.numpy(), np.ones(2), np.zeros(2), 1e-5)[1] for x in xs]
    np.testing.assert_allclose(bn.running_mean.numpy(), (means[0] + means[1]) / 2, rtol=1e-10)
    free = nn.BatchNorm2d(2, affine=False, track_running_stats=False, dtype="float64").eval()
    x = _x(3, 2, 2, 2, device="cpu")
    ref, _, _ = _bn_reference(x.numpy(), np.ones(2), np.zeros(2), 1e-5)
    np.testing.assert_allclose(free(x).numpy(), ref, rtol=1e-10)  # batch stats even in eval
    assert free.state_dict() == {}


def test_batchnorm2d_gradcheck(device):
    bn = nn.BatchNorm2d(2, dtype="float64", device=device)
    x = _x(3, 2, 2, 2, device=device, requires_grad=True)
    assert gradcheck(lambda x, w, b: bn(x), [x, bn.weight, bn.bias])


def test_batchnorm_relu2d_is_relu_of_batchnorm_with_the_same_state(device):
    bn = nn.BatchNorm2d(3, eps=1e-3, dtype="float64", device=device)
    fused = nn.BatchNormReLU2d(3, eps=1e-3, dtype="float64", device=device)
    bn.bias.data[...] = fused.bias.data[...] = mg.tensor([0.5, -0.2, 0.0], "float64", device).data
    x = _x(4, 3, 2, 2, device=device, requires_grad=True)
    x2 = mg.tensor(x.numpy(), device=device, requires_grad=True)
    ref, y = F.relu(bn(x)), fused(x2)
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-12, atol=1e-12)
    assert y.numpy().min() == 0.0 and ref.numpy().min() == 0.0  # some units are cut
    ref.sum().backward()
    y.sum().backward()
    host = mg.backend.as_numpy
    np.testing.assert_allclose(host(x2.grad), host(x.grad), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(host(fused.weight.grad), host(bn.weight.grad), rtol=1e-10)
    fused_state = fused.state_dict()
    for k, v in bn.state_dict().items():  # same keys, same running statistics
        np.testing.assert_allclose(host(fused_state[k]), host(v), rtol=1e-12)
    assert isinstance(fused, nn.BatchNorm2d)
    with pytest.raises(TypeError):
        bn(x, relu=True)  # the fused layer has its own name, not a flag


def test_local_response_norm_matches_the_formula(device):
    lrn = nn.LocalResponseNorm(3, alpha=0.3, beta=0.75, k=2.0)
    x = _x(2, 5, 2, 3, device=device)
    y = lrn(x).numpy()
    xs = x.numpy()
    ref = np.zeros_like(xs)
    C = xs.shape[1]
    for c in range(C):
        lo, hi = max(0, c - 1), min(C, c + 2)  # size 3: one channel on each side
        sq = sum(xs[:, j] ** 2 for j in range(lo, hi))
        ref[:, c] = xs[:, c] / (2.0 + 0.3 / 3 * sq) ** 0.75
    np.testing.assert_allclose(y, ref, rtol=1e-10)
    np.testing.assert_array_equal(y, F.local_response_norm(x, 3, 0.3, 0.75, 2.0).numpy())
    assert repr(lrn) == "LocalResponseNorm(3, alpha=0.3, beta=0.75, k=2.0)"


def test_norm_and_dropout_argument_errors():
    with pytest.raises(ValueError, match=r"Dropout: p must be in \[0, 1\], got 1.5"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="BatchNorm2d: num_features must be a positive int"):
        nn.BatchNorm2d(0)
    with pytest.raises(ValueError, match=r"BatchNorm2d: momentum must be in \[0, 1\] or None"):
        nn.BatchNorm2d(3, momentum=2.0)
    with pytest.raises(ValueError, match="LocalResponseNorm: size must be a positive int"):
        nn.LocalResponseNorm(0)
