"""The channel-major memory layout that the convolution ops hand to each other.

A tensor keeps the shape ``(N, C, H, W)`` (PyTorch's semantics, every op's API), but the
arrays that ``conv2d``, ``batch_norm``, ``relu``, pooling and ``cat`` produce are stored
**channel-major**: they are ``(N, C, H, W)`` views (axes 0 and 1 swapped) of a
C-contiguous ``(C, N, H, W)`` array. Why:

- every product of a convolution is then ONE 2-D GEMM with no layout copy:
  ``y (C_out, N*OH*OW) = w2 @ col`` *is* the output, a 1x1 convolution is
  ``w2 @ x.reshape(C, N*H*W)``, and its gradients are the same products transposed;
- batch norm reduces contiguous rows ``(C, N*H*W)``;
- ``cat`` along channels copies contiguous blocks, and its backward hands each branch a
  contiguous block of the gradient (a view, no copy);
- host threads split work by channel blocks, each a contiguous range of memory.

Layout changes no value, only strides (``PyTorch``'s ``channels_last`` is the same idea
with another order). Every op accepts any layout: :func:`channel_major` is a free view
for channel-major arrays and one transposed copy for anything else (a user's NCHW input).
"""

from __future__ import annotations

from typing import Any

from minigrad.backend import get_array_module


def channel_major(x: Any) -> Any:
    """(N, C, *S) array -> C-contiguous (C, N, *S) array: a view when ``x`` is channel-major,
    else one transposed copy."""
    return get_array_module(x).ascontiguousarray(x.swapaxes(0, 1))


def from_channel_major(xc: Any) -> Any:
    """C-contiguous (C, N, *S) -> the (N, C, *S) view of it (no copy)."""
    return xc.swapaxes(0, 1)


def is_channel_major(x: Any) -> bool:
    """True when ``x`` (N, C, *S) is stored as a C-contiguous (C, N, *S) array."""
    return x.ndim >= 2 and x.swapaxes(0, 1).flags.c_contiguous


def plane_major(x: Any) -> tuple[Any, bool]:
    """A C-contiguous 4-D array of the (H, W) planes of ``x`` (N, C, H, W), and whether its
    first two axes are swapped: ``(x, False)`` for NCHW, ``(x^T01, True)`` for
    channel-major, a copy otherwise. Pooling works plane by plane, so either order works."""
    if x.flags.c_contiguous:
        return x, False
    if is_channel_major(x):
        return x.swapaxes(0, 1), True
    return get_array_module(x).ascontiguousarray(x), False


def like_planes(gy: Any, swapped: bool) -> Any:
    """``gy`` (N, C, H, W) as a C-contiguous array in the plane order :func:`plane_major`
    chose (a view when ``gy`` is already stored that way)."""
    xp = get_array_module(gy)
    return xp.ascontiguousarray(gy.swapaxes(0, 1) if swapped else gy)


def memory_order(x: Any) -> str | None:
    """``"C"`` when ``x`` (N, C, *S) is C-contiguous, else ``"channel-major"`` when it is
    stored so, else None. Two arrays of one shape and the same order list their elements
    in the same order in memory (:func:`memory_view`)."""
    if x.flags.c_contiguous:
        return "C"
    return "channel-major" if is_channel_major(x) else None


def memory_view(x: Any) -> Any:
    """The 1-D view of the memory of ``x`` (N, C, *S) when it is C-contiguous or
    channel-major (elementwise ops can then work on it in cache-sized runs), else None."""
    order = memory_order(x)
    if order == "C":
        return x.reshape(-1)
    return None if order is None else x.swapaxes(0, 1).reshape(-1)


def empty_like_layout(x: Any, dtype: Any = None) -> Any:
    """An uninitialised array shaped like ``x`` (N, C, *S), stored channel-major when ``x``
    is, else C-contiguous (so :func:`memory_view` of both lists the elements in one order)."""
    xp = get_array_module(x)
    if memory_order(x) == "channel-major":
        return from_channel_major(xp.empty(x.swapaxes(0, 1).shape, dtype or x.dtype))
    return xp.empty(x.shape, dtype or x.dtype)
