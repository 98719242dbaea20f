"""A user's own op: ``Function`` subclasses applied with either spelling (issue 17)."""

from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
from minigrad.autograd import Function
from minigrad.gradcheck import gradcheck


class Cube(Function):
    """y = x ** 3; gx = 3 x**2 gy."""

    def forward(self, x):
        self.x = x
        return x * x * x

    def backward(self, gy):
        return 3 * self.x * self.x * gy


class Scale(Function):
    """y = c x; gx = c gy (an op with a hyper-parameter)."""

    def __init__(self, c: float) -> None:
        self.c = c

    def forward(self, x):
        return self.c * x

    def backward(self, gy):
        return self.c * gy


def test_pytorchs_spelling_on_the_class_applies_a_fresh_op(device):
    x = mg.tensor([1.0, -2.0, 3.0], dtype="float64", device=device, requires_grad=True)
    y = Cube.apply(x)  # PyTorch's spelling
    y.sum().backward()
    np.testing.assert_allclose(mg.tensor(y.data).cpu().numpy(), [1.0, -8.0, 27.0])
    np.testing.assert_allclose(mg.tensor(x.grad).cpu().numpy(), [3.0, 12.0, 27.0])
    assert isinstance(y.grad_fn, Cube)
    assert gradcheck(Cube.apply, [x])


def test_each_class_apply_builds_its_own_op(device):
    x = mg.tensor([2.0], device=device, requires_grad=True)
    a, b = Cube.apply(x), Cube.apply(x)
    assert a.grad_fn is not b.grad_fn


def test_the_instance_spelling_still_works(device):
    x = mg.tensor([1.0, 2.0], device=device, requires_grad=True)
    Scale(3.0).apply(x).sum().backward()
    np.testing.assert_allclose(mg.tensor(x.grad).cpu().numpy(), [3.0, 3.0])


def test_class_apply_of_an_op_with_arguments_says_how_to_build_it():
    x = mg.tensor([1.0])
    with pytest.raises(TypeError, match=r"Scale.apply: Scale\(\) cannot be built without "):
        Scale.apply(x)
    with pytest.raises(TypeError, match=r"build the op first, then apply it: Scale\(...\)"):
        Scale.apply(x)


def test_class_apply_refuses_non_tensors_like_the_instance_form():
    with pytest.raises(TypeError, match="Cube: expected Tensor inputs, got ndarray"):
        Cube.apply(np.ones(2))


def test_a_numpy_batch_given_to_a_layer_says_to_wrap_it():
    import minigrad.functional as F

    x = np.zeros((2, 1, 4, 4), np.float32)  # what a DataLoader yields
    w = mg.zeros(1, 1, 3, 3)
    msg = (
        r"conv2d: input must be a Tensor, got ndarray; wrap arrays with minigrad.tensor\(x\) "
        r"\(a DataLoader yields NumPy batches\)"
    )
    with pytest.raises(TypeError, match=msg):
        F.conv2d(x, w)
