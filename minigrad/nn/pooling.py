"""Pooling layers over ``minigrad.functional``: ``MaxPool2d``, ``AvgPool2d``,
``AdaptiveAvgPool2d`` (PyTorch names and defaults; no dilation, no ``return_indices``)."""

from __future__ import annotations

from typing import Any

import minigrad.functional as F
from minigrad.nn.module import Module
from minigrad.tensor import Tensor

__all__ = ["AdaptiveAvgPool2d", "AvgPool2d", "MaxPool2d"]


class _Pool2d(Module):
    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.ceil_mode = ceil_mode

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"ceil_mode={self.ceil_mode}"
        )


class MaxPool2d(_Pool2d):
    """y = max over each window (padding counts as -inf); stride defaults to kernel_size."""

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> (N, C, OH, OW)
        return F.max_pool2d(
            x, self.kernel_size, stride=self.stride, padding=self.padding, ceil_mode=self.ceil_mode
        )


class AvgPool2d(_Pool2d):
    """y = mean over each window; ``count_include_pad`` counts padded zeros in the divisor."""

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = count_include_pad

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> (N, C, OH, OW)
        return F.avg_pool2d(
            x,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            ceil_mode=self.ceil_mode,
            count_include_pad=self.count_include_pad,
        )

    def extra_repr(self) -> str:
        return super().extra_repr() + f", count_include_pad={self.count_include_pad}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (e.g. ``(1, 1)``: global average pooling)."""

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> (N, C, *output_size)
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
