"""The backward engine: deep chains, accumulation, graph release, no_grad, hooks, seeding."""

from __future__ import annotations

import threading
import weakref

import numpy as np
import pytest
from _host import to_host

import minigrad as mg
import minigrad.functional as F
from minigrad import viz
from minigrad.autograd import Function


def leaf(values, device, dtype="float64"):
    return mg.tensor(values, dtype=dtype, device=device, requires_grad=True)


def test_a_10000_node_chain_backpropagates(device):
    x = leaf([1.0, 2.0], device)
    h = x
    for i in range(10_000):  # alternate ops so every node is a different Function
        h = h * 1.0001 if i % 2 else h + 0.5
    h.sum().backward()
    np.testing.assert_allclose(to_host(x.grad), [1.0001**5000] * 2, rtol=1e-12)


def test_fan_out_gradients_add_up(device):
    x = leaf([2.0, -3.0], device)
    a = x * x  # x used twice by one op
    b = F.exp(x)  # and again by others
    c = x * 4.0
    (a + b + c + a).sum().backward()  # a itself fans out too
    v = np.array([2.0, -3.0])
    np.testing.assert_allclose(to_host(x.grad), 4 * v + np.exp(v) + 4, rtol=1e-14)


def test_diamond_graph(device):
    x = leaf([0.5], device)
    y = F.tanh(x)
    z = y * y + F.sigmoid(y)  # both branches meet again
    z.backward()
    t = np.tanh(0.5)
    s = 1 / (1 + np.exp(-t))
    np.testing.assert_allclose(to_host(x.grad), [(2 * t + s * (1 - s)) * (1 - t * t)], rtol=1e-14)


def test_gradients_accumulate_across_backward_calls_until_cleared(device):
    x = leaf([1.0, 2.0], device)
    for k in range(1, 4):
        (x * 3).sum().backward()
        np.testing.assert_array_equal(to_host(x.grad), [3.0 * k] * 2)
    x.zero_grad()
    assert x.grad is None
    (x * x).sum().backward()
    np.testing.assert_array_equal(to_host(x.grad), [2.0, 4.0])
    x.grad = None
    (x * 5).sum().backward()
    np.testing.assert_array_equal(to_host(x.grad), [5.0, 5.0])


def test_accumulation_never_writes_into_an_array_another_tensor_holds(device):
    a, b = leaf([1.0], device), leaf([1.0], device)
    (a + b).backward()  # Add may hand the same gy array to both inputs
    (a * 2).backward()
    np.testing.assert_array_equal(to_host(a.grad), [3.0])
    np.testing.assert_array_equal(to_host(b.grad), [1.0])


def test_broadcasting_is_reduced_back_to_each_input_shape(device):
    x = leaf(np.ones((4, 3)), device)
    w = leaf(np.ones((3, 2)), device)
    b = leaf(np.zeros(2), device)
    s = leaf(2.0, device)
    ((x @ w + b) * s).sum().backward()
    assert (x.grad.shape, w.grad.shape, b.grad.shape, s.grad.shape) == ((4, 3), (3, 2), (2,), ())
    np.testing.assert_array_equal(to_host(b.grad), [8.0, 8.0])  # 4 rows * s
    assert float(s.grad) == 24.0


def test_the_graph_is_released_after_backward(device):
    x = leaf([1.0, 2.0], device)
    y = (x * x).sum()
    mul = y.grad_fn.inputs[0].grad_fn
    assert hasattr(mul, "a")
    y.backward()
    assert not hasattr(mul, "a") and not hasattr(mul, "b")  # saved arrays freed
    with pytest.raises(
        RuntimeError, match=r"graph through \w+ was already freed.*retain_graph=True"
    ):
        y.backward()


def test_a_root_kept_after_backward_does_not_keep_the_activations_alive(device):
    x = leaf(np.ones((50, 40)), device)
    h1 = x * 2
    h2 = F.exp(h1)
    loss = F.tanh(h2).sum()
    dead = [weakref.ref(h1), weakref.ref(h2)]
    del h1, h2
    assert all(r() is not None for r in dead)  # the graph holds them until backward
    loss.backward()
    assert all(r() is None for r in dead)  # like last iteration's loss in a training loop
    stand_in = loss.grad_fn.inputs[0]
    assert stand_in._ctx.name == "Tanh" and stand_in.shape == (50, 40)
    drawing = viz.to_dot(loss)  # the structure is still there to draw
    assert all(op in drawing for op in ("Mul", "Exp", "Tanh", "Sum"))


def test_an_op_that_never_reads_its_input_does_not_keep_it(device):
    # ReLU's backward reads its output only (keeps_inputs = False): a BN output feeding it
    # is freed at once, as in PyTorch; the gradient still flows through the stand-in
    x = leaf(np.linspace(-1.0, 1.0, 12).reshape(3, 4), device)
    h = x * 2
    loss = F.relu(h).sum()
    dead = weakref.ref(h)
    del h
    assert dead() is None
    assert loss.grad_fn.inputs[0].grad_fn.name == "ReLU"
    relu = loss.grad_fn.inputs[0].grad_fn
    assert relu.inputs[0].grad_fn.name == "Mul" and relu.inputs[0].shape == (3, 4)
    loss.backward()
    expected = 2.0 * (np.linspace(-1.0, 1.0, 12) > 0).reshape(3, 4)
    np.testing.assert_array_equal(to_host(x.grad), expected)


def test_a_hook_on_a_tensor_only_relu_reads_still_fires(device):
    # nothing but the hook refers to h once ReLU has run; the hook must fire all the same
    x = leaf(np.linspace(-1.0, 1.0, 12).reshape(3, 4), device)
    h = x * 2
    seen = []
    h.register_hook(lambda g: seen.append(to_host(g).copy()))
    loss = F.relu(h).sum()
    del h
    loss.backward()
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], (np.linspace(-1.0, 1.0, 12) > 0).reshape(3, 4))


def test_retain_graph_allows_a_second_backward(device):
    x = leaf([1.0, 2.0], device)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(to_host(x.grad), [4.0, 8.0])


def test_no_grad_records_nothing(device):
    x = leaf([1.0], device)
    with mg.no_grad():
        assert not mg.is_grad_enabled()
        y = F.relu(x * 2) + x
        with mg.enable_grad():
            z = x * 2
        assert not mg.is_grad_enabled()
    assert mg.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None

    @mg.no_grad()
    def infer(t):
        return t * 3

    assert infer(x).grad_fn is None and mg.is_grad_enabled()


def test_no_grad_is_restored_after_an_exception_and_is_per_thread(device):
    with pytest.raises(KeyError), mg.no_grad():
        raise KeyError
    assert mg.is_grad_enabled()
    seen = []
    with mg.no_grad():
        t = threading.Thread(target=lambda: seen.append(mg.is_grad_enabled()))
        t.start()
        t.join()
    assert seen == [True]


def test_one_no_grad_instance_can_be_nested_and_recursed():
    ng = mg.no_grad()
    with ng:
        with ng:
            pass
        assert not mg.is_grad_enabled()  # the inner exit restores "off", not "on"
    assert mg.is_grad_enabled()

    @mg.no_grad()
    def depth(n):
        assert not mg.is_grad_enabled()
        return depth(n - 1) if n else mg.is_grad_enabled()

    assert depth(3) is False and mg.is_grad_enabled()
    with mg.enable_grad():  # enable_grad outside no_grad is a no-op that restores "on"
        assert mg.is_grad_enabled()
    assert mg.is_grad_enabled()


def test_only_inputs_that_need_grad_get_one(device):
    x = leaf([1.0, 2.0], device)
    c = mg.tensor([3.0, 4.0], dtype="float64", device=device)
    (x * c).sum().backward()
    assert c.grad is None and not c.requires_grad
    np.testing.assert_array_equal(to_host(x.grad), [3.0, 4.0])


def test_unused_outputs_of_a_multi_output_op_get_zero_gradient(device):
    x = leaf(np.arange(6.0).reshape(3, 2), device)
    _, mid, _ = F.split(x, 1, dim=0)
    (mid * 2).sum().backward()
    np.testing.assert_array_equal(to_host(x.grad), [[0, 0], [2, 2], [0, 0]])


def test_manual_seed_makes_every_random_factory_reproducible(device):
    def draw():
        return [mg.randn(5, device=device).numpy(), mg.rand(5, device=device).numpy()]

    mg.manual_seed(42)
    first = draw()
    mg.manual_seed(42)
    again = draw()
    mg.manual_seed(43)
    other = draw()
    for a, b, c in zip(first, again, other):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


# ---------------------------------------------------------------- tensor hooks, retain_grad
def test_hook_is_called_with_the_gradient_and_may_replace_it(device):
    x = leaf([1.0, 2.0], device)
    seen = []
    x.register_hook(lambda g: seen.append(to_host(g).copy()))  # observes, returns None
    x.register_hook(lambda g: g * 10)  # replaces
    (x * 3).sum().backward()
    np.testing.assert_array_equal(seen[0], [3.0, 3.0])
    np.testing.assert_array_equal(to_host(x.grad), [30.0, 30.0])


def test_hook_on_an_intermediate_changes_everything_further_back(device):
    x = leaf([1.0, 2.0], device)
    m = x * 2
    m.register_hook(lambda g: mg.tensor(to_host(g) * 0 + 1, dtype="float64", device=device))
    (m * m).sum().backward()  # dL/dm = 2m, replaced by ones (a Tensor is accepted too)
    np.testing.assert_array_equal(to_host(x.grad), [2.0, 2.0])
    assert m.grad is None  # not retained


def test_removed_hook_stops_firing(device):
    x = leaf([1.0], device)
    calls = []
    handle = x.register_hook(lambda g: calls.append(1))
    x.sum().backward()
    handle.remove()
    handle.remove()  # twice is harmless
    x.sum().backward()
    assert len(calls) == 1
    with x.register_hook(lambda g: calls.append(2)):
        x.sum().backward()
    x.sum().backward()
    assert calls == [1, 2]


def test_retain_grad_keeps_and_accumulates_the_gradient_of_intermediates(device):
    x = leaf([1.0, 2.0], device)
    m = x * 2
    m.retain_grad()
    out = (m * m).sum()
    out.backward(retain_graph=True)
    np.testing.assert_array_equal(to_host(m.grad), [4.0, 8.0])
    out.backward()
    np.testing.assert_array_equal(to_host(m.grad), [8.0, 16.0])
    assert m.grad.dtype == np.float64


def test_a_hook_returning_the_wrong_shape_or_dtype_is_refused(device):
    x = leaf([1.0, 2.0], device, dtype="float32")

    def to_double(g):
        return g.astype("float64")

    x.register_hook(to_double)
    msg = (
        r"register_hook: hook 'to_double' returned shape \(2,\) and dtype float64; it must "
        r"return None or a gradient of shape \(2,\) and dtype float32"
    )
    with pytest.raises(RuntimeError, match=msg):
        (x * 2).sum().backward()
    y = leaf([1.0], device)
    y.register_hook(lambda g: 3.0)
    with pytest.raises(RuntimeError, match="returned float; it must return None or a gradient"):
        (y * 2).sum().backward()


def test_hooks_need_a_tensor_that_requires_grad(device):
    t = mg.ones(2, device=device)
    with pytest.raises(RuntimeError, match="register_hook: tensor does not require grad"):
        t.register_hook(lambda g: g)
    with pytest.raises(RuntimeError, match="retain_grad: tensor does not require grad"):
        t.retain_grad()


# ---------------------------------------------------------------- Function.apply checks
class Twice(Function):
    """y = 2x; gx = 2 gy, or a gradient of the wrong shape or dtype when ``bad`` says so."""

    def __init__(self, bad: str = "") -> None:
        self.bad = bad

    def forward(self, x):
        return 2 * x

    def backward(self, gy):
        if self.bad == "shape":
            return (2 * gy)[..., :1]
        if self.bad == "dtype":
            return (2 * gy).astype("float64")
        return 2 * gy


@pytest.mark.parametrize(
    "bad, got",
    [("shape", r"shape \(1,\) and dtype float32"), ("dtype", r"shape \(2,\) and dtype float64")],
)
def test_a_backward_returning_the_wrong_shape_or_dtype_is_named(device, bad, got):
    x = leaf([1.0, 2.0], device, dtype="float32")
    msg = rf"Twice.backward returned a gradient of {got} for an input of shape \(2,\) and dtype"
    with pytest.raises(RuntimeError, match=msg):
        Twice(bad=bad).apply(x).sum().backward()
    with pytest.raises(RuntimeError, match=msg):  # mg.grad's walk checks the same way
        mg.grad(Twice(bad=bad).apply(x).sum(), x)


def test_apply_refuses_non_tensors(device):
    with pytest.raises(TypeError, match="Twice: expected Tensor inputs, got ndarray"):
        Twice().apply(np.ones(2))


def test_apply_refuses_mixed_float_dtypes(device):
    a = mg.ones(2, dtype="float32", device=device)
    b = mg.ones(2, dtype="float64", device=device)
    with pytest.raises(TypeError, match="Add: mixed float dtypes float32 and float64"):
        a + b


# ---------------------------------------------------------------- in-place writes vs saved arrays
def _retained_conv_loss(device):
    """A two-conv net whose second conv saves its weight; backward once, graph kept."""
    mg.manual_seed(0)
    net = mg.nn.Sequential(mg.nn.Conv2d(1, 2, 3), mg.nn.ReLU(), mg.nn.Conv2d(2, 2, 3)).to(device)
    loss = net(mg.randn(2, 1, 7, 7, device=device)).sum()
    loss.backward(retain_graph=True)
    return net, loss


@pytest.mark.parametrize("write", ["sgd", "adam", "ema", "load_state_dict", "init", "data_isub"])
def test_backward_after_an_in_place_write_to_a_saved_tensor_raises_naming_the_op(device, write):
    net, loss = _retained_conv_loss(device)
    w = net[2].weight
    before = w._version
    if write == "sgd":
        mg.optim.SGD(net.parameters(), lr=0.1).step()
    elif write == "adam":
        mg.optim.Adam(net.parameters()).step()
    elif write == "ema":
        ema = mg.optim.EMA(net, decay=0.5)
        ema.shadow["2.weight"] = ema.shadow["2.weight"] * 0
        ema.apply_to()
    elif write == "load_state_dict":
        net.load_state_dict({k: v * 2 for k, v in net.state_dict().items()})
    elif write == "init":
        mg.nn.init.constant_(w, 0.5)
    else:
        w.data -= 1
    assert w._version > before
    with pytest.raises(RuntimeError, match=r"saved by Conv2d for backward was modified in place"):
        loss.backward()


def test_the_message_names_the_shape_and_both_versions(device):
    w = leaf([[1.0, 2.0], [3.0, 4.0]], device)
    loss = (mg.ones(1, 2, dtype="float64", device=device) @ w).sum()
    w.data -= 1
    with pytest.raises(RuntimeError) as e:
        loss.backward()
    assert str(e.value).startswith(
        "backward: a tensor of shape (2, 2) saved by MatMul for backward was modified in "
        "place (version 1, saved at 0)"
    )


def test_a_view_shares_the_version_of_the_tensor_it_views(device):
    w = leaf([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], device)
    wt = w.T  # a view of w's memory, saved by matmul below
    loss = (mg.ones(1, 3, dtype="float64", device=device) @ wt).sum()
    w.copy_(w.data * 0)
    assert wt._version == w._version == 1
    with pytest.raises(RuntimeError, match="saved by MatMul"):
        loss.backward()


def test_an_op_that_did_not_save_the_written_tensor_still_runs_backward(device):
    w = leaf([1.0, 2.0], device)
    loss = (w + 1.0).sum() + F.relu(w).sum()  # add and relu keep no copy of w's values
    loss.backward(retain_graph=True)
    mg.optim.SGD([w], lr=0.5).step()
    loss.backward()
    np.testing.assert_array_equal(to_host(w.grad), [4.0, 4.0])


def test_rebinding_data_leaves_the_saved_array_and_its_gradient_intact(device):
    x = leaf([1.0, 2.0], device)
    loss = (x * x).sum()
    x.data = x.data * 10  # a new array: the one Mul saved still holds [1, 2]
    assert x._version == 1
    loss.backward()
    np.testing.assert_array_equal(to_host(x.grad), [2.0, 4.0])


def test_detach_shares_the_version_counter(device):
    x = leaf([1.0, 2.0], device)
    d = x.detach()
    d.copy_(mg.zeros(2, dtype="float64", device=device))
    assert x._version == d._version == 1
    np.testing.assert_array_equal(to_host(x.data), [0.0, 0.0])
