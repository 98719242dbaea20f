"""Fast paths come in declared pairs, and ``Function.path`` names what ran.

- defining ``forward_X`` without ``backward_X`` (and no ``shared_backward`` entry) is a
  TypeError when the class is defined, as are the other malformed declarations;
- for every op in ``F.__all__``, over drawn inputs (CPU, and under ``--device cuda`` the
  GPU or the CuPy stand-in), the forward method that ran is the one ``path`` names, and
  the backward that ran is that path's (``backward_<path>`` or the declared one). Every
  forward and backward method of every ``Function`` subclass is wrapped by a spy that
  records which ran, for which op instance.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad import runtime
from minigrad.autograd import Function
from minigrad.engine import topological_order
from minigrad.functional import _threads
from minigrad.testing import float_arrays


# ---------------------------------------------------------------- the pairs, at definition
def test_a_forward_without_its_backward_fails_when_the_class_is_defined():
    with pytest.raises(TypeError, match=r"Unpaired: forward_chunked has no backward_chunked"):

        class Unpaired(Function):
            def forward(self, x):
                return x

            def backward(self, gy):
                return gy

            def forward_chunked(self, x):
                return x


def test_a_backward_without_its_forward_fails():
    with pytest.raises(TypeError, match=r"Orphan: backward_cuda has no forward_cuda"):

        class Orphan(Function):
            def backward_cuda(self, gy):
                return gy


def test_a_declared_shared_backward_is_accepted_and_runs():
    class Shared(Function):
        shared_backward = {"chunked": "reference"}

        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy * 2

        def forward_chunked(self, x):
            return x * 2

    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = Shared().apply(x)
    assert y.grad_fn.path == "chunked"
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [2.0, 2.0])


@pytest.mark.parametrize(
    "shared, methods, message",
    [
        ({"chunked": "reference"}, ("backward_chunked",), "no forward_chunked"),
        ({"chunked": "reference"}, ("forward_chunked", "backward_chunked"), "its own backward"),
        ({"chunked": "cuda"}, ("forward_chunked",), "no backward_cuda"),
        ({"reference": "chunked"}, (), "is not a fast path"),
        ({"chunked": "fast"}, ("forward_chunked",), "is not a fast path"),
    ],
)
def test_a_malformed_declaration_fails(shared, methods, message):
    body = {"shared_backward": shared, **{m: lambda self, *a: a[0] for m in methods}}
    with pytest.raises(TypeError, match=message):
        type("Bad", (Function,), body)


def test_every_op_class_in_the_package_is_paired():
    """Each fast forward of the package's ops has its backward, or a declared one."""
    for cls in _all_function_classes():
        for path in ("cuda", "chunked"):
            if hasattr(cls, f"forward_{path}"):
                assert hasattr(cls, f"backward_{path}") or path in cls.shared_backward, cls


# ---------------------------------------------------------------- path tells the truth
def _all_function_classes() -> list[type]:
    """Every op class of the package (not the ones this module defines to be refused)."""
    out, todo = [], [Function]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("minigrad."):
                out.append(sub)
    return out


_METHODS = ("forward", "backward") + tuple(
    f"{d}_{p}" for d in ("forward", "backward") for p in ("chunked", "cuda")
)


@pytest.fixture
def spy(monkeypatch):
    """Wrap every op method; returns the dict id(op) -> list of method names that ran."""
    ran: dict[int, list[str]] = {}
    for cls in _all_function_classes():
        for name in _METHODS:
            fn = vars(cls).get(name)
            if fn is None:
                continue

            def wrapped(self, *a, __fn=fn, __name=name, **k):
                ran.setdefault(id(self), []).append(__name)
                return __fn(self, *a, **k)

            monkeypatch.setattr(cls, name, functools.wraps(fn)(wrapped))
    # tiny chunks on several threads, so the chunked paths are taken wherever they exist
    monkeypatch.setattr(_threads, "PARALLEL_MIN_SIZE", 0)
    monkeypatch.setitem(runtime._settings, "host_threads", 3)
    return ran


def _image(draw, N, C, H, W, dtype, device):
    a = draw(float_arrays((N, C, H, W), dtype))
    if draw(st.booleans()):  # channel-major, as the fast ops hand each other
        a = np.ascontiguousarray(a.swapaxes(0, 1)).swapaxes(0, 1)
    return mg.tensor(a, device=device, requires_grad=True)


def _target(draw, N, C, device):
    return mg.tensor(
        np.array(draw(st.lists(st.integers(0, C - 1), min_size=N, max_size=N))), device=device
    )


def _calls(draw, device, dtype):
    """name in F.__all__ -> a call of it on drawn inputs (returns a tensor to backward)."""
    N, C, H, W = (draw(st.integers(1, 3)), draw(st.integers(1, 4)),
                  draw(st.integers(2, 5)), draw(st.integers(2, 5)))  # fmt: skip
    x = _image(draw, N, C, H, W, dtype, device)

    def t(shape, low=-2.0, high=2.0):
        return mg.tensor(draw(float_arrays(shape, dtype, low, high)), device=device,
                         requires_grad=True)  # fmt: skip

    pos = t((N, C, H, W), 0.5, 2.0)
    m = t((N, C))
    k = draw(st.integers(1, 2))
    return {
        "conv2d": lambda: F.conv2d(x, t((2, C, k, k)), t((2,)), 1, draw(st.integers(0, 1))),
        "dropout": lambda: F.dropout(x, 0.5, True),
        "add": lambda: F.add(x, t((C, 1, 1))),
        "sub": lambda: F.sub(x, pos),
        "mul": lambda: F.mul(x, pos),
        "div": lambda: F.div(x, pos),
        "neg": lambda: F.neg(x),
        "pow": lambda: F.pow(pos, 2.0),
        "exp": lambda: F.exp(x),
        "log": lambda: F.log(pos),
        "sqrt": lambda: F.sqrt(pos),
        "tanh": lambda: F.tanh(x),
        "sigmoid": lambda: F.sigmoid(x),
        "relu": lambda: F.relu(x),
        "matmul": lambda: F.matmul(m, t((C, 3))),
        "linear": lambda: F.linear(m, t((3, C)), t((3,))),
        "softmax": lambda: F.softmax(m, 1),
        "log_softmax": lambda: F.log_softmax(m, 1),
        "cross_entropy": lambda: F.cross_entropy(m, _target(draw, N, C, device)),
        "nll_loss": lambda: F.nll_loss(F.log_softmax(m, 1), _target(draw, N, C, device)),
        "batch_norm": lambda: F.batch_norm(
            x,
            mg.zeros(C, dtype=dtype, device=device),
            mg.ones(C, dtype=dtype, device=device),
            t((C,)),
            t((C,)),
            training=draw(st.booleans()),
            relu=draw(st.booleans()),
        ),
        "local_response_norm": lambda: F.local_response_norm(x, draw(st.integers(1, 3))),
        "max_pool2d": lambda: F.max_pool2d(x, 2, 1, draw(st.integers(0, 1)), draw(st.booleans())),
        "avg_pool2d": lambda: F.avg_pool2d(x, 2, 1, draw(st.integers(0, 1)), draw(st.booleans())),
        "adaptive_avg_pool2d": lambda: F.adaptive_avg_pool2d(x, draw(st.integers(1, 2))),
        "sum": lambda: F.sum(x, draw(st.sampled_from([None, 1, (2, 3)]))),
        "mean": lambda: F.mean(x, draw(st.sampled_from([None, 1, (2, 3)]))),
        "max": lambda: F.max(x, draw(st.sampled_from([None, 1]))),
        "reshape": lambda: F.reshape(x, (N, -1)),
        "permute": lambda: F.permute(x, (1, 0, 3, 2)),
        "transpose": lambda: F.transpose(x, 0, 1),
        "flatten": lambda: F.flatten(x, 1),
        "getitem": lambda: F.getitem(x, (slice(None), 0)),
        "cat": lambda: _cat(draw, x, dtype, device),
        "split": lambda: F.split(x, 1, dim=draw(st.sampled_from([0, 1]))),
    }


def _cat(draw, x, dtype, device):
    dim = draw(st.sampled_from([0, 1, 2]))
    shape = list(x.shape)
    shape[dim] = draw(st.integers(1, 3))
    return F.cat([x, _image(draw, *shape, dtype, device)], dim=dim)


OPS = [n for n in F.__all__ if n != "MaxResult"]


@settings(max_examples=1, deadline=None)
@given(data=st.data())
def test_the_property_covers_every_op(data):
    """The table above names every op of F.__all__ (a new op must be added to it)."""
    assert sorted(_calls(data.draw, "cpu", np.float64)) == sorted(OPS)


def _outputs(y):
    if hasattr(y, "values"):  # F.max with a dim: (values, indices)
        return [y.values]
    return list(y) if isinstance(y, tuple) else [y]


@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    deadline=None,
    max_examples=8,
)
@pytest.mark.parametrize("name", OPS)
@given(dtype=st.sampled_from([np.float64, np.float32]), data=st.data())
def test_path_names_the_forward_and_backward_that_ran(spy, device, name, dtype, data):
    spy.clear()  # one hypothesis example at a time (ids of dead ops are reused)
    mg.manual_seed(0)
    ys = _outputs(_calls(data.draw, device, dtype)[name]())
    loss = ys[0].sum()
    for y in ys[1:]:
        loss = loss + y.sum()
    ops = [fn for fn in topological_order(loss._ctx)]
    loss.backward()
    checked = 0
    for op in ops:
        if id(op) not in spy:
            continue  # composed in a way that never called a wrapped method (none today)
        path = op.path
        backward_path = type(op).shared_backward.get(path, path)
        want_f = "forward" if path == "reference" else f"forward_{path}"
        want_b = "backward" if backward_path == "reference" else f"backward_{backward_path}"
        ran = spy[id(op)]
        assert [m for m in ran if m.startswith("forward")] == [want_f], (op.name, path, ran)
        assert [m for m in ran if m.startswith("backward")] == [want_b], (op.name, path, ran)
        checked += 1
    assert checked >= 1
