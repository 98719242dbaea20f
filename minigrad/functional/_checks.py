"""Argument checks shared by every op (as Chainer's ``type_check``, PyTorch's ``_pair``).

Each check raises a ``TypeError`` (wrong kind of value) or ``ValueError`` (wrong value)
whose message starts with the op's name and quotes the offending value, and returns the
normalized value where there is one. Ops call these instead of writing their own; so do
the layers above that take the same kinds of argument (``nn.Conv2d``'s ``kernel_size``,
a transform's ``size``), with their own name in the message: one ``int_pair`` for all.
"""

from __future__ import annotations

import numbers
from typing import Any

from minigrad.tensor import Tensor


def _is_int(v: Any) -> bool:
    """An int (NumPy's integers too), but not a bool."""
    return isinstance(v, (int, numbers.Integral)) and not isinstance(v, bool)  # int: fast


def pair(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``(v, v)`` for an int, the pair itself for a 2-sequence (no checks: for array code
    whose callers checked already)."""
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def int_pair(op: str, name: str, value: Any) -> tuple[int, int]:
    """``value`` as ``(h, w)``: an int means both; else exactly two ints (a tuple or list).
    ``op`` is whoever checks: an op (``conv2d``), a layer (``Conv2d``), a transform.

    Raises:
        TypeError: anything else (a float, a bool, a 1- or 3-sequence).
    """
    if isinstance(value, (tuple, list)):
        ok = len(value) == 2 and all(_is_int(v) for v in value)
    else:
        ok = _is_int(value)
    if not ok:
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return pair(value)


def positive(op: str, name: str, value: tuple[int, int]) -> tuple[int, int]:
    """``value`` unchanged when both entries are >= 1, else ValueError."""
    if min(value) < 1:
        raise ValueError(f"{op}: {name} must be positive, got {value}")
    return value


def non_negative(op: str, name: str, value: tuple[int, int]) -> tuple[int, int]:
    """``value`` unchanged when both entries are >= 0, else ValueError."""
    if min(value) < 0:
        raise ValueError(f"{op}: {name} must be non-negative, got {value}")
    return value


def tensor_arg(op: str, name: str, t: Any, optional: bool = False) -> None:
    """TypeError unless ``t`` is a Tensor (or None when ``optional``)."""
    if t is None and optional:
        return
    if not isinstance(t, Tensor):
        kind = "a Tensor or None" if optional else "a Tensor"
        hint = ""
        if hasattr(t, "__array__"):  # a NumPy/CuPy array, e.g. a batch from a DataLoader
            hint = "; wrap arrays with minigrad.tensor(x) (a DataLoader yields NumPy batches)"
        raise TypeError(f"{op}: {name} must be {kind}, got {type(t).__name__}{hint}")


def floating(op: str, name: str, t: Tensor) -> None:
    """TypeError unless ``t`` has a floating-point dtype."""
    if t.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be floating point, got dtype {t.dtype}")


def float_tensor(op: str, x: Tensor) -> None:
    """TypeError unless the op's single tensor argument has a floating-point dtype."""
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point tensor, got dtype {x.dtype}")


def image_batch(op: str, x: Any) -> None:
    """The input of an image op: a floating-point (N, C, H, W) Tensor."""
    tensor_arg(op, "input", x)
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got shape {x.shape}")
    floating(op, "input", x)


def dim(op: str, value: Any, ndim: int) -> int:
    """A dimension index in ``[-ndim, ndim)`` (a 0-D tensor counts as 1-D), made >= 0."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{op}: dim must be an int, got {value!r}")
    if not -max(ndim, 1) <= value < max(ndim, 1):
        raise ValueError(f"{op}: dim {value} out of range for a {ndim}-D tensor")
    return value % max(ndim, 1)


def window_fits(op: str, name: str, kernel: tuple[int, int], x: Tensor, padding: Any) -> None:
    """ValueError when a ``kernel`` window is larger than the padded (H, W) of ``x``."""
    H, W = x.shape[2], x.shape[3]
    ph, pw = padding
    if kernel[0] > H + 2 * ph or kernel[1] > W + 2 * pw:
        raise ValueError(
            f"{op}: {name} {kernel} is larger than the padded input "
            f"({H + 2 * ph}, {W + 2 * pw}) (input {H}x{W}, padding {tuple(padding)})"
        )
