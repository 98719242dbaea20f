"""The ``Function`` base class: how an op records itself in the graph, and which of its
implementations runs.

An op subclasses ``Function``, stores its hyper-parameters in ``__init__``, and writes
``forward(*arrays) -> array | tuple`` and ``backward(*grad_outputs) -> grad | tuple``
on raw NumPy/CuPy arrays: the op's **reference**, plain ``xp`` code that reads as the maths.
An op may add fast paths beside it, under fixed names:

- ``forward_chunked`` / ``backward_chunked``: the same maths on cache-sized chunks shared
  out among the host threads (:mod:`minigrad.functional._threads`); on CuPy, one chunk;
- ``forward_cuda`` / ``backward_cuda``: hand-written CUDA kernels (float32/float64 CuPy
  arrays), their source in the op's own module, compiled and launched through
  :mod:`minigrad.functional._cuda`.

Fast paths come in pairs, checked when the class is defined (``__init_subclass__``): a
``forward_X`` without its ``backward_X`` is a TypeError at import, unless the class
declares that the path's forward saves what another path's backward reads, in
``shared_backward`` (``{"chunked": "reference"}``: ``forward_chunked`` is followed by
``backward``). A ``backward_X`` without its ``forward_X`` is a TypeError too.

``apply`` chooses the path ONCE, at forward time (:meth:`Function.choose_path`: the CUDA
kernels when they apply, else the chunked path, else the reference; a fast path an op
declines for these inputs (:meth:`Function.path_applies`) is skipped; always the reference
inside :func:`minigrad.runtime.reference_ops`), keeps it in ``self.path``, and the engine's
call of :meth:`Function.call_backward` runs that path's backward (``backward_<path>``, or
the one ``shared_backward`` declares), since forward and backward share saved state. So
``path`` always names the forward that ran. No op decides its own path.

``apply`` also unwraps the input tensors, checks that they share a device and a floating
dtype and, when a gradient is needed, links the outputs to the op. Nothing in this module
is op-specific.
"""

from __future__ import annotations

import functools
import weakref
from typing import Any

from minigrad import backend, devices, runtime
from minigrad.tensor import Tensor, is_grad_enabled

#: the paths an op can take, fastest first (see the module docstring)
PATHS = ("cuda", "chunked", "reference")
#: the paths beside the reference, each a ``forward_<path>``/``backward_<path>`` pair
FAST_PATHS = PATHS[:-1]


def _method(path: str, direction: str) -> str:
    """The method that runs ``direction`` ("forward"/"backward") on ``path``."""
    return direction if path == "reference" else f"{direction}_{path}"


def check_path_pairs(cls: type) -> None:
    """Refuse an op class whose fast paths do not come in pairs (see the module docstring).

    Raises:
        TypeError: a ``forward_X`` without ``backward_X`` and no ``shared_backward`` entry
            for X, a ``backward_X`` without ``forward_X``, an entry that names an unknown
            path or a path without a backward, or both a ``backward_X`` and an entry.
    """
    shared = getattr(cls, "shared_backward", {})
    name = cls.__name__
    for path in shared:
        if path not in FAST_PATHS or shared[path] not in PATHS or shared[path] == path:
            raise TypeError(
                f"{name}.shared_backward: {path!r} -> {shared[path]!r} is not a fast path "
                f"({', '.join(FAST_PATHS)}) followed by another path ({', '.join(PATHS)})"
            )
    for path in FAST_PATHS:
        fwd = callable(getattr(cls, _method(path, "forward"), None))
        bwd = callable(getattr(cls, _method(path, "backward"), None))
        if path in shared:
            target = shared[path]
            if not fwd or bwd:
                raise TypeError(
                    f"{name}.shared_backward declares {path!r} -> {target!r}, but the class "
                    f"has {'no forward_' + path if not fwd else 'its own backward_' + path}"
                )
            if target != "reference" and not callable(getattr(cls, f"backward_{target}", None)):
                raise TypeError(
                    f"{name}.shared_backward: {path!r} -> {target!r}, no backward_{target}"
                )
        elif fwd and not bwd:
            raise TypeError(
                f"{name}: forward_{path} has no backward_{path}; write it, or declare that "
                f"forward_{path} saves what another path's backward reads, e.g. "
                f'shared_backward = {{"{path}": "reference"}}'
            )
        elif bwd and not fwd:
            raise TypeError(f"{name}: backward_{path} has no forward_{path}")


class _ApplyOnClassOrInstance:
    """``op.apply(x)`` on an instance; PyTorch's spelling ``MyOp.apply(x)`` on the class builds
    the op with no arguments first (an op that needs some says how to build it)."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        functools.update_wrapper(self, fn)

    def __get__(self, op: Function | None, cls: type[Function]) -> Any:
        if op is not None:
            return self.fn.__get__(op, cls)

        @functools.wraps(self.fn)
        def apply_on_class(*inputs: Any) -> Any:
            try:
                op = cls()
            except TypeError as e:
                raise TypeError(
                    f"{cls.__name__}.apply: {cls.__name__}() cannot be built without "
                    f"arguments ({e}); build the op first, then apply it: "
                    f"{cls.__name__}(...).apply(x)"
                ) from None
            return self.fn(op, *inputs)

        return apply_on_class


class Function:
    """Base class of every differentiable op (see the module docstring)."""

    #: set by ``apply``: which inputs need a gradient (ops may skip work for the others)
    needs_input_grad: tuple[bool, ...] = ()
    #: set by ``apply`` before ``forward``: True when the graph is being recorded
    requires_grad: bool = False
    #: False for ops whose backward never reads their inputs' data (ReLU, cat, pooling):
    #: ``apply`` then keeps a data-free :class:`ReleasedInput` for each input another op
    #: produced, so that activation is freed as soon as nothing else holds it (PyTorch
    #: likewise saves only what backward needs)
    keeps_inputs: bool = True
    #: set by ``apply``: the implementation this op's forward ran, and its backward runs
    path: str = "reference"
    #: fast paths whose forward is followed by another path's backward, declared (see the
    #: module docstring): ``{"chunked": "reference"}``; checked when the class is defined
    shared_backward: dict[str, str] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_path_pairs(cls)

    @property
    def name(self) -> str:
        """The op's name as used in error messages and graph exports."""
        return type(self).__name__

    def forward(self, *xs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, *gys: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def choose_path(self, xs: tuple[Any, ...]) -> str:
        """The one place a path is chosen: ``"cuda"`` when the op has ``forward_cuda`` and
        the kernels apply to ``xs`` (:func:`minigrad.backend.use_cuda_kernels`), else
        ``"chunked"`` when it has ``forward_chunked``, else ``"reference"``; always
        ``"reference"`` under :func:`minigrad.runtime.reference_ops`."""
        if runtime.is_reference_ops():
            return "reference"
        cls = type(self)
        if (
            hasattr(cls, "forward_cuda")
            and backend.use_cuda_kernels(*xs)
            and self.path_applies("cuda", xs)
        ):
            return "cuda"
        if hasattr(cls, "forward_chunked") and self.path_applies("chunked", xs):
            return "chunked"
        return "reference"

    def path_applies(self, path: str, xs: tuple[Any, ...]) -> bool:
        """Whether the op's fast ``path`` handles these input arrays (default: always); an op
        whose fast path covers only some inputs says so here, so that :meth:`choose_path`
        takes the reference for the others and ``path`` names what runs."""
        return True

    def call_forward(self, *xs: Any) -> Any:
        """Run the forward of the path :meth:`choose_path` picks, and remember the path."""
        self.path = self.choose_path(xs)
        return getattr(self, _method(self.path, "forward"))(*xs)

    def call_backward(self, *gys: Any) -> Any:
        """Run the backward of the path the forward took (``backward_<path>``, or the one
        its ``shared_backward`` entry names); what the engine calls. Checks first that
        nothing it saved was written in place since (:meth:`check_saved_versions`)."""
        self.check_saved_versions()
        path = self.shared_backward.get(self.path, self.path)
        return getattr(self, _method(path, "backward"))(*gys)

    @_ApplyOnClassOrInstance
    def apply(self, *inputs: Tensor) -> Any:
        """Run ``forward`` on the inputs' arrays and record the op for backward.

        ``MyOp(args).apply(x)``; ``MyOp.apply(x)`` (PyTorch's spelling) builds ``MyOp()``
        first, so it works for ops whose ``__init__`` takes no arguments."""
        xs = []
        device = None
        float_dtype = None
        for t in inputs:
            if not isinstance(t, Tensor):
                raise TypeError(f"{self.name}: expected Tensor inputs, got {type(t).__name__}")
            d = t.device
            if device is None:
                device = d
            elif d != device:
                raise ValueError(f"{self.name}: inputs are on different devices: {device} and {d}")
            if t.data.dtype.kind == "f":
                if float_dtype is None:
                    float_dtype = t.data.dtype
                elif t.data.dtype != float_dtype:
                    raise TypeError(
                        f"{self.name}: mixed float dtypes {float_dtype} and {t.data.dtype}; "
                        "convert one side explicitly (e.g. x.to(dtype='float64'))"
                    )
            xs.append(t.data)
        requires = is_grad_enabled() and any(t.requires_grad for t in inputs)
        self.requires_grad = requires
        self.needs_input_grad = tuple(requires and t.requires_grad for t in inputs)
        with devices.device_context(device or "cpu"):  # cuda:N: outputs and kernels on N
            ys = self.call_forward(*xs)
        multi = isinstance(ys, tuple)
        outs = tuple(
            Tensor(y, requires_grad=requires and y.dtype.kind == "f")
            for y in (ys if multi else (ys,))
        )
        if requires:
            self.inputs: tuple[Any, ...] | None = (
                tuple(inputs)
                if self.keeps_inputs
                else tuple(t if t._ctx is None else ReleasedInput(t) for t in inputs)
            )
            self.outputs = [weakref.ref(o) for o in outs]
            self.output_meta = [(o.data.shape, o.data.dtype) for o in outs]
            for i, o in enumerate(outs):
                o._ctx = self
                o._out_idx = i
            _share_version_counters(inputs, outs)
            self.saved_versions = tuple(t._version for t in (*inputs, *outs))
        return outs if multi else outs[0]

    def check_saved_versions(self) -> None:
        """Refuse to run backward on arrays written in place since the forward saved them.

        ``apply`` recorded each input's and output's version (:attr:`Tensor._version`). A
        tensor whose version has changed since, and whose memory one of this op's saved
        arrays shares, would give a gradient computed from the new values: a RuntimeError
        naming the op instead (PyTorch's check). Inputs the op did not keep are not checked.
        """
        tensors = (*self.inputs, *(ref() for ref in self.outputs))
        for t, saved_at in zip(tensors, self.saved_versions):
            if isinstance(t, Tensor) and t._version != saved_at and self._saves(t.data):
                raise RuntimeError(
                    f"backward: a tensor of shape {t.shape} saved by {self.name} for backward "
                    f"was modified in place (version {t._version}, saved at {saved_at}): an "
                    "optimizer step, an EMA update or a load_state_dict between the forward "
                    "and this backward; run the forward again after it"
                )

    def _saves(self, a: Any) -> bool:
        """True when an array this op saved for backward (an attribute, or in a list or
        tuple of them) shares memory with ``a``."""
        for v in vars(self).values():
            for x in v if isinstance(v, (list, tuple)) else (v,):
                if hasattr(x, "base") and backend.may_share_memory(x, a):
                    return True
        return False

    def release(self) -> None:
        """Drop everything saved for backward (called after backward unless retain_graph).

        The graph's structure stays (for graph drawings and the "already freed" error), but
        an input that another op produced is replaced by a data-free :class:`ReleasedInput`,
        so a root kept after backward (last iteration's loss, say) does not keep every
        intermediate activation alive.
        """
        keep = {"inputs", "outputs", "output_meta", "needs_input_grad", "requires_grad", "path"}
        for k in [k for k in vars(self) if k not in keep]:
            delattr(self, k)
        if getattr(self, "inputs", None) is not None:
            self.inputs = tuple(t if t._ctx is None else ReleasedInput(t) for t in self.inputs)
        self._released = True

    def __repr__(self) -> str:
        dev = self.inputs[0].device if getattr(self, "inputs", None) else "?"
        return f"<{self.name} on {dev}>"


def _share_version_counters(inputs: tuple[Tensor, ...], outs: tuple[Tensor, ...]) -> None:
    """An output whose array is a view of an input's (reshape, transpose, indexing) shares
    that input's version counter, so a write to either is seen through both."""
    for o in outs:
        if o.data.base is None:  # a new array: nobody else's memory
            continue
        for t in inputs:
            if backend.may_share_memory(o.data, t.data):
                o._version_counter = t._version_counter
                break


class ReleasedInput:
    """What a released op keeps of an input another op produced: its origin, not its data."""

    __slots__ = ("_ctx", "_out_idx", "shape", "dtype", "device", "name", "requires_grad")
    is_leaf = False

    def __init__(self, t: Tensor) -> None:
        self._ctx, self._out_idx = t._ctx, t._out_idx
        self.shape, self.dtype, self.device = t.shape, t.dtype, t.device
        self.name, self.requires_grad = t.name, t.requires_grad

    @property
    def grad_fn(self) -> Any:
        """The op that produced the input (as ``Tensor.grad_fn``)."""
        return self._ctx

    def __repr__(self) -> str:
        return f"<released output {self._out_idx} of {self._ctx.name}, shape {self.shape}>"
