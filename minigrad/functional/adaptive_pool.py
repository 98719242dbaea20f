"""Adaptive average pooling to a fixed output size, with a hand-written backward pass.

Unlike the window pools of ``pool.py`` its windows vary in size, so it is two small
matrix products with row-averaging matrices (or a mean, for the two common cases).
"""

from __future__ import annotations

from typing import Any

from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.devices import tf32_enabled
from minigrad.functional import _checks
from minigrad.tensor import Tensor

__all__ = ["adaptive_avg_pool2d"]


def _product(a: Any, b: Any) -> Any:
    """``a @ b`` (batch axes broadcast). An average, not a layer's product: while TF32 is on
    (conv and linear only) the sums are taken elementwise, in full precision."""
    if tf32_enabled():
        return (a[..., :, :, None] * b[..., None, :, :]).sum(axis=-2)
    return get_array_module(a).matmul(a, b)


class AdaptiveAvgPool2d(Function):
    """y = Ph @ x @ Pw^T with row-averaging matrices Ph (OH, H), Pw (OW, W); gx = Ph^T gy Pw."""

    def __init__(self, output_size: tuple[int, int]) -> None:
        self.output_size = output_size

    @staticmethod
    def _averaging_matrix(xp: Any, size: int, out: int, dtype: Any) -> Any:
        """(out, size): row i averages [floor(i*size/out), ceil((i+1)*size/out))."""
        i = xp.arange(out)
        start = (i * size) // out
        end = ((i + 1) * size + out - 1) // out
        h = xp.arange(size)
        inside = (h[None, :] >= start[:, None]) & (h[None, :] < end[:, None])
        return (inside / (end - start)[:, None]).astype(dtype)

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        N, C, H, W = x.shape
        OH, OW = self.output_size
        self.x_shape = x.shape
        if OH == OW == 1:  # global average pooling
            self.mode = "global"
            return x.mean(axis=(2, 3), keepdims=True)
        if H % OH == 0 and W % OW == 0:  # equal, non-overlapping windows
            self.mode = "blocks"
            return x.reshape(N, C, OH, H // OH, OW, W // OW).mean(axis=(3, 5))
        self.mode = "matrix"
        self.Ph = self._averaging_matrix(xp, H, OH, x.dtype)  # (OH, H)
        self.Pw = self._averaging_matrix(xp, W, OW, x.dtype)  # (OW, W)
        t = _product(x.reshape(N * C * H, W), self.Pw.T).reshape(N * C, H, OW)
        return _product(self.Ph, t).reshape(N, C, OH, OW)

    def backward(self, gy: Any) -> Any:
        xp = get_array_module(gy)
        N, C, H, W = self.x_shape
        OH, OW = self.output_size
        if self.mode == "matrix":
            t = _product(self.Ph.T, gy.reshape(N * C, OH, OW))  # (N*C, H, OW)
            return _product(t.reshape(N * C * H, OW), self.Pw).reshape(N, C, H, W)
        kh, kw = H // OH, W // OW
        g = gy * (1.0 / (kh * kw))  # (N, C, OH, OW)
        gx = xp.empty((N, C, OH, kh, OW, kw), dtype=gy.dtype)
        gx[...] = g[:, :, :, None, :, None]
        return gx.reshape(N, C, H, W)

    def backward_graph(self, gy: Tensor) -> Tensor:
        """gx = :class:`AdaptiveAvgPoolGrad` of gy (linear; its backward is this pool)."""
        return AdaptiveAvgPoolGrad(self).apply(gy)


class AdaptiveAvgPoolGrad(Function):
    """gx = adaptive_avg_pool2d's backward of gy; ggy = adaptive_avg_pool2d(ggx)."""

    def __init__(self, pool: AdaptiveAvgPool2d) -> None:
        self.pool = AdaptiveAvgPool2d(pool.output_size)  # a copy of what backward reads
        self.pool.x_shape, self.pool.mode = pool.x_shape, pool.mode
        if pool.mode == "matrix":
            self.pool.Ph, self.pool.Pw = pool.Ph, pool.Pw

    def forward(self, gy: Any) -> Any:
        return self.pool.backward(gy)

    def backward(self, ggx: Any) -> Any:
        return AdaptiveAvgPool2d(self.pool.output_size).forward(ggx)

    def backward_graph(self, ggx: Tensor) -> Tensor:
        return AdaptiveAvgPool2d(self.pool.output_size).apply(ggx)


def adaptive_avg_pool2d(x: Tensor, output_size: int | tuple[int, int]) -> Tensor:
    """Average pooling to a fixed output size, as ``torch.nn.functional.adaptive_avg_pool2d``.

    Output cell ``(i, j)`` averages input rows ``[floor(i*H/OH), ceil((i+1)*H/OH))`` and the
    columns given by the same rule. ``output_size=1`` is global average pooling. Fast paths
    for that and for ``H % OH == W % OW == 0``; otherwise two small matrix products.
    ``None`` entries in ``output_size`` (keep that input size) are not supported.

    Args:
        x: (N, C, H, W) floating-point tensor.
        output_size: int or (OH, OW), positive.

    Returns:
        (N, C, OH, OW) tensor of ``x``'s dtype.

    Raises:
        ValueError: input not 4-D, output_size <= 0.
        TypeError: non-float input, output_size not int or pair.
    """
    op = "adaptive_avg_pool2d"
    _checks.image_batch(op, x)
    size = _checks.positive(op, "output_size", _checks.int_pair(op, "output_size", output_size))
    return AdaptiveAvgPool2d(size).apply(x)
