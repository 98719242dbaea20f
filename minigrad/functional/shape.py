"""Shape ops: reshape, permute/transpose, flatten, indexing, cat/split, casts and copies."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from minigrad import devices
from minigrad.autograd import Function
from minigrad.backend import get_array_module
from minigrad.functional._layout import from_channel_major, is_channel_major
from minigrad.functional._threads import for_blocks
from minigrad.tensor import Tensor

__all__ = ["reshape", "permute", "transpose", "flatten", "getitem", "cat", "split"]


class Reshape(Function):
    """y = x viewed with a new shape; gx = gy reshaped back."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, x: Any) -> Any:
        self.x_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy: Any) -> Any:
        return gy.reshape(self.x_shape)

    def backward_graph(self, gy: Tensor) -> Tensor:
        return Reshape(self.x_shape).apply(gy)


class Permute(Function):
    """y = x with axes reordered by ``dims``; gx = gy with the inverse order."""

    def __init__(self, dims: tuple[int, ...]) -> None:
        self.dims = dims

    def forward(self, x: Any) -> Any:
        return x.transpose(self.dims)

    def backward(self, gy: Any) -> Any:
        inverse = sorted(range(len(self.dims)), key=self.dims.__getitem__)
        return gy.transpose(tuple(inverse))

    def backward_graph(self, gy: Tensor) -> Tensor:
        inverse = sorted(range(len(self.dims)), key=self.dims.__getitem__)
        return Permute(tuple(inverse)).apply(gy)


class GetItem(Function):
    """y = x[key]; gx = zeros with gy scattered back (summed where fancy indices repeat)."""

    def __init__(self, key: Any) -> None:
        self.key = key

    def forward(self, x: Any) -> Any:
        self.x_shape, self.x_dtype = x.shape, x.dtype
        return x[self.key]

    def backward(self, gy: Any) -> Any:
        xp = get_array_module(gy)
        keys = self.key if isinstance(self.key, tuple) else (self.key,)
        if any(hasattr(k, "shape") or isinstance(k, list) for k in keys):
            # fancy index: an element may be picked twice, so its gradients must add up.
            # where[i] = flat position in x of output element i; bincount sums repeats.
            size = math.prod(self.x_shape)
            where = xp.arange(size).reshape(self.x_shape)[self.key]  # gy's shape
            gx = xp.bincount(where.reshape(-1), weights=gy.reshape(-1), minlength=size)
            return gx.astype(self.x_dtype, copy=False).reshape(self.x_shape)
        gx = xp.zeros(self.x_shape, dtype=self.x_dtype)
        gx[self.key] = gy  # basic slicing never repeats an element
        return gx

    def backward_graph(self, gy: Tensor) -> Tensor:
        return IndexScatter(self.key, self.x_shape).apply(gy)


class IndexScatter(Function):
    """y = zeros(x_shape) with g scattered to ``[key]`` (summed where fancy indices repeat);
    gg = gy[key]. ``GetItem``'s backward as an op (its adjoint), for second derivatives."""

    def __init__(self, key: Any, x_shape: tuple[int, ...]) -> None:
        self.key, self.x_shape = key, x_shape

    def forward(self, g: Any) -> Any:
        op = GetItem(self.key)
        op.x_shape, op.x_dtype = self.x_shape, g.dtype
        return op.backward(g)

    def backward(self, gy: Any) -> Any:
        return gy[self.key]

    def backward_graph(self, gy: Tensor) -> Tensor:
        return GetItem(self.key).apply(gy)


class Cat(Function):
    """y = concatenation of the inputs along ``dim``; each gx is its slice of gy.

    ``forward`` is the reference (``xp.concatenate``). ``forward_chunked``, for channel-major
    inputs (:mod:`~minigrad.functional._layout`) concatenated along channels only
    (:meth:`path_applies`): a channel-major output, copied as contiguous blocks on the host
    threads. Its backward is the reference's (``shared_backward``): each gradient is a
    slice of ``gy`` (a view), a contiguous block when ``gy`` is channel-major.

    Paths (all in this module):
        reference: ``forward``/``backward``.
        chunked: ``forward_chunked`` (where :meth:`path_applies`), then the reference
            ``backward``; ``_threads.for_blocks`` splits the output channels.
    """

    keeps_inputs = False  # backward needs the sizes only, not the concatenated arrays
    shared_backward = {"chunked": "reference"}  # forward_chunked saves self.sizes too

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, *xs: Any) -> Any:
        self.sizes = [x.shape[self.dim] for x in xs]
        return get_array_module(xs[0]).concatenate(xs, axis=self.dim)

    def backward(self, gy: Any) -> tuple[Any, ...]:
        xp = get_array_module(gy)
        bounds = list(itertools.accumulate(self.sizes))[:-1]
        return tuple(xp.split(gy, bounds, axis=self.dim))  # views of gy

    def backward_graph(self, gy: Tensor) -> tuple[Tensor, ...]:
        return Split(self.sizes, self.dim).apply(gy)

    def path_applies(self, path: str, xs: tuple[Any, ...]) -> bool:
        return self.dim == 1 and all(is_channel_major(x) for x in xs)

    def forward_chunked(self, *xs: Any) -> Any:
        self.sizes = [x.shape[1] for x in xs]
        return cat_channel_major(xs)


def cat_channel_major(xs: tuple[Any, ...] | list[Any]) -> Any:
    """(N, C_i, *S) arrays -> their concatenation along C, stored channel-major (the
    (N, sum C_i, *S) view of a C-contiguous (sum C_i, N, *S) array), copied on the host
    threads in blocks of channels: contiguous blocks when the inputs are channel-major too
    (any layout works). ``Cat``'s chunked forward and ``Split``'s chunked backward."""
    xp = get_array_module(xs[0])
    bounds = [0, *itertools.accumulate(x.shape[1] for x in xs)]
    yc = xp.empty((bounds[-1], xs[0].shape[0], *xs[0].shape[2:]), dtype=xs[0].dtype)

    def copy(cs: slice) -> None:  # output channels cs, from every input that has some
        for x, lo, hi in zip(xs, bounds, bounds[1:]):
            a, b = max(lo, cs.start), min(hi, cs.stop)
            if a < b:
                yc[a:b] = x.swapaxes(0, 1)[a - lo : b - lo]  # contiguous blocks

    for_blocks(copy, bounds[-1], yc.size, yc)
    return from_channel_major(yc)  # (N, sum of C, *S) view


def _split_views(x: Any, sizes: list[int], dim: int) -> tuple[Any, ...]:
    """x's consecutive chunks of ``sizes`` along ``dim``, as views."""
    bounds = list(itertools.accumulate(sizes))[:-1]
    return tuple(get_array_module(x).split(x, bounds, axis=dim))


class Split(Function):
    """ys = consecutive chunks of x along ``dim`` (views); gx = concatenation of the gys.

    ``forward``/``backward`` are the reference (``xp.split``, ``xp.concatenate``).
    ``backward_chunked``, for a channel-major x split along channels (:meth:`path_applies`):
    gx is concatenated channel-major (:func:`cat_channel_major`), the layout x had, so an
    op before the split (a convolution whose output is split: GoogLeNet's fused Inception
    heads) reads its gradient without a transposing copy; ``forward_chunked`` is the
    reference's views.

    Paths (all in this module):
        reference: ``forward``/``backward``.
        chunked: ``forward_chunked``/``backward_chunked`` (where :meth:`path_applies`),
            with :func:`cat_channel_major`; ``_threads.for_blocks`` splits the channels.
    """

    def __init__(self, sizes: list[int], dim: int) -> None:
        self.sizes, self.dim = sizes, dim

    def forward(self, x: Any) -> tuple[Any, ...]:
        return _split_views(x, self.sizes, self.dim)

    def backward(self, *gys: Any) -> Any:
        return get_array_module(gys[0]).concatenate(gys, axis=self.dim)

    def backward_graph(self, *gys: Tensor) -> Tensor:
        return Cat(self.dim).apply(*gys)

    def path_applies(self, path: str, xs: tuple[Any, ...]) -> bool:
        return self.dim == 1 and is_channel_major(xs[0])

    def forward_chunked(self, x: Any) -> tuple[Any, ...]:
        return _split_views(x, self.sizes, self.dim)  # views: nothing to copy

    def backward_chunked(self, *gys: Any) -> Any:
        return cat_channel_major(gys)


class Cast(Function):
    """y = x cast to ``dtype``; gx = gy cast back to x's dtype."""

    def __init__(self, dtype: Any) -> None:
        self.dtype = np.dtype(dtype)  # host-side dtype metadata, shared by NumPy and CuPy

    def forward(self, x: Any) -> Any:
        self.x_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy: Any) -> Any:
        return gy.astype(self.x_dtype)

    def backward_graph(self, gy: Tensor) -> Tensor:
        return Cast(self.x_dtype).apply(gy)


class ToDevice(Function):
    """y = x copied to ``device``; gx = gy copied back."""

    def __init__(self, device: str) -> None:
        self.device = device

    def forward(self, x: Any) -> Any:
        self.x_device = devices.device_of(x)
        return devices.to_device(x, self.device)

    def backward(self, gy: Any) -> Any:
        return devices.to_device(gy, self.x_device)

    def backward_graph(self, gy: Tensor) -> Tensor:
        return ToDevice(self.x_device).apply(gy)


def _dim(op: str, dim: int, ndim: int) -> int:
    if not -ndim <= dim < ndim:
        raise ValueError(f"{op}: dim {dim} out of range for a {ndim}-D tensor")
    return dim % ndim


def reshape(x: Tensor, shape: Sequence[int]) -> Tensor:
    """x with a new shape (one entry may be -1)."""
    shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
    known = math.prod(s for s in shape if s != -1)
    if shape.count(-1) > 1 or (
        x.numel() != known if -1 not in shape else known == 0 or x.numel() % known
    ):
        raise ValueError(f"reshape: cannot view shape {x.shape} ({x.numel()} elements) as {shape}")
    return Reshape(shape).apply(x)


def permute(x: Tensor, dims: Sequence[int]) -> Tensor:
    """x with its axes reordered."""
    dims = tuple(_dim("permute", d, x.ndim) for d in dims)
    if sorted(dims) != list(range(x.ndim)):
        raise ValueError(f"permute: {dims} is not a permutation of the {x.ndim} dims")
    return Permute(dims).apply(x)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """x with two axes swapped."""
    dims = list(range(x.ndim))
    a, b = _dim("transpose", dim0, x.ndim), _dim("transpose", dim1, x.ndim)
    dims[a], dims[b] = dims[b], dims[a]
    return Permute(tuple(dims)).apply(x)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims ``start_dim..end_dim`` into one (``flatten(x, 1)`` gives (N, features))."""
    if x.ndim == 0:
        return reshape(x, (1,))
    s, e = _dim("flatten", start_dim, x.ndim), _dim("flatten", end_dim, x.ndim)
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = x.shape[:s] + (math.prod(x.shape[s : e + 1]),) + x.shape[e + 1 :]
    return Reshape(shape).apply(x)


def getitem(x: Tensor, key: Any) -> Tensor:
    """x[key] with NumPy indexing rules (Tensor indices allowed)."""
    if isinstance(key, tuple):
        key = tuple(k.data if isinstance(k, Tensor) else k for k in key)
    elif isinstance(key, Tensor):
        key = key.data
    return GetItem(key).apply(x)


def cat(tensors: Sequence[Tensor], dim: int = 1) -> Tensor:
    """Concatenate along ``dim`` (default 1, the channel axis of NCHW).

    Departure from PyTorch: the default dim is 1, since minigrad concatenates feature
    maps far more often than batches.
    """
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    ref = tensors[0]
    d = _dim("cat", dim, ref.ndim)
    for i, t in enumerate(tensors):
        if t.ndim != ref.ndim or any(
            a != b for k, (a, b) in enumerate(zip(t.shape, ref.shape)) if k != d
        ):
            raise ValueError(
                f"cat: tensor {i} has shape {t.shape}, incompatible with {ref.shape} "
                f"(all dims but {d} must match)"
            )
    return Cat(d).apply(*tensors)


def split(x: Tensor, split_size_or_sections: int | Sequence[int], dim: int = 0) -> tuple:
    """Split into chunks of ``split_size`` (last may be smaller) or of the given sizes."""
    d = _dim("split", dim, x.ndim)
    n = x.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sizes = [min(step, n - i) for i in range(0, n, step)]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n or any(s < 0 for s in sizes):
            raise ValueError(f"split: sections {sizes} do not add up to dim {d} of size {n}")
    return Split(sizes, d).apply(x)
