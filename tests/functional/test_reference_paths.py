"""Every fast path equals its op's reference, forward and backward, over drawn geometries.

Each op's ``forward``/``backward`` is the readable reference; ``forward_chunked`` (host
threads, cache-sized chunks) and ``forward_cuda`` (CUDA kernels) are the fast paths that
``Function.choose_path`` picks by default. Each test runs the same inputs twice, by
default and inside ``mg.reference_ops()``, checks which path each run took, and compares
the outputs and every gradient. The fast path under test (fixture ``fast``):

- ``default``: the CPU (or, with ``--device cuda``, the GPU) with tiny chunks on 3 host
  threads, so every op is cut into several chunks that run on different threads; on a GPU
  (``--device cuda``, or the CuPy stand-in) the ops take their CUDA kernels instead;
- ``emulated``: the CUDA kernels compiled as C++ by ``tests/cuda_emulator.py`` on NumPy
  arrays (skipped without a compiler, and under ``--device cuda``, which runs real ones).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad import backend, runtime
from minigrad.engine import topological_order
from minigrad.functional import _cuda, _threads, avg_pool, conv, linalg
from minigrad.functional._im2col import conv_output_size
from minigrad.functional._layout import is_channel_major
from minigrad.functional._windows import pool_output_size
from minigrad.testing import float_arrays

fixture_ok = settings(
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
    deadline=None,
)

DTYPES = st.sampled_from([np.float64, np.float32])
TOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 2e-4}


@pytest.fixture(params=["default", "emulated"])
def fast(request, device, monkeypatch):
    """(device, the fast path its ops should take) for one test; see the module docstring."""
    if request.param == "emulated":
        if device != "cpu":
            pytest.skip("--device cuda runs the real kernels in the 'default' case")
        from cuda_emulator import Emulator, compiler

        if compiler() is None:
            pytest.skip("no C++ compiler to emulate the CUDA kernels")
        emulator = Emulator(_cuda.source()) if _EMULATOR[0] is None else _EMULATOR[0]
        _EMULATOR[0] = emulator
        monkeypatch.setattr(_cuda, "get_kernel", emulator.get_kernel)
        monkeypatch.setattr(_cuda, "MAX_BLOCKS", 3)
        monkeypatch.setattr(
            backend,
            "use_cuda_kernels",
            lambda *arrays: all(a.dtype in backend.KERNEL_DTYPES for a in arrays),
        )
        return "cpu", "cuda"
    monkeypatch.setattr(_threads, "PARALLEL_MIN_SIZE", 0)
    monkeypatch.setattr(_threads, "CHUNK_ELEMENTS", 64)
    monkeypatch.setattr(conv, "CONV_CHUNK_ELEMENTS", 64)
    monkeypatch.setattr(conv, "gemm_threads", lambda: 3)  # as with one BLAS thread
    monkeypatch.setattr(linalg, "gemm_threads", lambda: 3)
    monkeypatch.setattr(linalg, "LINEAR_CHUNK_ELEMENTS", 4)
    monkeypatch.setitem(runtime._settings, "host_threads", 3)
    return device, ("cuda" if device != "cpu" else "chunked")


_EMULATOR: list = [None]


def paths(t: mg.Tensor) -> dict[str, set[str]]:
    """op class name -> the paths its instances in ``t``'s graph took (after backward)."""
    out: dict[str, set[str]] = {}
    for fn in topological_order(t._ctx):
        out.setdefault(type(fn).__name__, set()).add(fn.path)
    return out


def both_ways(run, op: str, fast_path: str, dtype) -> None:
    """run() -> (output tensor, list of arrays); by default, then in reference_ops();
    checks that ``op`` took ``fast_path``, then the reference, and that the arrays agree."""
    results = []
    for reference in (False, True):
        mg.manual_seed(0)
        with mg.reference_ops(reference):
            y, arrays = run()
        want = "reference" if reference else fast_path
        assert paths(y)[op] == {want}, (op, paths(y))
        results.append([backend.as_numpy(a) for a in arrays])
    got, ref = results
    tol = TOL[np.dtype(dtype)]
    for a, b in zip(got, ref):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def _tensor(a, device, grad=True):
    return mg.tensor(a, device=device, requires_grad=grad)


def _layout(draw, a):
    """a as NCHW or as the channel-major layout the fast ops hand each other."""
    if draw(st.booleans()):
        return np.ascontiguousarray(a.swapaxes(0, 1)).swapaxes(0, 1)
    return a


@st.composite
def window_geometry(draw, pool: bool):
    """N, C, H, W, kernel, stride, padding (pairs) and ceil_mode of a valid conv or pool."""
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = tuple(draw(st.integers(0, (kk // 2) if pool else 2)) for kk in k)
    H = draw(st.integers(max(1, k[0] - 2 * p[0]), 9))
    W = draw(st.integers(max(1, k[1] - 2 * p[1]), 9))
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    ceil_mode = draw(st.booleans()) if pool else False
    return N, C, H, W, k, s, p, ceil_mode


# ---------------------------------------------------------------- conv2d
@fixture_ok
@given(g=window_geometry(pool=False), dtype=DTYPES, bias=st.booleans(), data=st.data())
def test_conv2d_fast_paths_equal_the_reference(fast, g, dtype, bias, data):
    device, path = fast
    N, C, H, W, k, s, p, _ = g
    if data.draw(st.booleans()):  # the 1x1 fast case (no im2col) as often as not
        k, s, p = (1, 1), (1, 1), (0, 0)
    C_out = data.draw(st.integers(1, 4))
    x = _tensor(_layout(data.draw, data.draw(float_arrays((N, C, H, W), dtype))), device)
    w = _tensor(data.draw(float_arrays((C_out, C, *k), dtype)), device)
    b = _tensor(data.draw(float_arrays((C_out,), dtype)), device) if bias else None
    OH, OW = conv_output_size(H, k[0], s[0], p[0]), conv_output_size(W, k[1], s[1], p[1])
    gy = _tensor(data.draw(float_arrays((N, C_out, OH, OW), dtype)), device, grad=False)

    def run():
        for t in (x, w, b):
            if t is not None:
                t.grad = None
        y = F.conv2d(x, w, b, s, p)
        y.backward(gy)
        return y, [y.data, x.grad, w.grad] + ([b.grad] if bias else [])

    both_ways(run, "Conv2d", path, dtype)


# ---------------------------------------------------------------- pooling
@fixture_ok
@given(g=window_geometry(pool=True), dtype=DTYPES, ties=st.booleans(), data=st.data())
def test_max_pool2d_fast_paths_equal_the_reference(fast, g, dtype, ties, data):
    device, path = fast
    N, C, H, W, k, s, p, ceil_mode = g
    if ties:  # small integers: most windows hold several equal maxima (the first one wins)
        a = np.random.default_rng(data.draw(st.integers(0, 99))).integers(-2, 3, (N, C, H, W))
        a = a.astype(dtype)
    else:
        a = data.draw(float_arrays((N, C, H, W), dtype))
    x = _tensor(_layout(data.draw, a), device)
    OH = pool_output_size(H, k[0], s[0], p[0], ceil_mode)
    OW = pool_output_size(W, k[1], s[1], p[1], ceil_mode)
    gy = _tensor(data.draw(float_arrays((N, C, OH, OW), dtype)), device, grad=False)

    def run():
        x.grad = None
        y = F.max_pool2d(x, k, s, p, ceil_mode)
        y.backward(gy)
        return y, [y.data, x.grad]

    both_ways(run, "MaxPool2d", path, dtype)


@fixture_ok
@given(
    g=window_geometry(pool=True),
    dtype=DTYPES,
    cip=st.booleans(),
    matrix=st.booleans(),
    data=st.data(),
)
def test_avg_pool2d_fast_path_equals_the_reference(fast, g, dtype, cip, matrix, data):
    """Both chunked paths: window slices of a grid, and (``matrix``) one product with the
    pool's matrix, every map switched onto the one drawn."""
    device, path = fast
    N, C, H, W, k, s, p, ceil_mode = g
    x = _tensor(_layout(data.draw, data.draw(float_arrays((N, C, H, W), dtype))), device)
    OH = pool_output_size(H, k[0], s[0], p[0], ceil_mode)
    OW = pool_output_size(W, k[1], s[1], p[1], ceil_mode)
    gy = _tensor(data.draw(float_arrays((N, C, OH, OW), dtype)), device, grad=False)

    def run():
        x.grad = None
        y = F.avg_pool2d(x, k, s, p, ceil_mode, count_include_pad=cip)
        y.backward(gy)
        return y, [y.data, x.grad]

    saved = avg_pool.MATRIX_MAX_ENTRIES
    avg_pool.MATRIX_MAX_ENTRIES = 1 << 30 if matrix else 0
    try:  # no CUDA kernel: chunked on every device
        both_ways(run, "AvgPool2d", "chunked", dtype)
    finally:
        avg_pool.MATRIX_MAX_ENTRIES = saved


# ---------------------------------------------------------------- batch norm (+ ReLU)
@fixture_ok
@given(
    dtype=DTYPES,
    training=st.booleans(),
    relu=st.booleans(),
    affine=st.booleans(),
    data=st.data(),
)
def test_batch_norm_fast_paths_equal_the_reference(fast, dtype, training, relu, affine, data):
    device, path = fast
    N, C = data.draw(st.integers(2, 4)), data.draw(st.integers(1, 5))
    S = data.draw(st.sampled_from([(), (1, 1), (3, 2), (4, 5)]))
    a = data.draw(float_arrays((N, C, *S), dtype))
    x = _tensor(_layout(data.draw, a) if S else a, device)
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    w = _tensor((rng.standard_normal(C) + 2).astype(dtype), device) if affine else None
    b = _tensor(rng.standard_normal(C).astype(dtype), device) if affine else None
    rm0, rv0 = rng.standard_normal(C).astype(dtype), (rng.random(C) + 0.5).astype(dtype)
    gy = _tensor(data.draw(float_arrays((N, C, *S), dtype)), device, grad=False)

    def run():
        rm, rv = _tensor(rm0, device, False), _tensor(rv0, device, False)
        params = [t for t in (x, w, b) if t is not None]
        for t in params:
            t.grad = None
        y = F.batch_norm(x, rm, rv, w, b, training=training, relu=relu)
        y.backward(gy)
        return y, [y.data, *(t.grad for t in params), rm.data, rv.data]

    both_ways(run, "BatchNormReLU" if relu else "BatchNorm", path, dtype)


# ---------------------------------------------------------------- relu
@fixture_ok
@given(dtype=DTYPES, zeros=st.booleans(), data=st.data())
def test_relu_fast_path_equals_the_reference(fast, dtype, zeros, data):
    device, _ = fast
    shape = data.draw(st.sampled_from([(3, 1), (1, 4, 3), (2, 3, 4, 5), (3, 2, 5, 1)]))
    a = data.draw(float_arrays(shape, dtype))
    if zeros:  # exact zeros: the kink, where both paths give the gradient 0
        a[..., ::2] = 0
    x = _tensor(_layout(data.draw, a), device)
    # gy in the layout of x or the other one (the chunked backward then takes the product)
    gy = _tensor(_layout(data.draw, data.draw(float_arrays(shape, dtype))), device, grad=False)

    def run():
        x.grad = None
        y = F.relu(x)
        y.backward(gy)
        return y, [y.data, x.grad]

    both_ways(run, "ReLU", "chunked", dtype)  # no CUDA kernel: chunked on every device


# ---------------------------------------------------------------- local response norm
@fixture_ok
@given(
    dtype=DTYPES,
    size=st.integers(1, 7),
    params=st.sampled_from([(1e-4, 0.75, 1.0), (0.5, 0.5, 2.0), (2.0, 1.3, 0.5)]),
    data=st.data(),
)
def test_local_response_norm_fast_path_equals_the_reference(fast, dtype, size, params, data):
    device, _ = fast
    alpha, beta, k = params  # beta 0.75 and 0.5 take the square roots, 1.3 the power
    N, C = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 9))
    S = data.draw(st.sampled_from([(1,), (3, 2), (4, 5)]))
    x = _tensor(_layout(data.draw, data.draw(float_arrays((N, C, *S), dtype))), device)
    gy = _tensor(data.draw(float_arrays((N, C, *S), dtype)), device, grad=False)

    def run():
        x.grad = None
        y = F.local_response_norm(x, size, alpha, beta, k)
        y.backward(gy)
        return y, [y.data, x.grad]

    both_ways(run, "LocalResponseNorm", "chunked", dtype)  # no CUDA kernel: chunked everywhere


# ---------------------------------------------------------------- cross-entropy
@fixture_ok
@given(
    dtype=DTYPES,
    smoothing=st.sampled_from([0.0, 0.1, 1.0]),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    data=st.data(),
)
def test_cross_entropy_fast_path_equals_the_reference(fast, dtype, smoothing, reduction, data):
    device, path = fast
    N, C = data.draw(st.integers(1, 6)), data.draw(st.integers(2, 9))
    logits = _tensor(data.draw(float_arrays((N, C), dtype)) * 5, device)
    target = np.asarray(data.draw(st.lists(st.integers(0, C - 1), min_size=N, max_size=N)))
    if N > 1 and data.draw(st.booleans()):
        target[0] = -100  # an ignored row
    gshape = (N,) if reduction == "none" else ()
    gy = _tensor(data.draw(float_arrays(gshape, dtype)), device, grad=False)

    def run():
        logits.grad = None
        loss = F.cross_entropy(logits, target, reduction, smoothing)
        loss.backward(gy)
        return loss, [loss.data, logits.grad]

    # on the CPU cross_entropy has no chunked path: the reference is what runs
    both_ways(run, "CrossEntropy", "cuda" if path == "cuda" else "reference", dtype)


# ---------------------------------------------------------------- linear
@fixture_ok
@given(dtype=DTYPES, bias=st.booleans(), data=st.data())
def test_linear_fast_path_equals_the_reference(fast, dtype, bias, data):
    device, _ = fast
    lead = tuple(data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=2)))
    n_in, n_out = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))
    x = _tensor(data.draw(float_arrays((*lead, n_in), dtype)), device)
    w = _tensor(data.draw(float_arrays((n_out, n_in), dtype)), device)
    b = _tensor(data.draw(float_arrays((n_out,), dtype)), device) if bias else None
    gy = _tensor(data.draw(float_arrays((*lead, n_out), dtype)), device, grad=False)
    leaves = [t for t in (x, w, b) if t is not None]

    def run():
        for t in leaves:
            t.grad = None
        y = F.linear(x, w, b)
        y.backward(gy)
        return y, [y.data, *(t.grad for t in leaves)]

    # the chunked path is for NumPy arrays (no CUDA kernel): on a GPU the reference runs
    both_ways(run, "Linear", "chunked" if device == "cpu" else "reference", dtype)


# ---------------------------------------------------------------- cat
@fixture_ok
@given(dtype=DTYPES, data=st.data())
def test_cat_fast_path_equals_the_reference(fast, dtype, data):
    device, _ = fast
    N, H, W = (
        data.draw(st.integers(1, 3)),
        data.draw(st.integers(1, 4)),
        data.draw(st.integers(1, 4)),
    )
    sizes = data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    xs = [
        _tensor(_layout(data.draw, data.draw(float_arrays((N, c, H, W), dtype))), device)
        for c in sizes
    ]
    gy = _tensor(data.draw(float_arrays((N, sum(sizes), H, W), dtype)), device, grad=False)

    def run():
        for t in xs:
            t.grad = None
        y = F.cat(xs, dim=1)
        y.backward(gy)
        return y, [y.data, *(t.grad for t in xs)]

    # the chunked copy is for channel-major inputs only; others take the reference
    channel_major = all(is_channel_major(t.data) for t in xs)
    both_ways(run, "Cat", "chunked" if channel_major else "reference", dtype)


@fixture_ok
@given(dtype=DTYPES, data=st.data())
def test_split_fast_path_equals_the_reference(fast, dtype, data):
    device, _ = fast
    N, H, W = (data.draw(st.integers(1, 3)) for _ in range(3))
    sizes = data.draw(st.lists(st.integers(0, 5), min_size=1, max_size=4))
    sizes[0] += 1  # at least one channel
    x = _tensor(_layout(data.draw, data.draw(float_arrays((N, sum(sizes), H, W), dtype))), device)
    gys = [_tensor(data.draw(float_arrays((N, c, H, W), dtype)), device, grad=False) for c in sizes]
    used = data.draw(st.lists(st.booleans(), min_size=len(sizes), max_size=len(sizes)))
    used[0] = True  # the others may get no gradient: the engine's zeros, any layout

    def run():
        x.grad = None
        ys = F.split(x, sizes, dim=1)
        loss = sum((y * g).sum() for y, g, u in zip(ys, gys, used) if u)
        loss.backward()
        return loss, [*(y.data for y in ys), x.grad]

    # the chunked backward is for a channel-major x split along channels
    both_ways(run, "Split", "chunked" if is_channel_major(x.data) else "reference", dtype)


# ---------------------------------------------------------------- the switch
def test_reference_ops_is_per_thread_nestable_and_restores(device):
    import threading

    x = mg.tensor(np.ones((1, 1, 4, 4)), device=device, requires_grad=True)
    assert not runtime.is_reference_ops()
    with mg.reference_ops():
        assert runtime.is_reference_ops()
        seen = []
        t = threading.Thread(target=lambda: seen.append(runtime.is_reference_ops()))
        t.start()
        t.join()
        assert seen == [False]  # another thread keeps its own mode
        with mg.reference_ops(False):
            assert F.max_pool2d(x, 2).grad_fn.path != "reference"
        y = F.max_pool2d(x, 2)
        assert y.grad_fn.path == "reference"
    assert not runtime.is_reference_ops()
    y.sum().backward()  # backward takes the forward's path, outside the switch too
    first = np.zeros((1, 1, 4, 4))
    first[..., ::2, ::2] = 1  # all ties: each window's first element
    np.testing.assert_array_equal(backend.as_numpy(x.grad), first)


def test_the_environment_is_read_once_at_import():
    import os
    import subprocess
    import sys

    code = (
        "import os, minigrad as mg; from minigrad import runtime;"
        "os.environ['MINIGRAD_REFERENCE_OPS'] = '0'; os.environ['MINIGRAD_CUDA_KERNELS'] = '1';"
        "x = mg.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], requires_grad=True);"
        "print(runtime.is_reference_ops(), runtime.cuda_kernels_enabled(),"
        " mg.functional.max_pool2d(x, 2).grad_fn.path)"
    )
    env = {**os.environ, "MINIGRAD_REFERENCE_OPS": "1", "MINIGRAD_CUDA_KERNELS": "0"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split() == ["True", "False", "reference"]
