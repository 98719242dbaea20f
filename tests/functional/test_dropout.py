"""Inverted dropout: eval identity, mean-preserving in train, the same mask in backward."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _host import to_host

import minigrad as mg
import minigrad.functional as F
from minigrad.gradcheck import gradcheck


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_eval_mode_and_p0_return_the_input_itself(device, p):
    x = mg.randn(3, 4, device=device, requires_grad=True)
    assert F.dropout(x, p, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert F.dropout(x, 0) is x


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_train_mode_preserves_the_mean_within_sampling_error(device, p):
    n = 200_000
    mg.manual_seed(123)
    y = F.dropout(mg.ones(n, dtype="float64", device=device), p).numpy()
    # each element is Bernoulli(1-p) / (1-p): mean 1, variance p / (1-p)
    sigma_mean = math.sqrt(p / (1 - p) / n)
    assert abs(y.mean() - 1.0) < 5 * sigma_mean
    dropped = (y == 0).mean()
    assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(y[y != 0], 1 / (1 - p), rtol=1e-15)  # survivors scaled exactly


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_backward_multiplies_by_the_forward_mask(device, dtype):
    mg.manual_seed(7)
    x = mg.rand(50, 40, dtype=dtype, device=device, requires_grad=True)
    x.data += 0.5  # nothing is 0 before dropout
    y = F.dropout(x, 0.3)
    assert y.dtype == dtype
    g = mg.randn(50, 40, dtype=dtype, device=device)
    y.backward(g)
    mask = y.numpy() / x.numpy()  # 0 where dropped, 1/(1-p) where kept
    np.testing.assert_allclose(to_host(x.grad), g.numpy() * mask, rtol=1e-6)
    assert 0 < (mask == 0).mean() < 1
    assert x.grad.dtype == dtype


def test_gradcheck_with_a_reseeded_mask(device):
    x = mg.tensor(np.linspace(-1, 1, 24).reshape(4, 6), dtype="float64", device=device)
    x.requires_grad = True

    def fn(x):
        mg.manual_seed(3)  # the same mask on every call makes dropout a fixed linear map
        return F.dropout(x, 0.4)

    assert gradcheck(fn, [x])
    assert gradcheck(fn, [x], mode="random")


def test_p1_gives_zeros_and_zero_gradient(device):
    x = mg.randn(3, 3, device=device, requires_grad=True)
    y = F.dropout(x, 1.0)
    np.testing.assert_array_equal(y.numpy(), np.zeros((3, 3)))
    y.sum().backward()
    np.testing.assert_array_equal(to_host(x.grad), np.zeros((3, 3)))


def test_manual_seed_makes_masks_reproducible(device):
    x = mg.ones(1000, device=device)
    masks = []
    for seed in (5, 5, 6):
        mg.manual_seed(seed)
        masks.append((F.dropout(x, 0.5).numpy(), F.dropout(x, 0.5).numpy()))
    np.testing.assert_array_equal(masks[0][0], masks[1][0])
    np.testing.assert_array_equal(masks[0][1], masks[1][1])
    assert not np.array_equal(masks[0][0], masks[0][1])  # consecutive draws differ
    assert not np.array_equal(masks[0][0], masks[2][0])  # another seed differs


@pytest.mark.parametrize("p", [1.5, -0.1, float("nan"), float("inf")])
def test_probability_outside_0_1_is_a_value_error(p):
    with pytest.raises(
        ValueError, match=f"dropout: probability p has to be between 0 and 1, but got {p}"
    ):
        F.dropout(mg.ones(2), p)


@pytest.mark.parametrize("p", ["0.5", None, True])
def test_probability_that_is_not_a_number_is_a_type_error(p):
    with pytest.raises(TypeError, match="dropout: p must be a number in"):
        F.dropout(mg.ones(2), p)


def test_integer_input_in_training_is_a_type_error():
    with pytest.raises(
        TypeError, match="dropout: expected a floating-point tensor, got dtype int64"
    ):
        F.dropout(mg.tensor([1, 2]), 0.5)
