"""How ``Module.__call__`` runs forward hooks and full backward hooks.

Backward hooks need the gradient w.r.t. a module's output *and* w.r.t. its inputs, but the
engine only knows ops, not modules. So, when a module has backward hooks and the graph is
being recorded, the call is bracketed by two identity ops:

    inputs --BackwardHookIn--> forward(...) --BackwardHookOut--> outputs

``BackwardHookOut.backward`` sees the gradient arriving at the outputs (already summed over
every consumer) and stores it as ``grad_output``. ``BackwardHookIn.backward`` runs after the
whole module's backward (it is earlier in the graph) and sees the gradient w.r.t. the
inputs: it calls the hooks with ``(module, grad_input, grad_output)`` and passes on what
they return. When no input requires grad, ``BackwardHookIn`` is never created and the hooks
fire from ``BackwardHookOut`` with ``grad_input`` all None (as PyTorch does).

Both ops return their input arrays unchanged (no copy), so the cost is two graph nodes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from minigrad.autograd import Function
from minigrad.tensor import Tensor, is_grad_enabled

if TYPE_CHECKING:
    from minigrad.nn.module import Module


class _CallState:
    """What the two identity ops of one module call share."""

    def __init__(self, module: Module, n_inputs: int) -> None:
        self.module = module
        self.n_inputs = n_inputs
        self.grad_output: tuple[Any, ...] | None = None
        self.input_positions: list[int] = []  # which positional args BackwardHookIn covers

    def fire(self, grad_input: tuple[Any, ...]) -> tuple[Any, ...]:
        grad_output = self.grad_output if self.grad_output is not None else ()
        for hook in list(self.module._backward_hooks.values()):
            out = hook(self.module, grad_input, grad_output)
            if out is None:
                continue
            if not isinstance(out, (tuple, list)) or len(out) != len(grad_input):
                got = (
                    f"a {type(out).__name__} of length {len(out)}"
                    if isinstance(out, (tuple, list))
                    else f"a {type(out).__name__}"
                )
                raise ValueError(
                    f"backward hook on {type(self.module).__name__} returned {got}; expected "
                    f"None or a tuple of {len(grad_input)} gradient(s) (one per input)"
                )
            new = tuple(g.data if isinstance(g, Tensor) else g for g in out)
            for i, (g_old, g_new) in enumerate(zip(grad_input, new)):
                if g_old is not None and g_new is not None and g_new.shape != g_old.shape:
                    raise ValueError(
                        f"backward hook on {type(self.module).__name__} returned a gradient "
                        f"of shape {tuple(g_new.shape)} for input {i} of shape "
                        f"{tuple(g_old.shape)}"
                    )
            grad_input = new
        return grad_input


class BackwardHookIn(Function):
    """y_i = x_i (the module's inputs); gx = the hooks' grad_input (default gy)."""

    def __init__(self, state: _CallState) -> None:
        self.state = state

    def forward(self, *xs: Any) -> Any:
        return xs if len(xs) > 1 else xs[0]

    def backward(self, *gys: Any) -> Any:
        s = self.state
        grad_input: list[Any] = [None] * s.n_inputs
        for pos, g in zip(s.input_positions, gys):
            grad_input[pos] = g
        new = s.fire(tuple(grad_input))
        gxs = tuple(new[pos] for pos in s.input_positions)
        return gxs if len(gxs) > 1 else gxs[0]


class BackwardHookOut(Function):
    """y_i = x_i (the module's outputs); gx = gy, recorded as the hooks' grad_output."""

    def __init__(self, state: _CallState, fire_here: bool) -> None:
        self.state = state
        self.fire_here = fire_here

    def forward(self, *xs: Any) -> Any:
        return xs if len(xs) > 1 else xs[0]

    def backward(self, *gys: Any) -> Any:
        self.state.grad_output = gys
        if self.fire_here:
            self.state.fire((None,) * self.state.n_inputs)
        return gys if len(gys) > 1 else gys[0]


def _output_tensors(output: Any) -> list[Tensor]:
    items = output if isinstance(output, (tuple, list)) else (output,)
    return [t for t in items if isinstance(t, Tensor) and t.requires_grad]


def _replace_outputs(output: Any, new: dict[int, Tensor]) -> Any:
    if isinstance(output, Tensor):
        return new.get(id(output), output)
    items = [new.get(id(t), t) if isinstance(t, Tensor) else t for t in output]
    if hasattr(output, "_make"):  # named tuple
        return output._make(items)
    return type(output)(items)


def call_with_hooks(module: Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``module.forward(*args, **kwargs)`` with pre-, forward and backward hooks."""
    for hook in list(module._forward_pre_hooks.values()):
        res = hook(module, args)
        if res is not None:
            args = res if isinstance(res, tuple) else (res,)

    state = None
    if module._backward_hooks and is_grad_enabled():
        state = _CallState(module, len(args))
        state.input_positions = [
            i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad
        ]
        if state.input_positions:
            wrapped = BackwardHookIn(state).apply(*(args[i] for i in state.input_positions))
            wrapped = wrapped if isinstance(wrapped, tuple) else (wrapped,)
            args = list(args)
            for i, w in zip(state.input_positions, wrapped):
                args[i] = w
            args = tuple(args)

    output = module.forward(*args, **kwargs)

    for hook in list(module._forward_hooks.values()):
        res = hook(module, args, output)
        if res is not None:
            output = res

    if state is not None:
        outs = _output_tensors(output)
        if outs:
            fn = BackwardHookOut(state, fire_here=not state.input_positions)
            wrapped = fn.apply(*outs)
            wrapped = wrapped if isinstance(wrapped, tuple) else (wrapped,)
            output = _replace_outputs(output, {id(o): w for o, w in zip(outs, wrapped)})
    return output
