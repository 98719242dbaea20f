"""Layers with parameters or modes, over ``minigrad.functional``: PyTorch names and defaults.

``Linear``, ``Conv2d``, ``ReLU``, ``Dropout``, ``Flatten``, ``Identity``. Every layer with
parameters accepts ``dtype`` (default float32) and ``device`` (default ``"cpu"``); build
float64 layers for ``gradcheck``. Default initialisation is PyTorch's: weights
``kaiming_uniform_(a=sqrt(5))`` (U(+-1/sqrt(fan_in))), biases U(+-1/sqrt(fan_in)).
"""

from __future__ import annotations

import math
from typing import Any

import minigrad.functional as F
from minigrad.functional import _checks
from minigrad.nn import init
from minigrad.nn.module import Module, Parameter
from minigrad.tensor import Tensor, zeros

__all__ = ["Conv2d", "Dropout", "Flatten", "Identity", "Linear", "ReLU", "make_parameter"]


def make_parameter(*shape: int, dtype: Any = "float32", device: Any = "cpu") -> Parameter:
    """A zero-filled Parameter of ``shape`` (fill it with ``nn.init``)."""
    return Parameter(zeros(*shape, dtype=dtype, device=device))


def _positive(layer: str, **values: int) -> None:
    for name, v in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{layer}: {name} must be a positive int, got {v!r}")


def reset_default(weight: Tensor, bias: Tensor | None) -> None:
    """PyTorch's default init of a conv/linear layer, in place.

    ``weight ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (``kaiming_uniform_(a=sqrt(5))``: gain
    sqrt(2 / (1 + 5)) = 1/sqrt(3), bound gain * sqrt(3 / fan_in)), so std = 1/sqrt(3 fan_in);
    ``bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``. ``fan_in`` = in_features, or
    in_channels * KH * KW.
    """
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        bound = 1 / math.sqrt(init.fan_in(weight))
        init.uniform_(bias, -bound, bound)


class Linear(Module):
    """y = x W^T + b; weight (out_features, in_features), bias (out_features,).

    Init (PyTorch's, :func:`reset_default`): weight and bias ~ U(+-1/sqrt(in_features)).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype: Any = "float32",
        device: Any = "cpu",
    ) -> None:
        super().__init__()
        _positive("Linear", in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = make_parameter(out_features, in_features, dtype=dtype, device=device)
        if bias:
            self.bias = make_parameter(out_features, dtype=dtype, device=device)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Redraw weight and bias from the default init (U(+-1/sqrt(fan_in)))."""
        reset_default(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:  # (*, in) -> (*, out)
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Conv2d(Module):
    """2-D convolution (cross-correlation); weight (out, in, KH, KW), bias (out,).

    No dilation and no groups (``F.conv2d`` has neither). Init (PyTorch's,
    :func:`reset_default`): weight and bias ~ U(+-1/sqrt(fan_in)), fan_in = in * KH * KW.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        dtype: Any = "float32",
        device: Any = "cpu",
    ) -> None:
        super().__init__()
        _positive("Conv2d", in_channels=in_channels, out_channels=out_channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _checks.int_pair("Conv2d", "kernel_size", kernel_size)
        self.stride = _checks.int_pair("Conv2d", "stride", stride)
        self.padding = _checks.int_pair("Conv2d", "padding", padding)
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(
                f"Conv2d: need kernel_size >= 1, stride >= 1, padding >= 0; got "
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
            )
        KH, KW = self.kernel_size
        self.weight = make_parameter(out_channels, in_channels, KH, KW, dtype=dtype, device=device)
        if bias:
            self.bias = make_parameter(out_channels, dtype=dtype, device=device)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Redraw weight and bias from the default init (U(+-1/sqrt(fan_in)))."""
        reset_default(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:  # (N, C_in, H, W) -> (N, C_out, OH, OW)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.bias is None:
            s += ", bias=False"
        return s


class ReLU(Module):
    """y = max(x, 0)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class Dropout(Module):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) in training;
    the identity in eval mode."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, p=self.p, training=self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Flatten(Module):
    """Flatten dims ``start_dim..end_dim`` into one: (N, C, H, W) -> (N, C*H*W) by default."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Identity(Module):
    """y = x (a placeholder, e.g. where an optional layer is switched off)."""

    def forward(self, x: Any) -> Any:
        return x
