"""Weight initialisation, in place, with PyTorch's names, formulas and defaults.

Every function fills ``tensor.data`` in place with samples from
``minigrad.random.generator(tensor.device)``, so ``mg.manual_seed(s)`` makes a model's
initial weights reproducible, and returns the tensor. Samples are drawn in float64 and cast
once to the tensor's dtype.
"""

from __future__ import annotations

import math
from typing import Any

from minigrad import backend, devices, random
from minigrad.tensor import Tensor

__all__ = [
    "calculate_gain",
    "constant_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "trunc_normal_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]


def _fill(fn: str, tensor: Tensor, values: Any) -> Tensor:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{fn}: expected a Tensor, got {type(tensor).__name__}")
    xp = backend.get_array_module(tensor.data)
    with devices.device_context(tensor.device):
        tensor.copy_(xp.asarray(values).astype(tensor.dtype, copy=False))
    return tensor


def _gen(tensor: Tensor) -> Any:
    return random.generator(tensor.device)


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with samples of U(a, b)."""
    if not a <= b:
        raise ValueError(f"uniform_: need a <= b, got a={a}, b={b}")
    return _fill("uniform_", tensor, a + (b - a) * _gen(tensor).random(tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with samples of N(mean, std^2)."""
    if std < 0:
        raise ValueError(f"normal_: std must be >= 0, got {std}")
    return _fill("normal_", tensor, mean + std * _gen(tensor).standard_normal(tensor.shape))


def trunc_normal_(
    tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0
) -> Tensor:
    """Fill with N(mean, std^2) samples truncated to [a, b] (absolute bounds, as PyTorch).

    Departure from PyTorch: samples outside [a, b] are redrawn (rejection) instead of using
    the inverse CDF, which needs ``erfinv`` (not in NumPy). The distribution is the same.
    """
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")
    if std <= 0:
        raise ValueError(f"trunc_normal_: std must be > 0, got {std}")
    lo, hi = (a - mean) / std, (b - mean) / std
    # probability that one draw lands in [lo, hi]; refuse hopeless intervals
    p = 0.5 * (math.erf(hi / math.sqrt(2)) - math.erf(lo / math.sqrt(2)))
    if p < 1e-3:
        raise ValueError(
            f"trunc_normal_: [a, b] = [{a}, {b}] holds only {p:.2g} of N({mean}, {std}^2)"
        )
    g = _gen(tensor)
    z = g.standard_normal(tensor.shape)
    xp = backend.get_array_module(z)
    bad = (z < lo) | (z > hi)
    while bool(bad.any()):
        z = xp.where(bad, g.standard_normal(tensor.shape), z)
        bad = (z < lo) | (z > hi)
    return _fill("trunc_normal_", tensor, mean + std * z)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"constant_: expected a Tensor, got {type(tensor).__name__}")
    tensor.copy_(val)
    return tensor


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """PyTorch's recommended gain: 1 for linear/conv/sigmoid, sqrt(2) for relu, ...

    ``param`` is leaky_relu's negative slope (default 0.01).
    """
    linear = ("linear", "conv1d", "conv2d", "conv3d", "sigmoid", "identity")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _fans(fn: str, tensor: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out): shape[1] and shape[0] times the receptive field (kernel size)."""
    if tensor.ndim < 2:
        raise ValueError(f"{fn}: fan in/out need a tensor with >= 2 dims, got shape {tensor.shape}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _kaiming_std(fn: str, tensor: Tensor, a: float, mode: str, nonlinearity: str) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{fn}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(fn, tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """He init: U(-bound, bound), bound = gain * sqrt(3 / fan). ``a``: leaky_relu slope."""
    bound = math.sqrt(3.0) * _kaiming_std("kaiming_uniform_", tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """He init: N(0, std^2), std = gain / sqrt(fan)."""
    return normal_(tensor, 0.0, _kaiming_std("kaiming_normal_", tensor, a, mode, nonlinearity))


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot init: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans("xavier_uniform_", tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot init: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans("xavier_normal_", tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def fan_in(tensor: Tensor) -> int:
    """Number of inputs per output unit (shape[1] times the kernel size)."""
    return _fans("fan_in", tensor)[0]
