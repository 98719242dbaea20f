"""The curvature study: power iteration agrees with the explicit Hessian of a small block,
the model is left as it was, and the table, JSON and plot are written."""

from __future__ import annotations

import numpy as np

import minigrad as mg
import minigrad.functional as F
from minigrad import nn
from minigrad.study.curvature import block_curvature, format_curvature, plot_curvature


class Tiny(nn.Module):
    """stem -> one two-branch block (conv+BN | pool+conv) -> head with an aux head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, padding=1)
        self.block = nn.Module()
        self.block.a = nn.Sequential(nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2))
        self.block.b = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(2, 1, 1))
        self.fc = nn.Linear(3, 3)
        self.aux = nn.Linear(2, 3)

    def forward(self, x):
        h = F.tanh(self.stem(x))
        y = F.cat([F.tanh(self.block.a(h)), F.tanh(self.block.b(h))], 1)
        pooled = F.flatten(F.adaptive_avg_pool2d(y, 1), 1)
        aux = self.aux(F.flatten(F.adaptive_avg_pool2d(h, 1), 1))
        return F.dropout(self.fc(pooled), 0.2), aux


def terms(out, target):
    main = F.cross_entropy(out[0], target)
    aux = 0.3 * F.cross_entropy(out[1], target)
    return {"main": main, "aux": aux, "total": main + aux}


def selector(module):
    return ("a", "b") if module is selector.block else None


def explicit_top(model, x, t, params, term):
    """max |eigenvalue| of the Hessian in ``params``, from HVPs with every basis vector."""
    n = sum(p.data.size for p in params)
    H = np.zeros((n, n))
    for i in range(n):
        e = np.zeros(n)
        e[i] = 1
        vs, k = [], 0
        for p in params:
            vs.append(mg.tensor(e[k : k + p.data.size].reshape(p.shape)))
            k += p.data.size

        def f(*ps):
            mg.random.set_dropout_offset(0)
            return terms(model(x), t)[term]

        _, hv = mg.hvp(f, params, vs)
        H[:, i] = np.concatenate([h.numpy().ravel() for h in hv])
    eig = np.linalg.eigvalsh((H + H.T) / 2)
    return eig[np.argmax(np.abs(eig))]


def test_power_iteration_matches_the_explicit_hessian(tmp_path):
    mg.manual_seed(0)
    model = Tiny().to(dtype="float64")
    selector.block = model.block
    x = mg.tensor(np.random.default_rng(0).standard_normal((4, 1, 5, 5)))
    t = np.array([0, 1, 2, 0])
    mg.random.set_dropout_offset(0)
    buffers = [b.numpy() for b in model.buffers()]
    report = block_curvature(
        model, x, t, terms, blocks=selector, iters=200, tol=1e-10, branch_terms=("total", "main")
    )
    assert [(g.block, g.branch) for g in report] == [("block", ""), ("block", "a"), ("block", "b")]
    for b, saved in zip(model.buffers(), buffers):  # BN statistics as they were
        np.testing.assert_array_equal(b.numpy(), saved)
    assert all(p.grad is None for p in model.parameters())
    for g, params in zip(report, [model.block, model.block.a, model.block.b]):
        ps = list(params.parameters())
        for term in ("total", "main"):
            want = explicit_top(model, x, t, ps, term)
            np.testing.assert_allclose(g.top[term], want, rtol=1e-4)
    table = format_curvature(report)
    assert "top eig total" in table and "(block)" in table
    assert plot_curvature(report, tmp_path / "c.png").stat().st_size > 0


def test_branches_get_the_first_term_by_default():
    mg.manual_seed(0)
    model = Tiny().to(dtype="float64")
    selector.block = model.block
    x = mg.tensor(np.random.default_rng(0).standard_normal((4, 1, 5, 5)))
    report = block_curvature(model, x, np.array([0, 1, 2, 0]), terms, blocks=selector, iters=3)
    assert set(report[0].top) == {"total", "main"} and set(report[1].top) == {"total"}
    assert "-" in format_curvature(report).splitlines()[-1]
