"""Inverted dropout; its mask comes from ``minigrad.backend``'s dropout stream (``manual_seed``)."""

from __future__ import annotations

import numbers
from typing import Any

from minigrad import random
from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.functional import _checks
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
        mask = _keep(x.shape, self.p, self.device).astype(x.dtype)
        mask *= 1 / (1 - self.p)
        self.mask = mask
        return x * mask

    def backward(self, gy: Any) -> Any:
        return gy * self.mask

    def backward_graph(self, gy: Tensor) -> Tensor:
        return gy * Tensor(self.mask)  # the same mask, a constant


def _keep(shape: tuple[int, ...], p: float, device: str) -> Any:
    """Bernoulli(1 - p) booleans: a random 32-bit word is kept when it is >= p * 2**32.

    The words come from the dropout stream (``random.dropout_bits``), so a mask depends on the
    seed and the stream's offset only: the same on every device, and restored by a checkpoint.
    """
    bits = random.dropout_bits(shape, device)
    xp = get_array_module(bits)
    return bits >= xp.uint32(min(round(p * 2**32), 2**32 - 1))


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the survivors by ``1 / (1 - p)``.

    Same semantics as ``F.dropout`` (inverted dropout): the expected value of every element is
    unchanged, so evaluation needs no rescaling. The mask comes from a counter-based
    stream (Philox, like PyTorch's CUDA dropout) seeded by ``minigrad.manual_seed``: the same
    masks on the CPU and on a GPU, and its position is part of ``random.get_rng_state``, so a
    resumed run draws exactly the masks of an uninterrupted one. Backward multiplies by the
    very same mask.

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
    _checks.float_tensor("dropout", x)
    return Dropout(float(p), x.device).apply(x)
