"""``cuda:N`` with N > 0: every array of a training step lives on the tensor's own device.

Real CuPy allocates every new array (an op's output, ``astype``/``copy``, ``zeros_like``)
on the *current* device, whatever device its inputs are on, and a raw kernel launches on
the current device with whatever pointers it is given. The stand-in
(``../shared/tools/fakecupy``) has one device only, so the fixture below extends it to two
for these tests: ``getDeviceCount()`` says 2, ``cupy.cuda.Device(i)`` makes ``i`` current,
every new array is tagged with the current device (a view keeps its base's), and a kernel
launched with an array of another device is recorded. Runs under ``--device cuda`` with
the stand-in only (CI's stand-in run); skipped elsewhere.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import pytest
from _host import is_standin, to_host

import minigrad as mg
import minigrad.functional as F
from minigrad import backend, devices, nn, optim
from minigrad.data import DataLoader
from minigrad.functional import _cuda
from minigrad.train.loop import evaluate, train_one_epoch


class TwoDevices:
    """The stand-in's state for two simulated devices: current device and array tags."""

    def __init__(self) -> None:
        self.current = 0
        self.tags: dict[int, tuple[Any, int]] = {}  # id(host array) -> (weakref, device)
        self.misplaced: list[str] = []  # kernel launches with an array of another device

    def tag_of(self, a: np.ndarray) -> int | None:
        entry = self.tags.get(id(a))
        return entry[1] if entry is not None and entry[0]() is a else None

    def tag(self, a: np.ndarray) -> None:
        if self.tag_of(a) is not None:
            return  # the same memory wrapped again (an in-place op's result)
        base = a.base if isinstance(a.base, np.ndarray) else None
        dev = self.tag_of(base) if base is not None else None
        dev = self.current if dev is None else dev  # a view stays with its base
        key = id(a)
        self.tags[key] = (weakref.ref(a, lambda _: self.tags.pop(key, None)), dev)


@pytest.fixture
def two_devices(device, monkeypatch):
    if device == "cpu" or not is_standin():
        pytest.skip("simulates a second GPU through the CuPy stand-in (--device cuda)")
    cp = backend.import_cupy()
    sim = TwoDevices()

    class Device:
        def __init__(self, device: Any = None) -> None:
            self.id = sim.current if device is None else int(device)
            if not 0 <= self.id < 2:
                raise RuntimeError(f"simulated: no device {self.id}")
            self.saved: list[int] = []

        def __enter__(self) -> Device:
            self.saved.append(sim.current)
            sim.current = self.id
            return self

        def __exit__(self, *exc: Any) -> None:
            sim.current = self.saved.pop()

        def use(self) -> None:
            sim.current = self.id

        def synchronize(self) -> None:
            pass

        compute_capability = "90"

    init = cp.ndarray.__init__

    def tagged_init(self: Any, a: np.ndarray) -> None:
        init(self, a)
        sim.tag(a)

    kernel = _cuda.get_kernel

    def checked_kernel(name: str) -> Any:
        launch = kernel(name)

        def run(grid: Any, block: Any, args: tuple[Any, ...]) -> None:
            for a in args:
                if isinstance(a, cp.ndarray) and a.device.id != sim.current:
                    sim.misplaced.append(f"{name}: array on {a.device.id}, current {sim.current}")
            launch(grid, block, args)

        return run

    monkeypatch.setattr(cp.cuda.runtime, "getDeviceCount", lambda: 2)
    monkeypatch.setattr(cp.cuda, "Device", Device)
    monkeypatch.setattr(cp.ndarray, "__init__", tagged_init)
    monkeypatch.setattr(
        cp.ndarray, "device", property(lambda s: type("Dev", (), {"id": sim.tag_of(s._a)})())
    )
    monkeypatch.setattr(_cuda, "get_kernel", checked_kernel)
    return sim


class Net(nn.Module):
    """conv + batch norm (a raw kernel on the GPU), pooling, dropout and a linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: mg.Tensor) -> mg.Tensor:
        x = F.relu(self.bn(self.conv(x)))  # (N, 4, 6, 6)
        x = F.adaptive_avg_pool2d(x, 1).reshape(x.shape[0], 4)
        return self.fc(F.dropout(x, 0.2, self.training))


def _arrays_after_a_step(device: str) -> dict[str, Any]:
    """Every array a model, its optimizer and its EMA hold after one epoch on ``device``."""
    mg.manual_seed(0)
    model = Net().to(device)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    ema = optim.EMA(model, 0.9)
    rng = np.random.default_rng(0)
    data = [(rng.standard_normal((2, 6, 6)).astype(np.float32), i % 3) for i in range(8)]
    loader = DataLoader(data, 4)
    train_one_epoch(model, loader, opt, F.cross_entropy, device=device, ema=ema, bar=False)
    evaluate(model, loader, device=device)
    arrays = {f"param {n}": p.data for n, p in model.named_parameters()}
    arrays |= {f"grad {n}": p.grad for n, p in model.named_parameters()}
    arrays |= {f"buffer {n}": b.data for n, b in model.named_buffers()}
    arrays |= {
        f"optimizer {i} {k}": v for i, s in enumerate(opt.state.values()) for k, v in s.items()
    }
    arrays |= {f"ema {n}": a for n, a in {**ema.shadow, **ema.buffers}.items()}
    # a checkpoint's state loaded back onto the model's device
    opt.load_state_dict(opt.state_dict())
    ema.load_state_dict(ema.state_dict())
    arrays |= {
        f"loaded optimizer {i} {k}": v
        for i, s in enumerate(opt.state.values())
        for k, v in s.items()
    }
    arrays |= {f"loaded ema {n}": a for n, a in ema.shadow.items()}
    model.to(dtype="float64")
    arrays |= {f"float64 {n}": p.data for n, p in model.named_parameters()}
    return arrays


def test_a_training_step_on_cuda_1_keeps_every_array_on_device_1(two_devices) -> None:
    arrays = _arrays_after_a_step("cuda:1")
    assert len(arrays) > 30
    wrong = {k: a.device.id for k, a in arrays.items() if a.device.id != 1}
    assert wrong == {}
    assert two_devices.misplaced == []
    assert two_devices.current == 0  # every context was left


def test_factories_and_casts_on_cuda_1_land_on_device_1(two_devices) -> None:
    t = mg.tensor([[1.0, 2.0]], dtype="float64", device="cuda:1")
    r = mg.randn(3, 2, device="cuda:1")
    h = F.dropout(mg.ones(4, 4, device="cuda:1"), 0.5)
    w = mg.randn(4, 4, device="cuda:1", requires_grad=True)
    (F.dropout(w, 0.5) * 2).sum().backward()  # outside any device context
    for a in (t.data, r.data, h.data, t.to("float32").data, mg.zeros(2, device="cuda:1").data):
        assert a.device.id == 1 and devices.device_of(a) == "cuda:1"
    assert w.grad.device.id == 1
    assert two_devices.current == 0


def test_the_simulation_sees_an_array_made_outside_the_device_context(two_devices) -> None:
    """The fixture is not vacuous: work outside the context lands on the current device."""
    cp = backend.import_cupy()
    with devices.device_context("cuda:1"):
        a = cp.ones(3)
    b = a + 1  # outside: real CuPy allocates this on device 0
    assert (a.device.id, b.device.id, a[1:].device.id) == (1, 0, 1)
    np.testing.assert_array_equal(to_host(b), [2.0, 2.0, 2.0])
