"""``--precision tf32`` reaches conv and linear products only, never batch norm's statistics.

TF32 cannot be observed without a tensor core, so the fixture emulates it: with
``devices.tf32_enabled()`` on, ``xp.matmul`` rounds float32 inputs to TF32's 10-bit mantissa
first, as cuBLAS does. The inputs are chosen so that this rounding always goes one way
(``1 + 3 * 2**-13`` rounds to 1): a statistic that goes through a matmul is then 7e-4 off,
while float32 arithmetic is exact to 1e-7.
"""

from __future__ import annotations

import numpy as np
import pytest
from _host import to_host

import minigrad as mg
import minigrad.functional as F
from minigrad import devices

V = 1 + 3 * 2.0**-13  # exact in float32; TF32 rounds it to 1.0


def _round_to_tf32(xp, a):
    """float32 ``a`` with its mantissa rounded to 10 bits (to nearest), as TF32 reads it."""
    u = xp.ascontiguousarray(a).view(xp.uint32)
    return ((u + xp.uint32(0x1000)) & xp.uint32(0xFFFFE000)).view(xp.float32)


@pytest.fixture
def emulated_tf32(xp, monkeypatch):
    matmul = xp.matmul

    def tf32_matmul(a, b, *args, **kwargs):
        if devices.tf32_enabled() and a.dtype == xp.float32:
            a, b = _round_to_tf32(xp, a), _round_to_tf32(xp, b)
        return matmul(a, b, *args, **kwargs)

    monkeypatch.setattr(xp, "matmul", tf32_matmul)
    monkeypatch.setattr(devices, "_tf32", True)


def _signs(shape, seed=0):
    """+-1 with exactly as many of each per channel (so each channel's mean is exactly 0)."""
    N, C, H, W = shape
    s = np.tile(np.array([1.0, -1.0]), N * H * W // 2)
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(s) for _ in range(C)]).reshape(C, N, H, W).swapaxes(0, 1)


def test_batch_norm_statistics_and_weight_gradient_stay_float32(device, emulated_tf32):
    shape = (2, 3, 4, 4)
    x = mg.tensor((V * _signs(shape, 0)).astype(np.float32), device=device, requires_grad=True)
    w = mg.ones(3, device=device, requires_grad=True)
    b = mg.zeros(3, device=device, requires_grad=True)
    gy = (V * _signs(shape, 1)).astype(np.float32)
    y = F.batch_norm(x, None, None, w, b, training=True)
    y.backward(mg.tensor(gy, device=device))
    # float64 reference: mean 0, var V**2, xhat = sign(x) exactly
    xhat = _signs(shape, 0)
    eps = 1e-5
    ref_y = xhat * V / np.sqrt(V**2 + eps)
    np.testing.assert_allclose(to_host(y), ref_y, rtol=2e-6)
    ref_gw = (gy.astype(np.float64) * ref_y).sum(axis=(0, 2, 3))  # sum(gy * xhat)
    np.testing.assert_allclose(to_host(w.grad), ref_gw, rtol=2e-6, atol=1e-5)


def test_adaptive_average_pooling_stays_float32(device, emulated_tf32, monkeypatch):
    def pool():  # overlapping windows (4 -> 3, 6 -> 4): the matrix-product path
        x = mg.tensor(np.full((1, 2, 4, 6), V, np.float32), device=device, requires_grad=True)
        y = F.adaptive_avg_pool2d(x, (3, 4))
        y.backward(mg.tensor(np.full(y.shape, V, np.float32), device=device))
        return to_host(y), to_host(x.grad)

    y, gx = pool()
    monkeypatch.setattr(devices, "_tf32", False)  # the emulated matmul is exact then
    y_ref, gx_ref = pool()
    np.testing.assert_allclose(y, V, rtol=1e-7)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-6)


def test_the_emulation_does_reach_a_conv_product(device, emulated_tf32):
    """The fixture is not vacuous: a convolution (a product that may use TF32) reads V as 1."""
    x = mg.tensor(np.full((1, 1, 3, 3), V, np.float32), device=device)
    y = F.conv2d(x, mg.ones(1, 1, 1, 1, device=device))
    np.testing.assert_array_equal(to_host(y), np.ones((1, 1, 3, 3)))
