"""State dicts: a module's parameters and buffers as host arrays, and loading them back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from minigrad import backend, devices
from minigrad.tensor import Tensor, no_grad

if TYPE_CHECKING:
    from minigrad.nn.module import Module

__all__ = ["LoadResult", "load_state_dict", "mismatch_report", "state_dict", "state_tensors"]


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


_PER_GROUP = 6  # keys listed per prefix before "+N more"
_LINES = 24  # prefixes (or wrong shapes) listed per section before "+N more"


def _grouped(keys: list[str]) -> list[str]:
    """``prefix (n): rest, rest, ...`` lines, one per first dotted component, in order."""
    groups: dict[str, list[str]] = {}
    for k in keys:
        head, _, rest = k.partition(".")
        groups.setdefault(head if rest else "", []).append(rest or head)
    lines = []
    for head, rests in groups.items():
        shown = ", ".join(rests[:_PER_GROUP]) + (
            f", +{len(rests) - _PER_GROUP} more" if len(rests) > _PER_GROUP else ""
        )
        lines.append(f"{head}.* ({len(rests)}): {shown}" if head else shown)
    return lines


def mismatch_report(owner: str, missing: list[str], unexpected: list[str],
                    mismatched: list[str]) -> str:  # fmt: skip
    """The one readable block a strict ``load_state_dict`` raises: the missing, unexpected
    and wrongly-shaped keys, each section grouped by the keys' first dotted component (a
    model's block), with a hint when the checkpoint's names carry an extra or missing prefix
    (``module.`` from a data-parallel wrapper)."""
    counts = [f"{len(v)} {what}" for v, what in ((missing, "missing"),
              (unexpected, "unexpected"), (mismatched, "with the wrong shape")) if v]  # fmt: skip
    lines = [f"load_state_dict for {owner} failed: {', '.join(counts)}"]
    for keys, title in ((missing, "missing keys"), (unexpected, "unexpected keys")):
        if keys:
            group = _grouped(keys)
            lines.append(f"  {title} ({len(keys)}):")
            lines += [f"    {g}" for g in group[:_LINES]]
            if len(group) > _LINES:
                lines.append(f"    +{len(group) - _LINES} more prefixes")
    if mismatched:
        lines.append(f"  wrong shapes ({len(mismatched)}):")
        lines += [f"    {m}" for m in mismatched[:_LINES]]
        if len(mismatched) > _LINES:
            lines.append(f"    +{len(mismatched) - _LINES} more")
    for a, b in ((unexpected, missing), (missing, unexpected)):
        heads = {k.partition(".")[0] for k in a if "." in k}
        if len(heads) == 1 and a and all("." in k for k in a):
            head = heads.pop()
            if {k.partition(".")[2] for k in a} >= set(b) and b:
                side = "checkpoint" if a is unexpected else "model"
                lines.append(f"  hint: every {side} key has the extra prefix {head + '.'!r}; "
                             "strip it from the names before loading")  # fmt: skip
    return "\n".join(lines)


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
        ValueError: (strict) one block (:func:`mismatch_report`) naming every missing,
            unexpected and wrongly-shaped key, grouped by prefix, so a mismatched
            checkpoint is diagnosed in one go.
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
        raise ValueError(mismatch_report(type(module).__name__, missing, unexpected, mismatched))
    with no_grad():
        for k, v in values.items():
            t = own[k]
            xp = backend.get_array_module(t.data)
            if devices.device_of(v) != t.device:
                v = devices.to_device(v, t.device)
            with devices.device_context(t.device):
                t.copy_(xp.asarray(v, dtype=t.dtype))
    return LoadResult(missing, unexpected, [m.split(":")[0] for m in mismatched])
