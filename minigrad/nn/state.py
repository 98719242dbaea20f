"""State dicts: a module's parameters and buffers as host arrays, and loading them back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from minigrad import backend
from minigrad.tensor import Tensor, no_grad

if TYPE_CHECKING:
    from minigrad.nn.module import Module

__all__ = ["LoadResult", "state_dict", "state_tensors", "load_state_dict"]


class LoadResult(NamedTuple):
    """What ``load_state_dict(..., strict=False)`` skipped."""

    missing_keys: list[str]
    unexpected_keys: list[str]
    mismatched_keys: list[str]


def state_dict(module: Module) -> dict[str, np.ndarray]:
    """Dotted name -> host NumPy copy of every parameter and persistent buffer.

    Order: each module's parameters, then its buffers, then its children's, recursively
    (PyTorch's order, so keys line up with a PyTorch model of the same structure).
    """
    out: dict[str, np.ndarray] = {}
    for prefix, m in module.named_modules():
        p = f"{prefix}." if prefix else ""
        for name, t in m._parameters.items():
            if t is not None:
                out[p + name] = backend.as_numpy(t.data).copy()
        for name, t in m._buffers.items():
            if t is not None and name not in m._non_persistent:
                out[p + name] = backend.as_numpy(t.data).copy()
    return out


def state_tensors(module: Module) -> dict[str, Tensor]:
    """Dotted name -> the Tensor of every parameter and persistent buffer (no copies)."""
    out = {}
    for prefix, m in module.named_modules():
        p = f"{prefix}." if prefix else ""
        out.update({p + n: t for n, t in m._parameters.items() if t is not None})
        out.update(
            {
                p + n: t
                for n, t in m._buffers.items()
                if t is not None and n not in m._non_persistent
            }
        )
    return out


def load_state_dict(module: Module, state_dict: dict[str, Any], strict: bool = True) -> LoadResult:
    """Copy arrays from ``state_dict`` into the parameters and buffers, in place.

    Values may be NumPy/CuPy arrays, Tensors or anything ``np.asarray`` accepts; they are
    cast to each tensor's dtype and device.

    Args:
        state_dict: dotted name -> array, e.g. from :func:`state_dict`.
        strict: raise when any key is missing, unexpected or of the wrong shape.

    Returns:
        ``LoadResult(missing_keys, unexpected_keys, mismatched_keys)``. Departure from
        PyTorch: with ``strict=False`` wrongly-shaped keys are skipped and reported
        here instead of raising (handy for loading a backbone with a new head).

    Raises:
        ValueError: (strict) one message naming every missing, unexpected and
            wrongly-shaped key, so a mismatched checkpoint is diagnosed in one go.
    """
    if not hasattr(state_dict, "items"):
        raise TypeError(
            f"load_state_dict: expected a dict of arrays, got {type(state_dict).__name__}"
        )
    own = state_tensors(module)
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched, values = [], {}
    for k, t in own.items():
        if k not in state_dict:
            continue
        v = state_dict[k]
        v = v.data if isinstance(v, Tensor) else v
        v = v if hasattr(v, "shape") else np.asarray(v)
        if tuple(v.shape) != t.shape:
            mismatched.append(f"{k}: checkpoint {tuple(v.shape)} vs model {t.shape}")
        else:
            values[k] = v
    if strict and (missing or unexpected or mismatched):
        parts = [f"load_state_dict for {type(module).__name__} failed:"]
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if mismatched:
            parts.append(f"wrong shapes ({len(mismatched)}): {'; '.join(mismatched)}")
        raise ValueError("\n  ".join(parts))
    with no_grad():
        for k, v in values.items():
            t = own[k]
            xp = backend.get_array_module(t.data)
            if backend.device_of(v) != t.device:
                v = backend.to_device(v, t.device)
            with backend.device_context(t.device):
                t.copy_(xp.asarray(v, dtype=t.dtype))
    return LoadResult(missing, unexpected, [m.split(":")[0] for m in mismatched])
