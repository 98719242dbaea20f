"""Factories: ``tensor`` (from data) and ``zeros`` / ``ones`` / ``randn`` / ``rand``.

Random factories draw from the device's generator in ``minigrad.backend``, so
``minigrad.manual_seed`` makes them reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from minigrad import backend, devices, random
from minigrad.tensor import Tensor

__all__ = ["ones", "rand", "randn", "tensor", "zeros"]


def _infer_dtype(data: Any, dtype: np.dtype | None) -> np.dtype:
    if dtype is not None:
        return dtype
    dt = backend.default_dtype(data)  # Python floats float32; arrays keep their dtype
    if dt.kind in "fiub":
        return dt
    kind = dt.kind
    raise TypeError(
        f"tensor: cannot make a tensor from {type(data).__name__} data "
        f"(NumPy kind {kind!r}); expected numbers, bools or nested sequences of them"
    )


def tensor(
    data: Any, dtype: Any = None, device: Any = "cpu", requires_grad: bool = False
) -> Tensor:
    """A new leaf tensor that owns a copy of ``data``.

    Args:
        data: a number, nested sequence, NumPy/CuPy array or Tensor.
        dtype: a NumPy dtype or its name (``"float64"``). By default Python floats become
            float32, Python ints int64, bools bool; arrays and NumPy scalars keep their dtype.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        requires_grad: record operations on it for backward (floating dtypes only).

    Raises:
        TypeError: an unknown dtype, data that is not numeric, requires_grad on a
            non-floating dtype.
        ValueError: an unknown or unavailable device; ragged nested lists (rows of
            different lengths), naming where.
    """
    if isinstance(data, Tensor):
        data = data.data
    try:
        dt = _infer_dtype(data, backend.to_dtype(dtype, "tensor"))
        device = devices.normalize_device(device)
        if device == "cpu":
            arr = np.array(backend.as_numpy(data), dtype=dt)
        else:
            with devices.device_context(device):  # the cast allocates on the current device
                arr = devices.to_device(data, device).astype(dt, copy=True)
    except ValueError:
        where = _ragged_at(data) if isinstance(data, (list, tuple)) else None
        if where is None:
            raise
        raise ValueError(f"tensor: the nested lists are ragged: {where}") from None
    return Tensor(arr, requires_grad=requires_grad)


def _ragged_at(data: list | tuple) -> str | None:
    """Where nested lists stop being rectangular (NumPy only says "inhomogeneous shape")."""
    level: list[tuple[str, Any]] = [("", data)]
    while level:
        is_seq = [isinstance(x, (list, tuple)) for _, x in level]
        if not any(is_seq):
            return None
        if not all(is_seq):
            (p, _), (q, _) = level[is_seq.index(True)], level[is_seq.index(False)]
            return f"data{p} is a list but data{q} is a number"
        (p, first), *rest = level
        for q, x in rest:
            if len(x) != len(first):
                return f"data{p} has length {len(first)} but data{q} has length {len(x)}"
        level = [(f"{p}[{i}]", y) for p, x in level for i, y in enumerate(x)]
    return None


Fill = Callable[[Any, tuple[int, ...], np.dtype], Any]


def _factory(name: str, fill: Fill, doc: str, float_only: bool = False) -> Callable[..., Tensor]:
    def make(
        *shape: Any, dtype: Any = "float32", device: Any = "cpu", requires_grad: bool = False
    ) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], Sequence):
            shape = tuple(shape[0])
        if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in shape):
            raise TypeError(f"{name}: shape must be ints, got {shape}")
        if any(s < 0 for s in shape):
            raise ValueError(f"{name}: negative dimension in shape {tuple(shape)}")
        dt = backend.to_dtype(dtype, name)
        if float_only and dt.kind != "f":
            raise TypeError(f"{name}: dtype must be floating point, got {dt}")
        device = devices.normalize_device(device)
        xp = np if device == "cpu" else devices.require_cuda(device)
        with devices.device_context(device):
            arr = fill(xp, tuple(int(s) for s in shape), dt)
        return Tensor(arr, requires_grad=requires_grad)

    make.__name__ = make.__qualname__ = name
    make.__doc__ = f"{name}(*shape, dtype='float32', device='cpu', requires_grad=False): {doc}"
    return make


def _random_fill(method: str) -> Fill:
    def fill(xp: Any, shape: tuple[int, ...], dt: np.dtype) -> Any:
        dev = "cpu" if xp is np else f"cuda:{xp.cuda.Device().id}"
        g = random.generator(dev)
        a = g.standard_normal(shape) if method == "randn" else g.random(shape)
        return a.astype(dt, copy=False)

    return fill


zeros = _factory("zeros", lambda xp, s, dt: xp.zeros(s, dtype=dt), "a tensor of zeros.")
ones = _factory("ones", lambda xp, s, dt: xp.ones(s, dtype=dt), "a tensor of ones.")
randn = _factory(
    "randn",
    _random_fill("randn"),
    "standard normal samples from the device's generator (seeded by manual_seed).",
    float_only=True,
)
rand = _factory(
    "rand",
    _random_fill("rand"),
    "uniform [0, 1) samples from the device's generator (seeded by manual_seed).",
    float_only=True,
)
