"""Learning-rate schedules: step, cosine, linear warmup, and the GoogLeNet paper's.

Every schedule computes the lr of epoch (or step) ``t`` in closed form from the group's
``initial_lr``, so a schedule restored from ``state_dict`` continues exactly, and schedules
compose (``LinearWarmup(opt, 5, after=CosineAnnealingLR(opt, 95))``). As in PyTorch,
constructing a schedule sets the lr of ``t = 0``, and ``step()`` (called once per epoch, or
per iteration if that is what ``t`` counts) moves to ``t + 1``.
"""

from __future__ import annotations

import math
from typing import Any

from minigrad.optim.optimizer import Optimizer

__all__ = ["CosineAnnealingLR", "LRScheduler", "LinearWarmup", "PaperSchedule", "StepLR"]


class LRScheduler:
    """Base class: subclasses write ``lr_at(base_lr, t)``."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, base_lr: float, t: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_lr(self) -> list[float]:
        """The lr of every param group at ``last_epoch``."""
        return [self.lr_at(b, self.last_epoch) for b in self.base_lrs]

    def step(self) -> None:
        """Advance one epoch/step and write the new lr into the optimizer."""
        self.last_epoch += 1
        self._last_lr = self.get_lr()
        for g, lr in zip(self.optimizer.param_groups, self._last_lr):
            g["lr"] = lr

    def get_last_lr(self) -> list[float]:
        """The lr of every param group as last set by this schedule."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer (numbers, lists, nested schedules' state)."""
        out = {}
        for k, v in vars(self).items():
            if k == "optimizer":
                continue
            out[k] = v.state_dict() if isinstance(v, LRScheduler) else v
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (and re-apply the restored lr to the optimizer)."""
        for k, v in state_dict.items():
            own = getattr(self, k, None)
            if isinstance(own, LRScheduler):
                own.load_state_dict(v)
            else:
                setattr(self, k, v)
        for g, lr in zip(self.optimizer.param_groups, self._last_lr):
            g["lr"] = lr

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self.get_last_lr()})"


def _check(name: str, cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(f"{name}: {msg}")


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (t // step_size)."""

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        name = type(self).__name__
        _check(
            name,
            isinstance(step_size, int) and step_size >= 1,
            f"step_size must be a positive int, got {step_size!r}",
        )
        _check(name, 0 < gamma < math.inf, f"gamma must be > 0 and finite, got {gamma}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, t: int) -> float:
        return base_lr * self.gamma ** (t // self.step_size)


class PaperSchedule(StepLR):
    """The GoogLeNet paper's schedule: lr decreases by 4% every 8 epochs (``StepLR(8, 0.96)``)."""

    def __init__(
        self,
        optimizer: Optimizer,
        step_size: int = 8,
        gamma: float = 0.96,
        last_epoch: int = -1,
    ) -> None:
        super().__init__(optimizer, step_size, gamma, last_epoch)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2 (half a cosine
    from base_lr at t = 0 to eta_min at t = T_max; it keeps following the cosine after)."""

    def __init__(
        self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1
    ) -> None:
        _check(
            "CosineAnnealingLR",
            isinstance(T_max, int) and T_max >= 1,
            f"T_max must be a positive int, got {T_max!r}",
        )
        _check(
            "CosineAnnealingLR",
            math.isfinite(eta_min),
            f"eta_min must be a finite number, got {eta_min}",
        )
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, t: int) -> float:
        return (
            self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2
        )


class LinearWarmup(LRScheduler):
    """lr = base_lr * (t + 1) / warmup_steps for t < warmup_steps, then ``after`` (shifted to
    start at its own t = 0) or base_lr.

    Args:
        optimizer: the optimizer (the same one ``after`` was built on).
        warmup_steps: length of the ramp; the lr reaches base_lr at t = warmup_steps - 1.
        after: the schedule that takes over at t = warmup_steps, e.g. a
            ``CosineAnnealingLR(opt, T_max=epochs - warmup_steps)``. Only its ``lr_at`` is
            used; do not call its ``step()`` yourself.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: int,
        after: LRScheduler | None = None,
        last_epoch: int = -1,
    ) -> None:
        _check(
            "LinearWarmup",
            isinstance(warmup_steps, int) and warmup_steps >= 1,
            f"warmup_steps must be a positive int, got {warmup_steps!r}",
        )
        if after is not None and after.optimizer is not optimizer:
            raise ValueError("LinearWarmup: `after` must be built on the same optimizer")
        self.warmup_steps, self.after = warmup_steps, after
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, t: int) -> float:
        if t < self.warmup_steps:
            return base_lr * (t + 1) / self.warmup_steps
        if self.after is None:
            return base_lr
        return self.after.lr_at(base_lr, t - self.warmup_steps)
