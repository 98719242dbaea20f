"""mg.grad (PyTorch's autograd.grad semantics), create_graph, mg.hvp, gradgradcheck's
errors, and a gradient-penalty training step through a small Inception block."""

from __future__ import annotations

import numpy as np
import pytest
from _host import to_host

import minigrad as mg
import minigrad.functional as F
from minigrad import nn
from minigrad.autograd import Function
from minigrad.gradcheck import gradcheck, gradgradcheck


def t64(a, device, grad=True):
    return mg.tensor(np.asarray(a, dtype=np.float64), device=device, requires_grad=grad)


def test_grad_equals_backward_and_writes_no_grad(device):
    rng = np.random.default_rng(0)
    x = t64(rng.standard_normal((2, 3, 5, 5)), device)
    w = t64(rng.standard_normal((4, 3, 3, 3)), device)
    loss = F.max_pool2d(F.relu(F.conv2d(x, w, padding=1)), 2).sum()
    gx, gw = mg.grad(loss, [x, w], retain_graph=True)
    assert x.grad is None and w.grad is None
    loss.backward()
    np.testing.assert_array_equal(to_host(gx), to_host(x.grad))
    np.testing.assert_array_equal(to_host(gw), to_host(w.grad))
    assert not gx.requires_grad


def test_grad_of_a_non_leaf_and_several_outputs(device):
    x = t64([1.0, 2.0, 3.0], device)
    h = x * x  # non-leaf input
    y1, y2 = (h * 2).sum(), F.exp(h).sum()
    (gh,) = mg.grad([y1, y2], h)
    np.testing.assert_allclose(to_host(gh), 2 + np.exp([1.0, 4.0, 9.0]))
    v = t64([1.0, 0.0, -1.0], device, grad=False)
    (gx,) = mg.grad(h, x, grad_outputs=v)  # a vector-Jacobian product
    np.testing.assert_allclose(to_host(gx), [2.0, 0.0, -6.0])
    m = x.reshape(1, 3) * 2  # an array grad_output for a one-row output
    (gx,) = mg.grad(m, x, grad_outputs=np.ones((1, 3)))
    np.testing.assert_allclose(to_host(gx), [2.0, 2.0, 2.0])


@pytest.mark.parametrize("create_graph", [False, True])
def test_grad_outputs_are_checked_by_the_same_function_as_backwards_grad(device, create_graph):
    x = t64([1.0, 2.0], device)
    y = x * 3
    calls = [
        ("backward: grad", lambda g: y.backward(g, retain_graph=True)),
        (r"grad: grad_outputs\[0\]", lambda g: mg.grad(y, x, [g], True, create_graph)),
    ]
    for what, call in calls:
        with pytest.raises(ValueError, match=rf"^{what} can be omitted only for a one-element "):
            call(None)
        with pytest.raises(ValueError, match=rf"^{what} shape \(3,\) != tensor shape \(2,\)$"):
            call(np.ones(3))
        with pytest.raises(ValueError, match=rf"^{what} shape \(1, 2\) != tensor shape \(2,\)$"):
            call(t64([[1.0, 1.0]], device, grad=False))
    # host data and a float32 Tensor are both taken, in the output's dtype and device
    (gx,) = mg.grad(y, x, [[1.0, 2.0]], True, create_graph)
    np.testing.assert_allclose(to_host(gx), [3.0, 6.0])
    g32 = mg.tensor(np.array([1.0, 2.0], np.float32), device=device)
    (gx,) = mg.grad(y, x, g32, True, create_graph)
    assert gx.dtype == np.float64
    y.backward(np.array([1.0, 2.0]), retain_graph=True)
    np.testing.assert_allclose(to_host(x.grad), [3.0, 6.0])


def test_allow_unused_and_the_errors(device):
    x, z = t64([1.0, 2.0], device), t64([3.0], device)
    y = (x * x).sum()
    with pytest.raises(RuntimeError, match=r"inputs\[1\].*allow_unused=True"):
        mg.grad(y, [x, z], retain_graph=True)
    gx, gz = mg.grad(y, [x, z], allow_unused=True, retain_graph=True)
    assert gz is None
    np.testing.assert_allclose(to_host(gx), [2.0, 4.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        mg.grad(y, [t64([1.0], device, grad=False)])
    with pytest.raises(
        ValueError, match=r"grad: grad_outputs\[0\] can be omitted only for a one-element"
    ):
        mg.grad(x * 2, x)
    with pytest.raises(RuntimeError, match=r"minigrad.grad\(outputs, inputs, create_graph=True\)"):
        y.backward(create_graph=True)
    mg.grad(y, x)  # retain_graph defaults to create_graph (False): the graph is freed
    with pytest.raises(RuntimeError, match="already freed"):
        mg.grad(y, x)


def test_create_graph_to_any_order(device):
    x = t64([0.5, -1.5], device)
    (g1,) = mg.grad((x**4).sum(), x, create_graph=True)  # 4 x^3
    (g2,) = mg.grad(g1.sum(), x, create_graph=True)  # 12 x^2
    (g3,) = mg.grad(g2.sum(), x, create_graph=True)  # 24 x
    (g4,) = mg.grad(g3.sum(), x, allow_unused=True)  # 24 (constant)
    xs = np.array([0.5, -1.5])
    np.testing.assert_allclose(to_host(g1), 4 * xs**3)
    np.testing.assert_allclose(to_host(g2), 12 * xs**2)
    np.testing.assert_allclose(to_host(g3), 24 * xs)
    np.testing.assert_allclose(to_host(g4), [24.0, 24.0])


class _NoSecond(Function):
    def forward(self, x):
        return x * 2

    def backward(self, gy):
        return gy * 2


def test_an_op_without_backward_graph_is_named_not_silently_wrong(device):
    x = t64([1.0, 2.0], device)
    y = (_NoSecond().apply(x) ** 2).sum()
    mg.grad(y, x, retain_graph=True)  # first order works
    with pytest.raises(RuntimeError, match="_NoSecond has no differentiable backward"):
        mg.grad(y, x, create_graph=True)
    with pytest.raises(RuntimeError, match="_NoSecond"):
        gradgradcheck(lambda x: _NoSecond().apply(x) ** 2, [x])


def test_hvp_matches_the_explicit_hessian(device):
    rng = np.random.default_rng(1)
    A = rng.standard_normal((3, 3))
    x = t64(rng.standard_normal(3), device)
    v = t64(rng.standard_normal(3), device, grad=False)
    At = t64(A, device, grad=False)

    def f(x):  # x^T A x + sum(x^3): H = A + A^T + diag(6 x)
        return (x * F.matmul(At, x)).sum() + (x**3).sum()

    value, (hv,) = mg.hvp(f, x, v)
    H = A + A.T + np.diag(6 * to_host(x))
    np.testing.assert_allclose(to_host(hv), H @ to_host(v), rtol=1e-12)
    assert float(value) == pytest.approx(float(f(x).item()))


def test_gradgradcheck_catches_a_wrong_second_derivative(device):
    class WrongSecond(Function):
        """y = x^2 with a backward_graph that forgets x's dependence (a silent bug)."""

        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, gy):
            return 2 * gy * self.x

        def backward_graph(self, gy):
            return gy * mg.Tensor(2 * self.x)  # x as a constant: d/dx lost

    x = t64([1.0, -2.0], device)
    assert gradcheck(lambda x: WrongSecond().apply(x), [x])
    with pytest.raises(AssertionError, match="gradcheck"):
        gradgradcheck(lambda x: WrongSecond().apply(x), [x])


# ---------------------------------------------------------------- gradient penalty
class SmallInception(nn.Module):
    """1x1, 3x3 (after a 1x1 reduction) and pool branches, concatenated (float64)."""

    def __init__(self, c_in: int = 2) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(c_in, 2, 1)
        self.b2a = nn.Conv2d(c_in, 2, 1)
        self.b2b = nn.Conv2d(2, 3, 3, padding=1)
        self.b3 = nn.Conv2d(c_in, 2, 1)
        self.bn = nn.BatchNorm2d(2)

    def forward(self, x):
        b1 = F.relu(self.b1(x))
        b2 = F.relu(self.b2b(F.relu(self.bn(self.b2a(x)))))
        b3 = F.relu(self.b3(F.max_pool2d(x, 3, 1, 1, ceil_mode=True)))
        return F.cat([b1, b2, b3], 1)


def penalty_loss(block, x, target):
    """CE of a linear head + ||d out / d x||^2 (the gradient penalty, double backprop).

    Under grad mode even when called under no_grad (as gradcheck's evaluations are): the
    penalty needs the graph of ``out``."""
    with mg.enable_grad():
        out = block(x)
        logits = F.linear(F.flatten(F.adaptive_avg_pool2d(out, 1), 1), block.head)
        ce = F.cross_entropy(logits, target)
        (gx,) = mg.grad(out.sum(), x, create_graph=True)
        return ce + 0.1 * (gx * gx).sum()


@pytest.mark.parametrize("reference", [False, True])
def test_gradient_penalty_step_matches_finite_differences(device, reference):
    mg.manual_seed(0)
    block = SmallInception().to(device=device, dtype="float64")
    block.head = nn.Parameter(mg.randn(3, 7, dtype="float64", device=device))
    rng = np.random.default_rng(2)
    x = t64(rng.standard_normal((2, 2, 4, 4)), device)
    target = np.array([0, 2])
    params = list(block.parameters())
    with mg.reference_ops(reference):
        # the parameters' gradients of the penalised loss vs central differences
        assert gradcheck(lambda *ps: penalty_loss(block, x, target), params)
        loss = penalty_loss(block, x, target)
        loss.backward()
        before = [p.numpy() for p in params]
        opt = mg.optim.SGD(params, lr=0.01)
        opt.step()
    for p, b in zip(params, before):
        np.testing.assert_allclose(p.numpy(), b - 0.01 * to_host(p.grad))
