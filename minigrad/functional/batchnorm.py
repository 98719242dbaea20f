"""Batch normalization: batch_norm, with running statistics updated in place and an optional
fused ReLU, its chunked path and its CUDA kernels (at the bottom).

Follows ``torch.nn.functional.batch_norm`` exactly: the batch is normalized with the biased
variance, and the unbiased one is fed into ``running_var``.
"""

from __future__ import annotations

from typing import Any

from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.devices import device_of, tf32_enabled
from minigrad.functional import _cuda
from minigrad.functional._layout import channel_major, from_channel_major
from minigrad.functional._simd import relu_into
from minigrad.functional._threads import for_blocks
from minigrad.functional.reduce import mean, sum
from minigrad.functional.shape import permute, reshape
from minigrad.remat import is_recomputing
from minigrad.tensor import Tensor

__all__ = ["batch_norm"]


def _row_dot(a: Any, b: Any) -> Any:
    """(C, M), (C, M) -> (C,): the dot product of each row pair, without a (C, M) temporary.

    Statistics, not a layer's product: with TF32 on, a matmul would round ``a`` and ``b`` to
    10 mantissa bits, so then the sum of products is taken elementwise in full float32.
    """
    xp = get_array_module(a)
    if tf32_enabled():  # TF32 is for conv and linear products only
        return (a * b).sum(axis=1)
    return xp.matmul(a[:, None, :], b[:, :, None]).reshape(a.shape[0])


class BatchNorm(Function):
    """y = xhat * w + b, xhat = (x - mean) / sigma per channel, sigma = sqrt(var + eps);
    training: gx = (w/sigma) * (gy - mean(gy) - xhat * mean(gy * xhat)), eval: gx = gy * w/sigma;
    gw = sum(gy * xhat), gb = sum(gy). With ``relu``: y = max(y, 0), and gy is first
    masked by y > 0.

    Shapes: x (N, C, *S) -> y like x; w, b, mean, var (C,). All paths work on the
    channel-major rows ``x2 (C, M)``, ``M = N*prod(S)`` (a view of a channel-major input,
    see :mod:`~minigrad.functional._layout`). ``forward``/``backward`` are the reference.
    Every path works in two steps with a hook between them (:meth:`_sync_stats`, and
    :meth:`_batch_grad_sums` in backward), which ``SyncBatchNorm`` overrides to cover all
    ranks: the statistics of this array (in backward: the two gradient sums), then applying
    them. ``forward_chunked``: each step runs chunks of channels on the host threads
    (:mod:`~minigrad.functional._threads`), all the passes of a chunk while it is in the
    cache; ``x - mean`` is not kept (backward redoes it) and the ReLU keeps a 1-byte mask.
    ``forward_cuda``: the statistics by reductions, then one kernel pass each way.

    Paths (all in this module; :class:`BatchNormReLU` and ``nn.SyncBatchNorm`` inherit them):
        reference: ``forward``/``backward``.
        chunked: ``forward_chunked``/``backward_chunked`` with the steps ``_local_stats``,
            ``_batch_stats``, ``_scale``, ``_sums``; ``_threads.for_blocks`` splits channels.
        cuda: ``forward_cuda``/``backward_cuda`` call ``bn_forward_cuda``/
            ``bn_backward_cuda``, the launchers of the kernels ``bn_fwd``/``bn_bwd`` in
            ``CUDA_SOURCE`` (bottom of this module).
    """

    #: the fused ReLU (:class:`BatchNormReLU`); a class attribute, so the op's name
    #: survives ``release`` (the "already freed" error names it)
    relu: bool = False
    #: the hooks between the two steps communicate (``SyncBatchNorm``): the chunked path
    #: then ends step 1 on every channel before the hook; with the identity hooks here it
    #: runs both steps of a chunk of channels while the chunk is in the cache
    syncs: bool = False

    def __init__(
        self,
        running_mean: Any,
        running_var: Any,
        has_weight: bool,
        has_bias: bool,
        training: bool,
        momentum: float,
        eps: float,
    ) -> None:
        self.running_mean, self.running_var = running_mean, running_var
        self.has_weight, self.has_bias = has_weight, has_bias
        self.training, self.momentum, self.eps = training, momentum, eps

    # ------------------------------------------------------------ reference
    def forward(self, x: Any, *wb: Any) -> Any:
        xp = get_array_module(x)
        C = x.shape[1]
        x2 = channel_major(x).reshape(C, -1)  # (C, M)
        if self.training:
            mean = x2.mean(axis=1)  # (C,)
            var = ((x2 - mean[:, None]) ** 2).mean(axis=1)  # biased
            mean, var, self.M = self._sync_stats(mean, var, x2.shape[1])
            self._update_running(mean, var, self.M)
        else:
            mean, var = self.running_mean.astype(x.dtype), self.running_var.astype(x.dtype)
        self.inv_std = 1 / xp.sqrt(var + self.eps)  # (C,)
        self.xhat = (x2 - mean[:, None]) * self.inv_std[:, None]  # (C, M)
        w, b = self._affine(wb)
        y = self.xhat if w is None else self.xhat * w[:, None]
        y = y if b is None else y + b[:, None]
        if self.relu:
            y = xp.maximum(y, 0)
            self.mask = y > 0  # (C, M)
        self.w, self.x_shape = w, x.shape
        return from_channel_major(y.reshape(C, x.shape[0], *x.shape[2:]))  # (N, C, *S)

    def backward(self, gy: Any) -> tuple[Any, ...]:
        C, M = self.xhat.shape
        gy2 = channel_major(gy).reshape(C, M)  # (C, M)
        if self.relu:
            gy2 = gy2 * self.mask
        gb = gy2.sum(axis=1)  # (C,)
        gw = (gy2 * self.xhat).sum(axis=1)  # (C,)
        k = self.inv_std if self.w is None else self.inv_std * self.w  # (C,): w / sigma
        if self.training:
            sum_gy, sum_gyx = self._batch_grad_sums(gb, gw)  # over the batch the stats cover
            M = self.M  # values per channel the statistics covered (all ranks' when synced)
            gx = k[:, None] * (gy2 - sum_gy[:, None] / M - self.xhat * (sum_gyx / M)[:, None])
        else:
            gx = k[:, None] * gy2  # (C, M)
        gx = from_channel_major(gx.reshape(C, self.x_shape[0], *self.x_shape[2:]))
        return self._grads_out(gx, gw, gb)

    def backward_graph(self, gy: Tensor) -> tuple[Any, ...]:
        """The reference's gradients written with ops on Tensors: the batch statistics are
        recomputed from x as ops (so gx depends on x through them), the running
        statistics (eval) and the ReLU mask are constants."""
        if type(self)._batch_grad_sums is not BatchNorm._batch_grad_sums:
            raise RuntimeError(
                f"grad(create_graph=True): {self.name} (statistics across ranks) has no "
                "differentiable backward; use batch_norm on one process for second derivatives"
            )
        x, *wb = self.inputs
        w = wb[0] if self.has_weight else None
        C = x.shape[1]
        x2 = _rows(x)  # (C, M)
        gy2 = _rows(gy)  # (C, M)
        if self.relu:
            gy2 = gy2 * Tensor(self.mask.reshape(gy2.shape).astype(gy.dtype))  # a constant
        if self.training:
            xc = x2 - mean(x2, 1, keepdim=True)
            inv_std = (mean(xc * xc, 1, keepdim=True) + self.eps) ** -0.5  # (C, 1)
        else:
            xp = get_array_module(x.data)
            var = self.running_var.astype(x.dtype).reshape(C, 1)
            xc = x2 - Tensor(self.running_mean.astype(x.dtype).reshape(C, 1))
            inv_std = Tensor(1 / xp.sqrt(var + self.eps))  # (C, 1), a constant
        xhat = xc * inv_std  # (C, M)
        gb = sum(gy2, 1)  # (C,)
        gw = sum(gy2 * xhat, 1)  # (C,)
        k = inv_std if w is None else inv_std * reshape(w, (C, 1))  # (C, 1): w / sigma
        if self.training:
            g = gy2 - mean(gy2, 1, keepdim=True) - xhat * mean(gy2 * xhat, 1, keepdim=True)
            gx2 = k * g
        else:
            gx2 = k * gy2
        gx = permute(reshape(gx2, (C, x.shape[0], *x.shape[2:])), _swap01(x.ndim))
        return self._grads_out(gx, gw, gb)

    # ------------------------------------------------------------ what "the batch" is
    # Every path (reference, chunked, CUDA) splits training batch norm into two steps: the
    # statistics of this array's batch (in backward: the two gradient sums), then applying
    # them. Between the two it calls these hooks, which say what "the batch" is: this
    # array's here; SyncBatchNorm (minigrad.nn) overrides them to cover every rank's batch.
    def _sync_stats(self, mean: Any, var: Any, M: int) -> tuple[Any, Any, int]:
        """(mean, biased var, values per channel) of the batch, from this array's (C,)
        mean and biased var over its M values per channel."""
        return mean, var, M

    def _batch_grad_sums(self, gb: Any, gw: Any) -> tuple[Any, Any]:
        """(sum gy, sum gy * xhat) over the batch the statistics came from, from this
        array's sums."""
        return gb, gw

    # ------------------------------------------------------------ shared by every path
    def _affine(self, wb: tuple[Any, ...]) -> tuple[Any, Any]:
        """(w, b) from the op's extra inputs (either may be absent: None)."""
        return (wb[0] if self.has_weight else None), (wb[-1] if self.has_bias else None)

    def _update_running(self, mean: Any, var: Any, M: int) -> None:
        """running = (1 - m) running + m batch_stat, with the unbiased variance (not while
        :func:`minigrad.remat.recompute` replays the forward: once per step)."""
        if self.running_mean is None or is_recomputing():
            return
        m = self.momentum
        self.running_mean[...] = (1 - m) * self.running_mean + m * mean
        self.running_var[...] = (1 - m) * self.running_var + m * (var * (M / (M - 1)))

    def _grads_out(self, gx: Any, gw: Any, gb: Any) -> tuple[Any, ...]:
        """(gx, gw, gb) for the op's inputs: no entry for an absent weight or bias."""
        out: tuple[Any, ...] = (gx if self.needs_input_grad[0] else None,)
        if self.has_weight:
            out += (gw if self.needs_input_grad[1] else None,)
        if self.has_bias:
            out += (gb if self.needs_input_grad[-1] else None,)
        return out

    # ------------------------------------------------------------ fast paths
    def _setup(self, x: Any, wb: tuple[Any, ...]) -> tuple[Any, ...]:
        """What both fast forwards start from: x2 (C, M), y (C, M), w, b, and the (C,)
        arrays ``self.mean``/``self.var`` (the running statistics in eval mode; filled by
        :meth:`_local_stats` when training), ``self.inv_std``, ``self.scale``."""
        xp = get_array_module(x)
        C = x.shape[1]
        M = x.size // C if C else 0  # values per channel
        x2 = channel_major(x).reshape(C, M)  # (C, M)
        w, b = self._affine(wb)
        y = xp.empty_like(x2)  # (C, M)
        if self.training:
            self.mean, self.var = xp.empty(C, x.dtype), xp.empty(C, x.dtype)
        else:
            self.mean = self.running_mean.astype(x.dtype)
            self.var = self.running_var.astype(x.dtype)
        self.inv_std, self.scale = xp.empty(C, x.dtype), xp.empty(C, x.dtype)
        self.x2, self.x_shape, self.M, self.w = x2, x.shape, M, w
        return x2, y, w, b

    def _local_stats(self, cs: slice, x2: Any, y: Any) -> None:
        """Step 1, channels cs: this array's mean and biased var (``y[cs]`` is scratch)."""
        M = x2.shape[1]
        self.mean[cs] = x2[cs].sum(axis=1) / M
        xc = get_array_module(x2).subtract(x2[cs], self.mean[cs, None], out=y[cs])
        self.var[cs] = _row_dot(xc, xc) / M

    def _scale(self, cs: slice) -> None:
        """Channels cs: ``inv_std`` = 1 / sigma and ``scale`` = w / sigma."""
        xp = get_array_module(self.var)
        self.inv_std[cs] = 1 / xp.sqrt(self.var[cs] + self.eps)
        self.scale[cs] = self.inv_std[cs] if self.w is None else self.inv_std[cs] * self.w[cs]

    def _batch_stats(self) -> None:
        """Between the steps, every channel: the batch's statistics (:meth:`_sync_stats`),
        the running statistics updated, ``inv_std`` and ``scale``."""
        if self.training:
            mean, var, self.M = self._sync_stats(self.mean, self.var, self.M)
            self.mean[...], self.var[...] = mean, var
            self._update_running(self.mean, self.var, self.M)
        self._scale(slice(None))

    def _rows_out(self, y: Any) -> Any:
        C = y.shape[0]
        return from_channel_major(y.reshape(C, self.x_shape[0], *self.x_shape[2:]))

    def forward_chunked(self, x: Any, *wb: Any) -> Any:
        xp = get_array_module(x)
        x2, y, w, b = self._setup(x, wb)
        C = x2.shape[0]
        keep_mask = self.relu and self.requires_grad
        mask = xp.empty(x2.shape, dtype=bool) if keep_mask else None

        def normalize(cs: slice, centred: bool = False) -> None:
            # step 2: y = (x - mean) * w / sigma + b (centred: y already holds x - mean)
            ys = y[cs] if centred else xp.subtract(x2[cs], self.mean[cs, None], out=y[cs])
            ys *= self.scale[cs, None]
            if b is not None:
                ys += b[cs, None]
            if self.relu:
                if mask is not None:
                    xp.greater(ys, 0, out=mask[cs])
                relu_into(ys, ys)

        if self.training and self.syncs:  # step 1 on every chunk, the hook, step 2
            for_blocks(lambda cs: self._local_stats(cs, x2, y), C, x2.size, x2)
            self._batch_stats()
            for_blocks(normalize, C, x2.size, x2)
        else:  # the hook is the identity: both steps of a chunk while it is in the cache

            def both(cs: slice) -> None:
                if self.training:
                    self._local_stats(cs, x2, y)  # leaves y[cs] = x - mean
                self._scale(cs)
                normalize(cs, centred=self.training)

            for_blocks(both, C, x2.size, x2)
            if self.training:
                self._update_running(self.mean, self.var, self.M)
        self.mask = mask
        return self._rows_out(y)

    def forward_cuda(self, x: Any, *wb: Any) -> Any:
        xp = get_array_module(x)
        x2, y, w, b = self._setup(x, wb)
        C = x2.shape[0]
        if self.training:  # step 1: the statistics by reductions
            self._local_stats(slice(0, C), x2, y)
        self._batch_stats()
        if self.training:  # the kernel: (x - mean) * scale + shift
            shift = xp.zeros(C, dtype=x.dtype) if b is None else b
        else:  # the kernel: x * scale + shift
            shift = -self.mean * self.scale if b is None else b - self.mean * self.scale
        keep_mask = self.relu and self.requires_grad
        self.mask = bn_forward_cuda(
            x2, self.mean, self.scale, shift, self.training, self.relu, keep_mask, y
        )  # step 2: one pass into y
        return self._rows_out(y)

    def _sums(self, cs: slice, gy2: Any, gw: Any, gb: Any) -> tuple[Any, Any]:
        """Channels cs: gb = sum(gy), gw = sum(gy * xhat) (as far as wanted); returns the
        masked gy and x - mean of the chunk."""
        xp = get_array_module(gy2)
        need_x = self.needs_input_grad[0]
        gys = gy2[cs] if self.mask is None else gy2[cs] * self.mask[cs]  # (c, M)
        if (self.has_bias and self.needs_input_grad[-1]) or (need_x and self.training):
            gb[cs] = gys.sum(axis=1)
        xc = None
        if (self.has_weight and self.needs_input_grad[1]) or (need_x and self.training):
            xc = xp.subtract(self.x2[cs], self.mean[cs, None])  # (c, M)
            gw[cs] = _row_dot(gys, xc) * self.inv_std[cs]
        return gys, xc

    def backward_chunked(self, gy: Any) -> tuple[Any, ...]:
        xp = get_array_module(gy)
        C, M = self.x2.shape
        gy2 = channel_major(gy).reshape(C, M)  # (C, M)
        need_x = self.needs_input_grad[0]
        gb, gw = xp.empty(C, gy.dtype), xp.empty(C, gy.dtype)  # sum(gy), sum(gy * xhat)
        gx = xp.empty_like(gy2) if need_x else None
        if not need_x or not self.training:  # no batch sums in gx: one pass
            for_blocks(lambda cs: self._eval_grads(cs, gy2, gw, gb, gx), C, gy2.size, gy2)
            return self._grads_out(self._unrows(gx), gw, gb)

        def sums(cs: slice) -> tuple[Any, Any]:
            # step 1: the chunk's masked gy (into gx: no temporary) and x - mean, the sums
            gys = gy2[cs] if self.mask is None else xp.multiply(gy2[cs], self.mask[cs],
                                                                 out=gx[cs])  # fmt: skip
            gb[cs] = gys.sum(axis=1)
            xc = xp.subtract(self.x2[cs], self.mean[cs, None])  # (c, M)
            gw[cs] = _row_dot(gys, xc) * self.inv_std[cs]
            return gys, xc

        def grads(cs: slice, gys: Any, xc: Any, sum_gy: Any, sum_gyx: Any) -> None:
            # step 2: k * (gy - sum_gy/M - xhat * sum_gyx/M), xhat = xc * inv_std
            xc *= (self.inv_std[cs] * sum_gyx / self.M)[:, None]
            xp.subtract(gys, (sum_gy / self.M)[:, None], out=gx[cs])
            gx[cs] -= xc
            gx[cs] *= self.scale[cs, None]

        if self.syncs:  # step 1 on every chunk, the batch's sums (the hook), step 2

            def step1(cs: slice) -> None:  # (returns nothing: for_blocks adds up returns)
                sums(cs)

            for_blocks(step1, C, gy2.size, gy2)
            sum_gy, sum_gyx = self._batch_grad_sums(gb, gw)

            def step2(cs: slice) -> None:  # x - mean redone (not kept: a full-size array)
                gys = gy2[cs] if self.mask is None else gx[cs]  # the masked gy of step 1
                xc = xp.subtract(self.x2[cs], self.mean[cs, None])  # (c, M)
                grads(cs, gys, xc, sum_gy[cs], sum_gyx[cs])

            for_blocks(step2, C, gy2.size, gy2)
        else:  # the hook is the identity: both steps of a chunk while it is in the cache

            def both(cs: slice) -> None:
                gys, xc = sums(cs)
                grads(cs, gys, xc, *self._batch_grad_sums(gb[cs], gw[cs]))

            for_blocks(both, C, gy2.size, gy2)
        return self._grads_out(self._unrows(gx), gw, gb)

    def _eval_grads(self, cs: slice, gy2: Any, gw: Any, gb: Any, gx: Any) -> None:
        """Channels cs without the batch sums in gx: gx = gy * w / sigma (eval mode) or no
        gx at all; the wanted weight sums."""
        gys, _ = self._sums(cs, gy2, gw, gb)
        if gx is not None:
            get_array_module(gy2).multiply(gys, self.scale[cs, None], out=gx[cs])

    def backward_cuda(self, gy: Any) -> tuple[Any, ...]:
        xp = get_array_module(gy)
        C, M = self.x2.shape
        gy2 = channel_major(gy).reshape(C, M)  # (C, M)
        gb, gw = xp.empty(C, gy.dtype), xp.empty(C, gy.dtype)
        self._sums(slice(0, C), gy2, gw, gb)  # step 1: the sums by reductions
        gx = None
        if self.needs_input_grad[0]:  # step 2: gx in one pass
            gx = xp.empty_like(gy2)
            sum_gy, sum_gyx = self._batch_grad_sums(gb, gw) if self.training else (gb, gw)
            c1, c2 = sum_gy / self.M, self.inv_std * sum_gyx / self.M
            args = (self.mask, self.x2, self.mean, self.scale, c1, c2, self.training, gx)
            bn_backward_cuda(gy2, *args)
        return self._grads_out(self._unrows(gx), gw, gb)

    def _unrows(self, g2: Any) -> Any:
        """(C, M) rows -> the (N, C, *S) view (None stays None)."""
        if g2 is None:
            return None
        return from_channel_major(g2.reshape(g2.shape[0], self.x_shape[0], *self.x_shape[2:]))


def _swap01(ndim: int) -> tuple[int, ...]:
    return (1, 0, *range(2, ndim))


def _rows(t: Tensor) -> Tensor:
    """(N, C, *S) -> the channel rows (C, N*prod(S)) as ops (differentiable)."""
    return reshape(permute(t, _swap01(t.ndim)), (t.shape[1], -1))


class BatchNormReLU(BatchNorm):
    """y = max(batch_norm(x), 0); gy is masked by y > 0, then as :class:`BatchNorm`."""

    relu = True


def _check_channel_vector(name: str, t: Any, C: int, device: str) -> Any:
    """The array of a per-channel Tensor argument, after shape and device checks."""
    if t is None:
        return None
    if not isinstance(t, Tensor):
        raise TypeError(f"batch_norm: {name} must be a Tensor or None, got {type(t).__name__}")
    if t.shape != (C,):
        raise ValueError(
            f"batch_norm: {name} has shape {t.shape} but the input has {C} channels "
            f"(expected shape ({C},))"
        )
    if t.device != device:
        raise ValueError(f"batch_norm: input is on {device} but {name} is on {t.device}")
    if t.dtype.kind != "f":
        raise TypeError(f"batch_norm: {name} must be floating point, got dtype {t.dtype}")
    return t.data


def batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    relu: bool = False,
) -> Tensor:
    """Batch normalization over every axis but the channel axis 1, as ``F.batch_norm``.

    Training normalizes with the batch mean and biased variance and, when running statistics
    are given, updates them in place (``.data``, outside autograd):
    ``running = (1 - momentum) * running + momentum * batch_stat`` with the *unbiased* batch
    variance for ``running_var``. Eval mode normalizes with the running statistics.

    Args:
        x: (N, C) or (N, C, H, W) (any (N, C, *) works).
        running_mean, running_var: (C,) Tensors or None (None only when ``training``).
        weight, bias: (C,) affine parameters or None.
        training: use batch statistics (and update the running ones).
        momentum: weight of the new batch statistic in the running average.
        eps: added to the variance before the square root.
        relu: return ``relu(batch_norm(x))`` as one op (departure from PyTorch, which has
            no such flag): the ReLU runs on each chunk of channels while it is in the cache,
            and the graph keeps a 1-byte mask instead of a second activation.

    Returns:
        A Tensor shaped like ``x``.

    Raises:
        ValueError: ``x`` with fewer than 2 dims, a per-channel argument whose shape is not
            (C,) or that sits on another device, training with one value per channel, eval
            without running statistics.
        TypeError: a per-channel argument that is not a float Tensor.
    """
    if x.ndim < 2:
        raise ValueError(
            f"batch_norm: expected an input with 2 or more dims (N, C, ...), got shape {x.shape}"
        )
    C = x.shape[1]
    device = device_of(x.data)
    rm = _check_channel_vector("running_mean", running_mean, C, device)
    rv = _check_channel_vector("running_var", running_var, C, device)
    _check_channel_vector("weight", weight, C, device)
    _check_channel_vector("bias", bias, C, device)
    if (rm is None) != (rv is None):
        raise ValueError("batch_norm: pass both running_mean and running_var, or neither")
    if training and x.data.size // max(C, 1) <= 1:
        raise ValueError(
            f"batch_norm: expected more than 1 value per channel when training, "
            f"got input of shape {x.shape}"
        )
    if not training and rm is None:
        raise ValueError(
            "batch_norm: running_mean and running_var are required when training=False"
        )
    op = BatchNormReLU if relu else BatchNorm
    fn = op(rm, rv, weight is not None, bias is not None, training, momentum, eps)
    return fn.apply(x, *(t for t in (weight, bias) if t is not None))


# ---------------------------------------------------------------- CUDA kernels
# BatchNorm's (and BatchNormReLU's) cuda path: step 2 of each direction in one pass. A CUDA
# C++ template over $T (float/double) and $S (f32/f64); minigrad.functional._cuda compiles
# it with the other families' kernels (and gives FOR_EACH).
CUDA_SOURCE = _cuda.register(
    __name__,
    r"""
// batch norm on channel-major rows (C, M): training y = (x - a[c]) * k[c] + b[c] (the
// generic path's order), eval y = x * k[c] + b[c]; then optionally ReLU with a 1-byte mask
extern "C" __global__ void bn_fwd_$S(const $T* x, const $T* a, const $T* k, const $T* b,
        $T* y, unsigned char* mask, long long M, int training, int relu, long long total) {
    FOR_EACH(t, total) {
        long long c = t / M;
        $T v = training ? (x[t] - a[c]) * k[c] : x[t] * k[c];
        v = v + b[c];
        if (relu) {
            if (mask) mask[t] = v > ($T)0;
            v = v > ($T)0 ? v : ($T)0;
        }
        y[t] = v;
    }
}

// g = gy (masked by the ReLU): training gx = k * ((g - c1) - (x - mean) * c2) with
// c1 = mean(g), c2 = inv_std * mean(g * xhat) (the generic path's order); eval gx = g * k
extern "C" __global__ void bn_bwd_$S(const $T* gy, const unsigned char* mask, const $T* x,
        const $T* mean, const $T* k, const $T* c1, const $T* c2, $T* gx, long long M,
        int training, long long total) {
    FOR_EACH(t, total) {
        long long c = t / M;
        $T g = mask ? (mask[t] ? gy[t] : ($T)0) : gy[t];
        gx[t] = training ? ((g - c1[c]) - (x[t] - mean[c]) * c2[c]) * k[c] : g * k[c];
    }
}
""",
)


def bn_forward_cuda(
    x2: Any, a: Any, k: Any, b: Any, training: bool, relu: bool, keep_mask: bool, y: Any
) -> Any:
    """Rows x2 (C, M), C-contiguous -> ``y`` (C, M); returns the ReLU mask (or None)."""
    xp = get_array_module(x2)
    C, M = x2.shape
    mask = xp.empty((C, M), dtype=xp.uint8) if relu and keep_mask else None
    flags = [_cuda.i32(training), _cuda.i32(relu)]
    args = [x2, a, k, b, y, _cuda.optional(mask), _cuda.i64(M), *flags]
    _cuda.launch("bn_fwd", x2.dtype, y.size, *args)
    return mask


def bn_backward_cuda(
    gy2: Any, mask: Any, x2: Any, mean: Any, k: Any, c1: Any, c2: Any, training: bool, gx: Any
) -> None:
    """``gx`` (C, M) of batch norm from the reductions ``c1``, ``c2`` (see the kernel)."""
    args = [gy2, _cuda.optional(mask), x2, mean, k, c1, c2, gx]
    _cuda.launch("bn_bwd", gy2.dtype, gx.size, *args, _cuda.i64(gy2.shape[1]), _cuda.i32(training))
