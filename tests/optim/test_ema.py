"""EMA of weights: the averaging math, buffers, swap/apply_to, state round trip."""

from __future__ import annotations

import numpy as np
import pytest
from _host import to_host

import minigrad as mg
from minigrad import nn, optim


class WithBuffer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2, dtype="float64")
        self.register_buffer("stat", mg.zeros(2, dtype="float64"))


def _set(model, value, stat):
    for p in model.parameters():
        p.data[...] = value
    model.stat.data[...] = stat


def test_ema_math_and_buffer_copy(device):
    model = WithBuffer().to(device)
    _set(model, 0.0, 0.0)
    ema = optim.EMA(model, decay=0.9)
    values = [1.0, 2.0, -1.0]
    expected = 0.0
    for v in values:
        _set(model, v, 10 * v)
        ema.update()
        expected = 0.9 * expected + 0.1 * v
    assert ema.num_updates == 3
    for s in ema.shadow.values():
        np.testing.assert_allclose(to_host(s), expected, rtol=1e-12)
    np.testing.assert_array_equal(to_host(ema.buffers["stat"]), [-10.0, -10.0])


def test_swap_evaluates_with_averages_and_restores(device):
    model = WithBuffer().to(device)
    _set(model, 0.0, 0.0)
    ema = optim.EMA(model, decay=0.5)
    _set(model, 4.0, 3.0)
    ema.update()  # shadow 2.0, buffers 3.0
    _set(model, 8.0, 5.0)
    with ema.swap() as m:
        assert m is model
        assert model.fc.weight.numpy().tolist() == [[2.0, 2.0], [2.0, 2.0]]
        assert model.stat.numpy().tolist() == [3.0, 3.0]
    assert model.fc.weight.numpy().tolist() == [[8.0, 8.0], [8.0, 8.0]]
    assert model.stat.numpy().tolist() == [5.0, 5.0]
    other = WithBuffer().to(device)
    ema.apply_to(other)
    assert other.fc.bias.numpy().tolist() == [2.0, 2.0]
    with pytest.raises(ValueError, match="EMA: model parameters .* do not match"):
        ema.apply_to(nn.Linear(2, 2))


def test_warmup_decay_and_errors():
    ema = optim.EMA(nn.Linear(1, 1), decay=0.999, warmup=True)
    assert ema.current_decay() == pytest.approx(0.1)
    ema.update()
    assert ema.current_decay() == pytest.approx(2 / 11)
    with pytest.raises(ValueError, match=r"EMA: decay must be in \[0, 1\), got 1.5"):
        optim.EMA(nn.Linear(1, 1), decay=1.5)
    with pytest.raises(TypeError, match="EMA: expected a Module, got list"):
        optim.EMA([], decay=0.5)


def test_state_dict_round_trip(device):
    model = WithBuffer().to(device)
    ema = optim.EMA(model, decay=0.8, warmup=True)
    _set(model, 1.0, 2.0)
    ema.update()
    sd = ema.state_dict()
    assert sd["num_updates"] == 1 and type(sd["shadow"]["fc.weight"]) is np.ndarray
    ema2 = optim.EMA(model, decay=0.1)
    ema2.load_state_dict(sd)
    assert (ema2.decay, ema2.warmup, ema2.num_updates) == (0.8, True, 1)
    for n, s in ema.shadow.items():
        np.testing.assert_array_equal(to_host(ema2.shadow[n]), to_host(s))
    bad = dict(sd, shadow={**sd["shadow"], "fc.bias": np.zeros(3)})
    with pytest.raises(ValueError, match=r"shadow of 'fc.bias' has shape \(3,\)"):
        ema2.load_state_dict(bad)
    with pytest.raises(ValueError, match="EMA.load_state_dict: parameter names differ"):
        ema2.load_state_dict(dict(sd, shadow={}))
