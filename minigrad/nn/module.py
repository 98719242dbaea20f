"""``Module`` and ``Parameter``: parameters registered by attribute assignment.

A module stores its :class:`Parameter` objects, sub-modules and buffers (non-trained
tensors such as batch norm's running statistics) in three ordered dicts *and* as ordinary
attributes, so ``self.conv.weight`` is a plain attribute lookup in the forward pass.

Module hooks (forward and full backward) live in ``hooks.py``; ``__call__`` runs them.
Containers (``Sequential``, ``ModuleList``, ``ModuleDict``) live in ``containers.py``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from minigrad import devices
from minigrad.nn import hooks as _hooks
from minigrad.nn import state as _state
from minigrad.nn.state import LoadResult
from minigrad.tensor import RemovableHandle, Tensor, hook_ids

__all__ = ["Module", "Parameter", "LoadResult"]


class Parameter(Tensor):
    """A tensor that a :class:`Module` registers as trainable (``requires_grad=True``).

    ``Parameter(t)`` shares ``t``'s array (no copy), like PyTorch.
    """

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and model.

    Subclasses set parameters, sub-modules and buffers as attributes in ``__init__`` (after
    ``super().__init__()``) and write ``forward``. Calling the module runs ``forward`` with
    its hooks. ``training`` is True after construction; ``eval()`` turns it off recursively.
    """

    training: bool

    def __init__(self) -> None:
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent"] = set()
        d["_modules"] = OrderedDict()
        d["_forward_pre_hooks"] = OrderedDict()
        d["_forward_hooks"] = OrderedDict()
        d["_backward_hooks"] = OrderedDict()

    # ------------------------------------------------------------ registration
    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() is called "
                f"(call super().__init__() first in {type(self).__name__}.__init__)"
            )
        params, buffers, modules = d["_parameters"], d["_buffers"], d["_modules"]
        if isinstance(value, Parameter):
            self._forget(name, keep="_parameters")
            params[name] = value
        elif isinstance(value, Module):
            self._forget(name, keep="_modules")
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as parameter {name!r} of "
                    f"{type(self).__name__} (Parameter or None expected)"
                )
            params[name] = None
        elif name in modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as child module {name!r} of "
                    f"{type(self).__name__} (Module or None expected)"
                )
            modules[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"cannot assign {type(value).__name__} as buffer {name!r} of "
                    f"{type(self).__name__} (Tensor or None expected)"
                )
            buffers[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._forget(name)
        object.__delattr__(self, name)

    def _forget(self, name: str, keep: str = "") -> None:
        """Unregister ``name`` everywhere but in table ``keep`` (which keeps its position)."""
        for key in ("_parameters", "_buffers", "_modules"):
            if key != keep:
                self.__dict__[key].pop(name, None)
        self._non_persistent.discard(name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or a None placeholder) under ``name``."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"register_parameter: {name!r} must be a Parameter or None, "
                f"got {type(param).__name__}"
            )
        self._check_name("register_parameter", name, "_parameters")
        self._forget(name, keep="_parameters")
        self._parameters[name] = param
        object.__setattr__(self, name, param)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register a non-trained tensor (e.g. running statistics) saved in ``state_dict``.

        Args:
            name: attribute name.
            tensor: the buffer, or None (a placeholder that ``state_dict`` skips).
            persistent: False keeps the buffer out of ``state_dict``.
        """
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"register_buffer: {name!r} must be a Tensor or None, got {type(tensor).__name__}"
            )
        self._check_name("register_buffer", name, "_buffers")
        self._forget(name, keep="_buffers")
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)
        object.__setattr__(self, name, tensor)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` under ``name`` (same as attribute assignment)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got {type(module).__name__}")
        self._check_name("add_module", name, "_modules")
        self._forget(name, keep="_modules")
        self._modules[name] = module
        object.__setattr__(self, name, module)

    def _check_name(self, fn: str, name: str, kind: str) -> None:
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"{fn}: name must be a non-empty string without '.', got {name!r}")
        if name not in self.__dict__[kind] and hasattr(type(self), name):
            raise ValueError(f"{fn}: {name!r} is already a class attribute of this module")

    # ------------------------------------------------------------ traversal
    def named_modules(
        self, prefix: str = "", memo: set[int] | None = None
    ) -> Iterator[tuple[str, Module]]:
        """``(dotted name, module)`` for this module (name ``prefix``) and every descendant."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, kind: str, recurse: bool) -> Iterator[tuple[str, Any]]:
        seen: set[int] = set()
        mods = self.named_modules() if recurse else iter([("", self)])
        for prefix, m in mods:
            for name, t in m.__dict__[kind].items():
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                yield (f"{prefix}.{name}" if prefix else name), t

    def named_parameters(self, recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """``(dotted attribute path, parameter)``, in registration order, shared ones once."""
        return self._named_members("_parameters", recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse):
            yield p

    def named_buffers(self, recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse):
            yield b

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Total number of parameter elements (shared parameters counted once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every sub-module (children first) and then on this module."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------ modes and devices
    def train(self, mode: bool = True) -> Module:
        """Set training mode on this module and every descendant; return self."""
        if not isinstance(mode, bool):
            raise TypeError(f"train: mode must be a bool, got {type(mode).__name__}")
        for m in self.modules():
            m.__dict__["training"] = mode
        return self

    def eval(self) -> Module:
        """Same as ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def zero_grad(self) -> None:
        """Drop every parameter's gradient (sets ``.grad`` to None, like PyTorch's default)."""
        for p in self.parameters():
            p.grad = None

    def to(self, device: Any = None, dtype: Any = None) -> Module:
        """Move parameters and buffers to ``device`` and/or cast floating ones to ``dtype``.

        Works in place: every Parameter keeps its identity, so an optimizer built before
        the move keeps working. ``module.to("float64")`` is accepted like ``Tensor.to``.
        Integer buffers (``num_batches_tracked``) keep their dtype.
        """
        device, dt = devices.parse_to("Module.to", device, dtype)
        if dt is not None and dt.kind != "f":
            raise TypeError(f"Module.to: dtype must be floating point, got {dt}")

        def move(a: Any) -> Any:
            if device is not None and devices.device_of(a) != device:
                a = devices.to_device(a, device)
            if dt is not None and a.dtype.kind == "f" and a.dtype != dt:
                with devices.device_context(devices.device_of(a)):  # the cast stays there
                    a = a.astype(dt)
            return a

        for t in [*self.parameters(), *self.buffers()]:
            t.data = move(t.data)
            if t.grad is not None:
                t.grad = move(t.grad)
        return self

    def float(self) -> Module:
        return self.to(dtype="float32")

    def double(self) -> Module:
        return self.to(dtype="float64")

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, index: int = 0) -> Module:
        return self.to(f"cuda:{index}")

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict[str, np.ndarray]:
        """Dotted name -> host NumPy copy of every parameter and persistent buffer.

        Order: each module's parameters, then its buffers, then its children's (PyTorch's).
        """
        return _state.state_dict(self)

    def _state_tensors(self) -> dict[str, Tensor]:
        return _state.state_tensors(self)

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> LoadResult:
        """Copy arrays into the parameters and buffers in place (cast to their dtype/device).

        Returns ``LoadResult(missing_keys, unexpected_keys, mismatched_keys)``; with
        ``strict`` a ValueError names every missing, unexpected and wrongly-shaped key.
        See :func:`minigrad.nn.state.load_state_dict`.
        """
        return _state.load_state_dict(self, state_dict, strict)

    # ------------------------------------------------------------ calling and hooks
    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not (self._forward_pre_hooks or self._forward_hooks or self._backward_hooks):
            return self.forward(*args, **kwargs)
        return _hooks.call_with_hooks(self, args, kwargs)

    def _add_hook(self, table: str, hook: Callable[..., Any]) -> RemovableHandle:
        if not callable(hook):
            raise TypeError(f"register hook: expected a callable, got {type(hook).__name__}")
        key = next(hook_ids)
        self.__dict__[table][key] = hook
        return RemovableHandle(self.__dict__[table], key)

    def register_forward_pre_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """``hook(module, inputs) -> None | new inputs`` runs before ``forward``."""
        return self._add_hook("_forward_pre_hooks", hook)

    def register_forward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """``hook(module, inputs, output) -> None | new output`` runs after ``forward``.

        ``inputs`` is the tuple of positional arguments. Hooks run in registration order;
        each one sees the output the previous one returned.
        """
        return self._add_hook("_forward_hooks", hook)

    def register_full_backward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """``hook(module, grad_input, grad_output) -> None | new grad_input`` during backward.

        ``grad_output``: tuple of gradient arrays w.r.t. the module's output tensor(s);
        ``grad_input``: tuple w.r.t. its positional tensor inputs (None where an input does
        not require grad). A returned tuple replaces ``grad_input`` for the rest of
        backward. See ``minigrad/nn/hooks.py`` for how this is done.
        """
        return self._add_hook("_backward_hooks", hook)

    # ------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        """The text between the parentheses of this module's repr (override it)."""
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {sub}")
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = "\n  ".join(([extra] if extra else []) + lines)
        return f"{type(self).__name__}(\n  {body}\n)"


# ---------------------------------------------------------------- containers
