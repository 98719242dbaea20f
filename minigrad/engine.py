"""The backward engine: grad mode, hooks, and the reverse topological walk.

``run_backward`` is what ``Tensor.backward`` calls. It orders the ops reachable from the
root iteratively (no recursion, so a 10,000-op chain is fine), hands each op the summed
gradients of its outputs, calls tensor hooks, accumulates into the leaves' ``.grad`` and
releases each op's saved arrays unless ``retain_graph=True``. ``no_grad`` / ``enable_grad``
switch graph recording off and on (per thread).
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

from minigrad import backend, devices

if TYPE_CHECKING:
    from minigrad.tensor import Tensor

__all__ = [
    "RemovableHandle",
    "enable_grad",
    "is_grad_enabled",
    "no_grad",
    "queue_callback",
    "register_post_accumulate_grad_hook",
    "run_backward",
]

_state = threading.local()  # per thread: .enabled, .saved (modes to restore on exit)


def is_grad_enabled() -> bool:
    """True unless inside ``no_grad()``."""
    return getattr(_state, "enabled", True)


def _enter_mode(enabled: bool) -> None:
    if not hasattr(_state, "saved"):
        _state.saved = []
    _state.saved.append(is_grad_enabled())
    _state.enabled = enabled


def _exit_mode() -> None:
    _state.enabled = _state.saved.pop()


class no_grad(contextlib.ContextDecorator):
    """Context manager / decorator under which ops record no graph.

    The mode to restore lives on a per-thread stack, not on the instance, so one instance
    may be nested, used by a recursive decorated function, or shared between threads.
    """

    def __enter__(self) -> None:
        _enter_mode(False)

    def __exit__(self, *exc: Any) -> None:
        _exit_mode()


class enable_grad(contextlib.ContextDecorator):
    """Context manager / decorator that turns graph recording back on."""

    def __enter__(self) -> None:
        _enter_mode(True)

    def __exit__(self, *exc: Any) -> None:
        _exit_mode()


class RemovableHandle:
    """Returned by ``register_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: dict[int, Any], key: int) -> None:
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


#: the ids of registered hooks (tensors and modules share one counter, so handles never clash)
hook_ids = iter(range(1 << 62))


# ---------------------------------------------------------------- backward
def topological_order(*root_fns: Any) -> list[Any]:
    """Ops reachable from the ``root_fns``, each after every op it consumes (iterative DFS;
    several roots, as ``mg.grad`` of several outputs has, are visited first to last)."""
    order: list[Any] = []
    visited: set[int] = set()
    stack: list[tuple[Any, bool]] = [(fn, False) for fn in reversed(root_fns)]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        stack.append((fn, True))
        for t in fn.inputs:
            if t._ctx is not None and id(t._ctx) not in visited:
                stack.append((t._ctx, False))
    return order


def _apply_hooks(t: Tensor, g: Any) -> Any:
    from minigrad.tensor import Tensor  # noqa: PLC0415 - tensor.py imports this module

    for hook in list(t._hooks.values()):
        out = hook(g)
        if out is None:
            continue
        out = out.data if isinstance(out, Tensor) else out
        if not hasattr(out, "shape") or (tuple(out.shape), out.dtype) != (g.shape, g.dtype):
            got = (
                f"shape {tuple(out.shape)} and dtype {out.dtype}"
                if hasattr(out, "shape")
                else type(out).__name__
            )
            raise RuntimeError(
                f"register_hook: hook {getattr(hook, '__name__', hook)!r} returned {got}; "
                f"it must return None or a gradient of shape {tuple(g.shape)} and dtype {g.dtype}"
            )
        g = out
    return g


def _accumulate_grad(t: Tensor, g: Any) -> None:
    # never in place: a gradient array may be shared with another tensor's gradient
    t.grad = g if t.grad is None else t.grad + g
    for hook in list(t.__dict__.get("_post_accumulate_hooks", {}).values()):
        hook(t)


def register_post_accumulate_grad_hook(t: Tensor, hook: Any) -> RemovableHandle:
    """Call ``hook(t)`` each time backward has accumulated into the leaf ``t``'s ``.grad``.

    A leaf's gradient is accumulated as soon as the last op that consumes it has run
    backward, so such a hook fires while the rest of the graph is still being walked
    (``DistributedDataParallel`` starts its all-reduces from it). PyTorch's
    ``Tensor.register_post_accumulate_grad_hook``.
    """
    if t._ctx is not None or not t.requires_grad:
        raise RuntimeError(
            "register_post_accumulate_grad_hook: only leaf tensors that require grad "
            "accumulate a .grad"
        )
    hooks = t.__dict__.setdefault("_post_accumulate_hooks", {})
    key = next(hook_ids)
    hooks[key] = hook
    return RemovableHandle(hooks, key)


def queue_callback(callback: Any) -> None:
    """Run ``callback()`` once the current backward pass has finished (every ``.grad`` set).

    Only valid from inside backward (a hook); PyTorch's ``queue_callback``.
    """
    queue = getattr(_state, "callbacks", None)
    if queue is None:
        raise RuntimeError("queue_callback: only callable while backward is running")
    queue.append(callback)


def run_backward(root: Tensor, grad: Any, retain_graph: bool = False) -> None:
    """Propagate ``grad`` from ``root`` to every leaf (the engine behind ``backward``).

    Callbacks queued during the pass (:func:`queue_callback`) run at its end.
    """
    outer = getattr(_state, "callbacks", None)
    _state.callbacks = []
    try:
        _walk(root, grad, retain_graph)
        while _state.callbacks:
            _state.callbacks.pop(0)()
    finally:
        _state.callbacks = outer


def check_input_grad(fn: Any, t: Tensor, g: Any, method: str = "backward") -> None:
    """Raise when the gradient ``g`` that ``fn.<method>`` returned for its input ``t`` has
    another shape or dtype than ``t`` (both walks, :func:`run_backward` and ``mg.grad``)."""
    if tuple(g.shape) != t.shape or g.dtype != t.dtype:
        raise RuntimeError(
            f"{fn.name}.{method} returned a gradient of shape {tuple(g.shape)} and "
            f"dtype {g.dtype} for an input of shape {t.shape} and dtype {t.dtype}"
        )


def _leaf_uses(order: list[Any]) -> dict[int, int]:
    """How many (op, input) slots of ``order`` consume each leaf that needs a gradient."""
    uses: dict[int, int] = {}
    for fn in order:
        for t, need in zip(fn.inputs, fn.needs_input_grad):
            if need and t._ctx is None:
                uses[id(t)] = uses.get(id(t), 0) + 1
    return uses


def _walk(root: Tensor, grad: Any, retain_graph: bool) -> None:
    if root._ctx is None:
        _accumulate_grad(root, _apply_hooks(root, grad))
        return
    order = topological_order(root._ctx)
    pending: dict[int, list[Any]] = {id(root._ctx): [None] * len(root._ctx.output_meta)}
    pending[id(root._ctx)][root._out_idx] = grad
    leaves: dict[int, tuple[Tensor, Any]] = {}
    uses = _leaf_uses(order)  # a leaf is accumulated once its last consumer has run
    owned: dict[tuple[int, int], Any] = {}  # gradient sums allocated here (safe to add into)
    for fn in reversed(order):
        gys = pending.pop(id(fn), None)
        if gys is None:
            continue
        for i in range(len(gys)):
            owned.pop((id(fn), i), None)
        if getattr(fn, "_released", False):
            raise RuntimeError(
                f"backward: the graph through {fn.name} was already freed; "
                "call backward(retain_graph=True) the first time to go through it twice"
            )
        g0 = next(g for g in gys if g is not None)
        xp = backend.get_array_module(g0)
        with devices.device_context(devices.device_of(g0)):  # cuda:N: its gradients on N
            for i, ref in enumerate(fn.outputs):
                out = ref()
                if out is not None and (out._hooks or out._retain_grad) and gys[i] is not None:
                    gys[i] = _apply_hooks(out, gys[i])
                    if out._retain_grad:
                        _accumulate_grad(out, gys[i])
            for i, (shape, dtype) in enumerate(fn.output_meta):
                if gys[i] is None:
                    gys[i] = xp.zeros(shape, dtype=dtype)
            gxs = fn.call_backward(*gys)
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            for t, g, need in zip(fn.inputs, gxs, fn.needs_input_grad):
                if not need or g is None:
                    continue
                check_input_grad(fn, t, g)
                if t._ctx is None:
                    prev = leaves.get(id(t))
                    leaves[id(t)] = (t, g if prev is None else prev[1] + g)
                    uses[id(t)] -= 1
                    if uses[id(t)] == 0:  # its last consumer has run: accumulate it now
                        _accumulate_grad(t, _apply_hooks(t, leaves.pop(id(t))[1]))
                else:
                    key = (id(t._ctx), t._out_idx)
                    slot = pending.setdefault(id(t._ctx), [None] * len(t._ctx.output_meta))
                    if slot[t._out_idx] is None:
                        slot[t._out_idx] = g  # may be a view of another gradient: never written
                    elif key in owned:
                        owned[key] += g  # a sum this loop made: add in place
                    else:
                        slot[t._out_idx] = owned[key] = slot[t._out_idx] + g
        if not retain_graph:
            fn.release()
    for t, g in leaves.values():
        with devices.device_context(t.device):
            _accumulate_grad(t, _apply_hooks(t, g))
