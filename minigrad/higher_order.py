"""Gradients as values: ``grad`` (PyTorch's ``torch.autograd.grad``) and ``hvp``.

``Tensor.backward`` accumulates ndarrays into the leaves' ``.grad`` (the engine's fast
walk, :func:`minigrad.engine.run_backward`, untouched here). :func:`grad` instead *returns*
the gradients of some outputs with respect to some inputs, leaves or not, and writes no
``.grad``. With ``create_graph=True`` it runs each op's **differentiable backward**,
``Function.backward_graph(*gys)``: the same maths as the op's array ``backward``, written
with minigrad ops on Tensors, so the returned gradients are themselves part of a graph and
can be differentiated again (to any order). An op without a ``backward_graph`` raises,
naming the op: never a silently wrong second derivative.

The walk is :func:`walk`: the engine's reverse topological walk from several roots,
restricted to the ops that lead to the requested inputs (others are not run).
:mod:`minigrad.remat` uses it too, with ``accumulate=True`` (the other leaves' ``.grad``
are accumulated as ``backward`` would).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from minigrad import backend, devices
from minigrad.engine import (
    _accumulate_grad,
    _apply_hooks,
    check_input_grad,
    enable_grad,
    topological_order,
)
from minigrad.tensor import Tensor, initial_grad

__all__ = ["grad", "hvp", "walk"]


def _as_tuple(name: str, what: str, ts: Any) -> tuple[Any, ...]:
    items = (ts,) if isinstance(ts, Tensor) or ts is None else tuple(ts)
    if not items:
        raise ValueError(f"{name}: {what} is empty")
    return items


def _key(t: Any) -> tuple[Any, int]:
    """Identity of a tensor in the graph: a leaf by itself, an op's output by (op, index)
    (an op that does not keep its inputs holds a stand-in, not the tensor)."""
    return (id(t), -1) if t._ctx is None else (id(t._ctx), t._out_idx)


def _add(a: Any, b: Any) -> Any:
    return a if b is None else b if a is None else a + b


def walk(
    roots: Sequence[Tensor],
    grads: Sequence[Any],
    targets: Sequence[Tensor],
    retain_graph: bool,
    create_graph: bool,
    accumulate: bool = False,
) -> list[Any]:
    """Backpropagate ``grads`` (arrays, or Tensors when ``create_graph``) from ``roots``
    and return the gradient reaching each target (None when none does).

    Only the ops between the roots and the targets run (all of them with ``accumulate``,
    which also accumulates into ``.grad`` of every other leaf that requires grad, and
    honours ``retain_grad``, as ``backward`` does). With ``create_graph`` each op's
    ``backward_graph`` runs under grad mode and the gradients are Tensors.
    """
    want = {_key(t): k for k, t in enumerate(targets)}
    found: list[Any] = [None] * len(targets)
    order = topological_order(*[r._ctx for r in roots if r._ctx is not None])
    needed: set[int] = set()
    for fn in order:  # forward order: an op is needed when an input is a target or needed
        if accumulate or any(
            _key(t) in want or (t._ctx is not None and id(t._ctx) in needed) for t in fn.inputs
        ):
            needed.add(id(fn))
    pending: dict[int, list[Any]] = {}
    leaves: dict[int, tuple[Any, Any]] = {}  # non-target leaves (accumulate only)
    for r, g in zip(roots, grads):
        if r._ctx is None:
            if _key(r) in want:
                k = want[_key(r)]
                found[k] = _add(found[k], g)
            elif accumulate:
                leaves[id(r)] = (r, _add(leaves.get(id(r), (r, None))[1], g))
            continue
        slot = pending.setdefault(id(r._ctx), [None] * len(r._ctx.output_meta))
        slot[r._out_idx] = _add(slot[r._out_idx], g)
    for fn in reversed(order):
        gys = pending.pop(id(fn), None)
        if gys is None:
            continue
        for i, ref in enumerate(fn.outputs):
            out = ref()
            if out is not None and gys[i] is not None and (out._hooks or out._retain_grad):
                gys[i] = _hooked(out, gys[i], create_graph)
                if accumulate and out._retain_grad:
                    _accumulate_grad(out, gys[i].data if create_graph else gys[i])
            if (id(fn), i) in want:
                found[want[(id(fn), i)]] = gys[i]
        if id(fn) not in needed:
            continue
        if getattr(fn, "_released", False):
            raise RuntimeError(
                f"grad: the graph through {fn.name} was already freed; call backward/grad "
                "with retain_graph=True the first time to go through it twice"
            )
        gxs = _run_op(fn, gys, create_graph)
        for t, g, need in zip(fn.inputs, gxs, fn.needs_input_grad):
            if not need or g is None:
                continue
            check_input_grad(fn, t, g, "backward_graph" if create_graph else "backward")
            if t._ctx is None:
                if _key(t) in want:
                    k = want[_key(t)]
                    found[k] = _add(found[k], g)
                elif accumulate:
                    leaves[id(t)] = (t, _add(leaves.get(id(t), (t, None))[1], g))
                continue
            slot = pending.setdefault(id(t._ctx), [None] * len(t._ctx.output_meta))
            slot[t._out_idx] = _add(slot[t._out_idx], g)
        if not retain_graph:
            fn.release()
    for t, g in leaves.values():
        with devices.device_context(t.device):
            _accumulate_grad(t, _apply_hooks(t, g))
    for k, t in enumerate(targets):  # a target's own hooks see its whole gradient
        if found[k] is not None and t._hooks and t._ctx is None:
            found[k] = _hooked(t, found[k], create_graph)
    return found


def _hooked(t: Tensor, g: Any, create_graph: bool) -> Any:
    """``g`` after ``t``'s hooks; under ``create_graph`` a hook may only observe."""
    if not create_graph:
        return _apply_hooks(t, g)
    for hook in list(t._hooks.values()):
        if hook(g.data) is not None:
            raise RuntimeError(
                f"grad(create_graph=True): hook {getattr(hook, '__name__', hook)!r} returned "
                "a new gradient; a hook that replaces the gradient would cut the graph of the "
                "gradient, so under create_graph hooks may only observe (return None)"
            )
    return g


def _run_op(fn: Any, gys: list[Any], create_graph: bool) -> tuple[Any, ...]:
    """One op's backward: ``call_backward`` on arrays, or ``backward_graph`` on Tensors."""
    g0 = next(g for g in gys if g is not None)
    data = g0.data if create_graph else g0
    xp = backend.get_array_module(data)
    with devices.device_context(devices.device_of(data)):
        for i, (shape, dtype) in enumerate(fn.output_meta):
            if gys[i] is None:
                zeros = xp.zeros(shape, dtype=dtype)
                gys[i] = Tensor(zeros) if create_graph else zeros
        if not create_graph:
            gxs = fn.call_backward(*gys)
        else:
            method = getattr(fn, "backward_graph", None)
            if method is None:
                raise RuntimeError(
                    f"grad(create_graph=True): {fn.name} has no differentiable backward "
                    "(backward_graph), so its gradient cannot be differentiated again"
                )
            with enable_grad():
                gxs = method(*gys)
    return gxs if isinstance(gxs, tuple) else (gxs,)


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Tensor | None, ...]:
    """The gradients of ``outputs`` with respect to ``inputs``, as ``torch.autograd.grad``.

    ``sum_k <grad_outputs[k], d outputs[k] / d inputs[i]>`` for each input ``i`` (a
    vector-Jacobian product), returned as a tuple of Tensors; no ``.grad`` is written.

    Args:
        outputs: a Tensor or a sequence of Tensors that require grad.
        inputs: Tensors (leaves or not) that require grad.
        grad_outputs: one gradient per output (Tensor, array or None; None means 1 and
            is allowed only for a one-element output). Default: all None.
        retain_graph: keep the graph's saved arrays for another backward; defaults to
            ``create_graph``.
        create_graph: build the gradients from differentiable ops (each op's
            ``backward_graph``), so they can be differentiated again. The returned
            Tensors then require grad when they depend on something that does.
        allow_unused: return None for an input the outputs do not depend on (otherwise
            that raises).

    Returns:
        A tuple with one gradient per input (Tensor, or None where unused and allowed).

    Raises:
        RuntimeError: an output or input that does not require grad; an unused input
            without ``allow_unused``; under ``create_graph``, an op without
            ``backward_graph`` (named); a graph already freed.
        ValueError: a grad_output of the wrong shape or device, or omitted for an output
            with more than one element.
    """
    outs = _as_tuple("grad", "outputs", outputs)
    ins = _as_tuple("grad", "inputs", inputs)
    for k, o in enumerate(outs):
        if not isinstance(o, Tensor):
            raise TypeError(f"grad: outputs[{k}] is {type(o).__name__}, not a Tensor")
        if not o.requires_grad:
            raise RuntimeError(f"grad: outputs[{k}] does not require grad and has no grad_fn")
    for k, t in enumerate(ins):
        if not isinstance(t, Tensor):
            raise TypeError(f"grad: inputs[{k}] is {type(t).__name__}, not a Tensor")
        if not t.requires_grad:
            raise RuntimeError(f"grad: inputs[{k}] does not require grad")
    if grad_outputs is None:
        gos: tuple[Any, ...] = (None,) * len(outs)
    elif isinstance(grad_outputs, (list, tuple)):
        gos = tuple(grad_outputs)
    else:  # one Tensor or array, for the one output
        gos = (grad_outputs,)
    if len(gos) != len(outs):
        raise ValueError(f"grad: {len(outs)} output(s) but {len(gos)} grad_outputs")
    gs = [
        initial_grad(o, g, f"grad: grad_outputs[{k}]", as_tensor=create_graph)
        for k, (o, g) in enumerate(zip(outs, gos))
    ]
    retain = create_graph if retain_graph is None else retain_graph
    found = walk(outs, gs, ins, retain, create_graph)
    result: list[Tensor | None] = []
    for k, g in enumerate(found):
        if g is None:
            if not allow_unused:
                raise RuntimeError(
                    f"grad: inputs[{k}] (shape {ins[k].shape}) is not used by the outputs; "
                    "pass allow_unused=True to get None for it"
                )
            result.append(None)
        else:
            result.append(g if create_graph else Tensor(g))
    return tuple(result)


def hvp(
    f: Callable[..., Tensor], inputs: Tensor | Sequence[Tensor], v: Tensor | Sequence[Tensor]
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Hessian-vector product of a scalar function, as ``torch.autograd.functional.hvp``.

    ``H v`` with ``H = d^2 f / d inputs^2``, by double backward: ``g = grad(f, inputs,
    create_graph=True)``, then ``grad(<g, v>, inputs)`` (Pearlmutter's trick; the Hessian
    is never formed). The inputs must require grad; ``v`` is one Tensor (or array) per
    input, of its shape.

    Returns:
        ``(f(*inputs) detached, (Hv_1, ..., Hv_k))``; an input ``f`` is linear in gets zeros.
    """
    ins = _as_tuple("hvp", "inputs", inputs)
    vs = _as_tuple("hvp", "v", v)
    if len(vs) != len(ins):
        raise ValueError(f"hvp: {len(ins)} input(s) but {len(vs)} vector(s) v")
    for k, (t, u) in enumerate(zip(ins, vs)):
        if tuple(u.shape) != t.shape:
            raise ValueError(f"hvp: v[{k}] has shape {tuple(u.shape)}, input {t.shape}")
    out = f(*ins)
    if not isinstance(out, Tensor) or out.data.size != 1:
        raise ValueError("hvp: f must return a one-element Tensor (a scalar loss)")
    gs = grad(out, ins, create_graph=True, allow_unused=True)
    dot = None
    for g, u in zip(gs, vs):
        if g is None or not g.requires_grad:
            continue
        term = (g * (u if isinstance(u, Tensor) else Tensor(u))).sum()
        dot = term if dot is None else dot + term
    if dot is None:  # f is linear in every input
        return out.detach(), tuple(Tensor(t.data * 0) for t in ins)
    hv = grad(dot, ins, allow_unused=True)
    zeros = tuple(Tensor(t.data * 0) for t in ins)
    return out.detach(), tuple(z if h is None else h for h, z in zip(hv, zeros))
