"""Matrix products: batched ``matmul`` and ``linear``."""

from __future__ import annotations

from typing import Any

import numpy as np

from minigrad.autograd import Function
from minigrad.functional._threads import for_blocks, gemm_threads
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


#: weight elements per chunk of a linear layer's chunked path: a memory-bound product at a
#: small batch (GoogLeNet's aux heads: a 1024 x 2048 weight at batch 8-32), so one chunk
#: per host thread from 2^20 elements on
LINEAR_CHUNK_ELEMENTS = 1 << 20


class Linear(Function):
    """y = x w^T + b, x (*, in), w (out, in); gx = gy w, gw = gy^T x, gb = sum of gy.

    Paths (all in this module):
        reference: ``forward``/``backward``.
        chunked: ``forward_chunked``/``backward_chunked``, the same products on slices of
            the out features on the host threads (``_threads.for_blocks``): y's columns
            and gw's rows of those features, and gx's columns of the matching share of
            the in features (NumPy floats of one dtype; else the reference).
    """

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
        return self._grads_out(gx, gw, gy2)

    def _grads_out(self, gx: Any, gw: Any, gy2: Any) -> tuple[Any, ...]:
        """What a backward returns: (gx, gw), and gb = the sum of gy2's rows with a bias."""
        if len(self.needs_input_grad) == 2:
            return gx, gw
        return gx, gw, gy2.sum(axis=0)

    def path_applies(self, path: str, xs: tuple[Any, ...]) -> bool:
        """The chunked path: NumPy float operands of one dtype (else the reference)."""
        x, w = xs[:2]
        same_float = x.dtype == w.dtype and w.dtype.kind == "f"
        return same_float and all(type(a) is np.ndarray for a in xs)

    def forward_chunked(self, x: Any, w: Any, b: Any = None) -> Any:
        self.x, self.w = x, w
        x2 = x.reshape(-1, x.shape[-1])  # (M, in)
        y2 = np.empty((x2.shape[0], w.shape[0]), dtype=x.dtype)  # (M, out)

        def chunk(os: slice) -> None:  # out features os
            np.matmul(x2, w[os].T, out=y2[:, os])
            if b is not None:
                y2[:, os] += b[os]

        for_blocks(chunk, w.shape[0], w.size, w, LINEAR_CHUNK_ELEMENTS, gemm_threads())
        return y2.reshape(*x.shape[:-1], w.shape[0])

    def backward_chunked(self, gy: Any) -> tuple[Any, ...]:
        w, n_out, n_in = self.w, *self.w.shape
        gy2 = gy.reshape(-1, n_out)  # (M, out)
        x2 = self.x.reshape(-1, n_in)  # (M, in)
        need_x, need_w = self.needs_input_grad[:2]
        gx2 = np.empty((gy2.shape[0], n_in), dtype=gy.dtype) if need_x else None
        gw = np.empty_like(w) if need_w else None

        def chunk(os: slice) -> None:  # gw's rows os, and gx's columns of the same share
            if need_w:
                np.matmul(gy2[:, os].T, x2, out=gw[os])
            if need_x:
                cols = slice(os.start * n_in // n_out, os.stop * n_in // n_out)
                np.matmul(gy2, w[:, cols], out=gx2[:, cols])

        for_blocks(chunk, n_out, w.size, w, LINEAR_CHUNK_ELEMENTS, gemm_threads())
        return self._grads_out(gx2.reshape(self.x.shape) if need_x else None, gw, gy2)

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
