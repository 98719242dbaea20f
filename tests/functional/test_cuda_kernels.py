"""The CUDA kernels of the op families (``conv.py``, ``pool.py``, ``batchnorm.py``, ``loss.py``,
all registered in ``minigrad.functional._cuda``) against the generic ``xp`` code.

Every test runs twice: on the CPU with the kernels compiled as C++ by
``tests/cuda_emulator.py`` (NumPy arrays, the ops' ``forward_cuda`` paths forced on), and on a GPU
with the real kernels (``pytest --device cuda``; skipped without CuPy). Each compares the
kernel path with the generic path on the same inputs, values and gradients, and runs
gradcheck through the kernel path.
"""

from __future__ import annotations

import numpy as np
import pytest
from _host import to_host
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad import backend, devices, runtime
from minigrad.functional import _cuda, conv
from minigrad.functional._checks import pair
from minigrad.functional._im2col import col2im, im2col
from minigrad.gradcheck import gradcheck
from minigrad.testing import conv_geometries, float_arrays, pool_geometries

fixture_ok = settings(
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
    deadline=None,
)

_EMULATOR = None


def _emulator():
    global _EMULATOR
    if _EMULATOR is None:
        from cuda_emulator import Emulator

        _EMULATOR = Emulator(_cuda.source())
    return _EMULATOR


@pytest.fixture(params=["emulated", "cuda"])
def kdev(request, monkeypatch):
    """The device of a kernel test: 'cpu' with emulated kernels, or 'cuda:0' with real ones."""
    if request.param == "cuda":
        if not devices.cuda_available():
            pytest.skip("needs CuPy and a CUDA device")
        return "cuda:0"
    from cuda_emulator import compiler

    if compiler() is None:
        pytest.skip("no C++ compiler to emulate the CUDA kernels")
    emulator = _emulator()
    monkeypatch.setattr(_cuda, "get_kernel", emulator.get_kernel)
    monkeypatch.setattr(_cuda, "MAX_BLOCKS", 3)  # a few blocks: the grid-stride loops loop

    def use_kernels(*arrays):  # as backend's, for NumPy arrays
        return runtime.cuda_kernels_enabled() and all(
            a.dtype in backend.KERNEL_DTYPES for a in arrays
        )

    monkeypatch.setattr(backend, "use_cuda_kernels", use_kernels)
    return "cpu"


def both(monkeypatch, fn):
    """fn() with the kernels, then with the generic code: two lists of host arrays."""
    out = []
    try:
        for flag in (True, False):
            runtime.set_cuda_kernels(flag)
            out.append([to_host(a) for a in fn()])
    finally:
        runtime.set_cuda_kernels(None)
    return out


def assert_close(got, want, rtol=1e-12, atol=1e-12):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def dev(a, device):
    return devices.to_device(np.asarray(a), device)


# ---------------------------------------------------------------- im2col / col2im
@fixture_ok
@given(g=conv_geometries(max_kernel=4, max_stride=3, max_padding=2), data=st.data())
def test_im2col_and_col2im_kernels_match_the_generic_code(kdev, monkeypatch, g, data):
    x = data.draw(float_arrays(g.input_shape))
    layout = data.draw(st.sampled_from(["nchw", "channel-major"]))
    if layout == "channel-major":
        x = np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)
    OH, OW = g.output_shape[2:]
    c = data.draw(float_arrays((g.C * g.KH * g.KW, g.N * OH * OW)))
    xd, cd = dev(x, kdev), dev(c, kdev)
    xp = backend.get_array_module(xd)

    s, p = pair(g.stride), pair(g.padding)

    def run(unfold, fold):
        col = unfold(xd, g.KH, g.KW, s, p)
        back = fold(cd, g.input_shape, g.KH, g.KW, s, p)
        out = xp.zeros((g.C, g.N + 2, *g.input_shape[2:]))  # into a view, as conv2d does
        fold(cd, g.input_shape, g.KH, g.KW, s, p, out=out[:, 1:-1])
        return [backend.as_numpy(a) for a in (col, back, out)]

    kernel, generic = run(conv.im2col_cuda, conv.col2im_cuda), run(im2col, col2im)
    np.testing.assert_array_equal(kernel[0], generic[0])  # copies: exact
    assert_close(kernel[1:], generic[1:])  # the same additions in the same order


def test_kernels_loop_over_the_grid_and_take_numpy_typed_scalars(kdev, monkeypatch):
    if kdev != "cpu":
        pytest.skip("checks the emulator's launch log")
    emulator = _emulator()
    emulator.launches.clear()
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9))
    col = conv.im2col_cuda(x, 3, 3, (1, 1), (1, 1))
    assert col.shape == (27, 162)
    assert emulator.launches == [("im2col_f64", 3, _cuda.BLOCK)]  # 3 blocks for 4374 elements
    with pytest.raises(TypeError, match="long long"):  # a Python int would not reach CUDA
        emulator.get_kernel("im2col_f64")((1,), (1,), (x, col, *[1] * 17))


# ---------------------------------------------------------------- conv2d through the kernels
@fixture_ok
@given(g=conv_geometries(max_batch=2, max_channels=3, max_size=6), data=st.data())
def test_conv2d_through_the_kernels_matches_and_passes_gradcheck(kdev, monkeypatch, g, data):
    x = mg.tensor(data.draw(float_arrays(g.input_shape)), device=kdev, requires_grad=True)
    w = mg.tensor(data.draw(float_arrays(g.weight_shape)), device=kdev, requires_grad=True)
    b = mg.tensor(data.draw(float_arrays((g.C_out,))), device=kdev, requires_grad=True)

    def run():
        for t in (x, w, b):
            t.grad = None
        y = F.conv2d(x, w, b, g.stride, g.padding)
        (y * y).sum().backward()
        return [y.data, x.grad, w.grad, b.grad]

    kernel, generic = both(monkeypatch, run)
    assert_close(kernel, generic, rtol=1e-10, atol=1e-10)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, g.stride, g.padding), [x, w, b])


# ---------------------------------------------------------------- max pooling
@fixture_ok
@given(g=pool_geometries(), data=st.data(), ties=st.booleans())
def test_max_pool_kernels_match_the_first_maximum_rule(kdev, monkeypatch, g, data, ties):
    shape = g.input_shape
    if ties:  # small integers: most windows hold several equal maxima
        x = data.draw(st.lists(st.integers(-2, 2), min_size=int(np.prod(shape)),
                               max_size=int(np.prod(shape))))  # fmt: skip
        x = np.asarray(x, dtype=np.float64).reshape(shape)
    else:
        x = data.draw(float_arrays(shape))
    if data.draw(st.booleans()):
        x = np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)
    xt = mg.tensor(x, device=kdev, requires_grad=True)
    k, s, p, c = g.kernel, g.stride, g.padding, g.ceil_mode

    def run():
        xt.grad = None
        y = F.max_pool2d(xt, k, s, p, ceil_mode=c)
        gy = mg.tensor(np.arange(y.numel(), dtype=np.float64).reshape(y.shape), device=kdev)
        y.backward(gy)
        return [y.data, xt.grad]

    kernel, generic = both(monkeypatch, run)
    np.testing.assert_array_equal(kernel[0], generic[0])
    assert_close(kernel[1:], generic[1:])  # the same windows win; sums in another order


def test_max_pool_kernel_propagates_nan(kdev, monkeypatch):
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 1, 1] = np.nan
    y = F.max_pool2d(mg.tensor(x, device=kdev), 2).numpy()
    assert np.isnan(y[0, 0, 0, 0]) and not np.isnan(y[0, 0, 1, 1]) and y[0, 0, 1, 1] == 15.0


# ---------------------------------------------------------------- batch norm (+ ReLU)
@fixture_ok
@given(data=st.data(), training=st.booleans(), relu=st.booleans(), affine=st.booleans())
def test_batch_norm_kernels_match_the_generic_code(kdev, monkeypatch, data, training, relu, affine):
    shape = data.draw(st.tuples(st.integers(2, 3), st.integers(1, 4), st.integers(1, 3),
                                st.integers(1, 3)))  # fmt: skip
    C = shape[1]
    x = mg.tensor(data.draw(float_arrays(shape)), device=kdev, requires_grad=True)
    rng = np.random.default_rng(1)
    w = mg.tensor(rng.standard_normal(C) + 2, device=kdev, requires_grad=True) if affine else None
    b = mg.tensor(rng.standard_normal(C), device=kdev, requires_grad=True) if affine else None
    rm = mg.tensor(rng.standard_normal(C), device=kdev)
    rv = mg.tensor(rng.random(C) + 0.5, device=kdev)

    def run():
        params = [t for t in (x, w, b) if t is not None]
        for t in params:
            t.grad = None
        stats = [rm.data.copy(), rv.data.copy()]
        y = F.batch_norm(x, rm, rv, w, b, training=training, relu=relu)
        y.backward(mg.tensor(np.cos(np.arange(y.numel())).reshape(y.shape), device=kdev))
        new_stats = [rm.data.copy(), rv.data.copy()]
        rm.data[...], rv.data[...] = stats  # the other path starts from the same statistics
        return [y.data, *(t.grad for t in params), *new_stats]

    kernel, generic = both(monkeypatch, run)
    assert_close(kernel, generic, rtol=1e-10, atol=1e-10)


def test_batch_norm_relu_kernel_gradcheck(kdev):
    rng = np.random.default_rng(2)
    x = mg.tensor(rng.standard_normal((3, 2, 2, 2)), device=kdev, requires_grad=True)
    g = mg.tensor(np.array([1.3, -0.7]), device=kdev, requires_grad=True)
    b = mg.tensor(np.array([0.05, 0.02]), device=kdev, requires_grad=True)

    def f(x, g, b):
        return F.batch_norm(x, None, None, g, b, training=True, relu=True)

    assert gradcheck(f, [x, g, b])


# ---------------------------------------------------------------- cross-entropy
@fixture_ok
@given(
    data=st.data(),
    smoothing=st.sampled_from([0.0, 0.1]),
    reduction=st.sampled_from(["mean", "sum", "none"]),
)
def test_cross_entropy_kernels_match_the_generic_code(
    kdev, monkeypatch, data, smoothing, reduction
):
    N, C = data.draw(st.integers(1, 5)), data.draw(st.integers(2, 7))
    logits = mg.tensor(data.draw(float_arrays((N, C))) * 5, device=kdev, requires_grad=True)
    target = np.asarray(data.draw(st.lists(st.integers(0, C - 1), min_size=N, max_size=N)))
    if N > 1:
        target[0] = -100  # one ignored row

    def run():
        logits.grad = None
        loss = F.cross_entropy(logits, target, reduction, smoothing)
        (loss * 1.0).sum().backward()
        return [loss.data, logits.grad]

    kernel, generic = both(monkeypatch, run)
    assert_close(kernel, generic, rtol=1e-10, atol=1e-12)
    assert gradcheck(lambda x: F.cross_entropy(x, target, reduction, smoothing), [logits])


def test_kernels_keep_float32(kdev):
    x = mg.tensor(np.random.default_rng(3).standard_normal((2, 3, 6, 6), dtype=np.float32),
                  device=kdev, requires_grad=True)  # fmt: skip
    w = mg.tensor(np.ones((4, 3, 3, 3), np.float32), device=kdev, requires_grad=True)
    y = F.max_pool2d(F.batch_norm(F.conv2d(x, w, padding=1), None, None, training=True,
                                  relu=True), 3, 2, 1)  # fmt: skip
    loss = F.cross_entropy(F.flatten(y, 1)[:, :5], np.array([0, 4]))
    loss.backward()
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32 and w.grad.dtype == np.float32
