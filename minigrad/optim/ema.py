"""Exponential moving average of a model's weights (the paper's Polyak averaging).

ema = EMA(model, decay=0.999)
for x, y in loader:
    ...; opt.step(); ema.update()
with ema.swap(model):          # evaluate with the averaged weights
    evaluate(model, val_loader)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from minigrad import backend, devices
from minigrad.nn.module import Module

__all__ = ["EMA"]


def _copy(a: Any, device: str | None = None, dtype: Any = None) -> Any:
    """A copy of ``a`` on ``device`` (default: its own) as ``dtype``, made with that device
    current: CuPy allocates every new array on the current device, not on its source's."""
    device = devices.device_of(a) if device is None else device
    with devices.device_context(device):
        return devices.to_device(a, device).astype(a.dtype if dtype is None else dtype)


class EMA:
    """Shadow copies of a model's parameters, ``shadow = decay * shadow + (1 - decay) * p``.

    Buffers (batch norm's running statistics) are not averaged: ``update`` copies the
    model's current buffers, so the averaged model uses up-to-date statistics.

    Args:
        model: the model whose parameters are averaged (shadows live on its device).
        decay: weight of the old average in each update, in [0, 1).
        warmup: use ``min(decay, (1 + n) / (10 + n))`` at update ``n`` (as TensorFlow's
            ExponentialMovingAverage with ``num_updates``), so early averages are not
            dominated by the random initial weights. Off by default.
    """

    def __init__(self, model: Module, decay: float = 0.999, warmup: bool = False) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"EMA: expected a Module, got {type(model).__name__}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA: decay must be in [0, 1), got {decay}")
        self.model, self.decay, self.warmup = model, decay, warmup
        self.num_updates = 0
        self.shadow = {n: _copy(p.data) for n, p in model.named_parameters()}
        self.buffers = {n: _copy(b.data) for n, b in model.named_buffers()}

    def current_decay(self) -> float:
        """The decay the next ``update`` will use."""
        n = self.num_updates
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    def update(self) -> None:
        """Fold the model's current parameters into the average; copy its buffers."""
        d = self.current_decay()
        for n, p in self.model.named_parameters():
            s = self.shadow[n]
            if devices.device_of(s) != p.device or s.dtype != p.dtype:  # the model moved
                s = self.shadow[n] = _copy(s, p.device, p.dtype)
            with devices.device_context(p.device):  # (1 - d) * p is a temporary there
                s *= d
                s += (1 - d) * p.data
        for n, b in self.model.named_buffers():
            self.buffers[n] = _copy(b.data)
        self.num_updates += 1

    def _copy_into(self, model: Module, params: dict[str, Any], bufs: dict[str, Any]) -> None:
        own_p, own_b = dict(model.named_parameters()), dict(model.named_buffers())
        if set(own_p) != set(params):
            raise ValueError(
                f"EMA: model parameters {sorted(set(own_p) ^ set(params))} do not match the "
                "averaged ones (is this the model the EMA was built on?)"
            )
        for table, src in ((own_p, params), (own_b, bufs)):
            for n, a in src.items():
                t = table.get(n)
                if t is not None:
                    with devices.device_context(t.device):  # cast while copying: no temporary
                        t.copy_(devices.to_device(a, t.device))

    def apply_to(self, model: Module | None = None) -> None:
        """Overwrite ``model``'s parameters (default: the averaged model) with the averages."""
        self._copy_into(self.model if model is None else model, self.shadow, self.buffers)

    @contextlib.contextmanager
    def swap(self, model: Module | None = None) -> Iterator[Module]:
        """Context manager: the model holds the averaged weights inside, its own after."""
        model = self.model if model is None else model
        saved_p = {n: _copy(p.data) for n, p in model.named_parameters()}
        saved_b = {n: _copy(b.data) for n, b in model.named_buffers()}
        self.apply_to(model)
        try:
            yield model
        finally:
            self._copy_into(model, saved_p, saved_b)

    def state_dict(self) -> dict[str, Any]:
        """``decay``, ``warmup``, ``num_updates`` and host copies of the shadows and buffers."""
        return {
            "decay": self.decay,
            "warmup": self.warmup,
            "num_updates": self.num_updates,
            "shadow": {n: backend.as_numpy(a).copy() for n, a in self.shadow.items()},
            "buffers": {n: backend.as_numpy(a).copy() for n, a in self.buffers.items()},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the arrays go to the model's device and dtype."""
        missing = set(self.shadow) ^ set(state_dict.get("shadow", {}))
        if missing:
            raise ValueError(f"EMA.load_state_dict: parameter names differ: {sorted(missing)}")
        params = dict(self.model.named_parameters())
        for n, a in state_dict["shadow"].items():
            p = params[n]
            if tuple(a.shape) != p.shape:
                raise ValueError(
                    f"EMA.load_state_dict: shadow of {n!r} has shape {tuple(a.shape)}, "
                    f"parameter has {p.shape}"
                )
            self.shadow[n] = _copy(a, p.device, p.dtype)
        bufs = dict(self.model.named_buffers())
        self.buffers = {
            n: _copy(a, bufs[n].device, bufs[n].dtype)
            for n, a in state_dict.get("buffers", {}).items()
            if n in bufs
        }
        self.decay = float(state_dict["decay"])
        self.warmup = bool(state_dict.get("warmup", False))
        self.num_updates = int(state_dict["num_updates"])
