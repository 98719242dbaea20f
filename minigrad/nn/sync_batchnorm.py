"""``SyncBatchNorm``: batch normalization whose statistics cover the whole global batch.

With data parallelism each rank sees only its shard of the batch; plain ``BatchNorm2d``
would normalise by per-rank statistics (a smaller, noisier batch). ``SyncBatchNorm``
all-reduces the per-channel sums in forward and the two gradient sums in backward, so it
computes exactly what ``BatchNorm2d`` computes on the concatenated batch. In a
single-process world it equals ``BatchNorm2d``.

The op lives here rather than in :mod:`minigrad.functional` because it communicates:
functional ops do not depend on :mod:`minigrad.distributed`.
"""

from __future__ import annotations

from typing import Any

from minigrad import distributed as dist
from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.nn.module import Module
from minigrad.nn.normalization import BatchNorm2d, BatchNormReLU2d
from minigrad.tensor import Tensor

__all__ = ["SyncBatchNorm", "sync_batch_norm"]


class SyncBatchNormFunction(Function):
    """y = (x - mean) / sqrt(var + eps) * w + b, mean and (biased) var over every rank's batch;
    gx = (w/sigma) * (gy - sum_all(gy)/M - xhat * sum_all(gy * xhat)/M), M the global count
    per channel; gw = sum(gy * xhat), gb = sum(gy) over the local batch (DDP averages them).
    With ``relu``: y = max(y, 0) and gy is first masked by y > 0.

    Forward all-reduces one (2C + 1,) vector [sum x, sum x^2, count] (accumulated in float64);
    backward one (2C,) vector [sum gy, sum gy * xhat]. Because each rank's loss is the mean
    over its own shard and DDP averages gradients, ``gx`` here uses the sums over all ranks:
    the averaged weight gradients are then those of the mean loss over the global batch.
    """

    def __init__(
        self, running_mean: Any, running_var: Any, has_weight: bool, has_bias: bool,
        momentum: float, eps: float, relu: bool,
    ) -> None:  # fmt: skip
        self.running_mean, self.running_var = running_mean, running_var
        self.has_weight, self.has_bias = has_weight, has_bias
        self.momentum, self.eps, self.relu = momentum, eps, relu

    def forward(self, x: Any, *wb: Any) -> Any:
        xp = get_array_module(x)
        C = x.shape[1]
        axes = (0, *range(2, x.ndim))  # every axis but the channel axis
        bc = (1, C) + (1,) * (x.ndim - 2)  # a (C,) vector broadcast against x
        local = xp.concatenate(
            [
                x.sum(axis=axes, dtype=xp.float64),
                xp.square(x).sum(axis=axes, dtype=xp.float64),
                xp.full(1, x.size // C, dtype=xp.float64),
            ]
        )  # (2C + 1,)
        total = dist.all_reduce(local)
        M = float(total[2 * C])  # values per channel over all ranks
        if M <= 1:
            raise ValueError(
                f"SyncBatchNorm: expected more than 1 value per channel over all ranks, got {M:g}"
            )
        mean64 = total[:C] / M
        var64 = xp.maximum(total[C : 2 * C] / M - mean64 * mean64, 0.0)  # biased
        mean, var = mean64.astype(x.dtype), var64.astype(x.dtype)
        inv_std = 1 / xp.sqrt(var + x.dtype.type(self.eps))  # (C,)
        xhat = (x - mean.reshape(bc)) * inv_std.reshape(bc)  # (N, C, *S)
        w = wb[0] if self.has_weight else None
        b = wb[-1] if self.has_bias else None
        y = xhat * w.reshape(bc) if w is not None else xhat.copy()
        if b is not None:
            y += b.reshape(bc)
        self.mask = None
        if self.relu:
            self.mask = y > 0
            y *= self.mask
        if self.running_mean is not None:
            m = self.momentum
            self.running_mean[...] = (1 - m) * self.running_mean + m * mean
            unbiased = (var64 * (M / (M - 1))).astype(x.dtype)
            self.running_var[...] = (1 - m) * self.running_var + m * unbiased
        self.xhat, self.inv_std, self.w, self.M, self.axes, self.bc = xhat, inv_std, w, M, axes, bc
        return y

    def backward(self, gy: Any) -> tuple[Any, ...]:
        xp = get_array_module(gy)
        if self.mask is not None:
            gy = gy * self.mask
        C = gy.shape[1]
        gb = gy.sum(axis=self.axes)  # (C,) local sum(gy)
        gw = (gy * self.xhat).sum(axis=self.axes)  # (C,) local sum(gy * xhat)
        gx = None
        if self.needs_input_grad[0]:
            total = dist.all_reduce(xp.concatenate([gb, gw]))  # (2C,)
            sum_gy, sum_gyx = total[:C].reshape(self.bc), total[C:].reshape(self.bc)
            scale = self.inv_std if self.w is None else self.inv_std * self.w
            gx = scale.reshape(self.bc) * (gy - sum_gy / self.M - self.xhat * (sum_gyx / self.M))
        grads: list[Any] = [gx]
        if self.has_weight:
            grads.append(gw)
        if self.has_bias:
            grads.append(gb)
        return tuple(grads)


def sync_batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    momentum: float = 0.1,
    eps: float = 1e-5,
    relu: bool = False,
) -> Tensor:
    """Training-mode ``batch_norm`` with the statistics of the batch over all ranks.

    Args:
        x: (N, C, *S) on this rank; N may differ between ranks.
        running_mean, running_var: (C,) Tensors updated in place, or None.
        weight, bias: (C,) affine parameters or None.
        momentum, eps, relu: as :func:`minigrad.functional.batch_norm`.

    Raises:
        ValueError: ``x`` with fewer than 2 dims, or at most one value per channel over all
            ranks.
    """
    if x.ndim < 2:
        raise ValueError(
            f"sync_batch_norm: expected an input with 2 or more dims (N, C, ...), got {x.shape}"
        )
    rm = running_mean.data if running_mean is not None else None
    rv = running_var.data if running_var is not None else None
    fn = SyncBatchNormFunction(rm, rv, weight is not None, bias is not None, momentum, eps, relu)
    return fn.apply(x, *(t for t in (weight, bias) if t is not None))


class SyncBatchNorm(BatchNorm2d):
    """``BatchNorm2d`` whose training statistics are over the global batch (all ranks).

    Same arguments, parameters, buffers and ``state_dict`` keys as :class:`BatchNorm2d`
    (a checkpoint moves freely between the two); eval mode uses the running statistics
    and communicates nothing. :class:`SyncBatchNormReLU2d` is the fused BN+ReLU.
    """

    def _normalize(self, x: Tensor, relu: bool) -> Tensor:  # (N, C, H, W) -> same
        if not (self.training or self.running_mean is None):
            return super()._normalize(x, relu=relu)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked.item())
        return sync_batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias,
            momentum=momentum, eps=self.eps, relu=relu,
        )  # fmt: skip

    @classmethod
    def convert_sync_batchnorm(cls, module: Module) -> Module:
        """Replace every ``BatchNorm2d`` in ``module`` by a ``SyncBatchNorm`` sharing its
        parameters and buffers (so an optimizer built before still updates them).

        A fused ``BatchNormReLU2d`` becomes a :class:`SyncBatchNormReLU2d`. Returns
        ``module`` (or the new layer when ``module`` itself is a ``BatchNorm2d``).
        """
        if isinstance(module, BatchNorm2d) and not isinstance(module, SyncBatchNorm):
            target = SyncBatchNormReLU2d if isinstance(module, BatchNormReLU2d) else SyncBatchNorm
            return target._from_batchnorm(module)
        for name, child in list(module.named_children()):
            converted = cls.convert_sync_batchnorm(child)
            if converted is not child:
                setattr(module, name, converted)
        return module

    @classmethod
    def _from_batchnorm(cls, bn: BatchNorm2d) -> SyncBatchNorm:
        a = bn.running_mean if bn.running_mean is not None else bn.weight
        dtype, device = (a.dtype, a.device) if a is not None else ("float32", "cpu")
        sbn = cls(
            bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats,
            dtype=dtype, device=device,
        )  # fmt: skip
        for name, p in bn._parameters.items():
            setattr(sbn, name, p)
        for name, t in bn._buffers.items():
            setattr(sbn, name, t)
        sbn.train(bn.training)
        return sbn


class SyncBatchNormReLU2d(SyncBatchNorm):
    """y = relu(sync_bn(x)) as one fused op: the synchronised :class:`BatchNormReLU2d`."""

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> same
        return self._normalize(x, relu=True)
