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
from minigrad.backend import get_array_module
from minigrad.functional.batchnorm import BatchNorm
from minigrad.nn.module import Module
from minigrad.nn.normalization import BatchNorm2d, BatchNormReLU2d
from minigrad.tensor import Tensor

__all__ = ["SyncBatchNorm", "sync_batch_norm"]


class SyncBatchNormFunction(BatchNorm):
    """Training-mode batch norm whose statistics cover every rank's batch: any path of
    :class:`~minigrad.functional.batchnorm.BatchNorm` (reference, chunked, CUDA) with the two
    hooks between its steps all-reduced.

    mean and (biased) var over all ranks, M the global count per channel;
    gx = (w/sigma) * (gy - sum_all(gy)/M - xhat * sum_all(gy * xhat)/M); gw = sum(gy * xhat),
    gb = sum(gy) over the local batch (DDP averages them). With ``relu``: y = max(y, 0) and
    gy is first masked by y > 0.

    Forward all-reduces one (2C + 1,) float64 vector [sum (x - K), sum (x - K)^2, count],
    made from this rank's mean and variance, with K the running mean (the same on every
    rank; 0 without running statistics), so that the variance loses no precision to a
    mean far from 0; backward one (2C,) vector [sum gy, sum gy * xhat]. Because each rank's
    loss is the mean over its own shard and DDP averages gradients, ``gx`` uses the sums
    over all ranks: the averaged weight gradients are then those of the mean loss over the
    global batch.
    """

    syncs = True  # the hooks all-reduce: the chunked path ends step 1 before them

    def __init__(
        self, running_mean: Any, running_var: Any, has_weight: bool, has_bias: bool,
        momentum: float, eps: float, relu: bool,
    ) -> None:  # fmt: skip
        super().__init__(running_mean, running_var, has_weight, has_bias, True, momentum, eps)
        self.relu = relu

    def _sync_stats(self, mean: Any, var: Any, M: int) -> tuple[Any, Any, int]:
        xp = get_array_module(mean)
        C = mean.shape[0]
        K = 0.0 if self.running_mean is None else self.running_mean.astype(xp.float64)
        d = mean.astype(xp.float64) - K  # (C,): this rank's mean - K
        local = xp.concatenate(
            [M * d, M * (var.astype(xp.float64) + d * d), xp.full(1, M, dtype=xp.float64)]
        )  # (2C + 1,)
        total = dist.all_reduce(local)
        M_all = int(total[2 * C])  # values per channel over all ranks
        if M_all <= 1:
            raise ValueError(
                f"SyncBatchNorm: expected more than 1 value per channel over all ranks, got {M_all}"
            )
        d_all = total[:C] / M_all  # the global mean - K
        var_all = xp.maximum(total[C : 2 * C] / M_all - d_all * d_all, 0.0)  # biased
        return (d_all + K).astype(mean.dtype), var_all.astype(var.dtype), M_all

    def _batch_grad_sums(self, gb: Any, gw: Any) -> tuple[Any, Any]:
        xp = get_array_module(gb)
        C = gb.shape[0]
        total = dist.all_reduce(xp.concatenate([gb, gw]))  # (2C,)
        return total[:C], total[C:]


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

    def _batch_norm(self, x: Tensor, training: bool, momentum: float, relu: bool) -> Tensor:
        if not training:  # the running statistics: nothing to synchronise
            return super()._batch_norm(x, training, momentum, relu)
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
