"""minigrad.io: torch's zip format read without torch (restricted, size-checked), safetensors
both ways, and load_weights by suffix."""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch_format as tf

import minigrad.io as mio
from minigrad import nn
from minigrad.checkpoint import save_checkpoint


def _state(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "conv.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "bn.running_var": rng.random(4).astype(np.float64),
        "bn.num_batches_tracked": np.array(123, dtype=np.int64),
        "emb.half": rng.standard_normal(5).astype(np.float16),
        "mask": rng.random(6) > 0.5,
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


def test_load_pth_reads_every_dtype_shape_and_0d_tensor(tmp_path: Path) -> None:
    state = _state(np.random.default_rng(0))
    got = mio.load_pth(tf.save_state_dict(state, tmp_path / "m.pth"))
    assert list(got) == list(state)
    for k, a in state.items():
        assert got[k].dtype == a.dtype and got[k].shape == a.shape, k
        np.testing.assert_array_equal(got[k], a)
        assert got[k].flags.c_contiguous and got[k].flags.owndata


def test_load_pth_any_archive_name_and_big_endian(tmp_path: Path) -> None:
    state = _state(np.random.default_rng(1))
    path = tf.save_state_dict(state, tmp_path / "m.pth", archive="googlenet-1378be20",
                              byteorder="big")  # fmt: skip
    got = mio.load_pth(path)
    for k, a in state.items():
        np.testing.assert_array_equal(got[k], a)
        assert got[k].dtype.isnative


def test_load_pth_views_share_a_storage(tmp_path: Path) -> None:
    # two tensors on one storage (a transposed view with an offset), as torch writes views
    base = np.arange(24, dtype=np.float32)
    s = tf.Storage("0", base)
    entries = collections.OrderedDict(
        a=tf.TorchTensor(s, 0, (4, 6), (6, 1)),
        b=tf.TorchTensor(s, 2, (3, 2), (1, 6)),  # b[i, j] = base[2 + i + 6 j]
    )
    path = tf.write_zip(tmp_path / "v.pth", tf.pth_bytes(entries, {"0": base}), {"0": base})
    got = mio.load_pth(path)
    np.testing.assert_array_equal(got["a"], base.reshape(4, 6))
    expect = np.array([[base[2 + i + 6 * j] for j in range(2)] for i in range(3)])
    np.testing.assert_array_equal(got["b"], expect)


class Evil:
    """A pickle that, loaded by a plain unpickler, runs a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["os.system", "builtins.eval", "nested in a tensor"])
def test_load_pth_refuses_code_without_running_it(tmp_path: Path, how: str) -> None:
    marker = tmp_path / "ran"
    if how == "os.system":
        payload = pickle.dumps(collections.OrderedDict(w=Evil(marker)), protocol=2)
    elif how == "builtins.eval":
        code = f"__import__('os').system('touch {marker}')".encode()
        payload = b"\x80\x02cbuiltins\neval\nX" + len(code).to_bytes(4, "little") + code
        payload += b"\x85R."
    else:  # a rebuild call whose storage argument is the attack
        buf = io.BytesIO()
        tf.TorchPickler(buf, protocol=2).dump(collections.OrderedDict(w=Evil(marker)))
        payload = buf.getvalue()
    path = tf.write_zip(tmp_path / "evil.pth", payload, {})
    # a plain unpickler would run it: prove the payload is live
    with zipfile.ZipFile(path) as z:
        pickle.loads(z.read("archive/data.pkl"))
    assert marker.exists()
    marker.unlink()
    with pytest.raises(ValueError, match=r"refused without calling it") as e:
        mio.load_pth(path)
    assert ("posix.system" in str(e.value) or "os.system" in str(e.value)
            or "builtins.eval" in str(e.value))  # fmt: skip
    assert not marker.exists()


def test_load_pth_checks_sizes_before_allocating(tmp_path: Path) -> None:
    a = np.arange(12, dtype=np.float32)
    s = tf.Storage("0", a)
    ok = collections.OrderedDict(w=tf.TorchTensor(s, 0, (3, 4), (4, 1)))
    # the member holds fewer bytes than numel * itemsize
    path = tf.write_zip(tmp_path / "short.pth", tf.pth_bytes(ok, {}), {"0": a}, sizes={"0": 40})
    with pytest.raises(ValueError, match=r"storage 0 \(FloatStorage\) should hold 12 elements "
                       r"\(48 bytes\) but its member has 40 bytes"):  # fmt: skip
        mio.load_pth(path)
    # a huge size/stride would read past the storage
    for size, stride, offset in (((3, 5), (4, 1), 0), ((10**12,), (1,), 0), ((3, 4), (4, 1), 1)):
        bad = collections.OrderedDict(w=tf.TorchTensor(s, offset, size, stride))
        path = tf.write_zip(tmp_path / "far.pth", tf.pth_bytes(bad, {}), {"0": a})
        with pytest.raises(ValueError, match=r"reach element \d+ of a storage of 12"):
            mio.load_pth(path)
    # a negative stride
    bad = collections.OrderedDict(w=tf.TorchTensor(s, 11, (12,), (-1,)))
    path = tf.write_zip(tmp_path / "neg.pth", tf.pth_bytes(bad, {}), {"0": a})
    with pytest.raises(ValueError, match="integers >= 0"):
        mio.load_pth(path)
    # a storage member that is missing
    path = tf.write_zip(tmp_path / "missing.pth", tf.pth_bytes(ok, {}), {})
    with pytest.raises(ValueError, match="no member archive/data/0"):
        mio.load_pth(path)


def test_load_pth_bad_files_say_what_they_are(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no file"):
        mio.load_pth(tmp_path / "nope.pth")
    cut = tmp_path / "cut.pth"  # a legacy file cut after its magic number
    cut.write_bytes(b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19.")
    with pytest.raises(ValueError, match="is corrupt .EOFError"):
        mio.load_pth(cut)
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(ValueError, match="neither a zip archive nor a legacy torch.save file"):
        mio.load_pth(text)
    other = tmp_path / "x.zip"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(ValueError, match="without one <name>/data.pkl"):
        mio.load_pth(other)
    notdict = tf.write_zip(tmp_path / "list.pth", pickle.dumps([1, 2], protocol=2), {})
    with pytest.raises(ValueError, match="holds a list, not a state_dict"):
        mio.load_pth(notdict)
    junk = tf.write_zip(tmp_path / "junk.pth", b"\x80\x02garbage", {})
    with pytest.raises(ValueError, match="load_pth: .* (corrupt|refers to)"):
        mio.load_pth(junk)


def test_safetensors_round_trip_and_plain_format(tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.numpy")
    state = _state(np.random.default_rng(2))
    path = tmp_path / "m.safetensors"
    mio.save_safetensors(state, path)
    got = mio.load_safetensors(path)
    assert set(got) == set(state)
    for k, a in state.items():
        np.testing.assert_array_equal(got[k], a)
        assert got[k].dtype == a.dtype and got[k].shape == a.shape, k
    # the file is plain safetensors: the library's own reader, and the header by hand
    other = st.load_file(str(path))
    np.testing.assert_array_equal(other["conv.weight"], state["conv.weight"])
    raw = path.read_bytes()
    import json

    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    assert header["conv.weight"]["dtype"] == "F32" and header["conv.weight"]["shape"] == [
        4,
        3,
        3,
        3,
    ]
    assert header["bn.num_batches_tracked"] == {**header["bn.num_batches_tracked"], "dtype": "I64",
                                                "shape": []}  # fmt: skip


def test_safetensors_of_a_module_and_errors(tmp_path: Path) -> None:
    pytest.importorskip("safetensors.numpy")
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    path = tmp_path / "model.safetensors"
    mio.save_safetensors(model.state_dict(), path)
    other = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    other.load_state_dict(mio.load_safetensors(path))
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[k], v)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage123")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        mio.load_safetensors(bad)
    with pytest.raises(TypeError, match="'x' is a str, not an array"):
        mio.save_safetensors({"x": "text"}, tmp_path / "t.safetensors")


def test_load_weights_by_suffix(tmp_path: Path) -> None:
    pytest.importorskip("safetensors.numpy")
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm2d(2))
    state = model.state_dict()
    tf.save_state_dict(state, tmp_path / "w.pth")
    mio.save_safetensors(state, tmp_path / "w.safetensors")
    np.savez(tmp_path / "plain.npz", **state)
    save_checkpoint(tmp_path / "ckpt.npz", model=state, config={"num_classes": 2})
    for name in ("w.pth", "w.safetensors", "plain.npz", "ckpt.npz"):
        got = mio.load_weights(tmp_path / name)
        assert set(got) == set(state), name
        for k in state:
            np.testing.assert_array_equal(got[k], state[k])
    with pytest.raises(ValueError, match=r"suffix '.h5'; expected one of .pth"):
        mio.load_weights(tmp_path / "w.h5")
    with pytest.raises(FileNotFoundError):
        mio.load_weights(tmp_path / "none.safetensors")


def test_load_pth_reads_compressed_members_and_refuses_impossible_sizes(tmp_path: Path) -> None:
    state = {"w": np.arange(1000, dtype=np.float32)}
    plain = tf.save_state_dict(state, tmp_path / "plain.pth")
    deflated = tmp_path / "deflated.pth"  # re-zipped by some tool: still read
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as z:
        for name in src.namelist():
            z.writestr(name, src.read(name))
    np.testing.assert_array_equal(mio.load_pth(deflated)["w"], state["w"])
    # a central directory that claims 4 GB for a stored member is refused before reading
    raw = bytearray(plain.read_bytes())
    name = b"archive/data/0"
    at = next(i - 46 for i in range(len(raw)) if raw[i : i + len(name)] == name
              and raw[i - 46 : i - 42] == b"PK\x01\x02")  # fmt: skip
    raw[at + 24 : at + 28] = (4_000_000_000).to_bytes(4, "little")
    liar = tmp_path / "liar.pth"
    liar.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"claims 4000000000 bytes, more than its archive can"):
        mio.load_pth(liar)


def test_load_pth_reads_the_legacy_format(tmp_path: Path) -> None:
    # torch.save before PyTorch 1.6, the format of torchvision's googlenet-1378be20.pth
    state = _state(np.random.default_rng(5))
    got = mio.load_pth(tf.save_state_dict_legacy(state, tmp_path / "old.pth"))
    assert list(got) == list(state)
    for k, a in state.items():
        assert got[k].dtype == a.dtype and got[k].shape == a.shape, k
        np.testing.assert_array_equal(got[k], a)


def test_load_pth_legacy_sizes_are_checked_and_code_refused(tmp_path: Path) -> None:
    state = {"w": np.arange(12, dtype=np.float32), "b": np.ones(3, np.float32)}
    key = str(94_000_000_000)
    path = tf.save_state_dict_legacy(state, tmp_path / "lie.pth", numel_written={key: 10**15})
    with pytest.raises(ValueError, match=r"should hold 12 elements; the file says 10+ and has"):
        mio.load_pth(path)
    path = tf.save_state_dict_legacy(state, tmp_path / "cut.pth")
    path.write_bytes(path.read_bytes()[:-8])  # the last storage cut short
    with pytest.raises(ValueError, match=r"should hold 3 elements; the file says 3 and has 4 "):
        mio.load_pth(path)
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        pickle.dump(collections.OrderedDict(w=Evil(marker)), f, protocol=2)
    with pytest.raises(ValueError, match="refused without calling it"):
        mio.load_pth(evil)
    assert not marker.exists()
