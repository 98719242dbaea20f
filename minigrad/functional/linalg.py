"""Matrix products: batched ``matmul`` and ``linear``."""

from __future__ import annotations

from typing import Any

from minigrad.autograd import Function
from minigrad.functional.elementwise import unbroadcast
from minigrad.functional.reduce import sum, sum_to
from minigrad.functional.shape import reshape, transpose
from minigrad.tensor import Tensor

__all__ = ["matmul", "linear"]


class MatMul(Function):
    """y = a @ b over the last two axes (batch axes broadcast); ga = gy @ b^T, gb = a^T @ gy."""

    def forward(self, a: Any, b: Any) -> Any:
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy: Any) -> tuple[Any, Any]:
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = unbroadcast(gy @ self.b.swapaxes(-1, -2), self.a.shape)
        if self.needs_input_grad[1]:
            gb = unbroadcast(self.a.swapaxes(-1, -2) @ gy, self.b.shape)
        return ga, gb

    def backward_graph(self, gy: Tensor) -> tuple[Any, Any]:
        a, b = self.inputs
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = sum_to(MatMul().apply(gy, transpose(b, -1, -2)), a.shape)
        if self.needs_input_grad[1]:
            gb = sum_to(MatMul().apply(transpose(a, -1, -2), gy), b.shape)
        return ga, gb


class Linear(Function):
    """y = x w^T + b, x (*, in), w (out, in); gx = gy w, gw = gy^T x, gb = sum of gy."""

    def forward(self, x: Any, w: Any, b: Any = None) -> Any:
        self.x, self.w = x, w
        y = x @ w.T  # (*, out)
        if b is not None:
            y += b
        return y

    def backward(self, gy: Any) -> tuple[Any, ...]:
        gx = gy @ self.w if self.needs_input_grad[0] else None
        gy2 = gy.reshape(-1, gy.shape[-1])  # (M, out)
        gw = gy2.T @ self.x.reshape(-1, self.x.shape[-1]) if self.needs_input_grad[1] else None
        if len(self.needs_input_grad) == 2:
            return gx, gw
        return gx, gw, gy2.sum(axis=0)

    def backward_graph(self, gy: Tensor) -> tuple[Any, ...]:
        x, w = self.inputs[:2]
        gx = MatMul().apply(gy, w) if self.needs_input_grad[0] else None
        gy2 = reshape(gy, (-1, gy.shape[-1]))  # (M, out)
        x2 = reshape(x, (-1, x.shape[-1]))  # (M, in)
        gw = MatMul().apply(transpose(gy2, 0, 1), x2) if self.needs_input_grad[1] else None
        if len(self.needs_input_grad) == 2:
            return gx, gw
        return gx, gw, sum(gy2, 0)


def _same_kind(op: str, *ts: Tensor) -> None:
    """Reject a float operand next to an integer one (NumPy would silently give float64)."""
    kinds = {t.dtype.kind == "f" for t in ts}
    if len(kinds) > 1:
        dtypes = ", ".join(str(t.dtype) for t in ts)
        raise TypeError(f"{op}: operands must all be floating point or all integer, got {dtypes}")


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product with NumPy semantics (1-D operands are promoted, batch dims broadcast)."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need >= 1 dim, got {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align")
    batch_a, batch_b = a.shape[:-2], b.shape[:-2]
    for da, db in zip(reversed(batch_a), reversed(batch_b)):
        if da != db and 1 not in (da, db):
            raise ValueError(
                f"matmul: batch dims {batch_a} and {batch_b} of shapes {a.shape} and "
                f"{b.shape} do not broadcast"
            )
    _same_kind("matmul", a, b)
    a2 = reshape(a, (1, a.shape[0])) if a.ndim == 1 else a
    b2 = reshape(b, (b.shape[0], 1)) if b.ndim == 1 else b
    y = MatMul().apply(a2, b2)
    if a.ndim == 1 or b.ndim == 1:
        shape = (
            y.shape[:-2]
            + ((y.shape[-2],) if a.ndim > 1 else ())
            + ((y.shape[-1],) if b.ndim > 1 else ())
        )
        y = reshape(y, shape)
    return y


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x @ weight.T + bias, with x (*, in_features) and weight (out_features, in_features)."""
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out, in), got shape {weight.shape}")
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input has {x.shape[-1] if x.ndim else 0} features (shape {x.shape}) "
            f"but weight expects {weight.shape[1]} (weight shape {weight.shape})"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias shape {bias.shape} != ({weight.shape[0]},)")
    args = (x, weight) if bias is None else (x, weight, bias)
    _same_kind("linear", *args)
    return Linear().apply(*args)
