"""SGD and the Optimizer base: PyTorch's update rule vs a hand computation, groups, state."""

from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim

GRADS = [np.array([0.5, -1.0, 2.0]), np.array([-0.25, 0.75, 1.0]), np.array([1.5, 0.0, -0.5])]
P0 = np.array([1.0, -2.0, 3.0])


def sgd_reference(lr, momentum=0.0, weight_decay=0.0, nesterov=False, dampening=0.0):
    """PyTorch's SGD written out element by element."""
    p, buf, out = P0.copy(), None, []
    for g in GRADS:
        d = [g[i] + weight_decay * p[i] for i in range(3)]
        if momentum:
            if buf is None:
                buf = list(d)
            else:
                buf = [momentum * buf[i] + (1 - dampening) * d[i] for i in range(3)]
            d = [d[i] + momentum * buf[i] for i in range(3)] if nesterov else list(buf)
        p = np.array([p[i] - lr * d[i] for i in range(3)])
        out.append(p)
    return out


def run(opt_cls, device, dtype="float64", **kw):
    p = nn.Parameter(mg.tensor(P0, dtype=dtype, device=device))
    opt = opt_cls([p], **kw)
    out = []
    for g in GRADS:
        p.grad = mg.tensor(g, dtype=dtype, device=device).data
        opt.step()
        out.append(p.numpy())
    return out, p


@pytest.mark.parametrize(
    "kw",
    [
        dict(lr=0.1),
        dict(lr=0.1, momentum=0.9),
        dict(lr=0.05, momentum=0.9, nesterov=True),
        dict(lr=0.1, momentum=0.5, dampening=0.3),
        dict(lr=0.1, momentum=0.9, weight_decay=0.01),
        dict(lr=0.2, weight_decay=0.1, momentum=0.8, nesterov=True),
    ],
)
def test_sgd_matches_pytorch_rule(kw, device):
    got, _ = run(optim.SGD, device, **kw)
    for a, b in zip(got, sgd_reference(**kw)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_sgd_keeps_float32_and_updates_in_place(device):
    got, p = run(optim.SGD, device, dtype="float32", lr=0.1, momentum=0.9, weight_decay=0.01)
    assert p.dtype == np.float32 and got[-1].dtype == np.float32
    ref = sgd_reference(lr=0.1, momentum=0.9, weight_decay=0.01)[-1]
    np.testing.assert_allclose(got[-1], ref, rtol=1e-6)
    data = p.data
    p.grad = data * 0 + 1
    optim.SGD([p], lr=0.5).step()
    assert p.data is data  # in place: models sharing the array see the update


def test_sgd_does_not_modify_the_gradient():
    p = nn.Parameter(mg.tensor([1.0, 2.0]))
    g = np.array([0.5, 0.5], dtype=np.float32)
    p.grad = g
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1)
    opt.step()
    opt.step()
    assert g.tolist() == [0.5, 0.5]


def test_param_groups_skip_missing_grads_and_zero_grad():
    a, b, c = (nn.Parameter(mg.ones(2)) for _ in range(3))
    opt = optim.SGD([{"params": [a]}, {"params": [b, c], "lr": 1.0}], lr=0.1, momentum=0.0)
    assert opt.param_groups[1]["lr"] == 1.0 and opt.param_groups[0]["lr"] == 0.1
    a.grad = np.ones(2, np.float32)
    b.grad = np.ones(2, np.float32)
    opt.step()
    assert a.numpy().tolist() == pytest.approx([0.9, 0.9])
    assert b.numpy().tolist() == [0.0, 0.0]
    assert c.numpy().tolist() == [1.0, 1.0]  # no grad, untouched
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    assert opt.step(closure=lambda: 3.5) == 3.5
    assert "Parameter Group 1" in repr(opt) and "lr: 1.0" in repr(opt)


def test_optimizer_argument_errors():
    p = nn.Parameter(mg.ones(2))
    with pytest.raises(ValueError, match="SGD: got an empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="SGD: lr must be >= 0, got -1"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="SGD: nesterov needs momentum > 0 and dampening == 0"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="SGD: momentum must be >= 0"):
        optim.SGD([p], lr=0.1, momentum=-0.5)
    with pytest.raises(ValueError, match="SGD: weight_decay must be >= 0"):
        optim.SGD([p], lr=0.1, weight_decay=-0.5)
    with pytest.raises(ValueError, match=r"SGD: parameter 1 \(shape \(2,\)\) appears twice"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(TypeError, match="SGD: parameter 0 is a ndarray, not a Tensor"):
        optim.SGD([np.ones(2)], lr=0.1)
    with pytest.raises(ValueError, match="must be a floating-point leaf tensor"):
        optim.SGD([p * 2.0], lr=0.1)
    with pytest.raises(ValueError, match=r"SGD: unknown hyper-parameter\(s\) \['betas'\]"):
        optim.SGD([{"params": [p], "betas": (0.9, 0.9)}], lr=0.1)
    with pytest.raises(TypeError, match="a param group must be a dict with a 'params' key"):
        optim.SGD([p], lr=0.1).add_param_group({"lr": 0.1})


def _model_and_batches(device):
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).to(device)
    rng = np.random.default_rng(0)
    batches = [
        mg.tensor(rng.standard_normal((6, 4)), dtype="float32", device=device) for _ in range(6)
    ]
    return model, batches


def _train(model, opt, sched, batches):
    for x in batches:
        opt.zero_grad()
        (model(x) ** 2).mean().backward()
        opt.step()
        sched.step()


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda ps: optim.Adam(ps, lr=0.01, weight_decay=1e-3),
        lambda ps: optim.AdamW(ps, lr=0.01),
    ],
)
def test_optimizer_and_schedule_state_round_trip_continue_identically(make, device):
    model, batches = _model_and_batches(device)
    opt = make(model.parameters())
    sched = optim.CosineAnnealingLR(opt, T_max=6)
    _train(model, opt, sched, batches[:3])
    model_sd, opt_sd, sched_sd = model.state_dict(), opt.state_dict(), sched.state_dict()
    _train(model, opt, sched, batches[3:])  # the uninterrupted run

    model2, _ = _model_and_batches(device)
    model2.load_state_dict(model_sd)
    opt2 = make(model2.parameters())
    sched2 = optim.CosineAnnealingLR(opt2, T_max=6)
    opt2.load_state_dict(opt_sd)
    sched2.load_state_dict(sched_sd)
    assert opt2.param_groups[0]["lr"] == opt_sd["param_groups"][0]["lr"]
    _train(model2, opt2, sched2, batches[3:])  # the resumed run
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(model2.state_dict()[k], v)
    assert sched2.get_last_lr() == sched.get_last_lr()


def test_state_dict_uses_indices_and_host_arrays(device):
    a, b = nn.Parameter(mg.ones(2, device=device)), nn.Parameter(mg.ones(3, device=device))
    opt = optim.SGD([a, b], lr=0.1, momentum=0.9)
    b.grad = b.data * 2
    opt.step()
    sd = opt.state_dict()
    assert sd["param_groups"][0]["params"] == [0, 1]
    assert list(sd["state"]) == [1]
    buf = sd["state"][1]["momentum_buffer"]
    assert type(buf) is np.ndarray and buf.tolist() == [2.0, 2.0, 2.0]


def test_load_state_dict_errors():
    a, b = nn.Parameter(mg.ones(2)), nn.Parameter(mg.ones(3))
    opt = optim.SGD([a, b], lr=0.1, momentum=0.9)
    a.grad = np.ones(2, np.float32)
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="SGD.load_state_dict: 1 param group"):
        optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="group 0 has 2 parameters in the state dict, 1 in"):
        optim.SGD([a], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match=r"state 'momentum_buffer' of parameter 0 has shape"):
        optim.SGD([b, a], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="expected a dict with 'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})


def test_another_optimizers_state_dict_is_refused_naming_both():
    p = nn.Parameter(mg.ones(3))
    adam = optim.Adam([p])
    p.grad = np.ones(3, np.float32)
    adam.step()
    sgd = optim.SGD([p], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"SGD.load_state_dict: the state dict is Adam's, not SG"):
        sgd.load_state_dict(adam.state_dict())
    assert sgd.param_groups[0]["lr"] == 0.1  # nothing changed
    with pytest.raises(ValueError, match="the state dict is SGD's, not Adam's"):
        adam.load_state_dict(sgd.state_dict())
    with pytest.raises(ValueError, match="the state dict is Adam's, not AdamW's"):
        optim.AdamW([p]).load_state_dict(adam.state_dict())
    # a dict saved before the "optimizer" entry existed: told apart by its hyper-parameters
    old = {k: v for k, v in adam.state_dict().items() if k != "optimizer"}
    with pytest.raises(ValueError, match=r"another optimizer's \(it has hyper-parameter\(s\) "):
        sgd.load_state_dict(old)
    optim.Adam([p]).load_state_dict(old)  # its own class still loads it
