"""Normalisation layers: ``BatchNorm2d`` (running statistics as buffers), ``BatchNormReLU2d``
(the same followed by ReLU, fused) and
``LocalResponseNorm`` (the GoogLeNet paper's LRN), over ``minigrad.functional``."""

from __future__ import annotations

from typing import Any

import minigrad.functional as F
from minigrad.nn import init
from minigrad.nn.layers import make_parameter
from minigrad.nn.module import Module
from minigrad.remat import is_recomputing
from minigrad.tensor import Tensor, ones, zeros

__all__ = ["BatchNorm2d", "BatchNormReLU2d", "LocalResponseNorm"]


class BatchNorm2d(Module):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, per channel of (N, C, H, W).

    In training mode the batch statistics are used and the running ones updated as
    ``running = (1 - momentum) * running + momentum * batch`` (unbiased variance), as in
    PyTorch; ``momentum=None`` gives a cumulative average over ``num_batches_tracked``.
    In eval mode the running statistics are used.

    Buffers: ``running_mean`` (C,), ``running_var`` (C,), ``num_batches_tracked`` (int64
    scalar), all in ``state_dict``. Parameters (``affine=True``): ``weight`` (C,),
    ``bias`` (C,). Init (PyTorch's, :meth:`reset_parameters`): weight 1, bias 0,
    running_mean 0, running_var 1, num_batches_tracked 0.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: Any = "float32",
        device: Any = "cpu",
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(
                f"BatchNorm2d: num_features must be a positive int, got {num_features!r}"
            )
        if eps <= 0:
            raise ValueError(f"BatchNorm2d: eps must be > 0, got {eps}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm2d: momentum must be in [0, 1] or None, got {momentum}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = make_parameter(num_features, dtype=dtype, device=device)
            self.bias = make_parameter(num_features, dtype=dtype, device=device)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, dtype=dtype, device=device))
            self.register_buffer("running_var", ones(num_features, dtype=dtype, device=device))
            self.register_buffer("num_batches_tracked", zeros((), dtype="int64", device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """running_mean 0, running_var 1, num_batches_tracked 0."""
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            self.num_batches_tracked.copy_(0)

    def reset_parameters(self) -> None:
        """The default init: running statistics reset, weight 1, bias 0 (as PyTorch)."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> same
        return self._normalize(x, relu=False)

    def _normalize(self, x: Tensor, relu: bool) -> Tensor:
        """``bn(x)``, or ``relu(bn(x))`` as one fused op when ``relu``."""
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and not is_recomputing():
            self.num_batches_tracked.data += 1  # once per step, not again in a replay
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked.item())
        # batch statistics in training, and always when no running statistics are kept
        use_batch_stats = self.training or self.running_mean is None
        return self._batch_norm(x, use_batch_stats, momentum, relu)

    def _batch_norm(self, x: Tensor, training: bool, momentum: float, relu: bool) -> Tensor:
        """The op that normalises (``SyncBatchNorm`` swaps in its all-ranks statistics)."""
        return F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            weight=self.weight,
            bias=self.bias,
            training=training,
            momentum=momentum,
            eps=self.eps,
            relu=relu,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class BatchNormReLU2d(BatchNorm2d):
    """y = relu(bn(x)): ``BatchNorm2d`` followed by ReLU, as one fused op.

    The same parameters, buffers and ``state_dict`` keys as :class:`BatchNorm2d`; the
    forward is ``F.batch_norm(..., relu=True)``: one pass over the activations and a 1-byte
    mask saved for the backward, instead of a second op that keeps its own input.
    """

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> same
        return self._normalize(x, relu=True)


class LocalResponseNorm(Module):
    """y = x / (k + alpha/size * sum of x^2 over ``size`` neighbouring channels)^beta."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"LocalResponseNorm: size must be a positive int, got {size!r}")
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> (N, C, H, W)
        return F.local_response_norm(x, self.size, alpha=self.alpha, beta=self.beta, k=self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
