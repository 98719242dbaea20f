"""GoogLeNet.torchvision(): torchvision's names and shapes, its forward against a naive NumPy
reference written from torchvision's code, and strict loading from torch's file format."""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch_format as tf

import minigrad as mg
import minigrad.io as mio
from googlenet import AUX_WEIGHT, GoogLeNet, GoogLeNetOutputs, loss_terms

# torchvision/models/googlenet.py, its Inception rows as the constructor calls them
TV_ROWS = {
    "3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128), "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}  # fmt: skip


def torchvision_shapes(num_classes: int = 1000) -> dict[str, tuple]:
    """Every state_dict entry of torchvision.models.googlenet(aux_logits=True), written out
    from its code (BasicConv2d = conv without bias + BatchNorm2d)."""
    out: dict[str, tuple] = {}

    def basic(name: str, cin: int, cout: int, k: int) -> None:
        out[f"{name}.conv.weight"] = (cout, cin, k, k)
        for p in ("weight", "bias", "running_mean", "running_var"):
            out[f"{name}.bn.{p}"] = (cout,)
        out[f"{name}.bn.num_batches_tracked"] = ()

    basic("conv1", 3, 64, 7)
    basic("conv2", 64, 64, 1)
    basic("conv3", 64, 192, 3)
    for row, (cin, c1, c3r, c3, c5r, c5, pp) in TV_ROWS.items():
        b = f"inception{row}"
        basic(f"{b}.branch1", cin, c1, 1)
        basic(f"{b}.branch2.0", cin, c3r, 1)
        basic(f"{b}.branch2.1", c3r, c3, 3)
        basic(f"{b}.branch3.0", cin, c5r, 1)
        basic(f"{b}.branch3.1", c5r, c5, 3)  # torchvision's "5x5" is a 3x3
        basic(f"{b}.branch4.1", cin, pp, 1)
    for aux, cin in (("aux1", 512), ("aux2", 528)):
        basic(f"{aux}.conv", cin, 128, 1)
        out[f"{aux}.fc1.weight"], out[f"{aux}.fc1.bias"] = (1024, 2048), (1024,)
        out[f"{aux}.fc2.weight"], out[f"{aux}.fc2.bias"] = (num_classes, 1024), (num_classes,)
    out["fc.weight"], out["fc.bias"] = (num_classes, 1024), (num_classes,)
    return out


def test_state_dict_names_and_shapes_are_torchvisions() -> None:
    mg.manual_seed(0)
    sd = GoogLeNet.torchvision().state_dict()
    expected = torchvision_shapes()
    assert sorted(sd) == sorted(expected)
    assert {k: v.shape for k, v in sd.items()} == expected
    assert sd["conv1.bn.num_batches_tracked"].dtype == np.int64
    params = sum(int(np.prod(s)) for k, s in expected.items() if "running" not in k
                 and "num_batches" not in k)  # fmt: skip
    assert params == 13_004_888  # torchvision's googlenet(aux_logits=True)


# ---------------------------------------------------------------- a naive reference
def conv(x: np.ndarray, w: np.ndarray, stride: int = 1, pad: int = 0) -> np.ndarray:
    N, C, H, W = x.shape
    O, _, KH, KW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    OH, OW = (H + 2 * pad - KH) // stride + 1, (W + 2 * pad - KW) // stride + 1
    y = np.zeros((N, O, OH, OW))
    for i in range(KH):
        for j in range(KW):
            patch = xp[:, :, i : i + stride * OH : stride, j : j + stride * OW : stride]
            y += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return y


def max_pool(x: np.ndarray, k: int, s: int, pad: int = 0) -> np.ndarray:
    """PyTorch's max pool with ceil_mode=True: the last window must start in the input."""
    H, W = x.shape[2:]

    def size(n: int) -> int:
        o = math.ceil((n + 2 * pad - k) / s) + 1
        return o - 1 if (o - 1) * s >= n + pad else o

    OH, OW = size(H), size(W)
    y = np.empty(x.shape[:2] + (OH, OW))
    for i in range(OH):
        for j in range(OW):
            h0, w0 = i * s - pad, j * s - pad
            win = x[:, :, max(h0, 0) : min(h0 + k, H), max(w0, 0) : min(w0 + k, W)]
            y[:, :, i, j] = win.max(axis=(2, 3))
    return y


def adaptive_avg(x: np.ndarray, out: int) -> np.ndarray:
    H, W = x.shape[2:]
    y = np.empty(x.shape[:2] + (out, out))
    for i in range(out):
        for j in range(out):
            hs, he = (i * H) // out, math.ceil((i + 1) * H / out)
            ws, we = (j * W) // out, math.ceil((j + 1) * W / out)
            y[:, :, i, j] = x[:, :, hs:he, ws:we].mean(axis=(2, 3))
    return y


def reference_forward(sd: dict, x: np.ndarray, transform_input: bool) -> dict[str, np.ndarray]:
    """torchvision's GoogLeNet in eval mode, from its code, on a state_dict's arrays."""

    def basic(name: str, x: np.ndarray, stride: int = 1, pad: int = 0) -> np.ndarray:
        y = conv(x, sd[f"{name}.conv.weight"], stride, pad)
        bn = lambda p: sd[f"{name}.bn.{p}"][None, :, None, None]  # noqa: E731
        y = (y - bn("running_mean")) / np.sqrt(bn("running_var") + 1e-3) * bn("weight")
        return np.maximum(y + bn("bias"), 0)

    def inception(b: str, x: np.ndarray) -> np.ndarray:
        b1 = basic(f"{b}.branch1", x)
        b2 = basic(f"{b}.branch2.1", basic(f"{b}.branch2.0", x), pad=1)
        b3 = basic(f"{b}.branch3.1", basic(f"{b}.branch3.0", x), pad=1)
        b4 = basic(f"{b}.branch4.1", max_pool(x, 3, 1, pad=1))
        return np.concatenate([b1, b2, b3, b4], axis=1)

    def aux(a: str, x: np.ndarray) -> np.ndarray:
        y = basic(f"{a}.conv", adaptive_avg(x, 4)).reshape(len(x), -1)
        y = np.maximum(y @ sd[f"{a}.fc1.weight"].T + sd[f"{a}.fc1.bias"], 0)
        return y @ sd[f"{a}.fc2.weight"].T + sd[f"{a}.fc2.bias"]

    if transform_input:
        mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
        x = x * (std / 0.5)[None, :, None, None] + ((mean - 0.5) / 0.5)[None, :, None, None]
    x = max_pool(basic("conv1", x, stride=2, pad=3), 3, 2)
    x = max_pool(basic("conv3", basic("conv2", x), pad=1), 3, 2)
    x = max_pool(inception("inception3b", inception("inception3a", x)), 3, 2)
    x = inception("inception4a", x)
    out = {"aux1": aux("aux1", x)}
    for b in ("4b", "4c", "4d"):
        x = inception(f"inception{b}", x)
    out["aux2"] = aux("aux2", x)
    x = max_pool(inception("inception4e", x), 2, 2)
    x = inception("inception5b", inception("inception5a", x))
    x = x.mean(axis=(2, 3))
    out["logits"] = x @ sd["fc.weight"].T + sd["fc.bias"]
    return out


def randomised(model: GoogLeNet, seed: int) -> dict[str, np.ndarray]:
    """The model's state_dict with every entry drawn at random (batch norm statistics
    included, so they matter), loaded back into the model."""
    rng = np.random.default_rng(seed)
    sd = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            sd[k] = np.array(int(rng.integers(0, 1000)), dtype=np.int64)
        elif k.endswith("running_var") or k.endswith("bn.weight"):
            sd[k] = rng.uniform(0.5, 1.5, v.shape)
        elif k.endswith(".conv.weight") or k.endswith("fc1.weight"):
            fan_in = int(np.prod(v.shape[1:]))
            sd[k] = rng.standard_normal(v.shape) * math.sqrt(2 / fan_in)
        else:
            sd[k] = rng.standard_normal(v.shape) * 0.1
    model.load_state_dict(sd)
    return sd


@pytest.mark.parametrize("transform_input", [False, True])
def test_eval_logits_and_aux_heads_equal_a_naive_reference(transform_input: bool) -> None:
    # width 1/8 and a 116 px input: ceil-mode pools whose last window overhangs (58 -> 29,
    # and 7 -> 4 in the 2x2/2 pool before 5a) and 7x7 maps adaptively pooled to 4x4
    mg.manual_seed(0)
    model = GoogLeNet.torchvision(10, transform_input=transform_input, width=0.125).double()
    sd = randomised(model, seed=1)
    x = np.random.default_rng(2).standard_normal((2, 3, 116, 116))
    ref = reference_forward(sd, x, transform_input)
    feats = {}
    model.inception4a.register_forward_hook(lambda m, i, o: feats.__setitem__("4a", o))
    model.inception4d.register_forward_hook(lambda m, i, o: feats.__setitem__("4d", o))
    with mg.no_grad():
        logits = model.eval()(mg.tensor(x))
        aux1, aux2 = model.aux1(feats["4a"]), model.aux2(feats["4d"])
    np.testing.assert_allclose(logits.numpy(), ref["logits"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(aux1.numpy(), ref["aux1"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(aux2.numpy(), ref["aux2"], rtol=1e-9, atol=1e-9)


def test_a_torch_file_loads_strictly_and_gives_the_same_logits(tmp_path: Path) -> None:
    mg.manual_seed(0)
    model = GoogLeNet.torchvision(10, width=0.125)
    sd = {k: v.astype(np.float32) if v.dtype.kind == "f" else v
          for k, v in randomised(model, seed=3).items()}  # fmt: skip
    path = tf.save_state_dict(sd, tmp_path / "googlenet.pth", archive="googlenet")
    mg.manual_seed(1)
    other = GoogLeNet.torchvision(10, width=0.125)
    assert other.load_state_dict(mio.load_pth(path)) == ([], [], [])
    x = mg.tensor(np.random.default_rng(4).standard_normal((2, 3, 64, 64)).astype(np.float32))
    with mg.no_grad():
        np.testing.assert_array_equal(other.eval()(x).numpy(), model.eval()(x).numpy())
    tracked = sd["conv1.bn.num_batches_tracked"]
    assert int(other.conv1.bn.num_batches_tracked.numpy()) == int(tracked)
    # the legacy format (torchvision's 2019 files) gives the same tensors
    legacy = mio.load_pth(tf.save_state_dict_legacy(sd, tmp_path / "old.pth"))
    mg.manual_seed(2)
    third = GoogLeNet.torchvision(10, width=0.125)
    assert third.load_state_dict(legacy) == ([], [], [])
    with mg.no_grad():
        np.testing.assert_array_equal(third.eval()(x).numpy(), model.eval()(x).numpy())
    # the paper's network does not take these weights, and says where it differs
    paper = GoogLeNet(10, stem="imagenet", batch_norm=True, width=0.125)
    with pytest.raises(ValueError, match=r"wrong shapes \(9\):\n    inception3a.branch3.1.conv"):
        paper.load_state_dict(mio.load_pth(path))


def test_train_mode_returns_the_aux_outputs_for_the_weighted_loss() -> None:
    mg.manual_seed(0)
    model = GoogLeNet.torchvision(5, width=0.125)
    x = mg.tensor(np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32))
    out = model.train()(x)
    assert isinstance(out, GoogLeNetOutputs) and [t.shape for t in out] == [(2, 5)] * 3
    target = np.array([1, 3])
    terms = loss_terms(out, target)
    ce = mg.functional.cross_entropy
    np.testing.assert_allclose(terms["aux1"].item(), AUX_WEIGHT * ce(out.aux1, target).item())
    terms["total"].backward()
    assert model.aux1.fc2.weight.grad is not None and model.conv1.conv.weight.grad is not None
    assert GoogLeNet.torchvision(5, aux_logits=False, width=0.125).train()(x).shape == (2, 5)


def test_the_torchvision_variant_refuses_what_it_is_not() -> None:
    with pytest.raises(ValueError, match="torchvision variant has the ImageNet stem"):
        GoogLeNet(10, stem="cifar", batch_norm=True, variant="torchvision")
    with pytest.raises(ValueError, match="variant must be one of"):
        GoogLeNet(10, variant="caffe")
    with pytest.raises(ValueError, match="transform_input needs 3 input channels"):
        GoogLeNet(10, in_channels=1, transform_input=True)


def _real_file() -> Path | None:
    for p in (os.environ.get("MINIGRAD_TORCHVISION_GOOGLENET"),
              "~/.cache/minigrad/weights/googlenet-1378be20.pth",
              "~/.cache/torch/hub/checkpoints/googlenet-1378be20.pth"):  # fmt: skip
        if p and Path(p).expanduser().is_file():
            return Path(p).expanduser()
    return None


@pytest.mark.skipif(_real_file() is None, reason="torchvision's googlenet-1378be20.pth absent")
def test_torchvisions_real_file_loads_strictly() -> None:
    path = _real_file()
    assert hashlib.sha256(path.read_bytes()).hexdigest().startswith("1378be20")
    weights = mio.load_pth(path)
    model = GoogLeNet.torchvision(transform_input=True)
    assert model.load_state_dict(weights) == ([], [], [])
    x = mg.zeros(1, 3, 224, 224)
    with mg.no_grad():
        p = mg.functional.softmax(model.eval()(x), dim=1).numpy()
    assert p.shape == (1, 1000) and np.isfinite(p).all()


def test_aux_head_pools_adaptively_at_14x14_where_the_papers_head_pools_5x5_3() -> None:
    # at 224 px the aux heads see 14x14: torchvision's windows are 4 wide at 0, 3, 7, 10
    mg.manual_seed(0)
    model = GoogLeNet.torchvision(10, width=0.125).double()
    sd = randomised(model, seed=5)
    x = np.random.default_rng(6).standard_normal((2, model.aux1.conv.conv.in_channels, 14, 14))
    with mg.no_grad():
        got = model.aux1.eval()(mg.tensor(x)).numpy()
    y = np.maximum(
        (conv(adaptive_avg(x, 4), sd["aux1.conv.conv.weight"]) - sd["aux1.conv.bn.running_mean"]
         [None, :, None, None]) / np.sqrt(sd["aux1.conv.bn.running_var"][None, :, None, None]
         + 1e-3) * sd["aux1.conv.bn.weight"][None, :, None, None]
        + sd["aux1.conv.bn.bias"][None, :, None, None], 0).reshape(2, -1)  # fmt: skip
    y = np.maximum(y @ sd["aux1.fc1.weight"].T + sd["aux1.fc1.bias"], 0)
    np.testing.assert_allclose(got, y @ sd["aux1.fc2.weight"].T + sd["aux1.fc2.bias"], rtol=1e-9)


def test_the_torchvision_variant_on_the_device_gives_the_hosts_logits(device: str) -> None:
    # transform_input's constants, the 2x2/2 pool and adaptive aux pooling on the device
    mg.manual_seed(0)
    model = GoogLeNet.torchvision(7, transform_input=True, width=1 / 16)
    randomised(model, seed=7)
    x = np.random.default_rng(8).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with mg.no_grad():
        host = model.eval()(mg.tensor(x)).numpy()
        model.to(device)
        on_device = model(mg.tensor(x, device=device)).numpy()
        out = model.train()(mg.tensor(x, device=device))
    np.testing.assert_allclose(on_device, host, rtol=1e-4, atol=1e-5)
    assert isinstance(out, GoogLeNetOutputs) and out.aux2.device == device
