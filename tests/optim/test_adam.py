"""Adam and AdamW against PyTorch's update rule written out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim

GRADS = [np.array([0.5, -1.0, 2.0]), np.array([-0.25, 0.75, 1.0]), np.array([1.5, 0.0, -0.5])]
P0 = np.array([1.0, -2.0, 3.0])


def adam_reference(lr, betas, eps, weight_decay, decoupled):
    b1, b2 = betas
    p, m, v, out = list(P0), [0.0] * 3, [0.0] * 3, []
    for t, g in enumerate(GRADS, start=1):
        for i in range(3):
            gi = g[i]
            if decoupled:
                p[i] *= 1 - lr * weight_decay
            else:
                gi += weight_decay * p[i]
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            denom = math.sqrt(v[i]) / math.sqrt(1 - b2**t) + eps
            p[i] -= lr / (1 - b1**t) * m[i] / denom
        out.append(np.array(p))
    return out


@pytest.mark.parametrize("cls", [optim.Adam, optim.AdamW])
@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adam_matches_hand_computation(cls, wd, device):
    p = nn.Parameter(mg.tensor(P0, dtype="float64", device=device))
    opt = cls([p], lr=0.1, betas=(0.8, 0.95), eps=1e-6, weight_decay=wd)
    ref = adam_reference(0.1, (0.8, 0.95), 1e-6, wd, decoupled=cls is optim.AdamW)
    for g, r in zip(GRADS, ref):
        p.grad = mg.tensor(g, dtype="float64", device=device).data
        opt.step()
        np.testing.assert_allclose(p.numpy(), r, rtol=1e-12, atol=1e-14)
    assert opt.state_dict()["state"][0]["step"] == 3


def test_adam_defaults_and_float32(device):
    p = nn.Parameter(mg.tensor(P0, dtype="float32", device=device))
    opt = optim.AdamW([p])
    assert opt.defaults == dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)
    assert optim.Adam([p]).defaults["weight_decay"] == 0.0
    p.grad = mg.tensor(GRADS[0], dtype="float32", device=device).data
    opt.step()
    assert p.dtype == np.float32
    st = opt.state[id(p)]
    assert st["exp_avg"].dtype == np.float32 and st["exp_avg_sq"].dtype == np.float32
    # the first Adam step moves every coordinate by about lr, against the gradient's sign
    moved = (P0 * (1 - 1e-3 * 1e-2)) - p.numpy()
    np.testing.assert_allclose(moved, 1e-3 * np.sign(GRADS[0]), rtol=1e-3)


def test_adam_argument_errors():
    p = nn.Parameter(mg.ones(2))
    with pytest.raises(ValueError, match=r"Adam: betas must be in \[0, 1\), got \(0.9, 1.0\)"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="AdamW: eps must be >= 0"):
        optim.AdamW([p], eps=-1.0)
    with pytest.raises(ValueError, match="Adam: lr must be >= 0"):
        optim.Adam([p], lr=-0.1)
