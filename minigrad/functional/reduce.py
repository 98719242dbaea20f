"""Reductions: sum, mean, max over one or more dims."""

from __future__ import annotations

import builtins
import math
from typing import Any, NamedTuple

from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.functional.shape import reshape
from minigrad.tensor import Tensor

__all__ = ["sum", "mean", "max", "MaxResult"]


def normalize_dims(op: str, dim: Any, ndim: int) -> tuple[int, ...]:
    """``dim`` (None, int or sequence) as a sorted tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    out = []
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int):
            raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {dim!r}")
        if not -ndim <= d < builtins.max(ndim, 1):
            raise ValueError(f"{op}: dim {d} out of range for a {ndim}-D tensor")
        out.append(d % builtins.max(ndim, 1))
    return tuple(sorted(set(out)))


class Sum(Function):
    """y = sum of x over ``dims``; gx = gy broadcast back to x's shape."""

    def __init__(self, dims: tuple[int, ...], keepdim: bool) -> None:
        self.dims, self.keepdim = dims, keepdim

    def forward(self, x: Any) -> Any:
        self.x_shape = x.shape
        return x.sum(axis=self.dims, keepdims=self.keepdim)

    def backward(self, gy: Any) -> Any:
        xp = get_array_module(gy)
        if not self.keepdim:
            gy = gy.reshape([1 if i in self.dims else s for i, s in enumerate(self.x_shape)])
        return xp.broadcast_to(gy, self.x_shape).copy()

    def backward_graph(self, gy: Tensor) -> Tensor:
        return broadcast_to(_keep_dims(gy, self.dims, self.keepdim, self.x_shape), self.x_shape)


class Mean(Function):
    """y = mean of x over ``dims``; gx = gy / count broadcast back to x's shape."""

    def __init__(self, dims: tuple[int, ...], keepdim: bool) -> None:
        self.dims, self.keepdim = dims, keepdim

    def forward(self, x: Any) -> Any:
        self.x_shape = x.shape
        return x.mean(axis=self.dims, keepdims=self.keepdim)

    def backward(self, gy: Any) -> Any:
        xp = get_array_module(gy)
        count = 1
        for d in self.dims:
            count *= self.x_shape[d]
        if not self.keepdim:
            gy = gy.reshape([1 if i in self.dims else s for i, s in enumerate(self.x_shape)])
        return xp.broadcast_to(gy / count, self.x_shape).astype(gy.dtype, copy=True)

    def backward_graph(self, gy: Tensor) -> Tensor:
        count = math.prod(self.x_shape[d] for d in self.dims)
        g = _keep_dims(gy, self.dims, self.keepdim, self.x_shape)
        return broadcast_to(g * (1.0 / count), self.x_shape)


class Max(Function):
    """y = max of x along ``dim``; gx gets gy at the first maximum only, 0 elsewhere."""

    def __init__(self, dim: int | None, keepdim: bool) -> None:
        self.dim, self.keepdim = dim, keepdim

    def forward(self, x: Any) -> tuple[Any, Any]:
        xp = get_array_module(x)
        self.x_shape = x.shape
        flat = x.reshape(-1) if self.dim is None else x
        axis = 0 if self.dim is None else self.dim
        self.argmax = flat.argmax(axis=axis)
        y = xp.take_along_axis(flat, xp.expand_dims(self.argmax, axis), axis=axis)
        if self.dim is None:
            return y.reshape(()), self.argmax
        if not self.keepdim:
            y = y.squeeze(axis)
        return y, (xp.expand_dims(self.argmax, axis) if self.keepdim else self.argmax)

    def backward(self, gy: Any, _gidx: Any) -> Any:
        xp = get_array_module(gy)
        if self.dim is None:
            hit = xp.arange(math.prod(self.x_shape)) == self.argmax
            return (hit * gy).reshape(self.x_shape).astype(gy.dtype, copy=False)
        d = self.dim
        positions = xp.arange(self.x_shape[d]).reshape([-1] + [1] * (len(self.x_shape) - d - 1))
        hit = positions == xp.expand_dims(self.argmax, d)  # one-hot along dim
        g = gy if self.keepdim else xp.expand_dims(gy, d)
        return (hit * g).astype(gy.dtype, copy=False)

    def backward_graph(self, gy: Tensor, _gidx: Tensor) -> Tensor:
        """gx = one-hot(argmax) * gy broadcast back: linear in gy, the one-hot a constant."""
        xp = get_array_module(gy.data)
        if self.dim is None:
            hit = (xp.arange(math.prod(self.x_shape)) == self.argmax).reshape(self.x_shape)
            return broadcast_to(reshape(gy, (1,) * len(self.x_shape)), self.x_shape) * Tensor(
                hit.astype(gy.dtype)
            )
        d = self.dim
        positions = xp.arange(self.x_shape[d]).reshape([-1] + [1] * (len(self.x_shape) - d - 1))
        hit = positions == xp.expand_dims(self.argmax, d)
        g = _keep_dims(gy, (d,), self.keepdim, self.x_shape)
        return broadcast_to(g, self.x_shape) * Tensor(hit.astype(gy.dtype))


def _keep_dims(g: Tensor, dims: tuple[int, ...], keepdim: bool, x_shape: tuple[int, ...]) -> Tensor:
    """A reduction's gradient with its reduced dims back as size 1 (a view, differentiable)."""
    if keepdim:
        return g
    return reshape(g, tuple(1 if i in dims else s for i, s in enumerate(x_shape)))


class BroadcastTo(Function):
    """y = x broadcast to ``shape`` (NumPy's rules); gx = gy summed over the broadcast axes.

    Not public: the differentiable backward of the reductions (and :func:`sum_to` is its
    own backward's differentiable form).
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)

    def forward(self, x: Any) -> Any:
        self.x_shape = x.shape
        return get_array_module(x).broadcast_to(x, self.shape).copy()

    def backward(self, gy: Any) -> Any:
        lead = gy.ndim - len(self.x_shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, s in enumerate(self.x_shape) if s == 1 and gy.shape[lead + i] != 1
        )
        return gy.sum(axis=axes, keepdims=True).reshape(self.x_shape) if axes else gy

    def backward_graph(self, gy: Tensor) -> Tensor:
        return sum_to(gy, self.x_shape)


def broadcast_to(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    """x broadcast to ``shape`` (a copy; differentiable, its gradient sums back)."""
    return x if x.shape == tuple(shape) else BroadcastTo(tuple(shape)).apply(x)


def sum_to(g: Tensor, shape: tuple[int, ...]) -> Tensor:
    """g summed over the axes broadcasting added to ``shape`` (``unbroadcast`` on Tensors)."""
    shape = tuple(shape)
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1
    )
    return reshape(sum(g, axes, keepdim=True), shape)


class MaxResult(NamedTuple):
    """``max(x, dim)`` returns values and indices, like ``torch.max``."""

    values: Tensor
    indices: Tensor


def sum(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """Sum over ``dim`` (None: all dims; int or tuple)."""
    return Sum(normalize_dims("sum", dim, x.ndim), keepdim).apply(x)


def mean(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """Mean over ``dim`` (None: all dims; int or tuple).

    Departure from PyTorch (which raises): an integer or bool tensor is averaged in
    float32, so ``(pred == target).mean()`` gives an accuracy.
    """
    dims = normalize_dims("mean", dim, x.ndim)
    if x.dtype.kind != "f":
        x = Tensor(x.data.astype("float32"))
    return Mean(dims, keepdim).apply(x)


def max(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:
    """Maximum. With ``dim=None`` a 0-d tensor; with ``dim`` a ``(values, indices)`` tuple.

    The gradient goes to the first maximum when there are ties.
    """
    if x.numel() == 0:
        raise ValueError("max: empty tensor")
    if dim is None:
        values, _ = Max(None, False).apply(x)
        return values
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"max: dim must be an int or None, got {dim!r}")
    (d,) = normalize_dims("max", dim, x.ndim)
    values, indices = Max(d, keepdim).apply(x)
    indices.requires_grad = False
    return MaxResult(values, Tensor(indices.data))
