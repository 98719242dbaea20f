"""minigrad.gradcheck: it passes correct backwards, catches wrong ones in both modes, and
rejects inputs where a finite-difference check means nothing."""

from __future__ import annotations

import re

import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad.autograd import Function
from minigrad.gradcheck import gradcheck

MODES = ["full", "random"]


class Square(Function):
    """y = x**2; gx = gy * 2x * scale, plus ``bump`` at index ``at`` (scale=1, bump=0 is right)."""

    def __init__(self, scale: float = 1.0, bump: float = 0.0, at: tuple = ()) -> None:
        self.scale, self.bump, self.at = scale, bump, at

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        gx = gy * 2 * self.x * self.scale
        if self.bump:
            gx[self.at] += self.bump
        return gx


class Product(Function):
    """y = a * b; ga = gy * b right, gb = gy * a * scale_b (wrong when scale_b != 1)."""

    def __init__(self, scale_b: float) -> None:
        self.scale_b = scale_b

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        return gy * self.b, gy * self.a * self.scale_b


def t64(a, device, grad=True):
    return mg.tensor(np.asarray(a, dtype=np.float64), device=device, requires_grad=grad)


def rand64(shape, device, seed=0, grad=True):
    return t64(np.random.default_rng(seed).uniform(0.5, 2.0, shape), device, grad)


@pytest.mark.parametrize("mode", MODES)
def test_passes_a_correct_backward(device, mode):
    a, b = rand64((3, 4), device, 1), rand64((4,), device, 2)
    fn = lambda a, b: (F.tanh(a * b) + a.exp() / b, Square().apply(a).sum(dim=0))  # noqa: E731
    assert gradcheck(fn, [a, b], mode=mode) is True


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scale", [0.5, 1.05, -1.0, 0.0])
def test_catches_a_wrong_backward(device, mode, scale):
    x = rand64((2, 3), device)
    with pytest.raises(AssertionError, match="analytic .* vs numeric"):
        gradcheck(lambda x: Square(scale=scale).apply(x), [x], mode=mode)


@pytest.mark.parametrize("mode", MODES)
def test_catches_a_wrong_gradient_of_the_second_input_only(device, mode):
    a, b = rand64((3,), device, 1), rand64((3,), device, 2)
    assert gradcheck(lambda a, b: Product(1.0).apply(a, b), [a, b], mode=mode)
    with pytest.raises(AssertionError):
        gradcheck(lambda a, b: Product(1.1).apply(a, b), [a, b], mode=mode)
    if mode == "full":  # a does not need grad: the wrong gb is still caught
        a.requires_grad = False
        with pytest.raises(AssertionError, match="input 1"):
            gradcheck(lambda a, b: Product(1.1).apply(a, b), [a, b])


def test_full_mode_names_input_worst_index_as_plain_ints_and_both_values(device):
    x = rand64((3, 4), device)
    y = rand64((2,), device, seed=5)
    y.name = "bias"
    with pytest.raises(AssertionError) as info:
        gradcheck(lambda x, y: (x * 1.0, Square(bump=0.5, at=(1,)).apply(y)), [x, y])
    msg = str(info.value)
    assert "input 1 ('bias') (shape (2,)) at index (1,)" in msg
    assert "int64" not in msg
    analytic, numeric = map(float, re.search(r"analytic (\S+) vs numeric (\S+)", msg).groups())
    assert analytic - numeric == pytest.approx(0.5, rel=1e-4)  # exactly the bump
    assert "1 of 2 element(s) off" in msg
    with pytest.raises(AssertionError, match=r"input 0 \(shape \(3, 4\)\) at index \(2, 1\):"):
        gradcheck(lambda x: Square(bump=1.0, at=(2, 1)).apply(x), [x])


def test_random_mode_reports_the_direction_and_both_derivatives(device):
    x = rand64((4, 5), device)
    with pytest.raises(AssertionError, match=r"directional derivative 0 .* over inputs \[0\]"):
        gradcheck(lambda x: Square(scale=2.0).apply(x), [x], mode="random", n_directions=2)


def test_random_mode_checks_a_large_input_in_few_passes(device):
    calls = []

    def fn(x, w):
        calls.append(1)
        return F.relu(F.linear(x, w)).sum(dim=1)

    x = rand64((64, 50), device, 3)
    w = t64(np.random.default_rng(4).standard_normal((40, 50)), device)
    assert gradcheck(fn, [x, w], mode="random", n_directions=4)
    assert len(calls) == 1 + 2 * 4  # one analytic pass, two per direction


def test_works_on_non_contiguous_inputs(device):
    x = t64(np.random.default_rng(0).uniform(0.5, 2, (4, 3)), device, grad=False).T
    x.requires_grad = True
    assert not x.data.flags.c_contiguous
    assert gradcheck(lambda x: Square().apply(x), [x])
    with pytest.raises(AssertionError):
        gradcheck(lambda x: Square(scale=0.0).apply(x), [x])


def test_leaves_data_and_existing_grads_untouched(device):
    x = rand64((2, 3), device)
    before = x.numpy()
    x.grad = x.data * 0 + 7
    for mode in MODES:
        gradcheck(lambda x: x * x, [x], mode=mode)
    np.testing.assert_array_equal(x.numpy(), before)
    np.testing.assert_array_equal(mg.tensor(x.grad).numpy(), np.full((2, 3), 7.0))


def test_integer_outputs_are_ignored(device):
    x = t64(np.arange(12.0).reshape(3, 4) ** 1.5, device)  # no ties
    assert gradcheck(lambda x: F.max(x, 1), [x])  # (values, integer indices)


def test_rejects_float32_inputs_and_outputs_with_what_to_do(device):
    x32 = mg.tensor(np.ones((2, 2)), dtype="float32", device=device, requires_grad=True)
    with pytest.raises(TypeError, match=r"input 0 has dtype float32; .*float64.*x\.double\(\)"):
        gradcheck(lambda x: x * x, [x32])
    x = rand64((2, 2), device)
    c32 = mg.tensor(np.ones((2, 2)), dtype="float32", device=device)
    with pytest.raises(TypeError, match="input 1 has dtype float32"):
        gradcheck(lambda x, c: x, [x, c32])
    with pytest.raises(TypeError, match="output 1 of fn has dtype float32"):
        gradcheck(lambda x: (x * 2, x.to(dtype="float32")), [x])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_rejects_nan_and_inf_inputs(device, bad):
    a = np.ones((2, 3))
    a[1, 2] = bad
    x = t64(a, device)
    with pytest.raises(ValueError, match=r"input 0 contains NaN or inf .*index \(1, 2\)"):
        gradcheck(lambda x: x * 2, [x])
    c = t64(a, device, grad=False)  # also when the bad input needs no grad
    with pytest.raises(ValueError, match="input 1 contains NaN or inf"):
        gradcheck(lambda y, c: y * c, [rand64((2, 3), device), c])


def test_rejects_non_finite_outputs(device):
    x = rand64((2,), device)
    with pytest.raises(ValueError, match="output 0 of fn is NaN or inf"):
        gradcheck(lambda x: x * float("inf"), [x])


def test_rejects_bad_arguments(device):
    x = rand64((2,), device)
    with pytest.raises(ValueError, match="no input requires grad"):
        gradcheck(lambda x: x, [t64([1.0], device, grad=False)])
    with pytest.raises(ValueError, match="mode must be 'full' or 'random', got 'fast'"):
        gradcheck(lambda x: x, [x], mode="fast")
    with pytest.raises(ValueError, match="eps must be positive, got 0"):
        gradcheck(lambda x: x, [x], eps=0)
    with pytest.raises(ValueError, match="n_directions must be >= 1, got 0"):
        gradcheck(lambda x: x, [x], mode="random", n_directions=0)
    with pytest.raises(TypeError, match="input 0 is ndarray, not a Tensor"):
        gradcheck(lambda x: x, [np.ones(2)])
    with pytest.raises(TypeError, match="output 0 of fn is float, not a Tensor"):
        gradcheck(lambda x: 1.0, [x])
    with pytest.raises(ValueError, match="no output depends on an input that requires grad"):
        gradcheck(lambda x: x.detach() * 2, [x])
