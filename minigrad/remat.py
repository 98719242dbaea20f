"""Activation checkpointing: ``recompute(fn, *inputs)`` keeps no activation inside ``fn``.

The idea of ``torch.utils.checkpoint`` (named ``recompute`` because ``minigrad.checkpoint``
saves runs). The forward runs ``fn`` under ``no_grad``: the graph gets one op,
:class:`Recompute`, that keeps only ``fn``'s inputs. Its backward runs ``fn`` again under
grad mode on those inputs and backpropagates the output gradients through that fresh
graph (:func:`minigrad.higher_order.walk`), which is then dropped. So the activations
inside ``fn`` exist during the forward pass and again, one ``fn`` at a time, during the
backward pass, never all at once: peak memory falls by what ``fn`` would have kept, for
the price of a second forward of ``fn``.

The gradients are the plain ones, bit for bit:

- the recomputed forward takes the same op paths on the same arrays;
- dropout masks come from a counter-based stream: the stream is rewound to where the
  first forward started (:func:`minigrad.random.set_dropout_offset`) and put back after,
  so the replay draws the same masks and later draws are unchanged;
- batch norm's running statistics are updated in the first forward only
  (:func:`is_recomputing` is True during the replay and ``BatchNorm`` skips the update);
- the gradients of ``fn``'s inputs are summed in the order the plain backward sums them.

When ``fn`` is a :class:`minigrad.nn.Module` its parameters are inputs of the op too, so
their gradients flow back through the outer graph (and reach ``.grad`` there). Other
leaves ``fn`` reads (a closure's tensors) get their ``.grad`` accumulated during the
replay. Forward hooks of modules inside ``fn`` run twice (forward and replay).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from minigrad import random
from minigrad.autograd import Function
from minigrad.engine import enable_grad, is_grad_enabled, no_grad
from minigrad.higher_order import walk
from minigrad.tensor import Tensor

__all__ = ["Recompute", "is_recomputing", "recompute"]

_state = threading.local()


def is_recomputing() -> bool:
    """True while :class:`Recompute` replays a forward (ops with side effects, such as
    batch norm's running statistics, skip them then)."""
    return getattr(_state, "depth", 0) > 0


@contextlib.contextmanager
def _replaying(offset: int) -> Iterator[None]:
    now = random.dropout_offset()
    random.set_dropout_offset(offset)
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1
        random.set_dropout_offset(now)


def _tensors(op: str, out: Any) -> tuple[Tensor, ...]:
    outs = out if isinstance(out, tuple) else (out,)
    for k, o in enumerate(outs):
        if not isinstance(o, Tensor):
            raise TypeError(f"{op}: fn must return a Tensor or a tuple of Tensors, got "
                            f"{type(o).__name__} at position {k}")  # fmt: skip
    return outs


class Recompute(Function):
    """ys = fn(*xs) with nothing inside fn kept; gxs = the backward of fn's graph,
    rebuilt by running fn again at backward time (see the module docstring)."""

    def __init__(self, fn: Callable[..., Any], n_inputs: int) -> None:
        self.fn, self.n_inputs = fn, n_inputs

    def forward(self, *xs: Any) -> Any:
        self.offset = random.dropout_offset()  # where fn's dropout masks start
        with no_grad():
            outs = _tensors("recompute", self.fn(*(Tensor(x) for x in xs[: self.n_inputs])))
        self.multi = isinstance(outs, tuple) and len(outs) > 1
        arrays = tuple(o.data for o in outs)
        return arrays if self.multi else arrays[0]

    def backward(self, *gys: Any) -> tuple[Any, ...]:
        n = self.n_inputs
        xs = [
            Tensor(t.data, requires_grad=need)
            for t, need in zip(self.inputs[:n], self.needs_input_grad[:n])
        ]
        params = list(self.inputs[n:])
        with _replaying(self.offset), enable_grad():
            outs = _tensors("recompute", self.fn(*xs))
        pairs = [(o, g) for o, g in zip(outs, gys) if o.requires_grad]
        targets = [x for x in xs if x.requires_grad] + [
            p for p, need in zip(params, self.needs_input_grad[n:]) if need
        ]
        if not pairs:
            return (None,) * len(self.inputs)
        found = iter(
            walk([o for o, _ in pairs], [g for _, g in pairs], targets, False, False, True)
        )
        grads = [next(found) if x.requires_grad else None for x in xs]
        grads += [next(found) if need else None for need in self.needs_input_grad[n:]]
        return tuple(grads)

    def backward_graph(self, *gys: Tensor) -> tuple[Any, ...]:
        """For ``create_graph``: replay fn on the op's own input Tensors (so the gradients
        stay connected to them) and backpropagate with each op's ``backward_graph``."""
        n = self.n_inputs
        with _replaying(self.offset), enable_grad():
            outs = _tensors("recompute", self.fn(*self.inputs[:n]))
        pairs = [(o, g) for o, g in zip(outs, gys) if o.requires_grad]
        needed = [t for t, need in zip(self.inputs, self.needs_input_grad) if need]
        if not pairs or not needed:
            return (None,) * len(self.inputs)
        found = iter(walk([o for o, _ in pairs], [g for _, g in pairs], needed, True, True))
        return tuple(next(found) if need else None for need in self.needs_input_grad)


def recompute(
    fn: Callable[..., Any], *inputs: Tensor, params: Sequence[Tensor] | None = None
) -> Any:
    """``fn(*inputs)``, with ``fn``'s activations recomputed in backward instead of kept.

    Args:
        fn: a function of Tensors (a Module, a block) returning a Tensor or a tuple of
            Tensors. It must give the same result when run again on the same inputs
            (dropout and batch norm do: see the module docstring).
        inputs: Tensors.
        params: the weights ``fn`` reads besides its inputs (default: ``fn.parameters()``
            for a Module, else none). They become inputs of the recorded op, so their
            gradients flow even when no input requires grad (a network's first stage).

    Returns:
        What ``fn`` returns. Without grad mode, or when no input and no parameter requires
        grad, this is simply ``fn(*inputs)``.

    Raises:
        TypeError: an input that is not a Tensor, or ``fn`` returning something else.
    """
    for k, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"recompute: input {k} is {type(t).__name__}, not a Tensor")
    if params is None:
        params = list(getattr(fn, "parameters", list)())
    params = [p for p in params if p.requires_grad]
    if not is_grad_enabled() or not any(t.requires_grad for t in (*inputs, *params)):
        return fn(*inputs)
    return Recompute(fn, len(inputs)).apply(*inputs, *params)
