"""Stochastic gradient descent with PyTorch's momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from minigrad.optim.optimizer import Optimizer
from minigrad.tensor import Tensor

__all__ = ["SGD"]


class SGD(Optimizer):
    """SGD, exactly PyTorch's update rule.

    With ``g = grad + weight_decay * p``:
    ``buf = g`` on the first step, then ``buf = momentum * buf + (1 - dampening) * g``;
    the step direction is ``g + momentum * buf`` (Nesterov) or ``buf``; ``p -= lr * d``.
    Without momentum ``p -= lr * g``.

    Args:
        params: parameters or param groups.
        lr: learning rate.
        momentum: momentum factor (0 disables the buffer).
        weight_decay: L2 penalty added to the gradient.
        nesterov: Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        dampening: dampening of the gradient added to the buffer.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        dampening: float = 0.0,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            nesterov=nesterov,
            dampening=dampening,
        )
        super().__init__(params, defaults)

    def _check_hparams(self, group: dict[str, Any]) -> None:
        super()._check_hparams(group)
        if group["momentum"] < 0:
            raise ValueError(f"SGD: momentum must be >= 0, got {group['momentum']}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"SGD: nesterov needs momentum > 0 and dampening == 0, got "
                f"momentum={group['momentum']}, dampening={group['dampening']}"
            )

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        # at most one scratch array per step; the user's p.grad is never written to
        scratch = None
        d = grad
        if wd:
            scratch = p.data * wd
            scratch += grad
            d = scratch
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = d.copy()
            else:
                buf *= momentum
                buf += d if group["dampening"] == 0 else (1 - group["dampening"]) * d
            if group["nesterov"]:
                if scratch is None:
                    scratch = buf * momentum
                    scratch += grad
                else:
                    scratch += momentum * buf
                d = scratch
            else:
                d = buf
        if d is scratch:
            scratch *= lr
            p.data -= scratch
        else:
            p.data -= lr * d
