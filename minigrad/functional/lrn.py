"""Local response normalization (the paper's LRN): local_response_norm, its chunked path,
and the channel-window sum it is built from.

Follows ``torch.nn.functional.local_response_norm`` exactly: ``alpha`` is divided by
``size``, and the channel window is padded with ``size // 2`` zeros before and
``(size - 1) // 2`` after.
"""

from __future__ import annotations

from typing import Any

from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.functional._layout import channel_major, from_channel_major
from minigrad.functional._threads import for_blocks
from minigrad.tensor import Tensor

__all__ = ["local_response_norm"]


def _window_sum(a: Any, before: int, after: int) -> Any:
    """out[:, c] = sum of a[:, c - before : c + after + 1] (zero outside): the rows' window
    sum (:func:`_window_sum_rows`) along axis 1."""
    out = get_array_module(a).empty_like(a)
    _window_sum_rows(a.swapaxes(0, 1), before, after, out.swapaxes(0, 1))
    return out


def _window_sum_rows(a: Any, before: int, after: int, out: Any) -> Any:
    """out[c] = sum of a[c - before : c + after + 1] along axis 0 (zero outside); loops
    over the offsets, adding them in one order on every path (bit-for-bit sums); returns out."""
    out[...] = a
    for d in range(1, before + 1):
        out[d:] += a[:-d]
    for d in range(1, after + 1):
        out[:-d] += a[d:]
    return out


def _inv_pow(d: Any, beta: float, out: Any) -> Any:
    """out = d ** -beta. For beta 0.75 (the paper's LRN) and 0.5 by square roots,
    d**-0.75 = d**-0.5 * sqrt(d**-0.5): NumPy's float pow is about 5x slower than sqrt
    (48 against 9 ms on 4.8 M float32 values). Returns out."""
    xp = get_array_module(d)
    if beta not in (0.5, 0.75):
        return xp.power(d, -beta, out=out)
    xp.sqrt(d, out=out)
    xp.divide(1, out, out=out)  # d**-0.5
    if beta == 0.75:
        out *= xp.sqrt(out)  # d**-0.5 * d**-0.25
    return out


class LocalResponseNorm(Function):
    """y = x * d**-beta, d = k + alpha/size * (window sum of x**2 over channels);
    gx = gy * d**-beta - 2*alpha*beta/size * x * (adjoint window sum of gy * y / d).

    ``forward``/``backward`` are the reference. ``forward_chunked``/``backward_chunked``: the
    same formulas on the channel-major rows ``x2 (C, M)``, ``M = N*prod(S)`` (a view of a
    channel-major input), in chunks of columns on the host threads
    (:mod:`~minigrad.functional._threads`): every pass of a chunk (square, window sum,
    power, product) runs while the chunk is in the cache, and ``d**-beta`` is taken by
    square roots for the usual beta (:func:`_inv_pow`). The window sum over channels stays
    the sum of shifted slices (``size`` adds an element, in the cache): a running or
    cumulative sum along C would cost 2 passes instead of 5 but subtracts large partial
    sums, so ``d`` would lose the exactness the reference has for small windows.

    Paths (all in this module unless named):
        reference: ``forward``/``backward`` with :func:`_window_sum`.
        chunked: ``forward_chunked``/``backward_chunked`` with :func:`_window_sum_rows` and
            :func:`_inv_pow`; ``_threads.for_blocks`` splits the columns. No CUDA kernel: on
            CuPy the chunked code runs as one chunk.
    """

    def __init__(self, size: int, alpha: float, beta: float, k: float) -> None:
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: Any) -> Any:
        d = _window_sum(x * x, self.size // 2, (self.size - 1) // 2)  # (N, C, ...)
        d *= self.alpha / self.size
        d += self.k
        d_pow = d ** (-self.beta)
        self.x, self.d, self.d_pow = x, d, d_pow
        return x * d_pow

    def backward(self, gy: Any) -> Any:
        t = gy * self.x
        t *= self.d_pow
        t /= self.d  # gy * y / d
        # channel c fed the windows of channels c - (size-1)//2 .. c + size//2
        t = _window_sum(t, (self.size - 1) // 2, self.size // 2)
        t *= self.x
        t *= -2 * self.alpha * self.beta / self.size
        t += gy * self.d_pow
        return t

    def forward_chunked(self, x: Any) -> Any:
        xp = get_array_module(x)
        C = x.shape[1]
        M = x.size // C if C else 0  # values per channel
        x2 = channel_major(x).reshape(C, M)  # (C, M)
        y, d, d_pow = xp.empty_like(x2), xp.empty_like(x2), xp.empty_like(x2)  # (C, M)
        before, after = self.size // 2, (self.size - 1) // 2

        def chunk(cols: slice) -> None:
            xs = x2[:, cols]  # (C, m)
            ds = _window_sum_rows(xs * xs, before, after, out=d[:, cols])
            ds *= self.alpha / self.size
            ds += self.k
            xp.multiply(xs, _inv_pow(ds, self.beta, out=d_pow[:, cols]), out=y[:, cols])

        for_blocks(chunk, M, x2.size, x2)
        self.x2, self.d, self.d_pow, self.x_shape = x2, d, d_pow, x.shape
        return from_channel_major(y.reshape(C, x.shape[0], *x.shape[2:]))  # (N, C, *S)

    def backward_chunked(self, gy: Any) -> Any:
        xp = get_array_module(gy)
        C, M = self.x2.shape
        gy2 = channel_major(gy).reshape(C, M)  # (C, M)
        gx = xp.empty_like(gy2)  # (C, M)
        before, after = self.size // 2, (self.size - 1) // 2
        coef = -2 * self.alpha * self.beta / self.size

        def chunk(cols: slice) -> None:
            xs, gys, ps = self.x2[:, cols], gy2[:, cols], self.d_pow[:, cols]  # (C, m)
            t = gys * xs
            t *= ps
            t /= self.d[:, cols]  # gy * y / d
            s = _window_sum_rows(t, after, before, out=xp.empty_like(t))  # the adjoint
            s *= xs
            s *= coef
            xp.multiply(gys, ps, out=gx[:, cols])
            gx[:, cols] += s

        for_blocks(chunk, M, gy2.size, gy2)
        return from_channel_major(gx.reshape(C, self.x_shape[0], *self.x_shape[2:]))

    def backward_graph(self, gy: Tensor) -> Tensor:
        """The same formula with ops: d recomputed from x, the window sums as
        :class:`ChannelWindowSum` (whose backward is the mirrored window sum)."""
        (x,) = self.inputs
        n, before, after = self.size, self.size // 2, (self.size - 1) // 2
        d = ChannelWindowSum(before, after).apply(x * x) * (self.alpha / n) + self.k
        d_pow = d ** (-self.beta)
        t = ChannelWindowSum(after, before).apply(gy * x * d_pow / d)
        return gy * d_pow - x * t * (2 * self.alpha * self.beta / n)


class ChannelWindowSum(Function):
    """y[:, c] = sum of x[:, c - before : c + after + 1]; gx = the window sum with
    ``before`` and ``after`` swapped (its adjoint). LRN's window as an op."""

    def __init__(self, before: int, after: int) -> None:
        self.before, self.after = before, after

    def forward(self, x: Any) -> Any:
        return _window_sum(x, self.before, self.after)

    def backward(self, gy: Any) -> Any:
        return _window_sum(gy, self.after, self.before)

    def backward_graph(self, gy: Tensor) -> Tensor:
        return ChannelWindowSum(self.after, self.before).apply(gy)


def local_response_norm(
    x: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0
) -> Tensor:
    """Local response normalization across channels, as ``F.local_response_norm``.

    ``y[:, c] = x[:, c] / (k + alpha / size * sum_j x[:, j]**2) ** beta`` where ``j`` runs
    over channels ``c - size//2 .. c + (size-1)//2`` that exist (zero padding).

    Args:
        x: (N, C, H, W) (any (N, C, *) with 3 or more dims works).
        size: number of neighbouring channels in the window.
        alpha, beta, k: the formula's constants (``alpha`` is divided by ``size``).

    Returns:
        A Tensor shaped like ``x``.

    Raises:
        ValueError: fewer than 3 dims, or ``size`` not a positive int.
    """
    if x.ndim < 3:
        raise ValueError(
            "local_response_norm: expected an input with 3 or more dims (N, C, ...), "
            f"got shape {x.shape}"
        )
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"local_response_norm: size must be a positive int, got {size!r}")
    return LocalResponseNorm(size, alpha, beta, k).apply(x)
