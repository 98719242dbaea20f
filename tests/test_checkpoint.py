"""Checkpoints: exact round trip of nested state, atomic replace, clear errors."""

from __future__ import annotations

import math
import os
import zipfile

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim, random
from minigrad.checkpoint import load_checkpoint, save_checkpoint


def _assert_same(a, b, where="root"):
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}/{i}")
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b), where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, where


def _net():
    # dropout: its masks come from the RNG stream the checkpoint must resume exactly
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 2))


def _trained_parts(device):
    mg.manual_seed(3)
    model = _net().to(device)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    sched = optim.LinearWarmup(opt, 2, after=optim.CosineAnnealingLR(opt, T_max=5))
    ema = optim.EMA(model, decay=0.99)
    for _ in range(2):
        opt.zero_grad()
        model(mg.randn(5, 3, device=device)).sum().backward()
        opt.step()
        sched.step()
        ema.update()
    return model, opt, sched, ema


def test_round_trip_restores_the_nesting_exactly(tmp_path, device):
    model, opt, sched, ema = _trained_parts(device)
    parts = dict(
        model=model.state_dict(),
        optimizer=opt.state_dict(),
        schedule=sched.state_dict(),
        ema=ema.state_dict(),
        epoch=7,
        rng=random.get_rng_state(),
        metrics={
            "val_acc": [0.5, 0.75],
            "best": None,
            "loss": float("nan"),
            "inf": -math.inf,
            "name": "run-1",
            "done": False,
            "shape": (3, 4),
            "count": np.int64(12),
            "mean": np.float32(0.25),
            "huge": 2**80 + 1,
            "empty": {},
            "mask": np.array([True, False]),
        },
    )
    assert len(parts["optimizer"]["state"]) == 4  # momentum buffers of all 4 parameters
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, **parts)
    back = load_checkpoint(path)
    _assert_same(parts, back)
    assert list(back["optimizer"]["state"]) == [0, 1, 2, 3]  # int keys stay ints
    # the weights are readable with numpy alone, under their dotted names
    with np.load(path) as z:
        assert "model/0.weight" in z.files and "optimizer/state/0/momentum_buffer" in z.files


def test_resume_from_a_checkpoint_continues_identically(tmp_path, device):
    """Bit-exact on every device: the RNG state holds each Philox stream's (seed, offset)."""
    model, opt, sched, ema = _trained_parts(device)
    save_checkpoint(
        tmp_path / "c.npz",
        model=model.state_dict(),
        optimizer=opt.state_dict(),
        schedule=sched.state_dict(),
        ema=ema.state_dict(),
        rng=random.get_rng_state(),
    )
    x = mg.randn(5, 3, device=device)  # draws from the RNG, as the next epoch would

    def one_step(model, opt, sched, ema, x):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
        sched.step()
        ema.update()

    one_step(model, opt, sched, ema, x)
    ck = load_checkpoint(tmp_path / "c.npz")
    random.set_rng_state(ck["rng"])
    x2 = mg.randn(5, 3, device=device)
    np.testing.assert_array_equal(x2.numpy(), x.numpy())
    m2 = _net().to(device)
    o2 = optim.SGD(m2.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    s2 = optim.LinearWarmup(o2, 2, after=optim.CosineAnnealingLR(o2, T_max=5))
    e2 = optim.EMA(m2, decay=0.5)
    m2.load_state_dict(ck["model"])
    o2.load_state_dict(ck["optimizer"])
    s2.load_state_dict(ck["schedule"])
    e2.load_state_dict(ck["ema"])
    one_step(m2, o2, s2, e2, x2)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(m2.state_dict()[k], v)
    _assert_same(ema.state_dict(), e2.state_dict())
    assert s2.get_last_lr() == sched.get_last_lr()


def test_a_crash_mid_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.npz"
    save_checkpoint(path, epoch=1, w=np.ones(3))

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, epoch=2, w=np.zeros(3))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["last.npz"]  # no temporary file left behind
    old = load_checkpoint(path)
    assert old["epoch"] == 1 and old["w"].tolist() == [1.0, 1.0, 1.0]
    save_checkpoint(path, epoch=3)
    assert load_checkpoint(path) == {"epoch": 3}


def test_unstorable_values_raise_type_error_and_write_nothing(tmp_path):
    with pytest.raises(TypeError, match="save_checkpoint: cannot store a object at 'm/x'"):
        save_checkpoint(tmp_path / "a.npz", m={"x": object()})
    with pytest.raises(TypeError, match="array at 'a' has dtype object"):
        save_checkpoint(tmp_path / "a.npz", a=np.array([None, 1]))
    with pytest.raises(TypeError, match=r"dict keys must be str or int, got \(1, 2\)"):
        save_checkpoint(tmp_path / "a.npz", d={(1, 2): 3})
    assert os.listdir(tmp_path) == []


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="no checkpoint file at .*nope.npz"):
        load_checkpoint(missing)
    good = tmp_path / "good.npz"
    save_checkpoint(good, w=np.arange(1000.0))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ValueError, match="truncated.npz' is corrupt, truncated or not an .npz"):
        load_checkpoint(truncated)
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"notes.npz' is not an .npz file \(a file starting"):
        load_checkpoint(text)
    plain = tmp_path / "plain.npz"
    np.savez(plain, weight=np.ones(2))
    with pytest.raises(ValueError, match="plain.npz' is an .npz file but not a minigrad"):
        load_checkpoint(plain)
    single = tmp_path / "single.npy"
    np.save(single, np.ones(2))
    with pytest.raises(ValueError, match="single.npy' is corrupt.*single .npy array"):
        load_checkpoint(single)
    bad_meta = tmp_path / "meta.npz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad_meta, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name.startswith("__minigrad"):
                buf = tmp_path / "m.npy"
                np.save(buf, np.array("{not json"))
                data = buf.read_bytes()
            dst.writestr(name, data)
    with pytest.raises(ValueError, match="meta.npz' has an unreadable minigrad metadata"):
        load_checkpoint(bad_meta)
