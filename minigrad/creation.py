"""Factories: ``tensor`` (from data) and ``zeros`` / ``ones`` / ``randn`` / ``rand``.

Random factories draw from the device's generator in ``minigrad.backend``, so
``minigrad.manual_seed`` makes them reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from minigrad import backend
from minigrad.tensor import Tensor, _to_dtype

__all__ = ["ones", "rand", "randn", "tensor", "zeros"]


def _infer_dtype(data: Any, dtype: np.dtype | None) -> np.dtype:
    if dtype is not None:
        return dtype
    if isinstance(data, np.ndarray) or backend.is_cupy_array(data):
        return data.dtype
    kind = np.asarray(data).dtype.kind
    if kind == "f":
        return np.dtype(np.float32)
    if kind in "iu":
        return np.dtype(np.int64)
    if kind == "b":
        return np.dtype(bool)
    raise TypeError(f"tensor: cannot make a tensor from data of kind {kind!r}")


def tensor(
    data: Any, dtype: Any = None, device: Any = "cpu", requires_grad: bool = False
) -> Tensor:
    """A new leaf tensor that owns a copy of ``data``.

    Python floats become float32 (numpy arrays keep their dtype), ints int64.
    Raises TypeError for requires_grad on a non-float dtype.
    """
    if isinstance(data, Tensor):
        data = data.data
    dt = _infer_dtype(data, _to_dtype(dtype))
    device = backend.normalize_device(device)
    if device == "cpu":
        arr = np.array(backend.as_numpy(data), dtype=dt)
    else:
        arr = backend.to_device(data, device).astype(dt, copy=True)
    return Tensor(arr, requires_grad=requires_grad)


def _factory(fill: Callable[[Any, tuple[int, ...], np.dtype], Any]) -> Callable[..., Tensor]:
    def make(
        *shape: Any, dtype: Any = "float32", device: Any = "cpu", requires_grad: bool = False
    ) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], Sequence):
            shape = tuple(shape[0])
        device = backend.normalize_device(device)
        xp = np if device == "cpu" else backend._require_cuda(device)
        with backend.device_context(device):
            arr = fill(xp, tuple(int(s) for s in shape), np.dtype(dtype))
        return Tensor(arr, requires_grad=requires_grad)

    return make


zeros = _factory(lambda xp, s, dt: xp.zeros(s, dtype=dt))
ones = _factory(lambda xp, s, dt: xp.ones(s, dtype=dt))


def _random_fill(method: str) -> Callable[[Any, tuple[int, ...], np.dtype], Any]:
    def fill(xp: Any, shape: tuple[int, ...], dt: np.dtype) -> Any:
        dev = "cpu" if xp is np else f"cuda:{xp.cuda.Device().id}"
        g = backend.generator(dev)
        a = g.standard_normal(shape) if method == "randn" else g.random(shape)
        return a.astype(dt, copy=False)

    return fill


randn = _factory(_random_fill("randn"))
rand = _factory(_random_fill("rand"))

zeros.__doc__ = "zeros(*shape, dtype='float32', device='cpu', requires_grad=False)"
ones.__doc__ = "ones(*shape, dtype='float32', device='cpu', requires_grad=False)"
randn.__doc__ = "Standard normal samples from the device's seeded generator."
rand.__doc__ = "Uniform [0, 1) samples from the device's seeded generator."
