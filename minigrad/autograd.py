"""The ``Function`` base class: how an op records itself in the graph.

An op subclasses ``Function``, stores its hyper-parameters in ``__init__``, and writes
``forward(*arrays) -> array | tuple`` and ``backward(*grad_outputs) -> grad | tuple``
on raw NumPy/CuPy arrays. ``apply`` unwraps the input tensors, checks that they share a
device and a floating dtype, runs ``forward`` and, when a gradient is needed, links the
outputs to the op. Nothing in this module is op-specific.
"""

from __future__ import annotations

import weakref
from typing import Any

from minigrad.backend import device_of
from minigrad.tensor import Tensor, is_grad_enabled


class Function:
    """Base class of every differentiable op (see the module docstring)."""

    #: set by ``apply``: which inputs need a gradient (ops may skip work for the others)
    needs_input_grad: tuple[bool, ...] = ()
    #: set by ``apply`` before ``forward``: True when the graph is being recorded
    requires_grad: bool = False

    @property
    def name(self) -> str:
        """The op's name as used in error messages and graph exports."""
        return type(self).__name__

    def forward(self, *xs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, *gys: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def apply(self, *inputs: Tensor) -> Any:
        """Run ``forward`` on the inputs' arrays and record the op for backward."""
        xs = []
        device = None
        float_dtype = None
        for t in inputs:
            if not isinstance(t, Tensor):
                raise TypeError(f"{self.name}: expected Tensor inputs, got {type(t).__name__}")
            d = t.device
            if device is None:
                device = d
            elif d != device:
                raise ValueError(f"{self.name}: inputs are on different devices: {device} and {d}")
            if t.data.dtype.kind == "f":
                if float_dtype is None:
                    float_dtype = t.data.dtype
                elif t.data.dtype != float_dtype:
                    raise TypeError(
                        f"{self.name}: mixed float dtypes {float_dtype} and {t.data.dtype}; "
                        "convert one side explicitly (e.g. x.to(dtype='float64'))"
                    )
            xs.append(t.data)
        requires = is_grad_enabled() and any(t.requires_grad for t in inputs)
        self.requires_grad = requires
        self.needs_input_grad = tuple(requires and t.requires_grad for t in inputs)
        ys = self.forward(*xs)
        multi = isinstance(ys, tuple)
        outs = tuple(
            Tensor(y, requires_grad=requires and y.dtype.kind == "f")
            for y in (ys if multi else (ys,))
        )
        if requires:
            self.inputs: tuple[Tensor, ...] | None = tuple(inputs)
            self.outputs = [weakref.ref(o) for o in outs]
            self.output_meta = [(o.data.shape, o.data.dtype) for o in outs]
            for i, o in enumerate(outs):
                o._ctx = self
                o._out_idx = i
        return outs if multi else outs[0]

    def release(self) -> None:
        """Drop everything saved for backward (called after backward unless retain_graph)."""
        keep = {"inputs", "outputs", "output_meta", "needs_input_grad", "requires_grad"}
        for k in [k for k in vars(self) if k not in keep]:
            delattr(self, k)
        self._released = True

    def __repr__(self) -> str:
        dev = device_of(self.inputs[0].data) if getattr(self, "inputs", None) else "?"
        return f"<{self.name} on {dev}>"
