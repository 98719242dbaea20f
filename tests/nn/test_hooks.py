"""Module hooks: forward pre/forward hooks and full backward hooks (issue 5)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from _host import to_host

import minigrad as mg
from minigrad import nn


def _lin(i, o, device):
    return nn.Linear(i, o, dtype="float64", device=device)


def test_forward_hooks_fire_inner_first_with_inputs_and_output(device):
    seq = nn.Sequential(_lin(3, 4, device), nn.ReLU(), _lin(4, 2, device))
    calls = []
    for name, m in seq.named_modules():
        m.register_forward_hook(
            lambda mod, inp, out, name=name: calls.append((name or "seq", inp[0].shape, out.shape))
        )
    x = mg.randn(5, 3, dtype="float64", device=device)
    seq(x)
    assert calls == [
        ("0", (5, 3), (5, 4)),
        ("1", (5, 4), (5, 4)),
        ("2", (5, 4), (5, 2)),
        ("seq", (5, 3), (5, 2)),
    ]


def test_forward_hook_can_replace_the_output_and_pre_hook_the_input(device):
    lin = _lin(3, 2, device)
    x = mg.randn(4, 3, dtype="float64", device=device)
    ref = lin(x).numpy()
    h1 = lin.register_forward_hook(lambda m, inp, out: out * 2.0)
    h2 = lin.register_forward_hook(lambda m, inp, out: out + 1.0)  # sees the doubled output
    np.testing.assert_allclose(lin(x).numpy(), ref * 2 + 1)
    h1.remove()
    h2.remove()
    pre = lin.register_forward_pre_hook(lambda m, inp: (inp[0] * 0.0,))
    np.testing.assert_allclose(lin(x).numpy(), np.broadcast_to(lin.bias.numpy(), (4, 2)))
    pre.remove()
    np.testing.assert_allclose(lin(x).numpy(), ref)


def test_backward_hook_gets_grad_output_and_grad_input(device):
    lin = _lin(3, 2, device)
    x = mg.randn(4, 3, dtype="float64", device=device, requires_grad=True)
    seen = {}

    def hook(mod, grad_input, grad_output):
        seen["mod"] = mod
        seen["gi"] = [g.copy() for g in grad_input]
        seen["go"] = [g.copy() for g in grad_output]

    lin.register_full_backward_hook(hook)
    y = lin(x)
    gy = np.arange(8.0).reshape(4, 2)
    (y * mg.tensor(gy, dtype="float64", device=device)).sum().backward()
    assert seen["mod"] is lin
    assert len(seen["go"]) == 1 and len(seen["gi"]) == 1
    np.testing.assert_allclose(to_host(seen["go"][0]), gy)
    w = lin.weight.numpy()
    np.testing.assert_allclose(to_host(seen["gi"][0]), gy @ w)
    np.testing.assert_allclose(x.grad.get() if device != "cpu" else x.grad, gy @ w)


def test_backward_hooks_fire_last_layer_first_and_outer_after_inner(device):
    seq = nn.Sequential(_lin(3, 4, device), nn.ReLU(), _lin(4, 2, device))
    order = []
    for name, m in seq.named_modules():
        m.register_full_backward_hook(
            lambda mod, gi, go, name=name: order.append(
                (name or "seq", tuple(g.shape for g in gi), tuple(g.shape for g in go))
            )
        )
    x = mg.randn(5, 3, dtype="float64", device=device, requires_grad=True)
    seq(x).sum().backward()
    assert order == [
        ("2", ((5, 4),), ((5, 2),)),
        ("1", ((5, 4),), ((5, 4),)),
        ("0", ((5, 3),), ((5, 4),)),
        ("seq", ((5, 3),), ((5, 2),)),
    ]


def test_backward_hook_can_replace_grad_input(device):
    seq = nn.Sequential(_lin(3, 4, device), _lin(4, 2, device))
    x = mg.randn(5, 3, dtype="float64", device=device, requires_grad=True)
    seq(x).sum().backward()
    ref_x, ref_w0 = x.numpy(), seq[0].weight.grad.copy()
    ref_gx = to_host(x.grad).copy()
    seq.zero_grad()
    x.grad = None
    handle = seq[1].register_full_backward_hook(lambda m, gi, go: (gi[0] * 3.0,))
    seq(x).sum().backward()
    # everything before the hooked layer sees three times the gradient ...
    np.testing.assert_allclose(to_host(x.grad), 3 * ref_gx)
    np.testing.assert_allclose(to_host(seq[0].weight.grad), 3 * to_host(ref_w0))
    assert x.numpy().tolist() == ref_x.tolist()
    # ... and after remove() the hook is gone
    handle.remove()
    seq.zero_grad()
    x.grad = None
    seq(x).sum().backward()
    np.testing.assert_allclose(to_host(x.grad), ref_gx)


def test_removed_hooks_stop_firing(device):
    lin = _lin(2, 2, device)
    calls = []
    hf = lin.register_forward_hook(lambda *a: calls.append("f"))
    hb = lin.register_full_backward_hook(lambda *a: calls.append("b"))
    x = mg.randn(3, 2, dtype="float64", device=device, requires_grad=True)
    lin(x).sum().backward()
    assert calls == ["f", "b"]
    hf.remove()
    with hb:  # handles are context managers too
        lin(x).sum().backward()
    assert calls == ["f", "b", "b"]
    lin(x).sum().backward()
    assert calls == ["f", "b", "b"]
    assert lin(x).grad_fn.name == "Linear"  # no identity ops left once hooks are gone


def test_backward_hook_when_the_input_needs_no_grad(device):
    lin = _lin(3, 2, device)
    seen = []
    lin.register_full_backward_hook(lambda m, gi, go: seen.append((gi, go[0].shape)))
    x = mg.randn(4, 3, dtype="float64", device=device)  # e.g. the input images
    lin(x).sum().backward()
    assert seen == [((None,), (4, 2))]
    assert lin.weight.grad is not None


def test_backward_hook_with_two_inputs_and_a_named_tuple_output(device):
    class Out(NamedTuple):
        a: mg.Tensor
        b: mg.Tensor

    class Two(nn.Module):
        def forward(self, x, y, scale=1.0):
            return Out(x * y * scale, x + y)

    m = Two()
    seen = {}
    m.register_full_backward_hook(lambda mod, gi, go: seen.update(gi=gi, go=go))
    x = mg.tensor([1.0, 2.0], dtype="float64", device=device, requires_grad=True)
    y = mg.tensor([3.0, 5.0], dtype="float64", device=device)
    out = m(x, y, scale=2.0)
    assert isinstance(out, Out)
    (out.a.sum() + 10.0 * out.b.sum()).backward()
    assert seen["gi"][1] is None
    np.testing.assert_allclose(to_host(seen["gi"][0]), [2 * 3 + 10, 2 * 5 + 10])
    np.testing.assert_allclose(to_host(seen["go"][0]), [1, 1])
    np.testing.assert_allclose(to_host(seen["go"][1]), [10, 10])


def test_backward_hooks_are_skipped_under_no_grad_but_forward_hooks_run(device):
    lin = _lin(2, 2, device)
    calls = []
    lin.register_forward_hook(lambda *a: calls.append("f"))
    lin.register_full_backward_hook(lambda *a: calls.append("b"))
    with mg.no_grad():
        y = lin(mg.randn(1, 2, dtype="float64", device=device))
    assert calls == ["f"] and not y.requires_grad


def test_bad_backward_hook_results_raise(device):
    lin = _lin(2, 2, device)
    x = mg.randn(3, 2, dtype="float64", device=device, requires_grad=True)
    h = lin.register_full_backward_hook(lambda m, gi, go: (gi[0], gi[0]))
    with pytest.raises(ValueError, match="backward hook on Linear returned .*tuple of 1"):
        lin(x).sum().backward()
    h.remove()
    lin.register_full_backward_hook(lambda m, gi, go: (gi[0][:1],))
    with pytest.raises(ValueError, match=r"shape \(1, 2\) for input 0 of shape \(3, 2\)"):
        lin(x).sum().backward()
    with pytest.raises(TypeError, match="expected a callable, got int"):
        lin.register_forward_hook(3)


def test_branch_grad_inputs_add_up_to_the_gradient_at_the_shared_input(device):
    class TwoBranches(nn.Module):
        def __init__(self):
            super().__init__()
            self.branch1 = _lin(3, 2, device)
            self.branch2 = nn.Sequential(nn.ReLU(), _lin(3, 4, device))

        def forward(self, x):
            return mg.cat([self.branch1(x), self.branch2(x)], dim=1)

    block = TwoBranches()
    shares = {}
    for name in ("branch1", "branch2"):
        getattr(block, name).register_full_backward_hook(
            lambda m, gi, go, name=name: shares.update({name: to_host(gi[0])})
        )
    x = mg.randn(5, 3, dtype="float64", device=device, requires_grad=True)
    (block(x) ** 2).sum().backward()
    total = to_host(x.grad)
    np.testing.assert_allclose(shares["branch1"] + shares["branch2"], total, rtol=1e-12)
    assert not np.allclose(shares["branch1"], total)  # each branch is a real part of it
