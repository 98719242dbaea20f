"""2-D convolution: im2col + one matrix product, with a hand-written backward."""

from __future__ import annotations

from typing import Any

from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.functional._im2col import col2im, conv_output_size, im2col, pair
from minigrad.tensor import Tensor

__all__ = ["conv2d"]


class Conv2d(Function):
    """y = w2 @ im2col(x) + b; gw = gy2 @ col^T, gx = col2im(w2^T @ gy2), gb = sum of gy.

    ``col`` is not kept for backward: it is ``KH*KW`` times the input (25x for a 5x5
    layer), and making it again from the input, which the graph keeps anyway, costs one
    copy next to the three matrix products.
    """

    def __init__(self, stride: tuple[int, int], padding: tuple[int, int]) -> None:
        self.stride = stride
        self.padding = padding

    def forward(self, x: Any, w: Any, b: Any = None) -> Any:
        xp = get_array_module(x)
        N, C, H, W = x.shape
        C_out, _, KH, KW = w.shape
        (sh, sw), (ph, pw) = self.stride, self.padding
        OH = conv_output_size(H, KH, sh, ph)
        OW = conv_output_size(W, KW, sw, pw)
        self.x_shape, self.w_shape = x.shape, w.shape
        needs_x, needs_w = self.needs_input_grad[0], self.needs_input_grad[1]
        w2 = w.reshape(C_out, C * KH * KW)
        if needs_x:
            self.w2 = w2
        self.pointwise = KH == KW == sh == sw == 1 and ph == pw == 0
        if self.pointwise:
            # 1x1, stride 1, no padding: no im2col, one (batched) product lands in NCHW
            x3 = x.reshape(N, C, H * W)
            y = w2 @ x3  # (N, C_out, H*W)
            if b is not None:
                y += b.reshape(C_out, 1)
            if needs_w:
                self.x3 = x3
            return y.reshape(N, C_out, OH, OW)
        col = im2col(x, KH, KW, self.stride, self.padding)  # (C*KH*KW, N*OH*OW)
        if needs_w:
            self.x = x  # for im2col again in backward (gw = gy2 @ col.T); gx needs no col
        if OH * OW >= 256:
            # one product per image, (C_out, K) @ (K, OH*OW) on column block n of col (a
            # strided view BLAS takes as is), lands in NCHW: no (C_out, N*OH*OW) temporary
            # and no transposed copy; on maps under 16x16 the small products lose more
            y3 = xp.empty((N, C_out, OH * OW), dtype=x.dtype)
            xp.matmul(w2, col.reshape(-1, N, OH * OW).transpose(1, 0, 2), out=y3)
            if b is not None:
                y3 += b.reshape(C_out, 1)
            return y3.reshape(N, C_out, OH, OW)
        y2 = w2 @ col  # (C_out, N*OH*OW)
        del col  # KH*KW times the input: backward makes it again rather than keep it
        y = xp.empty((N, C_out, OH, OW), dtype=y2.dtype)
        y_t = y.transpose(1, 0, 2, 3)  # (C_out, N, OH, OW) view of y
        if b is None:
            y_t[...] = y2.reshape(C_out, N, OH, OW)
        else:  # the bias add rides along with the layout change
            xp.add(y2.reshape(C_out, N, OH, OW), b.reshape(C_out, 1, 1, 1), out=y_t)
        return y

    def backward(self, gy: Any) -> tuple[Any, ...]:
        if self.pointwise:
            gx, gw, gb = self._backward_pointwise(gy)
        else:
            gx, gw, gb = self._backward_im2col(gy)
        return (gx, gw) if len(self.needs_input_grad) == 2 else (gx, gw, gb)

    def _backward_im2col(self, gy: Any) -> tuple[Any, Any, Any]:
        xp = get_array_module(gy)
        N, C_out, OH, OW = gy.shape
        KH, KW = self.w_shape[2], self.w_shape[3]
        gy2 = xp.ascontiguousarray(gy.transpose(1, 0, 2, 3)).reshape(C_out, N * OH * OW)
        gx = gw = gb = col = None
        if self.needs_input_grad[1]:
            col = im2col(self.x, KH, KW, self.stride, self.padding)  # (C*KH*KW, N*OH*OW)
            gw = (gy2 @ col.T).reshape(self.w_shape)  # (C_out, C, KH, KW)
        if self.needs_input_grad[0]:
            # gcol has col's shape: write it into col's buffer (no second buffer of that size)
            gcol = self.w2.T @ gy2 if col is None else xp.matmul(self.w2.T, gy2, out=col)
            gx = col2im(gcol, self.x_shape, KH, KW, self.stride, self.padding)
            del gcol
        del col
        if len(self.needs_input_grad) == 3 and self.needs_input_grad[2]:
            gb = gy2.sum(axis=1)
        return gx, gw, gb

    def _backward_pointwise(self, gy: Any) -> tuple[Any, Any, Any]:
        xp = get_array_module(gy)
        N, C, H, W = self.x_shape
        C_out = gy.shape[1]
        gy3 = gy.reshape(N, C_out, H * W)
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            gx = (self.w2.T @ gy3).reshape(self.x_shape)  # (N, C, H, W)
        if self.needs_input_grad[1]:
            x3 = self.x3
            if C_out * C <= (C_out + C) * H * W:
                # per-image products summed: the (N, C_out, C) temporary is smaller than
                # the two (N, C) <-> (C, N) transposed copies a single product would need
                gw = (gy3 @ x3.transpose(0, 2, 1)).sum(axis=0)  # (C_out, C)
            else:
                gy2 = xp.ascontiguousarray(gy3.transpose(1, 0, 2)).reshape(C_out, N * H * W)
                x2 = xp.ascontiguousarray(x3.transpose(1, 0, 2)).reshape(C, N * H * W)
                gw = gy2 @ x2.T  # (C_out, C)
            gw = gw.reshape(self.w_shape)
        if len(self.needs_input_grad) == 3 and self.needs_input_grad[2]:
            gb = gy3.sum(axis=(0, 2))
        return gx, gw, gb


def _check_positive(op: str, name: str, value: tuple[int, int], allow_zero: bool) -> None:
    low = 0 if allow_zero else 1
    if value[0] < low or value[1] < low:
        rule = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{op}: {name} must be {rule}, got {value}")


def _check_pair(op: str, name: str, value: Any) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        ok = len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    else:
        ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok:
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return pair(value)


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> Tensor:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d`` (no dilation, no groups).

    ``y[n, o, p, q] = b[o] + sum_{c,i,j} w[o, c, i, j] * x_pad[n, c, p*sh + i, q*sw + j]``,
    with ``x_pad`` zero-padded by ``padding`` on each side and
    ``OH = floor((H + 2 ph - KH) / sh) + 1`` (likewise ``OW``).

    Computed as im2col + one matrix product; a 1x1 convolution with stride 1 and no padding
    skips im2col. The backward pass is hand-written (``gw`` from the im2col buffer, ``gx``
    through col2im) and only computes the gradients that are needed.

    Args:
        x: input (N, C_in, H, W), floating point.
        weight: (C_out, C_in, KH, KW), same dtype and device as ``x``.
        bias: optional (C_out,).
        stride: int or (sh, sw), positive.
        padding: int or (ph, pw), non-negative (zeros).

    Returns:
        (N, C_out, OH, OW) tensor, C-contiguous, of ``x``'s dtype.

    Raises:
        ValueError: wrong ndim, channel mismatch, bad bias shape, non-positive stride,
            negative padding, or a kernel larger than the padded input.
        TypeError: non-float input, mixed float dtypes, stride/padding not int or pair.
    """
    op = "conv2d"
    for name, t in (("input", x), ("weight", weight), ("bias", bias)):
        if t is not None and not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(
            f"{op}: weight must be 4-D (C_out, C_in, KH, KW), got shape {weight.shape}"
        )
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: input must be floating point, got dtype {x.dtype}")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"{op}: input has {x.shape[1]} channels (shape {x.shape}) but weight expects "
            f"{weight.shape[1]} (weight shape {weight.shape})"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"{op}: bias shape {bias.shape} != ({weight.shape[0]},)")
    s = _check_pair(op, "stride", stride)
    p = _check_pair(op, "padding", padding)
    _check_positive(op, "stride", s, allow_zero=False)
    _check_positive(op, "padding", p, allow_zero=True)
    H, W = x.shape[2], x.shape[3]
    KH, KW = weight.shape[2], weight.shape[3]
    if KH < 1 or KW < 1 or KH > H + 2 * p[0] or KW > W + 2 * p[1]:
        raise ValueError(
            f"{op}: kernel size ({KH}, {KW}) is larger than the padded input "
            f"({H + 2 * p[0]}, {W + 2 * p[1]}) (input {H}x{W}, padding {p})"
        )
    args = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d(s, p).apply(*args)
