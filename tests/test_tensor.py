"""The Tensor API: construction and dtype rules, attributes, conversions, backward's arguments."""

from __future__ import annotations

import numpy as np
import pytest
from _host import to_host

import minigrad as mg


@pytest.mark.parametrize(
    "data, want",
    [
        (1.5, np.float32),
        ([1.0, 2.0], np.float32),
        ([[1, 2.5]], np.float32),  # mixed ints and floats are float data
        (3, np.int64),
        ([1, 2, 3], np.int64),
        ([True, False], np.bool_),
        (np.arange(3, dtype=np.int32), np.int32),  # arrays keep their dtype
        (np.arange(3, dtype=np.uint8), np.uint8),
        (np.ones(2), np.float64),
        (np.ones(2, dtype=np.float32), np.float32),
        (np.float64(1.5), np.float64),  # NumPy scalars too, as in torch.tensor
        (np.int16(4), np.int16),
    ],
)
def test_default_dtype_rules(device, data, want):
    t = mg.tensor(data, device=device)
    assert t.dtype == want
    np.testing.assert_array_equal(t.numpy(), np.asarray(data))


@pytest.mark.parametrize("dtype", ["float64", np.float64, np.dtype("float64"), "f8", "double"])
def test_dtype_accepts_numpy_dtypes_and_their_names(device, dtype):
    assert mg.tensor([1, 2], dtype=dtype, device=device).dtype == np.float64
    assert mg.zeros(2, dtype=dtype, device=device).dtype == np.float64


def test_integer_data_stays_integer_and_explicit_dtype_wins(device):
    labels = mg.tensor([0, 3, 1], device=device)
    assert labels.dtype == np.int64 and not labels.requires_grad
    assert mg.tensor([1.7, 2.2], dtype="int32", device=device).numpy().tolist() == [1, 2]
    assert mg.tensor(np.ones(2), dtype="float32", device=device).dtype == np.float32


def test_tensor_copies_its_data(device):
    a = np.ones(3)
    t = mg.tensor(a, device=device)
    a[0] = 5
    assert t.numpy()[0] == 1
    u = mg.tensor(t)
    u.data[1] = 7
    assert t.numpy()[1] == 1


def test_attributes(device):
    t = mg.tensor(np.zeros((2, 3, 4)), dtype="float32", device=device, requires_grad=True)
    assert t.shape == (2, 3, 4) and isinstance(t.shape, tuple)
    assert t.ndim == 3 and t.numel() == 24 and len(t) == 2 and t.size(1) == 3
    assert t.dtype == np.float32 and t.device == device
    assert t.requires_grad and t.is_leaf and t.grad is None and t.grad_fn is None
    y = t * 2
    assert not y.is_leaf and y.grad_fn is not None and y.grad_fn.name == "Mul"
    assert "requires_grad=True" in repr(t)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_grad_has_the_shape_dtype_and_device_of_the_tensor(device, dtype):
    x = mg.randn(3, 1, 2, dtype=dtype, device=device, requires_grad=True)
    ((x * x).sum(dim=0) + x.mean()).sum().backward()
    assert x.grad.shape == x.shape and x.grad.dtype == dtype
    assert type(x.grad) is type(x.data)
    # the mean is added to both elements of the (1, 2) sum: 2 * 1/6
    np.testing.assert_allclose(to_host(x.grad), 2 * x.numpy() + 2 / 6, rtol=1e-6)


def test_numpy_is_a_host_copy_and_item_a_python_number(device):
    t = mg.tensor([[2.5]], device=device)
    n = t.numpy()
    assert isinstance(n, np.ndarray)
    n[0, 0] = 9
    assert t.item() == 2.5 and isinstance(t.item(), float)
    assert isinstance(mg.tensor([3], device=device).item(), int)
    assert t.tolist() == [[2.5]]
    with pytest.raises(ValueError, match="item: tensor has 2 elements, expected exactly 1"):
        mg.tensor([1.0, 2.0]).item()


def test_detach_shares_data_but_not_the_graph(device):
    x = mg.tensor([1.0, 2.0], device=device, requires_grad=True)
    y = x * 3
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None
    assert d.data is y.data
    (d * x).sum().backward()  # no gradient flows through d into the first product
    np.testing.assert_array_equal(to_host(x.grad), [3.0, 6.0])


def test_to_casts_differentiably_and_returns_self_when_nothing_changes(device):
    x = mg.tensor([1.0, 2.0], device=device, requires_grad=True)
    assert x.to(device) is x and x.to(dtype="float32") is x
    y = x.to(dtype="float64")
    assert y.dtype == np.float64 and y.device == device
    assert x.to("float64").dtype == np.float64 and x.double().dtype == np.float64
    assert y.float().dtype == np.float32
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(to_host(x.grad), [2.0, 4.0])
    assert x.cpu().device == "cpu"


def test_to_refuses_what_is_neither_a_device_nor_a_dtype():
    with pytest.raises(ValueError, match="to: 'gpu' is neither a device"):
        mg.ones(2).to("gpu")
    with pytest.raises(TypeError, match="to: unknown dtype 'floot'"):
        mg.ones(2).to(dtype="floot")


def test_backward_accepts_an_array_a_tensor_or_nothing_for_one_element(device):
    for grad in (
        None,
        mg.tensor([[2.0]], device=device),
        mg.tensor([[2.0]], device=device).data,
        [[2.0]],
    ):
        x = mg.tensor([[3.0]], device=device, requires_grad=True)
        (x * x).backward(grad)
        want = 6.0 if grad is None else 12.0
        assert mg.tensor(x.grad).item() == want


def test_backward_on_a_non_scalar_needs_a_gradient(device):
    y = mg.ones(2, 2, device=device, requires_grad=True) * 2
    with pytest.raises(
        ValueError, match=r"backward: grad can be omitted only for a one-element.*\(2, 2\)"
    ):
        y.backward()
    with pytest.raises(ValueError, match=r"backward: grad shape \(2,\) != tensor shape \(2, 2\)"):
        y.backward(mg.ones(2, device=device))


def test_backward_without_requires_grad_says_so(device):
    with pytest.raises(RuntimeError, match="backward: tensor does not require grad"):
        mg.ones(1, device=device).sum().backward()


@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
def test_requires_grad_on_a_non_float_tensor_is_a_type_error(device, dtype):
    with pytest.raises(
        TypeError, match=f"tensor: only floating-point tensors can require grad, got dtype {dtype}"
    ):
        mg.tensor([1, 0], dtype=dtype, device=device, requires_grad=True)
    with pytest.raises(TypeError, match=f"requires_grad_: only floating-point .* got {dtype}"):
        mg.tensor([1, 0], dtype=dtype, device=device).requires_grad_()
    with pytest.raises(TypeError, match="only floating-point tensors can require grad"):
        mg.zeros(2, dtype=dtype, device=device, requires_grad=True)


def test_factories(device):
    assert mg.zeros(2, 3, device=device).shape == (2, 3)
    assert mg.ones((2, 3), device=device).numpy().sum() == 6
    assert mg.zeros([], device=device).shape == ()
    assert mg.randn(4, device=device).dtype == np.float32
    r = mg.rand(1000, dtype="float64", device=device).numpy()
    assert r.dtype == np.float64 and 0 <= r.min() and r.max() < 1
    assert mg.zeros.__name__ == "zeros" and "zeros" in mg.zeros.__doc__


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda: mg.tensor("abc"), TypeError, "tensor: cannot make a tensor from str data"),
        (lambda: mg.tensor([1j]), TypeError, "tensor: cannot make a tensor from list data"),
        (lambda: mg.tensor([1.0], dtype="floot"), TypeError, "tensor: unknown dtype 'floot'"),
        (lambda: mg.tensor([1.0], device="gpu"), ValueError, "unknown device 'gpu'"),
        (lambda: mg.zeros(2, -1), ValueError, r"zeros: negative dimension in shape \(2, -1\)"),
        (lambda: mg.ones(2.5), TypeError, r"ones: shape must be ints, got \(2.5,\)"),
        (lambda: mg.randn(2, dtype="int64"), TypeError, "randn: dtype must be floating point"),
        (lambda: mg.rand(2, dtype="bool"), TypeError, "rand: dtype must be floating point"),
        (lambda: mg.zeros(2, dtype="nope"), TypeError, "zeros: unknown dtype 'nope'"),
    ],
)
def test_construction_errors(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_comparisons_and_argmax_are_not_differentiable(device):
    x = mg.tensor([[1.0, 5.0], [7.0, 2.0]], device=device, requires_grad=True)
    for r in (x > 2, x >= 2, x < 2, x <= 2, x == 5, x != 5):
        assert r.dtype == np.bool_ and not r.requires_grad
    np.testing.assert_array_equal((x > 2).numpy(), [[False, True], [True, False]])
    np.testing.assert_array_equal(x.argmax(dim=1).numpy(), [1, 0])
    assert x.argmax(dim=0, keepdim=True).shape == (1, 2)
    assert x.argmax().item() == 2


def test_python_conversions_of_one_element_tensors(device):
    assert float(mg.tensor([[1.5]], device=device)) == 1.5
    assert int(mg.tensor(3, device=device)) == 3
    assert bool(mg.tensor(2.0, device=device)) and not bool(mg.tensor([0.0], device=device))
    with pytest.raises(ValueError, match="bool: the truth value of a tensor with 2 elements"):
        bool(mg.ones(2, device=device))
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(mg.tensor(1.0, device=device))


def test_the_tensor_class_follows_the_same_dtype_rules_for_python_data():
    assert mg.Tensor([1.0, 2.0]).dtype == np.float32
    assert mg.Tensor(0.5).dtype == np.float32
    assert mg.Tensor([1, 2]).dtype == np.int64
    assert mg.Tensor(np.float64(0.5)).dtype == np.float64
    assert mg.Tensor(np.ones(2)).dtype == np.float64  # arrays are wrapped as they are


@pytest.mark.skipif(mg.cuda_available(), reason="checks the message shown without a GPU")
def test_asking_for_cuda_without_a_gpu_says_what_to_install():
    msg = r"device 'cuda:0' requested but CUDA is not available \(install the 'gpu' extra"
    with pytest.raises(ValueError, match=msg):
        mg.tensor([1.0], device="cuda")
    with pytest.raises(ValueError, match=msg):
        mg.ones(2).to("cuda")
    with pytest.raises(ValueError, match=msg):
        mg.zeros(2, device="cuda:0")
