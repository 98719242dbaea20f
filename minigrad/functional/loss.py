"""softmax / log_softmax (stable) and the classification losses cross_entropy and nll_loss.

``cross_entropy`` is one fused op (log-softmax + negative log-likelihood) whose backward is
``(softmax - smoothed one-hot) * scale`` on the raw logits, as in PyTorch with class-index
targets: ``label_smoothing`` mixes the one-hot target with the uniform distribution, and
``ignore_index`` rows count neither in the loss nor in the mean's denominator.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minigrad.autograd import Function
from minigrad.backend import get_array_module, is_cupy_array
from minigrad.devices import device_context, device_of
from minigrad.functional import _checks, _cuda
from minigrad.functional.elementwise import exp
from minigrad.functional.reduce import sum
from minigrad.functional.shape import reshape
from minigrad.tensor import Tensor

__all__ = ["softmax", "log_softmax", "cross_entropy", "nll_loss"]

_REDUCTIONS = ("mean", "sum", "none")


class Softmax(Function):
    """y = exp(x - max) / sum(exp(x - max)) along dim; gx = y * (gy - sum(gy * y))."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, x: Any) -> Any:
        y = get_array_module(x).exp(x - x.max(axis=self.dim, keepdims=True))
        y = y / y.sum(axis=self.dim, keepdims=True)
        self.y = y
        return y

    def backward(self, gy: Any) -> Any:
        gx = gy * self.y
        gx -= self.y * gx.sum(axis=self.dim, keepdims=True)
        return gx

    def backward_graph(self, gy: Tensor) -> Tensor:
        y = Softmax(self.dim).apply(self.inputs[0])
        return y * (gy - sum(gy * y, self.dim, keepdim=True))


class LogSoftmax(Function):
    """y = x - max - log(sum(exp(x - max))) along dim; gx = gy - exp(y) * sum(gy)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        z = x - x.max(axis=self.dim, keepdims=True)
        y = z - xp.log(xp.exp(z).sum(axis=self.dim, keepdims=True))
        self.y = y
        return y

    def backward(self, gy: Any) -> Any:
        xp = get_array_module(gy)
        return gy - xp.exp(self.y) * gy.sum(axis=self.dim, keepdims=True)

    def backward_graph(self, gy: Tensor) -> Tensor:
        p = exp(LogSoftmax(self.dim).apply(self.inputs[0]))
        return gy - p * sum(gy, self.dim, keepdim=True)


def softmax(x: Tensor, dim: int) -> Tensor:
    """Softmax along ``dim``, computed as ``exp(x - max)`` normalized (no overflow).

    Args:
        x: a floating-point Tensor.
        dim: the axis whose entries sum to 1 (required: PyTorch's implicit choice is deprecated).

    Raises:
        ValueError: ``dim`` out of range.
        TypeError: a non-floating-point ``x``.
    """
    _checks.float_tensor("softmax", x)
    return Softmax(_checks.dim("softmax", dim, x.ndim)).apply(x)


def log_softmax(x: Tensor, dim: int) -> Tensor:
    """``log(softmax(x, dim))`` computed stably as ``x - max - log(sum(exp(x - max)))``.

    Raises:
        ValueError: ``dim`` out of range.
        TypeError: a non-floating-point ``x``.
    """
    _checks.float_tensor("log_softmax", x)
    return LogSoftmax(_checks.dim("log_softmax", dim, x.ndim)).apply(x)


def _row_scale(xp: Any, keep: Any, gy: Any, reduction: str, count: int) -> Any:
    """dLoss_i/dloss_row_i for each row as an (N, 1) array; 0 on ignored rows."""
    if reduction == "none":
        return (gy * keep)[:, None]
    scale = gy / count if reduction == "mean" and count else gy
    return (keep * scale)[:, None]


def _row_scale_graph(keep: Any, gy: Tensor, reduction: str, count: int) -> Tensor:
    """:func:`_row_scale` on a Tensor ``gy`` (differentiable in ``gy``): (N, 1)."""
    if reduction == "none":
        return reshape(gy * Tensor(keep), (-1, 1))
    k = keep / count if reduction == "mean" and count else keep
    return reshape(gy, (1, 1)) * Tensor(k.reshape(-1, 1))


def _target_matrix(xp: Any, target: Any, shape: tuple[int, int], dtype: Any, on: float) -> Any:
    """(N, C) zeros with ``on`` at each row's target column (a constant for backward_graph)."""
    m = xp.zeros(shape, dtype=dtype)
    m[xp.arange(shape[0]), target] = on
    return m


class CrossEntropy(Function):
    """loss_i = -sum_c q_ic log softmax(x)_ic, q = (1 - s) onehot + s/C;
    gx = (softmax(x) - q) * dL/dloss_i (0 on ignored rows).

    Shapes: x (N, C), target (N,) -> loss (), or (N,) with ``reduction="none"``.
    ``forward``/``backward`` are the reference; ``forward_cuda``/``backward_cuda`` do each
    in one kernel launch (one thread per row forward, one per element backward).

    Paths (all in this module):
        reference: ``forward``/``backward``.
        cuda: ``forward_cuda``/``backward_cuda`` call ``xent_forward_cuda``/
            ``xent_backward_cuda``, the launchers of the kernels ``xent_fwd``/``xent_bwd``
            in ``CUDA_SOURCE`` (bottom of this module).
    """

    def __init__(
        self, target: Any, keep: Any, count: int, reduction: str, smoothing: float
    ) -> None:
        self.target, self.keep = target, keep  # (N,) safe indices, (N,) 1.0 / 0.0 of x.dtype
        self.count = count  # rows not ignored (a host int: no device sync in the step)
        self.reduction, self.smoothing = reduction, smoothing

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        N, C = x.shape
        z = x - x.max(axis=1, keepdims=True)  # (N, C)
        e = xp.exp(z)
        s = e.sum(axis=1)  # (N,)
        lse = xp.log(s)
        loss = lse - z[xp.arange(N), self.target]  # -log p[i, t_i]
        if self.smoothing:  # -mean_c log p[i, c] = lse - mean_c z[i, c]
            loss *= 1 - self.smoothing
            loss += self.smoothing * (lse - z.sum(axis=1) / C)
        loss *= self.keep
        e /= s[:, None]  # softmax, saved for backward
        self.p = e
        return _reduce(xp, loss, self.reduction, self.count)

    def backward(self, gy: Any) -> Any:
        xp = get_array_module(gy)
        N, C = self.p.shape
        scale = _row_scale(xp, self.keep, gy, self.reduction, self.count)  # (N, 1)
        gx = self.p - self.smoothing / C if self.smoothing else self.p.copy()
        gx[xp.arange(N), self.target] -= 1 - self.smoothing
        gx *= scale
        return gx

    def backward_graph(self, gy: Tensor) -> Tensor:
        """(softmax(x) - q) * scale, with softmax recomputed as an op of x."""
        (x,) = self.inputs
        xp = get_array_module(x.data)
        N, C = x.shape
        q = _target_matrix(xp, self.target, (N, C), x.dtype, 1 - self.smoothing)
        if self.smoothing:
            q += self.smoothing / C
        p = Softmax(1).apply(x)
        return (p - Tensor(q)) * _row_scale_graph(self.keep, gy, self.reduction, self.count)

    def forward_cuda(self, x: Any) -> Any:
        xp = get_array_module(x)
        x = xp.ascontiguousarray(x)
        self.p, loss = xent_forward_cuda(x, self.target, self.keep, self.smoothing)
        return _reduce(xp, loss, self.reduction, self.count)  # softmax p kept for backward

    def backward_cuda(self, gy: Any) -> Any:
        xp = get_array_module(gy)
        scale = _row_scale(xp, self.keep, gy, self.reduction, self.count)  # (N, 1)
        return xent_backward_cuda(self.p, self.target, scale[:, 0], self.smoothing)


class NLLLoss(Function):
    """loss_i = -x[i, t_i]; gx[i, t_i] = -dL/dloss_i, zero elsewhere."""

    def __init__(self, target: Any, keep: Any, count: int, reduction: str) -> None:
        self.target, self.keep, self.count, self.reduction = target, keep, count, reduction

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        self.x_shape = x.shape
        loss = -x[xp.arange(x.shape[0]), self.target] * self.keep
        return _reduce(xp, loss, self.reduction, self.count)

    def backward(self, gy: Any) -> Any:
        xp = get_array_module(gy)
        N = self.x_shape[0]
        gx = xp.zeros(self.x_shape, dtype=gy.dtype)
        gx[xp.arange(N), self.target] = -_row_scale(xp, self.keep, gy, self.reduction, self.count)[
            :, 0
        ]
        return gx

    def backward_graph(self, gy: Tensor) -> Tensor:
        """-onehot(target) * scale: linear in gy, the one-hot a constant."""
        onehot = _target_matrix(
            get_array_module(gy.data), self.target, self.x_shape, gy.dtype, -1.0
        )
        return Tensor(onehot) * _row_scale_graph(self.keep, gy, self.reduction, self.count)


def _reduce(xp: Any, loss: Any, reduction: str, count: int) -> Any:
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    if count == 0:  # every target ignored: PyTorch returns nan (0/0), without a warning here
        return xp.full((), xp.nan, dtype=loss.dtype)
    return total / count


def _prepare_target(
    op: str, x: Tensor, target: Any, reduction: str, ignore_index: int
) -> tuple[Any, Any, int]:
    """Validate (logits, target, reduction); return safe (N,) indices, the (N,) keep mask
    (both on the logits' device) and the number of rows not ignored."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if x.ndim != 2:
        raise ValueError(f"{op}: expected 2-D input (N, C), got shape {x.shape}")
    _checks.float_tensor(op, x)
    xp = get_array_module(x.data)
    if isinstance(target, Tensor):
        if target.device != x.device:
            raise ValueError(f"{op}: input is on {x.device} but target is on {target.device}")
        t = target.data
    elif is_cupy_array(target) and device_of(target) != x.device:
        raise ValueError(f"{op}: input is on {x.device} but target is on {device_of(target)}")
    else:  # a host array or list: checked on the host (NumPy, deliberately), then moved
        t = target if is_cupy_array(target) else np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(
            f"{op}: target must hold integer class indices, got dtype {t.dtype} "
            "(probability targets are not supported)"
        )
    if t.ndim != 1:
        raise ValueError(f"{op}: expected 1-D target (N,), got shape {tuple(t.shape)}")
    N, C = x.shape
    if t.shape[0] != N:
        raise ValueError(
            f"{op}: input batch size {N} does not match target batch size {t.shape[0]}"
        )
    # checked where the labels are: on the host when they came from it (no device sync in
    # a training step, whose loader hands host labels), else on the device (one sync)
    tx = get_array_module(t)
    ignored = t == ignore_index
    bad = ~ignored & ((t < 0) | (t >= C))
    if bool(bad.any()):
        label = int(t[bad][0])
        raise ValueError(f"{op}: target label {label} is out of range for {C} classes [0, {C})")
    count = int((~ignored).sum())
    with device_context(x.device):  # cuda:N: the copies land on N
        keep = xp.asarray((~ignored).astype(x.dtype))
        safe = xp.asarray(tx.where(ignored, 0, t).astype(tx.int64))
    return safe, keep, count


def cross_entropy(
    logits: Tensor,
    target: Any,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
) -> Tensor:
    """Cross-entropy of raw logits against class indices, fused with log-softmax.

    Same semantics as ``F.cross_entropy`` with class-index targets and no class weights:
    ``loss_i = (1 - s) * (-log p[i, t_i]) + s * mean_c(-log p[i, c])`` for smoothing ``s``,
    rows whose target equals ``ignore_index`` contribute 0, and ``"mean"`` divides by the number
    of rows not ignored (nan when every row is ignored, like PyTorch).

    Args:
        logits: (N, C) unnormalized scores.
        target: (N,) integer class indices in [0, C) (or ``ignore_index``): a Tensor on the
            logits' device, or a host array/list (copied to that device).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-row losses, shape (N,)).
        label_smoothing: ``s`` in [0, 1].
        ignore_index: target value whose rows are skipped.

    Returns:
        A scalar Tensor, or (N,) for ``reduction="none"``.

    Raises:
        ValueError: logits not 2-D, target not 1-D, batch sizes differ, a label outside [0, C),
            an unknown reduction, ``label_smoothing`` outside [0, 1], target on another device.
        TypeError: non-integer target.
    """
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    safe, keep, count = _prepare_target("cross_entropy", logits, target, reduction, ignore_index)
    return CrossEntropy(safe, keep, count, reduction, float(label_smoothing)).apply(logits)


def nll_loss(
    log_probs: Tensor, target: Any, reduction: str = "mean", ignore_index: int = -100
) -> Tensor:
    """Negative log-likelihood ``-log_probs[i, target_i]``, as ``F.nll_loss`` (no weights).

    ``cross_entropy(x, t)`` equals ``nll_loss(log_softmax(x, 1), t)``; prefer the fused one.

    Args:
        log_probs: (N, C) log-probabilities.
        target, reduction, ignore_index: as in :func:`cross_entropy`.

    Raises:
        ValueError / TypeError: as in :func:`cross_entropy`.
    """
    safe, keep, count = _prepare_target("nll_loss", log_probs, target, reduction, ignore_index)
    return NLLLoss(safe, keep, count, reduction).apply(log_probs)


# ---------------------------------------------------------------- CUDA kernels
# CrossEntropy's cuda path. A CUDA C++ template over $T (float/double) and $S (f32/f64);
# minigrad.functional._cuda compiles it with the other families' kernels (and gives
# FOR_EACH).
CUDA_SOURCE = _cuda.register(
    __name__,
    r"""
// cross-entropy per row i of x (N, C): p = softmax, loss_i = keep_i * ((1 - s)(lse - z_t)
// + s (lse - mean z)), z = x - max
extern "C" __global__ void xent_fwd_$S(const $T* x, const long long* target,
        const $T* keep, $T* p, $T* loss, long long C, $T s, long long total) {
    FOR_EACH(i, total) {
        const $T* row = x + i * C;
        $T m = row[0];
        for (long long c = 1; c < C; c++) m = row[c] > m ? row[c] : m;
        $T sum = ($T)0, zsum = ($T)0;
        for (long long c = 0; c < C; c++) {
            $T e = exp(row[c] - m);
            p[i * C + c] = e;
            sum += e;
            zsum += row[c] - m;
        }
        $T lse = log(sum);
        for (long long c = 0; c < C; c++) p[i * C + c] /= sum;
        $T l = lse - (row[target[i]] - m);
        if (s != ($T)0) l = l * (($T)1 - s) + s * (lse - zsum / ($T)C);
        loss[i] = l * keep[i];
    }
}

// gx[i, c] = (p - s/C - (1 - s)[c == t_i]) * scale_i
extern "C" __global__ void xent_bwd_$S(const $T* p, const long long* target,
        const $T* scale, $T* gx, long long C, $T s, long long total) {
    FOR_EACH(t, total) {
        long long i = t / C, c = t % C;
        $T v = p[t] - s / ($T)C;
        if (c == target[i]) v -= ($T)1 - s;
        gx[t] = v * scale[i];
    }
}
""",
)


def xent_forward_cuda(x: Any, target: Any, keep: Any, smoothing: float) -> tuple[Any, Any]:
    """Logits x (N, C), C-contiguous -> softmax p (N, C) and per-row losses (N,)."""
    xp = get_array_module(x)
    N, C = x.shape
    p = xp.empty_like(x)
    loss = xp.empty(N, dtype=x.dtype)
    args = [x, target, keep, p, loss, _cuda.i64(C), x.dtype.type(smoothing)]
    _cuda.launch("xent_fwd", x.dtype, N, *args)
    return p, loss


def xent_backward_cuda(p: Any, target: Any, scale: Any, smoothing: float) -> Any:
    """gx (N, C) from the saved softmax and the per-row scale (N,)."""
    xp = get_array_module(p)
    gx = xp.empty_like(p)
    args = [p, target, scale, gx, _cuda.i64(p.shape[1]), p.dtype.type(smoothing)]
    _cuda.launch("xent_bwd", p.dtype, gx.size, *args)
    return gx
