"""Hypothesis strategies for property tests of ops (needs the ``test`` extra: hypothesis).

    from hypothesis import given
    from minigrad.testing import conv_geometries, separated_arrays

    @given(g=conv_geometries(), data=st.data())
    def test_my_conv(g, data):
        x = data.draw(separated_arrays(g.input_shape))
        ...

Geometries always give a non-empty output; ``separated_arrays`` gives distinct values far
from zero, so max-pooling has no ties and ReLU no input at its kink, and central
differences with a small step never cross a kink.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from minigrad.functional._im2col import conv_output_size
from minigrad.functional._windows import pool_output_size

__all__ = [
    "ConvGeometry",
    "PoolGeometry",
    "conv_geometries",
    "float_arrays",
    "pool_geometries",
    "separated_arrays",
    "shapes",
]


@dataclass(frozen=True)
class ConvGeometry:
    """Shapes of one conv2d call: input (N, C, H, W), weight (C_out, C, KH, KW)."""

    N: int
    C: int
    H: int
    W: int
    C_out: int
    KH: int
    KW: int
    stride: int
    padding: int

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C, self.H, self.W)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.C_out, self.C, self.KH, self.KW)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        OH = conv_output_size(self.H, self.KH, self.stride, self.padding)
        OW = conv_output_size(self.W, self.KW, self.stride, self.padding)
        return (self.N, self.C_out, OH, OW)


@dataclass(frozen=True)
class PoolGeometry:
    """Shapes of one pooling call on an (N, C, H, W) input with a square window."""

    N: int
    C: int
    H: int
    W: int
    kernel: int
    stride: int
    padding: int
    ceil_mode: bool

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C, self.H, self.W)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        args = (self.kernel, self.stride, self.padding, self.ceil_mode)
        return (
            self.N,
            self.C,
            pool_output_size(self.H, *args),
            pool_output_size(self.W, *args),
        )


@st.composite
def conv_geometries(
    draw: st.DrawFn,
    max_batch: int = 2,
    max_channels: int = 3,
    max_size: int = 7,
    max_kernel: int = 3,
    max_stride: int = 2,
    max_padding: int = 1,
) -> ConvGeometry:
    """Valid conv2d geometries (square stride and padding, possibly non-square kernels)."""
    KH = draw(st.integers(1, max_kernel))
    KW = draw(st.integers(1, max_kernel))
    padding = draw(st.integers(0, max_padding))
    stride = draw(st.integers(1, max_stride))
    H = draw(st.integers(max(1, KH - 2 * padding), max(max_size, KH)))
    W = draw(st.integers(max(1, KW - 2 * padding), max(max_size, KW)))
    return ConvGeometry(
        N=draw(st.integers(1, max_batch)),
        C=draw(st.integers(1, max_channels)),
        H=H,
        W=W,
        C_out=draw(st.integers(1, max_channels)),
        KH=KH,
        KW=KW,
        stride=stride,
        padding=padding,
    )


@st.composite
def pool_geometries(
    draw: st.DrawFn,
    max_batch: int = 2,
    max_channels: int = 3,
    max_size: int = 7,
    max_kernel: int = 3,
    max_stride: int = 3,
    ceil_mode: st.SearchStrategy[bool] | None = None,
) -> PoolGeometry:
    """Valid pooling geometries: padding <= kernel // 2 (PyTorch's rule), kernel <= padded size."""
    kernel = draw(st.integers(1, max_kernel))
    padding = draw(st.integers(0, kernel // 2))
    stride = draw(st.integers(1, max_stride))
    low = max(1, kernel - 2 * padding)
    H = draw(st.integers(low, max(max_size, low)))
    W = draw(st.integers(low, max(max_size, low)))
    return PoolGeometry(
        N=draw(st.integers(1, max_batch)),
        C=draw(st.integers(1, max_channels)),
        H=H,
        W=W,
        kernel=kernel,
        stride=stride,
        padding=padding,
        ceil_mode=draw(ceil_mode if ceil_mode is not None else st.booleans()),
    )


@st.composite
def separated_arrays(
    draw: st.DrawFn, shape: tuple[int, ...], dtype: object = np.float64, gap: float = 0.1
) -> np.ndarray:
    """Arrays whose values are pairwise at least ``gap * scale`` apart and never near 0.

    Values are a shuffled grid ``(k - n/2 + 0.25) * gap * scale`` with a random sign and a
    random scale in [0.5, 2]: no ties for max, nothing within ``gap/8`` of ReLU's kink.
    """
    n = int(np.prod(shape))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.floats(0.5, 2.0))
    sign = draw(st.sampled_from([-1.0, 1.0]))
    rng = np.random.default_rng(seed)
    values = (np.arange(n) - n / 2 + 0.25) * gap * scale * sign
    return rng.permutation(values).reshape(shape).astype(dtype)


@st.composite
def float_arrays(
    draw: st.DrawFn,
    shape: tuple[int, ...],
    dtype: object = np.float64,
    low: float = -2.0,
    high: float = 2.0,
) -> np.ndarray:
    """Uniform random arrays from a hypothesis-drawn seed (fast for any size)."""
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(dtype)


def shapes(
    min_dims: int = 1, max_dims: int = 4, min_side: int = 1, max_side: int = 4
) -> st.SearchStrategy[tuple[int, ...]]:
    """Array shapes as tuples of ``min_dims..max_dims`` sides in ``min_side..max_side``."""
    return st.lists(st.integers(min_side, max_side), min_size=min_dims, max_size=max_dims).map(
        tuple
    )
