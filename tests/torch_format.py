"""A writer of PyTorch's zip format (``torch.save``, PyTorch >= 1.6), for tests without torch.

It writes what ``torch.save(model.state_dict(), path)`` writes: a zip archive (stored, not
compressed) with ``archive/data.pkl`` (a protocol-2 pickle of an ``OrderedDict`` whose values
are ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())``
with each storage a persistent id ``("storage", torch.FloatStorage, "0", "cpu", numel)``),
``archive/data/<key>`` (the raw little-endian elements), ``archive/byteorder`` and
``archive/version``. The globals are written as GLOBAL opcodes by name, so torch is needed
neither to write nor to read.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

STORAGE_OF = {
    "float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage",
    "int64": "LongStorage", "int32": "IntStorage", "int16": "ShortStorage",
    "int8": "CharStorage", "uint8": "ByteStorage", "bool": "BoolStorage",
}  # fmt: skip


class Global:
    """Pickled as ``GLOBAL module name`` (callable only so that save_reduce accepts it)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: Any) -> None:  # pragma: no cover - never called
        raise AssertionError("a stand-in")


REBUILD = Global("torch._utils", "_rebuild_tensor_v2")
# the state_dict's ``_metadata`` attribute (module versions), as torch pickles it
METADATA = collections.OrderedDict([("", {"version": 1}), ("bn", {"version": 2})])


class Storage:
    def __init__(self, key: str, array: np.ndarray) -> None:
        self.key, self.array = key, array


class TorchTensor:
    """What a torch tensor pickles to: the rebuild call on its storage."""

    def __init__(self, storage: Storage, offset: int, size: tuple, stride: tuple) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self) -> Any:
        hooks = collections.OrderedDict()
        return (REBUILD, (self.storage, self.offset, self.size, self.stride, False, hooks))


class TorchPickler(pickle._Pickler):  # the pure-Python pickler lets us write GLOBAL by name
    dispatch = pickle._Pickler.dispatch.copy()

    def save_named_global(self, obj: Global) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[Global] = save_named_global

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, Storage):
            kind = Global("torch", STORAGE_OF[obj.array.dtype.name])
            return ("storage", kind, obj.key, "cpu", int(obj.array.size))
        return None


def pth_bytes(state: dict[str, Any], storages: dict[str, np.ndarray]) -> bytes:
    """The pickle of ``state`` (values: :class:`TorchTensor` or anything picklable)."""
    buf = io.BytesIO()
    TorchPickler(buf, protocol=2).dump(state)
    return buf.getvalue()


def write_zip(path: Path, pickle_bytes: bytes, storages: dict[str, np.ndarray],
              archive: str = "archive", byteorder: str | None = "little",
              sizes: dict[str, int] | None = None) -> Path:  # fmt: skip
    """The zip archive around a data.pkl and raw storages (``sizes`` truncates members)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{archive}/data.pkl", pickle_bytes)
        if byteorder is not None:
            z.writestr(f"{archive}/byteorder", byteorder)
        for key, a in storages.items():
            order = "<" if byteorder in ("little", None) else ">"
            raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder(order)).tobytes()
            z.writestr(f"{archive}/data/{key}", raw[: (sizes or {}).get(key, len(raw))])
        z.writestr(f"{archive}/version", "3\n")
    return path


def save_state_dict(state: dict[str, np.ndarray], path: Path, **kwargs: Any) -> Path:
    """``torch.save(state_dict, path)`` as torch does it: one storage per tensor, keys
    "0", "1", ... in order, an OrderedDict of rebuild calls (0-d tensors included)."""
    storages, entries = {}, collections.OrderedDict()
    for i, (name, a) in enumerate(state.items()):
        a = np.asarray(a)
        key = str(i)
        storages[key] = a.reshape(-1)
        stride = tuple(s // a.itemsize for s in np.array(a, order="C").strides)
        entries[name] = TorchTensor(Storage(key, storages[key]), 0, a.shape, stride)
    entries._metadata = METADATA  # as Module.state_dict() sets it (pickled by BUILD)
    return write_zip(Path(path), pth_bytes(entries, storages), storages, **kwargs)


class LegacyPickler(TorchPickler):
    """The legacy format's persistent ids: 6-tuples whose last item (a view) is None."""

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, Storage):
            kind = Global("torch", STORAGE_OF[obj.array.dtype.name])
            return ("storage", kind, obj.key, "cpu", int(obj.array.size), None)
        return None


def save_state_dict_legacy(state: dict[str, np.ndarray], path: Path,
                           numel_written: dict[str, int] | None = None) -> Path:  # fmt: skip
    """``torch.save`` before PyTorch 1.6: magic number, protocol 1001, system info, the
    state_dict's pickle, its sorted storage keys, then each storage as a little-endian int64
    element count and its elements (``numel_written`` overrides a count, to test checks)."""
    import struct

    storages, entries = {}, collections.OrderedDict()
    for i, (name, a) in enumerate(state.items()):
        a = np.asarray(a)
        key = str(94_000_000_000 + 48 * i)  # torch uses str(id(storage))
        storages[key] = a.reshape(-1)
        stride = tuple(s // a.itemsize for s in np.array(a, order="C").strides)
        entries[name] = TorchTensor(Storage(key, storages[key]), 0, a.shape, stride)
    entries._metadata = METADATA
    with open(path, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001,
                       {"protocol_version": 1001, "little_endian": True,
                        "type_sizes": {"short": 2, "int": 4, "long": 4}}):  # fmt: skip
            pickle.dump(header, f, protocol=2)
        LegacyPickler(f, protocol=2).dump(entries)
        keys = sorted(storages)
        pickle.dump(keys, f, protocol=2)
        for key in keys:
            a = storages[key]
            f.write(struct.pack("<q", (numel_written or {}).get(key, a.size)))
            f.write(a.astype(a.dtype.newbyteorder("<")).tobytes())
    return Path(path)
