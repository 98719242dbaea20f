"""``gradient_flow``: where the gradient goes in one backward pass, layer by layer and per loss.

One forward pass in training mode, then one backward pass per loss term (the application's
loss-terms callable names them, e.g. ``main``, ``aux1``, ``aux2``) through the same graph.
Which child modules are "blocks" with parallel "branches" is the caller's choice: a block
selector ``blocks(module) -> branch names or None`` (the application passes its own, e.g.
"every Inception block, with branch1..branch4"). Hooks record:

* at every top-level child module and every branch of every block: the gradient w.r.t.
  its output and the gradient w.r.t. its parameters, per loss term; the total is their sum
  (backward is linear in the loss), and one more backward pass of the total loss checks
  exactly that (``additivity_error``);
* at every block's input: the gradient that arrives there from each branch separately.
  Each branch's input is routed through a ``_Tap`` identity op, whose backward sees
  exactly what that branch sends back; the engine then adds them (plus whatever else reads
  the same tensor, such as an auxiliary head) into dL/d(block input).

Shares are projections: ``share_k = <g_k, g> / ||g||^2`` with ``g = sum_k g_k``, so they add
up to exactly 1 (a part pointing against the total has a negative share).

Cost: one forward and (terms + 1) backward passes; until the report is built, the output
gradient of every watched layer is held once per pass, so study a batch of modest size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minigrad import backend
from minigrad.autograd import Function
from minigrad.tensor import Tensor, enable_grad
from minigrad.tensor import tensor as _tensor

BlockSelector = Callable[[Any], "Sequence[str] | None"]
LossTerms = Callable[[Any, Any], "dict[str, Tensor]"]


def no_blocks(module: Any) -> None:
    """The default block selector: no module is a block (every child is a plain layer)."""
    return None


@dataclass
class LayerFlow:
    """Gradient norms of one layer; dicts map a loss term (and ``"total"``) to a value."""

    name: str  # dotted module name, e.g. "inception3a" or "inception3a.branch2"
    kind: str  # "layer", "block" (a module with branches) or "branch"
    out_shape: tuple[int, ...]
    grad_out: dict[str, float]  # ||dL_k / d output||
    grad_weight: dict[str, float]  # ||dL_k / d parameters|| over the layer's parameters
    out_share: dict[str, float]  # <g_k, g> / ||g||^2 of the output gradients (sum to 1)
    weight_share: dict[str, float]  # the same for the parameter gradients
    num_params: int
    grads: dict[str, Any] = field(default_factory=dict, repr=False)  # keep_grads=True only


@dataclass
class BlockShares:
    """How the branches of one block make up dL/d(block input).

    ``contrib`` and ``share`` have a key per branch (``branches``, e.g. ``branch1..branch4``)
    and ``other`` (other readers of the block's input, e.g. an aux head). Total loss only.
    When no gradient reaches the block input (``grad_in == 0``) every share is 0.
    """

    name: str
    branches: tuple[str, ...]
    grad_in: float  # ||dL / d block input||
    contrib: dict[str, float]  # norm of each branch's contribution
    share: dict[str, float]  # <c_b, g> / ||g||^2, sums to 1
    grads: dict[str, Any] = field(default_factory=dict, repr=False)  # keep_grads=True only


def branch_names(blocks: Sequence[BlockShares]) -> list[str]:
    """The branch names of all blocks, each once, in order of first appearance."""
    return list(dict.fromkeys(b for block in blocks for b in block.branches))


class _Tap(Function):
    """y = x; gx = gy, which is also handed to ``record`` (one branch's share of dL/dx)."""

    def __init__(self, record: Callable[[Any], None]) -> None:
        self.record = record

    def forward(self, x: Any) -> Any:
        return x

    def backward(self, gy: Any) -> Any:
        self.record(gy)
        return gy


def _sq(g: Any) -> float:
    xp = backend.get_array_module(g)
    g64 = g.astype(xp.float64, copy=False)
    return float(xp.vdot(g64.ravel(), g64.ravel()))


def _dot(a: Any, b: Any) -> float:
    xp = backend.get_array_module(a)
    return float(xp.vdot(a.astype(xp.float64).ravel(), b.astype(xp.float64).ravel()))


def _sum(parts: list[Any]) -> Any:
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return total


def _norms_and_shares(per: dict[str, list[Any]], names: list[str]) -> tuple[dict, dict, Any]:
    """Per-term norms and projection shares for a group of arrays (one list per term).

    ``per[k]`` lists arrays (several parameters, or one output gradient); a missing or
    empty entry means the term sent no gradient here. Returns (norms, shares, total arrays).
    """
    present = [k for k in names if per.get(k)]
    n_items = max((len(per[k]) for k in present), default=0)
    totals = [_sum([per[k][i] for k in present]) for i in range(n_items)]
    tot_sq = sum(_sq(t) for t in totals)
    norms = {k: float(np.sqrt(sum(_sq(a) for a in per.get(k) or []))) for k in names}
    norms["total"] = float(np.sqrt(tot_sq))
    shares = {}
    for k in names:
        dot = sum(_dot(a, t) for a, t in zip(per.get(k) or [], totals))
        shares[k] = dot / tot_sq if tot_sq > 0 else 0.0
    return norms, shares, totals


class _Recorder:
    """Hooks installed for one gradient_flow call; ``term`` is the loss term being run."""

    def __init__(self) -> None:
        self.term = ""
        self.handles: list[Any] = []
        self.order: list[str] = []  # layers in call order
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.out_grads: dict[str, dict[str, list[Any]]] = {}  # layer -> term -> [array]
        self.in_grads: dict[str, dict[str, list[Any]]] = {}  # block -> term -> [array]
        self.contribs: dict[str, dict[str, dict[str, list[Any]]]] = {}  # block -> branch -> ..
        self.branches: dict[str, tuple[str, ...]] = {}  # block -> its branch names

    def _add(self, table: dict, key: str, g: Any) -> None:
        slot = table.setdefault(key, {}).setdefault(self.term, [])
        if slot:  # the module ran twice (shared weights): add the gradients
            slot[0] = slot[0] + g
        else:
            slot.append(g)

    def watch_output(self, name: str, module: Any) -> None:
        def hook(mod: Any, args: tuple[Any, ...], out: Any) -> None:
            t = out if isinstance(out, Tensor) else None
            if name not in self.shapes:
                self.order.append(name)
                self.shapes[name] = tuple(t.shape) if t is not None else ()
            if t is not None and t.requires_grad:
                self.handles.append(t.register_hook(lambda g: self._add(self.out_grads, name, g)))

        self.handles.append(module.register_forward_hook(hook))

    def watch_block_input(self, name: str, block: Any, branches: Sequence[str]) -> None:
        def pre(mod: Any, args: tuple[Any, ...]) -> None:
            x = args[0]
            if isinstance(x, Tensor) and x.requires_grad:
                self.handles.append(x.register_hook(lambda g: self._add(self.in_grads, name, g)))

        self.handles.append(block.register_forward_pre_hook(pre))
        self.branches[name] = tuple(branches)
        for b in branches:
            table = self.contribs.setdefault(name, {})

            def tap(mod: Any, args: tuple[Any, ...], b: str = b, table: dict = table) -> Any:
                x = args[0]
                if not (isinstance(x, Tensor) and x.requires_grad):
                    return None
                return (_Tap(lambda g: self._add(table, b, g)).apply(x), *args[1:])

            self.handles.append(getattr(block, b).register_forward_pre_hook(tap))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _snapshot(model: Any) -> tuple[list, list, list]:
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.grad) for p in model.parameters()]
    bufs = [(b, b.data, b.data.copy()) for b in model.buffers()]
    return modes, grads, bufs


def _restore(model: Any, snap: tuple[list, list, list]) -> None:
    modes, grads, bufs = snap
    for m, mode in modes:
        m.__dict__["training"] = mode
    for p, g in grads:
        p.grad = g
    for b, arr, saved in bufs:
        arr[...] = saved
        b.data = arr


@dataclass
class FlowReport:
    """Everything :func:`gradient_flow` measured for one batch.

    Attributes:
        terms: the loss terms in the order they were run, e.g. ``["main", "aux1", "aux2"]``.
        losses: each term's value and ``"total"`` (their sum: the training loss).
        layers: one :class:`LayerFlow` per top-level module and per block branch, in
            forward order (a block's branches follow the block).
        blocks: one :class:`BlockShares` per block.
        additivity_error: ``max over layers of ||sum_k g_k - g|| / ||g||`` where ``g``
            comes from a separate backward pass of the total loss: the check that the
            per-term attribution adds up to the total gradient (float rounding only).
    """

    terms: list[str]
    losses: dict[str, float]
    layers: list[LayerFlow]
    blocks: list[BlockShares]
    additivity_error: float

    def layer(self, name: str) -> LayerFlow:
        """The :class:`LayerFlow` called ``name`` (KeyError naming the known layers)."""
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise KeyError(f"no layer {name!r}; layers: {', '.join(x.name for x in self.layers)}")


def watched_layers(model: Any, blocks: BlockSelector = no_blocks) -> list[tuple[str, Any, str]]:
    """``(name, module, kind)`` for every top-level child and every branch of a block.

    Raises:
        ValueError: the selector names a branch the block does not have.
    """
    out = []
    for name, child in model.named_children():
        branches = blocks(child)
        out.append((name, child, "layer" if branches is None else "block"))
        for b in branches or ():
            branch = getattr(child, "_modules", {}).get(b)
            if branch is None:
                raise ValueError(f"block selector: {name} has no child module {b!r}")
            out.append((f"{name}.{b}", branch, "branch"))
    return out


def _param_grads(params: list[Any]) -> list[Any]:
    """Each parameter's ``.grad`` (zeros where this pass sent none), aligned with ``params``."""
    xp = backend.get_array_module(params[0].data) if params else np
    return [p.grad if p.grad is not None else xp.zeros_like(p.data) for p in params]


def _rel_err(parts: list[Any], whole: list[Any]) -> float:
    if not parts or not whole:
        return 0.0
    diff = sum(_sq(a - b) for a, b in zip(parts, whole))
    ref = sum(_sq(b) for b in whole)
    return float(np.sqrt(diff / ref)) if ref > 0 else float(np.sqrt(diff))


def gradient_flow(
    model: Any,
    x: Any,
    target: Any,
    loss_terms: LossTerms,
    *,
    blocks: BlockSelector | None = None,
    keep_grads: bool = False,
) -> FlowReport:
    """Measure how the gradient of each loss term flows through ``model`` for one batch.

    Runs the model once in training mode (so auxiliary heads, if any, exist), then one
    backward pass per loss term and one for the total, all through the same graph. The
    model is left as it was: training/eval modes, parameters' ``.grad`` and buffers (BN
    running statistics) are restored, so this can run in the middle of training.

    Args:
        model: a Module; its top-level children are the "layers".
        x: the input batch (Tensor or array), e.g. (N, C, H, W).
        target: (N,) class indices.
        loss_terms: ``(outputs, target) -> {term: scalar Tensor}``, the terms as they enter
            the training loss, and optionally ``"total"`` (their sum, which is then the
            total pass; otherwise the terms are summed). Every other key is attributed.
        blocks: the block selector: ``blocks(child)`` returns the names of a top-level
            child's branch sub-modules when it is a block, else None (default: no blocks).
        keep_grads: keep the gradient arrays in ``LayerFlow.grads`` / ``BlockShares.grads``
            (for tests and custom analyses; costs memory).

    Returns:
        A :class:`FlowReport`.

    Raises:
        ValueError: ``loss_terms`` returned no terms, or a term is not a scalar.
    """
    x = x if isinstance(x, Tensor) else _tensor(x)
    snap = _snapshot(model)
    rec = _Recorder()
    blocks = blocks or no_blocks
    layers = watched_layers(model, blocks)
    try:
        for name, module, kind in layers:
            rec.watch_output(name, module)
            if kind == "block":
                rec.watch_block_input(name, module, blocks(module))
        model.train()
        with enable_grad():
            outputs = model(x)
            losses = dict(loss_terms(outputs, target))
        total = losses.pop("total", None)
        if not losses:
            raise ValueError("gradient_flow: loss_terms returned no loss terms")
        for k, v in [*losses.items(), ("total", total)]:
            if v is not None and (not isinstance(v, Tensor) or v.data.size != 1):
                raise ValueError(f"gradient_flow: loss term {k!r} is not a scalar Tensor")
        terms = list(losses)
        passes = {**losses, "total": total if total is not None else _sum(list(losses.values()))}
        params = {name: list(module.parameters()) for name, module, _ in layers}
        wgrads: dict[str, dict[str, list[Any]]] = {name: {} for name, _, _ in layers}
        for i, (term, loss) in enumerate(passes.items()):
            for p in model.parameters():
                p.grad = None
            rec.term = term
            loss.backward(retain_graph=i < len(passes) - 1)
            for name, _, _ in layers:
                wgrads[name][term] = _param_grads(params[name])
    finally:
        rec.remove()
        _restore(model, snap)
    return _build_report(terms, passes, layers, rec, wgrads, keep_grads)


def _build_report(
    terms: list[str],
    passes: dict[str, Tensor],
    layers: list[tuple[str, Any, str]],
    rec: _Recorder,
    wgrads: dict[str, dict[str, list[Any]]],
    keep_grads: bool,
) -> FlowReport:
    flows, err = [], 0.0
    for name, module, kind in layers:
        outs = rec.out_grads.get(name, {})
        o_norm, o_share, o_sum = _norms_and_shares(outs, terms)
        w_norm, w_share, w_sum = _norms_and_shares(wgrads[name], terms)
        o_norm["total"] = float(np.sqrt(sum(_sq(g) for g in outs.get("total", []))))
        w_norm["total"] = float(np.sqrt(sum(_sq(g) for g in wgrads[name]["total"])))
        err = max(err, _rel_err(o_sum, outs.get("total", [])))
        err = max(err, _rel_err(w_sum, wgrads[name]["total"]))
        grads = {"output": outs, "weights": wgrads[name]} if keep_grads else {}
        n_params = sum(int(p.data.size) for p in module.parameters())
        shape = rec.shapes.get(name, ())
        flows.append(
            LayerFlow(name, kind, shape, o_norm, w_norm, o_share, w_share, n_params, grads)
        )
    blocks = []
    for name, contribs in rec.contribs.items():
        g_in = (rec.in_grads.get(name, {}).get("total") or [None])[0]
        if g_in is None:  # the block's input needs no gradient (e.g. a frozen stem)
            continue
        names = rec.branches[name]
        parts = {b: (contribs.get(b, {}).get("total") or [g_in * 0])[0] for b in names}
        parts["other"] = g_in - _sum(list(parts.values()))  # e.g. an aux head reading it too
        tot_sq = _sq(g_in)
        share = {b: (_dot(c, g_in) / tot_sq if tot_sq > 0 else 0.0) for b, c in parts.items()}
        contrib = {b: float(np.sqrt(_sq(c))) for b, c in parts.items()}
        grads = {"input": g_in, **parts} if keep_grads else {}
        blocks.append(BlockShares(name, names, float(np.sqrt(tot_sq)), contrib, share, grads))
    losses = {k: float(v.item()) for k, v in passes.items()}
    return FlowReport(terms, losses, flows, blocks, err)
