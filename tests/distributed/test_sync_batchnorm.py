"""SyncBatchNorm in a single-process world equals BatchNorm2d; the converter shares state."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad.backend import as_numpy
from minigrad.devices import to_device


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_equals_batchnorm2d(relu, affine, momentum, device):
    rng = np.random.default_rng(0)
    layer_type = nn.BatchNormReLU2d if relu else nn.BatchNorm2d
    bn = layer_type(3, momentum=momentum, affine=affine, dtype="float64")
    if affine:
        bn.weight.data[:] = rng.standard_normal(3)
        bn.bias.data[:] = rng.standard_normal(3)
    sbn = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(bn))
    assert type(sbn) is (nn.SyncBatchNormReLU2d if relu else nn.SyncBatchNorm)
    bn.to(device), sbn.to(device)
    gy = to_device(rng.standard_normal((4, 3, 5, 2)), device)
    out = []
    for layer in (bn, sbn):
        draw = np.random.default_rng(1)
        got = []
        for _ in range(2):  # two steps: the running statistics and the counter too
            x = draw.standard_normal((4, 3, 5, 2)) * 3 + 1
            x = mg.tensor(x, device=device, requires_grad=True)
            layer(x).backward(gy)
            got += [x.grad, *(p.grad for p in layer.parameters())]
            layer.zero_grad()
        got += list(layer.state_dict().values())
        layer.eval()
        got.append(layer(x).data)
        out.append(got)
    for a, b in zip(*out, strict=True):
        np.testing.assert_allclose(as_numpy(b), as_numpy(a), rtol=1e-10, atol=1e-12)


def test_converter_replaces_nested_layers_and_shares_parameters():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.BatchNorm2d(4), nn.ReLU()))
    model.eval()
    weight, running_mean = model[1][0].weight, model[1][0].running_mean
    out = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert out is model
    layer = model[1][0]
    assert type(layer) is nn.SyncBatchNorm and not layer.training
    assert layer.weight is weight and layer.running_mean is running_mean
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.0.weight", "1.0.bias",
                                        "1.0.running_mean", "1.0.running_var",
                                        "1.0.num_batches_tracked"]  # fmt: skip


def test_one_value_per_channel_is_an_error():
    layer = nn.SyncBatchNorm(2)
    with pytest.raises(ValueError, match="SyncBatchNorm: expected more than 1 value per channel"):
        layer(mg.Tensor(np.ones((1, 2), dtype=np.float32)))


@pytest.mark.parametrize("relu", [False, True])
def test_takes_the_fast_path_and_equals_its_reference(relu, device, monkeypatch):
    # the fast paths (chunked on NumPy, the kernels on CuPy) sync through the same hooks as
    # the reference; a mean far from 0 checks the variance keeps its precision
    from minigrad.functional import _threads, batchnorm

    def small_chunks(task, n, size, a):  # chunks of 3 and 2 of the 5 channels
        return _threads.for_blocks(task, n, size, a, chunk_elements=3 * size // n, threads=2)

    monkeypatch.setattr(batchnorm, "for_blocks", small_chunks)
    rng = np.random.default_rng(2)
    x0 = rng.standard_normal((6, 5, 4, 3)) * 0.5 + 300.0
    gy = to_device(rng.standard_normal(x0.shape), device)
    out = {}
    for path in ("fast", "reference"):
        layer = (nn.SyncBatchNormReLU2d if relu else nn.SyncBatchNorm)(5, dtype="float64")
        layer.to(device)
        layer.running_mean.data[...] = 290.0  # the shift K of the sums
        x = mg.tensor(x0, device=device, requires_grad=True)
        with mg.reference_ops(path == "reference"):
            y = layer(x)
        want = "reference" if path == "reference" else ("cuda" if device != "cpu" else "chunked")
        assert y.grad_fn.path == want
        y.backward(gy)
        out[path] = [y.data, x.grad, layer.weight.grad, layer.bias.grad, layer.running_var.data]
    for a, b in zip(out["fast"], out["reference"], strict=True):
        np.testing.assert_allclose(as_numpy(a), as_numpy(b), rtol=1e-9, atol=1e-10)
    # and equal to plain batch norm of the same batch (one process: the batch is all ranks')
    bn = (nn.BatchNormReLU2d if relu else nn.BatchNorm2d)(5, dtype="float64").to(device)
    np.testing.assert_allclose(
        as_numpy(bn(mg.tensor(x0, device=device)).data), as_numpy(out["fast"][0]),
        rtol=1e-9, atol=1e-9,
    )  # fmt: skip
