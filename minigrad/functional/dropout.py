"""Inverted dropout; its mask comes from ``minigrad.backend.generator`` (``manual_seed``)."""

from __future__ import annotations

import numbers
from typing import Any

from minigrad import backend
from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.tensor import Tensor

__all__ = ["dropout"]


class Dropout(Function):
    """y = x * mask, mask = keep / (1 - p) with keep ~ Bernoulli(1 - p); gx = gy * mask."""

    keeps_inputs = False  # backward reads the mask only

    def __init__(self, p: float, device: str) -> None:
        self.p, self.device = p, device

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        if self.p == 1:
            self.mask = xp.zeros_like(x)
            return self.mask.copy()
        # the generators draw float32 or float64 only; other float dtypes use float32 draws
        dtype = x.dtype if x.dtype in (xp.float32, xp.float64) else xp.float32
        u = backend.generator(self.device).random(x.shape, dtype=dtype)
        mask = (u >= self.p).astype(x.dtype)  # keep with probability 1 - p
        mask *= 1 / (1 - self.p)
        self.mask = mask
        return x * mask

    def backward(self, gy: Any) -> Any:
        return gy * self.mask


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the survivors by ``1 / (1 - p)``.

    Same semantics as ``F.dropout`` (inverted dropout): the expected value of every element is
    unchanged, so evaluation needs no rescaling. The mask is drawn from the generator of
    ``x``'s device, so ``minigrad.manual_seed`` makes it reproducible; backward multiplies by
    the very same mask.

    Args:
        x: a floating-point Tensor of any shape.
        p: drop probability in [0, 1].
        training: when False (or ``p == 0``) the op is the identity and returns ``x`` itself.

    Returns:
        ``x`` unchanged (eval or ``p == 0``), zeros (``p == 1``), else the masked Tensor.

    Raises:
        ValueError: ``p`` outside [0, 1] (or NaN).
        TypeError: a ``p`` that is not a number; a non-floating-point ``x`` in training mode.
    """
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"dropout: p must be a number in [0, 1], got {p!r}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability p has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return x
    if x.dtype.kind != "f":
        raise TypeError(f"dropout: expected a floating-point tensor, got dtype {x.dtype}")
    return Dropout(float(p), x.device).apply(x)
