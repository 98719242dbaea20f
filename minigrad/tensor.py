"""``Tensor``: an array plus what autograd needs.

A tensor wraps a NumPy or CuPy ndarray (``.data``). Tensors produced by ops remember the
op (``_ctx``, a :class:`minigrad.autograd.Function`); ``backward()`` hands the graph to
:func:`minigrad.engine.run_backward`, which walks those ops in reverse topological order
(iteratively, so a 10,000-op chain is fine), sums gradients on fan-out and stores them in
``.grad`` of the leaves that require grad. The factories (``tensor``, ``zeros``, ...) live
in :mod:`minigrad.creation`, grad mode and hooks in :mod:`minigrad.engine`; both are
re-exported here.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from minigrad import backend, devices
from minigrad.engine import (
    RemovableHandle,
    enable_grad,
    hook_ids,
    is_grad_enabled,
    no_grad,
    run_backward,
)

__all__ = [
    "RemovableHandle",
    "Tensor",
    "enable_grad",
    "is_grad_enabled",
    "no_grad",
    "ones",
    "rand",
    "randn",
    "tensor",
    "zeros",
]


class _VersionCounter:
    """A tensor's count of in-place writes; tensors whose arrays are views share one."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


class Tensor:
    """An n-dimensional array with autograd (see the module docstring).

    Attributes:
        data: the NumPy or CuPy ndarray. Assigning to it counts as an in-place write (see
            ``_version``), so does an in-place update through it (``p.data -= lr * g``).
        grad: gradient ndarray (same shape, dtype, device) or None.
        requires_grad: whether backward computes a gradient for this tensor.
    """

    __array_priority__ = 1000  # numpy scalars/arrays on the left defer to our operators

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        if isinstance(data, Tensor):
            data = data.data
        if not (isinstance(data, np.ndarray) or backend.is_cupy_array(data)):
            data = backend.as_array(data)  # Python floats: float32, as mg.tensor does
        if requires_grad and data.dtype.kind != "f":
            raise TypeError(
                f"tensor: only floating-point tensors can require grad, got dtype {data.dtype}"
            )
        self._version_counter = _VersionCounter()
        self._data = data
        self.grad: Any = None
        self.requires_grad = bool(requires_grad)
        self._ctx: Any = None
        self._out_idx = 0
        self._hooks: dict[int, Callable[[Any], Any]] = {}
        self._retain_grad = False
        self.name: str | None = None

    # ------------------------------------------------------------ properties
    @property
    def data(self) -> Any:
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        self._data = value
        self._version_counter.value += 1

    @property
    def _version(self) -> int:
        """How many in-place writes this tensor's memory has had (PyTorch's ``_version``).

        Bumped by every write through minigrad's own API: assigning ``.data`` (which an
        augmented update such as ``p.data -= lr * g`` does), :meth:`copy_` (optimizers,
        ``EMA``, ``load_state_dict``, ``nn.init``). A tensor whose array is a view of another's
        (``reshape``, ``transpose``, indexing) shares its counter. An op records the versions
        of its inputs and outputs, and its backward refuses to run when one whose array it
        saved has changed since (:meth:`minigrad.autograd.Function.check_saved_versions`).
        """
        return self._version_counter.value

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def device(self) -> str:
        return devices.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self) -> Any:
        """The op that produced this tensor (None for leaves)."""
        return self._ctx

    def size(self, dim: int | None = None) -> Any:
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(
                f"bool: the truth value of a tensor with {self.data.size} elements is "
                "ambiguous; reduce it first (e.g. (x > 0).sum() > 0)"
            )
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        dev = "" if self.device == "cpu" else f", device='{self.device}'"
        return f"tensor({backend.as_numpy(self.data)!r}{dev}{grad})"

    __hash__ = object.__hash__

    # ------------------------------------------------------------ conversions
    def numpy(self) -> np.ndarray:
        """A host NumPy copy of the data (never shares memory with a GPU array)."""
        return backend.as_numpy(self.data).copy()

    def item(self) -> Any:
        if self.data.size != 1:
            raise ValueError(f"item: tensor has {self.data.size} elements, expected exactly 1")
        return self.data.reshape(()).item()

    def tolist(self) -> Any:
        return backend.as_numpy(self.data).tolist()

    def detach(self) -> Tensor:
        """The same data, cut from the graph (and sharing this tensor's version counter)."""
        out = Tensor(self._data)
        out._version_counter = self._version_counter
        return out

    def to(self, device: Any = None, dtype: Any = None) -> Tensor:
        """Copy to ``device`` and/or cast to ``dtype`` (differentiable)."""
        from minigrad.functional import shape as _shape  # noqa: PLC0415 - declared circle

        out = self
        device, dt = devices.parse_to("to", device, dtype)  # t.to("float64") works too
        if device is not None and device != self.device:
            out = _shape.ToDevice(device).apply(out)
        if dt is not None and dt != out.dtype:
            out = _shape.Cast(dt).apply(out)
        return out

    def float(self) -> Tensor:
        return self.to(dtype="float32")

    def double(self) -> Tensor:
        return self.to(dtype="float64")

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, index: int = 0) -> Tensor:
        return self.to(f"cuda:{index}")

    def copy_(self, src: Any) -> Tensor:
        """Write ``src`` (a Tensor, an array on this tensor's device, or a number) into this
        tensor's array in place, cast to its dtype; bump its version. Not recorded in the
        graph (as ``t.data.copy_(src)`` in PyTorch): for weights, buffers and state."""
        self._data[...] = src.data if isinstance(src, Tensor) else src
        self._version_counter.value += 1
        return self

    # ------------------------------------------------------------ autograd
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.dtype.kind != "f":
            raise TypeError(
                f"requires_grad_: only floating-point tensors can require grad, got {self.dtype}"
            )
        self.requires_grad = requires_grad
        return self

    def zero_grad(self) -> None:
        self.grad = None

    def register_hook(self, hook: Callable[[Any], Any]) -> RemovableHandle:
        """Call ``hook(grad)`` with this tensor's gradient during backward.

        The hook receives the raw gradient array; a non-None return value replaces the
        gradient (for the leaf's ``.grad`` and for everything further back).
        """
        if not self.requires_grad:
            raise RuntimeError("register_hook: tensor does not require grad")
        key = next(hook_ids)
        self._hooks[key] = hook
        if self._ctx is not None:
            # the engine finds the hooks through the producing op's (weak) outputs, and an op
            # that never reads its input (ReLU, cat) does not keep it: the producing op keeps
            # a hooked tensor alive until its backward has run (release() drops this)
            self._ctx.__dict__.setdefault("_hooked_outputs", []).append(self)
        return RemovableHandle(self._hooks, key)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: tensor does not require grad")
        self._retain_grad = True

    def backward(
        self, grad: Any = None, retain_graph: bool = False, create_graph: bool = False
    ) -> None:
        """Accumulate d(self)/d(leaf) * grad into ``.grad`` of every leaf that requires grad.

        Args:
            grad: gradient w.r.t. this tensor (array or Tensor, same shape). May be
                omitted only for a one-element tensor (then it is 1).
            retain_graph: keep the saved arrays so backward can run through the graph again.
            create_graph: not supported here, since ``.grad`` is a plain array that cannot
                carry a graph: True raises, pointing to ``minigrad.grad(...,
                create_graph=True)``, which returns differentiable gradients.
        """
        if create_graph:
            raise RuntimeError(
                "backward(create_graph=True): .grad is a plain array and cannot be "
                "differentiated again; use minigrad.grad(outputs, inputs, create_graph=True), "
                "which returns the gradients as Tensors that are part of the graph"
            )
        if not self.requires_grad:
            raise RuntimeError("backward: tensor does not require grad and has no grad_fn")
        run_backward(self, initial_grad(self, grad, "backward: grad"), retain_graph)

    # ------------------------------------------------------------ ops (bound below)
    def __getitem__(self, key: Any) -> Tensor:
        return F.getitem(self, key)

    def __add__(self, o: Any) -> Tensor:
        return F.add(self, o)

    def __radd__(self, o: Any) -> Tensor:
        return F.add(o, self, like=self)

    def __sub__(self, o: Any) -> Tensor:
        return F.sub(self, o)

    def __rsub__(self, o: Any) -> Tensor:
        return F.sub(o, self, like=self)

    def __mul__(self, o: Any) -> Tensor:
        return F.mul(self, o)

    def __rmul__(self, o: Any) -> Tensor:
        return F.mul(o, self, like=self)

    def __truediv__(self, o: Any) -> Tensor:
        return F.div(self, o)

    def __rtruediv__(self, o: Any) -> Tensor:
        return F.div(o, self, like=self)

    def __pow__(self, exponent: float) -> Tensor:
        return F.pow(self, exponent)

    def __rpow__(self, base: float) -> Tensor:
        """``base ** x`` for a positive number ``base``, as ``exp(x * log(base))``."""
        if isinstance(base, bool) or not isinstance(base, numbers.Real) or not base > 0:
            raise ValueError(f"rpow: base ** tensor needs a positive number base, got {base!r}")
        return F.exp(self * math.log(base))

    def __neg__(self) -> Tensor:
        return F.neg(self)

    def __matmul__(self, o: Tensor) -> Tensor:
        return F.matmul(self, o)

    def _compare(self, o: Any, op: str) -> Tensor:
        other = o.data if isinstance(o, Tensor) else o
        return Tensor(getattr(self.data, op)(other))

    def __eq__(self, o: Any) -> Tensor:  # type: ignore[override]
        return self._compare(o, "__eq__")

    def __ne__(self, o: Any) -> Tensor:  # type: ignore[override]
        return self._compare(o, "__ne__")

    def __lt__(self, o: Any) -> Tensor:
        return self._compare(o, "__lt__")

    def __le__(self, o: Any) -> Tensor:
        return self._compare(o, "__le__")

    def __gt__(self, o: Any) -> Tensor:
        return self._compare(o, "__gt__")

    def __ge__(self, o: Any) -> Tensor:
        return self._compare(o, "__ge__")

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        """Indices of the maxima (not differentiable)."""
        idx = self.data.argmax(axis=dim)
        if keepdim and dim is not None:
            idx = backend.get_array_module(idx).expand_dims(idx, dim)
        return Tensor(idx)

    def reshape(self, *shape: Any) -> Tensor:
        return F.reshape(self, shape[0] if len(shape) == 1 else shape)

    def view(self, *shape: Any) -> Tensor:
        return self.reshape(*shape)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        return F.transpose(self, dim0, dim1)

    def permute(self, *dims: Any) -> Tensor:
        """``x.permute(2, 0, 1)`` or ``x.permute((2, 0, 1))``."""
        return F.permute(self, dims[0] if len(dims) == 1 and not isinstance(dims[0], int) else dims)

    @property
    def T(self) -> Tensor:
        return F.permute(self, tuple(reversed(range(self.ndim))))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return F.flatten(self, start_dim, end_dim)

    def sum(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return F.sum(self, dim, keepdim)

    def mean(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return F.mean(self, dim, keepdim)

    def max(self, dim: int | None = None, keepdim: bool = False) -> Any:
        return F.max(self, dim, keepdim)

    def exp(self) -> Tensor:
        return F.exp(self)

    def log(self) -> Tensor:
        return F.log(self)

    def sqrt(self) -> Tensor:
        return F.sqrt(self)

    def tanh(self) -> Tensor:
        return F.tanh(self)

    def sigmoid(self) -> Tensor:
        return F.sigmoid(self)

    def relu(self) -> Tensor:
        return F.relu(self)

    def matmul(self, o: Tensor) -> Tensor:
        return F.matmul(self, o)

    def softmax(self, dim: int) -> Tensor:
        return F.softmax(self, dim)

    def log_softmax(self, dim: int) -> Tensor:
        return F.log_softmax(self, dim)


def initial_grad(t: Tensor, grad: Any, what: str, as_tensor: bool = False) -> Any:
    """The gradient a backward pass starts from at ``t``, checked: ``Tensor.backward(grad)``
    and ``minigrad.grad(..., grad_outputs)`` both take theirs from here.

    ``grad`` is a Tensor on ``t``'s device, an array, a number or a nested list; it becomes
    an array of ``t``'s shape and dtype on ``t``'s device (host data is copied there, a GPU
    array must be on that GPU). ``None`` means ones, and only for a one-element ``t``
    (PyTorch's rule). With ``as_tensor`` the result is a Tensor, a given one kept as it is
    (cast to ``t``'s dtype), so that ``create_graph`` differentiates through it.

    Args:
        what: the argument as the messages name it (``"backward: grad"``).

    Raises:
        ValueError: ``grad`` omitted for a tensor of more than one element; on another
            device; of another shape.
    """
    xp = backend.get_array_module(t.data)
    if grad is None:
        if t.data.size != 1:
            raise ValueError(
                f"{what} can be omitted only for a one-element tensor, got shape {t.shape}; "
                "pass a gradient of that shape"
            )
        with devices.device_context(t.device):  # cuda:N: allocated on N
            ones = xp.ones_like(t.data)
        return Tensor(ones) if as_tensor else ones
    if isinstance(grad, Tensor) or backend.is_cupy_array(grad):
        device = grad.device if isinstance(grad, Tensor) else devices.device_of(grad)
        if device != t.device:
            raise ValueError(f"{what} is on {device}, tensor on {t.device}")
    if isinstance(grad, Tensor):
        if grad.shape != t.shape:
            raise ValueError(f"{what} shape {grad.shape} != tensor shape {t.shape}")
        if as_tensor:
            return grad if grad.dtype == t.dtype else grad.to(dtype=t.dtype)
        grad = grad.data
    with devices.device_context(t.device):
        arr = xp.asarray(grad, dtype=t.dtype)
    if arr.shape != t.data.shape:
        raise ValueError(f"{what} shape {tuple(arr.shape)} != tensor shape {t.shape}")
    return Tensor(arr) if as_tensor else arr


from minigrad import functional as F  # noqa: E402  (ops need Tensor defined first)
from minigrad.creation import ones, rand, randn, tensor, zeros  # noqa: E402
