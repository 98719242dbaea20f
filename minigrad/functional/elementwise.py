"""Elementwise ops: arithmetic with broadcasting, exp/log/sqrt/tanh/sigmoid/relu."""

from __future__ import annotations

import numbers
from typing import Any

from minigrad import backend
from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.devices import device_context
from minigrad.functional._layout import empty_like_layout, memory_order, memory_view
from minigrad.functional._simd import relu_into
from minigrad.functional._threads import for_blocks
from minigrad.functional.reduce import sum_to
from minigrad.tensor import Tensor

__all__ = [
    "add",
    "sub",
    "mul",
    "div",
    "neg",
    "pow",
    "exp",
    "log",
    "sqrt",
    "tanh",
    "sigmoid",
    "relu",
]


def unbroadcast(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``g`` over the axes that broadcasting expanded, so it has ``shape`` again."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1
    )
    return g.sum(axis=axes, keepdims=True).reshape(shape)


def as_tensor(value: Any, like: Tensor) -> Tensor:
    """Wrap a Python/NumPy scalar or array as a constant on ``like``'s device and dtype.

    Next to an integer tensor a Python float becomes float32 (PyTorch's default dtype),
    never float64.
    """
    if isinstance(value, Tensor):
        return value
    xp = get_array_module(like.data)
    with device_context(like.device):  # cuda:N: the constant lives on N
        if like.dtype.kind == "f":
            return Tensor(xp.asarray(value, dtype=like.dtype))
        return Tensor(backend.as_array(value, xp))  # a Python float: float32


def promote(a: Tensor, b: Tensor, true_div: bool = False) -> tuple[Tensor, Tensor]:
    """PyTorch's rule for a float tensor next to an integer/bool one: the float's dtype wins.

    NumPy would turn float32 * int64 into float64; here the integer side (a constant, it
    never requires grad) is cast to the float dtype instead. Integer / integer is float32.
    """
    fa, fb = a.dtype.kind == "f", b.dtype.kind == "f"
    if fa and not fb:
        b = Tensor(b.data.astype(a.dtype))
    elif fb and not fa:
        a = Tensor(a.data.astype(b.dtype))
    elif true_div and not fa and not fb:
        a, b = Tensor(a.data.astype("float32")), Tensor(b.data.astype("float32"))
    return a, b


class Add(Function):
    """y = a + b (broadcast); ga = unbroadcast(gy), gb = unbroadcast(gy)."""

    def forward(self, a: Any, b: Any) -> Any:
        self.a_shape, self.b_shape = a.shape, b.shape
        return a + b

    def backward(self, gy: Any) -> tuple[Any, Any]:
        return unbroadcast(gy, self.a_shape), unbroadcast(gy, self.b_shape)

    def backward_graph(self, gy: Tensor) -> tuple[Tensor, Tensor]:
        return sum_to(gy, self.a_shape), sum_to(gy, self.b_shape)


class Sub(Function):
    """y = a - b; ga = gy, gb = -gy (each unbroadcast)."""

    def forward(self, a: Any, b: Any) -> Any:
        self.a_shape, self.b_shape = a.shape, b.shape
        return a - b

    def backward(self, gy: Any) -> tuple[Any, Any]:
        gb = -unbroadcast(gy, self.b_shape) if self.needs_input_grad[1] else None
        return unbroadcast(gy, self.a_shape), gb

    def backward_graph(self, gy: Tensor) -> tuple[Any, Any]:
        gb = -sum_to(gy, self.b_shape) if self.needs_input_grad[1] else None
        return sum_to(gy, self.a_shape), gb


class Mul(Function):
    """y = a * b; ga = gy * b, gb = gy * a (each unbroadcast)."""

    def forward(self, a: Any, b: Any) -> Any:
        self.a, self.b = a, b
        return a * b

    def backward(self, gy: Any) -> tuple[Any, Any]:
        ga = unbroadcast(gy * self.b, self.a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(gy * self.a, self.b.shape) if self.needs_input_grad[1] else None
        return ga, gb

    def backward_graph(self, gy: Tensor) -> tuple[Any, Any]:
        a, b = self.inputs
        ga = sum_to(gy * b, a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(gy * a, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """y = a / b; ga = gy / b, gb = -gy * a / b**2 (each unbroadcast)."""

    def forward(self, a: Any, b: Any) -> Any:
        self.a, self.b = a, b
        return a / b

    def backward(self, gy: Any) -> tuple[Any, Any]:
        ga = unbroadcast(gy / self.b, self.a.shape) if self.needs_input_grad[0] else None
        gb = None
        if self.needs_input_grad[1]:
            gb = unbroadcast(-gy * self.a / (self.b * self.b), self.b.shape)
        return ga, gb

    def backward_graph(self, gy: Tensor) -> tuple[Any, Any]:
        a, b = self.inputs
        ga = sum_to(gy / b, a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(-gy * a / (b * b), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    """y = -x; gx = -gy."""

    def forward(self, x: Any) -> Any:
        return -x

    def backward(self, gy: Any) -> Any:
        return -gy

    def backward_graph(self, gy: Tensor) -> Tensor:
        return -gy


class Pow(Function):
    """y = x ** c for a constant c; gx = gy * c * x ** (c - 1)."""

    def __init__(self, c: float) -> None:
        self.c = c

    def forward(self, x: Any) -> Any:
        self.x = x
        return x**self.c

    def backward(self, gy: Any) -> Any:
        if self.c == 0:  # y = 1: the gradient is 0, also at x = 0 (no 0 * inf)
            return get_array_module(gy).zeros_like(gy)
        return gy * (self.c * self.x ** (self.c - 1))

    def backward_graph(self, gy: Tensor) -> Tensor:
        if self.c == 0:
            return gy * 0.0
        (x,) = self.inputs
        return gy * (Pow(self.c - 1).apply(x) * self.c) if self.c != 1 else gy * 1.0


class Exp(Function):
    """y = exp(x); gx = gy * y."""

    def forward(self, x: Any) -> Any:
        self.y = get_array_module(x).exp(x)
        return self.y

    def backward(self, gy: Any) -> Any:
        return gy * self.y

    def backward_graph(self, gy: Tensor) -> Tensor:
        return gy * Exp().apply(self.inputs[0])


class Log(Function):
    """y = log(x); gx = gy / x."""

    def forward(self, x: Any) -> Any:
        self.x = x
        return get_array_module(x).log(x)

    def backward(self, gy: Any) -> Any:
        return gy / self.x

    def backward_graph(self, gy: Tensor) -> Tensor:
        return gy / self.inputs[0]


class Sqrt(Function):
    """y = sqrt(x); gx = gy / (2 y)."""

    def forward(self, x: Any) -> Any:
        self.y = get_array_module(x).sqrt(x)
        return self.y

    def backward(self, gy: Any) -> Any:
        return gy / (2 * self.y)

    def backward_graph(self, gy: Tensor) -> Tensor:
        return gy / (Sqrt().apply(self.inputs[0]) * 2.0)


class Tanh(Function):
    """y = tanh(x); gx = gy * (1 - y**2)."""

    def forward(self, x: Any) -> Any:
        self.y = get_array_module(x).tanh(x)
        return self.y

    def backward(self, gy: Any) -> Any:
        return gy * (1 - self.y * self.y)

    def backward_graph(self, gy: Tensor) -> Tensor:
        y = Tanh().apply(self.inputs[0])
        return gy * (1.0 - y * y)


class Sigmoid(Function):
    """y = 1 / (1 + exp(-x)) computed as (1 + tanh(x/2)) / 2 (no overflow); gx = gy y (1 - y)."""

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        self.y = (xp.tanh(x * 0.5) + 1) * 0.5
        return self.y.astype(x.dtype, copy=False)

    def backward(self, gy: Any) -> Any:
        return gy * self.y * (1 - self.y)

    def backward_graph(self, gy: Tensor) -> Tensor:
        y = Sigmoid().apply(self.inputs[0])
        return gy * y * (1.0 - y)


class ReLU(Function):
    """y = max(x, 0); gx = gy where x > 0, else 0 (the gradient at 0 is 0, as in PyTorch).

    ``forward``/``backward`` are the reference. ``forward_chunked``/``backward_chunked``, for
    a C-contiguous or channel-major input (:meth:`path_applies`; the paper's conv + ReLU
    layers hand on channel-major arrays): the same two passes on runs of the memory, each
    run's max and mask while it is in the cache, shared out among the host threads
    (:mod:`~minigrad.functional._threads`); the output keeps the input's layout.

    Paths (all in this module unless named):
        reference: ``forward``/``backward``.
        chunked: ``forward_chunked``/``backward_chunked`` (where :meth:`path_applies`) on
            ``_layout.memory_view`` runs; ``_threads.for_blocks`` splits them. No CUDA
            kernel: on CuPy the chunked code runs as one chunk.
    """

    keeps_inputs = False  # backward reads the mask only: the input (a BN output) can go

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        y = xp.maximum(x, 0)
        if self.requires_grad:
            # a 1-byte mask, not y: y of a branch that ends in cat is freed once cat has
            # copied it (GoogLeNet CIFAR w1, batch 128: 0.5 GiB less at the peak)
            self.mask = x > 0
        return y

    def backward(self, gy: Any) -> Any:
        return gy * self.mask

    def backward_graph(self, gy: Tensor) -> Tensor:
        return gy * Tensor(self.mask.astype(gy.dtype))  # the mask is a constant

    def path_applies(self, path: str, xs: tuple[Any, ...]) -> bool:
        return xs[0].ndim >= 2 and memory_view(xs[0]) is not None

    def forward_chunked(self, x: Any) -> Any:
        xp = get_array_module(x)
        y = empty_like_layout(x)
        x1, y1 = memory_view(x), memory_view(y)  # (size,) views in memory order
        mask = empty_like_layout(x, bool) if self.requires_grad else None
        m1 = None if mask is None else memory_view(mask)

        def run(s: slice) -> None:
            relu_into(x1[s], y1[s])
            if m1 is not None:
                xp.greater(x1[s], 0, out=m1[s])

        for_blocks(run, x1.size, x1.size, x1)
        if mask is not None:
            self.mask = mask
        return y

    def backward_chunked(self, gy: Any) -> Any:
        xp = get_array_module(gy)
        gx = empty_like_layout(self.mask, gy.dtype)
        if memory_order(gy) != memory_order(gx):
            return gy * self.mask  # gy stored in another order: the reference's product
        g1, m1, gx1 = memory_view(gy), memory_view(self.mask), memory_view(gx)

        def run(s: slice) -> None:
            xp.multiply(g1[s], m1[s], out=gx1[s])

        for_blocks(run, g1.size, g1.size, g1)
        return gx


def _binary(cls: type[Function], a: Any, b: Any, like: Tensor | None) -> Tensor:
    ref = like if like is not None else (a if isinstance(a, Tensor) else b)
    if not isinstance(ref, Tensor):
        name = cls.__name__.lower()
        raise TypeError(
            f"{name}: expected at least one Tensor, got {type(a).__name__} and {type(b).__name__}"
        )
    ta, tb = promote(as_tensor(a, ref), as_tensor(b, ref), true_div=cls is Div)
    return cls().apply(ta, tb)


def add(a: Any, b: Any, like: Tensor | None = None) -> Tensor:
    """a + b with NumPy broadcasting; Python scalars take the tensor's dtype."""
    return _binary(Add, a, b, like)


def sub(a: Any, b: Any, like: Tensor | None = None) -> Tensor:
    """a - b with broadcasting."""
    return _binary(Sub, a, b, like)


def mul(a: Any, b: Any, like: Tensor | None = None) -> Tensor:
    """a * b with broadcasting."""
    return _binary(Mul, a, b, like)


def div(a: Any, b: Any, like: Tensor | None = None) -> Tensor:
    """a / b with broadcasting."""
    return _binary(Div, a, b, like)


def neg(x: Tensor) -> Tensor:
    """-x."""
    return Neg().apply(x)


def pow(x: Tensor, exponent: float) -> Tensor:
    """x ** exponent for a constant (Python number) exponent.

    Departure from PyTorch: a Tensor exponent raises TypeError.
    """
    if isinstance(exponent, Tensor):
        raise TypeError("pow: the exponent must be a Python number, not a Tensor")
    if isinstance(exponent, bool) or not isinstance(exponent, numbers.Real):
        raise TypeError(f"pow: the exponent must be a number, got {exponent!r}")
    # a Python int/float, so a NumPy float64 exponent cannot turn float32 x into float64
    c = int(exponent) if isinstance(exponent, numbers.Integral) else float(exponent)
    return Pow(c).apply(x)


def exp(x: Tensor) -> Tensor:
    """Elementwise e**x."""
    return Exp().apply(x)


def log(x: Tensor) -> Tensor:
    """Elementwise natural logarithm."""
    return Log().apply(x)


def sqrt(x: Tensor) -> Tensor:
    """Elementwise square root."""
    return Sqrt().apply(x)


def tanh(x: Tensor) -> Tensor:
    """Elementwise tanh."""
    return Tanh().apply(x)


def sigmoid(x: Tensor) -> Tensor:
    """Elementwise logistic sigmoid."""
    return Sigmoid().apply(x)


def relu(x: Tensor) -> Tensor:
    """Elementwise max(x, 0)."""
    return ReLU().apply(x)
