"""nn.init: formulas, statistics with a seed, reproducibility, errors; layers' default init."""

from __future__ import annotations

import math

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad.nn import init


def _t(*shape, device="cpu", dtype="float64"):
    return mg.zeros(*shape, dtype=dtype, device=device)


def test_seeded_init_is_reproducible(device):
    mg.manual_seed(5)
    a = nn.Conv2d(3, 4, 3, device=device).weight.numpy()
    mg.manual_seed(5)
    b = nn.Conv2d(3, 4, 3, device=device).weight.numpy()
    c = nn.Conv2d(3, 4, 3, device=device).weight.numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


@pytest.mark.parametrize(
    "fill, mean, std, bound",
    [
        (lambda t: init.uniform_(t, -2.0, 4.0), 1.0, 6 / math.sqrt(12), (-2.0, 4.0)),
        (lambda t: init.normal_(t, 0.5, 2.0), 0.5, 2.0, None),
        # fan_in = 64 * 3 * 3 = 576, fan_out = 128 * 9 = 1152
        (lambda t: init.kaiming_uniform_(t, nonlinearity="relu"), 0, math.sqrt(2 / 576), None),
        (
            lambda t: init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"),
            0,
            math.sqrt(2 / 1152),
            None,
        ),
        (lambda t: init.xavier_uniform_(t), 0, math.sqrt(2 / (576 + 1152)), None),
        (lambda t: init.xavier_normal_(t, gain=2.0), 0, 2 * math.sqrt(2 / 1728), None),
        # N(0, 1) truncated to [-2, 2] has std 0.8796
        (lambda t: init.trunc_normal_(t), 0, 0.87962566, (-2.0, 2.0)),
    ],
)
def test_init_statistics(fill, mean, std, bound, device):
    mg.manual_seed(0)
    t = fill(_t(128, 64, 3, 3, device=device))  # 73,728 samples
    a = t.numpy()
    assert abs(a.mean() - mean) < 4 * std / math.sqrt(a.size)
    assert a.std() == pytest.approx(std, rel=0.02)
    if bound is not None:
        assert a.min() >= bound[0] and a.max() <= bound[1]


def test_trunc_normal_with_absolute_bounds_and_kaiming_uniform_bound():
    mg.manual_seed(1)
    a = init.trunc_normal_(_t(2000), mean=1.0, std=0.5, a=0.8, b=2.0).numpy()
    assert a.min() >= 0.8 and a.max() <= 2.0
    w = init.kaiming_uniform_(_t(10, 6)).numpy()
    bound = math.sqrt(2 / (1 + 0.0**2)) * math.sqrt(3 / 6)  # leaky_relu with a=0
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound


def test_constant_fills_keep_dtype(device):
    t = _t(2, 3, device=device, dtype="float32")
    assert init.ones_(t) is t and t.numpy().tolist() == [[1.0] * 3] * 2
    assert init.constant_(t, 0.5).numpy().tolist() == [[0.5] * 3] * 2
    assert init.zeros_(t).numpy().sum() == 0 and t.dtype == np.float32
    assert init.normal_(t).dtype == np.float32


def test_calculate_gain():
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("conv2d") == 1.0
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))


def test_default_layer_init_matches_pytorch_bounds():
    mg.manual_seed(0)
    conv = nn.Conv2d(16, 32, 3)  # fan_in 144: weight and bias in +-1/12
    for p in (conv.weight, conv.bias):
        a = p.numpy()
        assert np.abs(a).max() <= 1 / 12 and np.abs(a).max() > 0.9 / 12
        assert p.dtype == np.float32
    w = conv.weight.numpy()
    assert w.std() == pytest.approx(1 / 12 / math.sqrt(3), rel=0.05)
    lin = nn.Linear(100, 50, dtype="float64")
    assert np.abs(lin.weight.numpy()).max() <= 0.1 and lin.bias.dtype == np.float64


def test_init_errors():
    with pytest.raises(ValueError, match=r"kaiming_uniform_: fan in/out need a tensor with >= 2"):
        init.kaiming_uniform_(_t(5))
    with pytest.raises(ValueError, match="kaiming_normal_: mode must be 'fan_in' or 'fan_out'"):
        init.kaiming_normal_(_t(3, 3), mode="fan_avg")
    with pytest.raises(ValueError, match="calculate_gain: unsupported nonlinearity 'gelu'"):
        init.calculate_gain("gelu")
    with pytest.raises(ValueError, match="uniform_: need a <= b"):
        init.uniform_(_t(2), 1.0, 0.0)
    with pytest.raises(ValueError, match="normal_: std must be >= 0"):
        init.normal_(_t(2), 0.0, -1.0)
    with pytest.raises(ValueError, match=r"trunc_normal_: \[a, b\] = \[5.0, 6.0\] holds only"):
        init.trunc_normal_(_t(2), a=5.0, b=6.0)
    with pytest.raises(TypeError, match="uniform_: expected a Tensor, got ndarray"):
        init.uniform_(np.zeros(2))


@pytest.mark.parametrize(
    "make, fan_in",
    [
        (lambda: nn.Conv2d(64, 1024, 3), 64 * 9),  # 589,824 weights, 1,024 biases
        (lambda: nn.Linear(300, 2048), 300),  # 614,400 weights, 2,048 biases
    ],
    ids=["Conv2d", "Linear"],
)
def test_conv_and_linear_default_init_statistics_match_pytorch(make, fan_in):
    """weight, bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)): mean 0, std 1/sqrt(3 fan_in)."""
    mg.manual_seed(0)
    layer = make()
    bound = 1 / math.sqrt(fan_in)
    std = bound / math.sqrt(3)
    for p in (layer.weight, layer.bias):
        a = p.numpy().astype(np.float64)
        assert abs(a.mean()) < 4 * std / math.sqrt(a.size), p.shape
        assert a.std() == pytest.approx(std, rel=0.05 if a.size < 10_000 else 0.01), p.shape
        assert np.abs(a).max() <= bound and np.abs(a).max() > 0.99 * bound, p.shape
    layer.weight.data[...] = 5.0
    layer.reset_parameters()  # redraws from the same formula
    assert np.abs(layer.weight.numpy()).max() <= bound
    assert layer.weight.numpy().std() == pytest.approx(std, rel=0.01)


def test_batchnorm_default_init_matches_pytorch_and_reset_parameters_restores_it(device):
    bn = nn.BatchNorm2d(6, device=device)
    expect = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}
    for name, v in expect.items():
        np.testing.assert_array_equal(getattr(bn, name).numpy(), np.full(6, v), err_msg=name)
    assert int(bn.num_batches_tracked.item()) == 0
    x = mg.tensor(np.random.default_rng(0).normal(3.0, 2.0, (4, 6, 3, 3)), device=device)
    bn(x.float())
    for name in expect:
        getattr(bn, name).data[...] = 7.0
    bn.reset_parameters()
    for name, v in expect.items():
        np.testing.assert_array_equal(getattr(bn, name).numpy(), np.full(6, v), err_msg=name)
    assert int(bn.num_batches_tracked.item()) == 0
