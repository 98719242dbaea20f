"""Curvature per block and branch: the top Hessian eigenvalue of the loss, by power iteration.

    from minigrad.study.curvature import block_curvature
    report = block_curvature(model, x, y, loss_terms, blocks=selector)   # one batch
    print(format_curvature(report))

For each block the selector names (and each of its branches), the Hessian of a loss term
with respect to that group's weights only, ``H_BB = d^2 L / d w_B^2``, is probed by power
iteration on Hessian-vector products (``minigrad.grad(..., create_graph=True)`` and a second
``grad``: the Hessian is never formed). Its largest eigenvalue in magnitude says how sharp
the loss is along the sharpest direction in that group's weights: the step size a plain
gradient step can take there is about ``2 / lambda``. Comparing the term ``"total"`` (with
the auxiliary losses) with ``"main"`` shows whether the aux heads sharpen or flatten the
loss around each block.

All groups share each iteration's forward pass and first (differentiable) backward pass;
each group then costs one more backward pass per iteration. The model runs in training
mode (batch statistics, aux heads) with the same dropout masks at every iteration, and is
left as it was (mode, buffers, ``.grad``, the random streams).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from minigrad import backend, random
from minigrad.higher_order import grad
from minigrad.tensor import Tensor

__all__ = ["GroupCurvature", "block_curvature", "format_curvature", "plot_curvature"]


@dataclass
class GroupCurvature:
    """The top Hessian eigenvalue of each loss term in one group's weights."""

    block: str
    branch: str  # "" for the whole block
    params: int  # number of weights in the group
    top: dict[str, float] = field(default_factory=dict)  # term -> eigenvalue
    iterations: dict[str, int] = field(default_factory=dict)  # term -> iterations run


def _groups(model: Any, blocks: Callable[[Any], Sequence[str] | None]) -> list[tuple]:
    """(block, branch, params) for every block the selector names and each branch."""
    out = []
    for name, child in model.named_children():
        branches = blocks(child)
        if branches is None:
            continue
        out.append((name, "", [p for p in child.parameters() if p.requires_grad]))
        for b in branches:
            ps = [p for p in getattr(child, b).parameters() if p.requires_grad]
            if ps:
                out.append((name, b, ps))
    return out


def _dot(a: Sequence[Any], b: Sequence[Any]) -> float:
    xp = backend.get_array_module(a[0])
    return float(sum(float(xp.vdot(u.ravel(), w.ravel())) for u, w in zip(a, b)))


def block_curvature(
    model: Any,
    x: Any,
    target: Any,
    loss_terms: Callable[[Any, Any], dict[str, Tensor]],
    *,
    blocks: Callable[[Any], Sequence[str] | None],
    terms: Sequence[str] = ("total", "main"),
    iters: int = 6,
    tol: float = 2e-2,
    seed: int = 0,
    branch_terms: Sequence[str] | None = None,
) -> list[GroupCurvature]:
    """Top Hessian eigenvalue of each loss term per block and per branch (power iteration).

    Args:
        model: a Module whose top-level children include the blocks.
        x, target: one batch (Tensors, on the model's device).
        loss_terms: ``(outputs, target) -> {term: scalar Tensor}`` (the training loss).
        blocks: the block selector (``blocks(child)``: its branch names, or None).
        terms: the loss terms to probe (e.g. ``"total"`` with aux losses, ``"main"``).
        iters: power iterations at most per term.
        tol: stop a group once its estimate moves by less than ``tol`` (relative).
        seed: seed of the start vectors.
        branch_terms: the terms probed per branch (default: the first term only; each
            group costs one double-backward pass per iteration, and the branches are most
            of the groups). A block's row has every term.

    Returns:
        One :class:`GroupCurvature` per block and branch, in model order.
    """
    all_groups = _groups(model, blocks)
    results = [GroupCurvature(b, br, sum(p.data.size for p in ps)) for b, br, ps in all_groups]
    branch_terms = tuple(terms[:1]) if branch_terms is None else tuple(branch_terms)
    was_training = model.training
    buffers = [(b, b.data.copy()) for b in model.buffers()]
    grads = [(p, p.grad) for p in model.parameters()]
    rng_state = random.get_rng_state()
    offset = random.dropout_offset()
    rng = np.random.default_rng(seed)
    model.train()
    try:
        for term in terms:
            keep = [k for k, g in enumerate(all_groups) if not g[1] or term in branch_terms]
            groups = [all_groups[k] for k in keep]
            vs = []
            for _, _, ps in groups:
                v = [rng.standard_normal(p.shape).astype(p.data.dtype) for p in ps]
                n = math.sqrt(sum(float((u * u).sum()) for u in v))
                xp = backend.get_array_module(ps[0].data)
                vs.append([xp.asarray(u / n) for u in v])
            est: list[float | None] = [None] * len(groups)
            done = [False] * len(groups)
            for it in range(iters):
                random.set_dropout_offset(offset)  # the same masks every iteration
                loss = loss_terms(model(x), target)[term]
                wanted = [p for k, (_, _, ps) in enumerate(groups) if not done[k] for p in ps]
                unique = list({id(p): p for p in wanted}.values())
                gs = dict(zip(map(id, unique), grad(loss, unique, create_graph=True,
                                                    allow_unused=True)))  # fmt: skip
                for k, (_, _, ps) in enumerate(groups):
                    if done[k]:
                        continue
                    dot = None
                    for p, u in zip(ps, vs[k]):
                        g = gs[id(p)]
                        if g is not None and g.requires_grad:
                            term_k = (g * Tensor(u)).sum()
                            dot = term_k if dot is None else dot + term_k
                    if dot is None:  # the loss is linear in these weights
                        est[k], done[k] = 0.0, True
                        continue
                    hv = grad(dot, ps, retain_graph=True, allow_unused=True)
                    hv = [h.data if h is not None else u * 0 for h, u in zip(hv, vs[k])]
                    lam = _dot(vs[k], hv)  # Rayleigh quotient, v of norm 1
                    norm = math.sqrt(_dot(hv, hv))
                    if norm == 0:
                        est[k], done[k] = 0.0, True
                        continue
                    vs[k] = [h / norm for h in hv]
                    prev, est[k] = est[k], lam
                    results[keep[k]].iterations[term] = it + 1
                    if prev is not None and abs(lam - prev) <= tol * abs(lam):
                        done[k] = True
                del loss, gs
                if all(done):
                    break
            for k in range(len(groups)):
                results[keep[k]].top[term] = float(est[k] or 0.0)
    finally:
        model.train(was_training)
        for b, saved in buffers:
            b.data[...] = saved
        for p, g in grads:
            p.grad = g
        random.set_rng_state(rng_state)
    return results


def format_curvature(report: Sequence[GroupCurvature]) -> str:
    """A table: one row per block and branch, one column per term, and their ratio."""
    terms = list(dict.fromkeys(t for g in report for t in g.top))
    head = f"{'block':<14} {'branch':<9} {'weights':>8} " + " ".join(
        f"{'top eig ' + t:>14}" for t in terms
    )
    if len(terms) == 2:
        head += f" {terms[0] + '/' + terms[1]:>11}"
    lines = [head, "-" * len(head)]
    for g in report:
        row = f"{g.block if not g.branch else '':<14} {g.branch or '(block)':<9} {g.params:>8} "
        row += " ".join(f"{g.top[t]:>14.4g}" if t in g.top else f"{'-':>14}" for t in terms)
        if len(terms) == 2 and all(t in g.top for t in terms):
            a, b = g.top[terms[0]], g.top[terms[1]]
            row += f" {a / b:>11.3f}" if b else f" {'-':>11}"
        lines.append(row)
    return "\n".join(lines)


def plot_curvature(
    report: Sequence[GroupCurvature], path: str | Path, labels: dict[str, str] | None = None
) -> Path:
    """Bars of the top eigenvalue per block (left) and per branch (right), one bar per
    term; log scale. Needs matplotlib."""
    import matplotlib  # noqa: PLC0415 - optional dependency

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    labels = labels or {}
    terms = list(dict.fromkeys(t for g in report for t in g.top))
    whole = [g for g in report if not g.branch]
    parts = [g for g in report if g.branch]
    branches = list(dict.fromkeys(g.branch for g in parts))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    width = 0.8 / len(terms)
    xs = np.arange(len(whole))
    for i, t in enumerate(terms):
        axes[0].bar(xs + i * width, [abs(g.top[t]) for g in whole], width, label=t)
    axes[0].set_xticks(xs + width * (len(terms) - 1) / 2)
    axes[0].set_xticklabels([g.block.replace("inception", "") for g in whole])
    axes[0].set_yscale("log")
    axes[0].set_title("top Hessian eigenvalue per block's weights")
    axes[0].legend()
    t0 = terms[0]
    width_b = 0.8 / max(len(branches), 1)
    for j, b in enumerate(branches):
        top = {(g.block, g.branch): g.top.get(t0, 0.0) for g in parts}
        vals = [abs(top.get((w.block, b), 0.0)) for w in whole]
        axes[1].bar(xs + j * width_b, vals, width_b, label=labels.get(b, b))
    axes[1].set_xticks(xs + width_b * (len(branches) - 1) / 2)
    axes[1].set_xticklabels([g.block.replace("inception", "") for g in whole])
    axes[1].set_yscale("log")
    axes[1].set_title(f"per branch (loss term '{t0}')")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
