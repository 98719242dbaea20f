"""``load_pth``: a ``torch.save``'d state_dict read into NumPy arrays, without PyTorch.

The zip format (PyTorch >= 1.6) is a zip archive with one top folder (any name)::

    archive/data.pkl        the pickle (protocol 2) of an OrderedDict name -> tensor
    archive/data/0, 1, ...  one member per storage: the raw elements, no header
    archive/byteorder       "little" or "big" (absent in files from before PyTorch 1.10:
                            little-endian)
    archive/version         the format version

In the pickle each tensor is ``torch._utils._rebuild_tensor_v2(storage, storage_offset,
size, stride, requires_grad, backward_hooks[, metadata])`` and each storage a persistent id
``("storage", torch.FloatStorage, key, location, numel)`` naming ``archive/data/<key>``.
The legacy format (before 1.6) holds the same pickle between four others, its storages
after it (:func:`_load_legacy`).

A pickle can call any importable function, so the unpickler here is restricted: only the
globals a state_dict needs resolve (the allow-list :data:`ALLOWED_GLOBALS`), each to a
stand-in written here; anything else (``os.system``, ``builtins.eval``, ...) raises at the
``GLOBAL`` opcode, before it could be called. Every size is checked against the archive
before an array is allocated: a member's stated size must fit in the archive (stored
members) or deflate's ratio (compressed ones), a storage's ``numel * itemsize`` must equal
its member's size, and a tensor's offset, sizes and strides must stay inside its storage.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

__all__ = ["ALLOWED_GLOBALS", "STORAGE_DTYPES", "PthError", "load_pth"]

#: torch's storage types and the NumPy dtype of their elements (BFloat16 is widened to
#: float32 on reading: NumPy has no bfloat16)
STORAGE_DTYPES: dict[str, str] = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "UntypedStorage": "uint8",
}  # fmt: skip
_ITEMSIZE = {"bfloat16": 2}


@dataclass(frozen=True)
class _StorageType:
    """What ``GLOBAL torch FloatStorage`` resolves to: a name and a dtype, not callable."""

    name: str
    dtype: str

    @property
    def itemsize(self) -> int:
        return _ITEMSIZE.get(self.dtype) or np.dtype(self.dtype).itemsize


@dataclass
class _Storage:
    """A storage: its type, its size in elements, and its flat elements once read (the
    legacy format stores them after the pickle that names them)."""

    type: _StorageType
    numel: int
    array: np.ndarray | None = None


@dataclass(frozen=True)
class _TensorRef:
    """A tensor the pickle rebuilt: a checked view of a storage, copied out by
    :meth:`array` once the storage is read."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> np.ndarray:
        """``storage[offset + sum(i_k * stride_k)]`` at index ``i``, in its own memory."""
        flat = self.storage.array[self.offset :]
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat, self.size, tuple(s * item for s in self.stride)
        )
        out = np.array(view, copy=True)  # owns its memory, C-contiguous
        if self.storage.type.dtype == "bfloat16":  # the top 16 bits of a float32
            out = (out.astype(np.uint32) << 16).view(np.float32)
        return out


class PthError(ValueError):
    """A ``.pth`` file that is not a readable state_dict (the message says why)."""


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any,
                       requires_grad: Any = False, backward_hooks: Any = None,
                       metadata: Any = None) -> _TensorRef:  # fmt: skip
    """``torch._utils._rebuild_tensor_v2``: a tensor as a view of a storage, its bounds
    checked against the storage's size (no array is made here)."""
    if not isinstance(storage, _Storage):
        raise PthError(f"_rebuild_tensor_v2: expected a storage, got {type(storage).__name__}")
    ints = (storage_offset, *_int_tuple("size", size), *_int_tuple("stride", stride))
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in ints):
        raise PthError(
            f"_rebuild_tensor_v2: offset, size and stride must be integers >= 0, got "
            f"offset {storage_offset!r}, size {size!r}, stride {stride!r}"
        )
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride):
        raise PthError(f"_rebuild_tensor_v2: size {size} and stride {stride} differ in length")
    numel = storage.numel
    if 0 not in size:
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= numel:
            raise PthError(
                f"_rebuild_tensor_v2: size {size}, stride {stride} and offset "
                f"{storage_offset} reach element {last} of a storage of {numel}"
            )
    elif storage_offset > numel:
        raise PthError(f"_rebuild_tensor_v2: offset {storage_offset} past a storage of {numel}")
    return _TensorRef(storage, storage_offset, size, stride)


def _int_tuple(name: str, value: Any) -> tuple:
    if not isinstance(value, (tuple, list)):
        raise PthError(f"_rebuild_tensor_v2: {name} must be a tuple, got {type(value).__name__}")
    return tuple(value)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None,
                       ) -> _TensorRef:  # fmt: skip
    """``torch._utils._rebuild_parameter``: a Parameter saved as such is its data."""
    if not isinstance(data, _TensorRef):
        raise PthError(f"_rebuild_parameter: expected a tensor, got {type(data).__name__}")
    return data


#: ``(module, name)`` of every global a state_dict's pickle may name, and its stand-in
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name, dtype) for name, dtype in STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose globals come only from :data:`ALLOWED_GLOBALS` and whose
    persistent ids are storages, made once each by ``make_storage(key, type, numel)``."""

    def __init__(self, file: IO[bytes], path: str,
                 make_storage: Callable[[str, _StorageType, int], _Storage] | None = None,
                 ) -> None:  # fmt: skip
        super().__init__(file)
        self.path, self.make_storage = path, make_storage
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise PthError(
                f"load_pth: {self.path!r} refers to {module}.{name}, which a state_dict does "
                "not hold; refused without calling it (the file may run code: do not load it "
                "with torch.load either unless you trust it)"
            ) from None

    def persistent_load(self, pid: Any) -> _Storage:
        # zip format: ("storage", type, key, location, numel); legacy: the same and a view
        # (None unless the storage is a view of another, which is not read here)
        ok = isinstance(pid, tuple) and pid[:1] == ("storage",) and self.make_storage
        if not ok or len(pid) not in (5, 6) or (len(pid) == 6 and pid[5] is not None):
            raise PthError(f"load_pth: {self.path!r} has an unknown persistent id {pid!r:.80}")
        _, kind, key, _location, numel = pid[:5]
        if not isinstance(kind, _StorageType):
            raise PthError(f"load_pth: {self.path!r}: {kind!r:.60} is not a storage type")
        if not isinstance(key, str) or not key.isdigit():
            raise PthError(f"load_pth: {self.path!r}: bad storage key {key!r:.60}")
        if key in self.storages:
            return self.storages[key]
        if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
            raise PthError(f"load_pth: {self.path!r}: storage {key} has size {numel!r:.60}")
        self.storages[key] = self.make_storage(key, kind, numel)
        return self.storages[key]


def _elements(raw: bytes, kind: _StorageType, little: bool) -> np.ndarray:
    """A storage's bytes as its elements, in native byte order."""
    dtype = np.dtype("uint16" if kind.dtype == "bfloat16" else kind.dtype)
    array = np.frombuffer(raw, dtype.newbyteorder("<" if little else ">"))
    return array.astype(dtype, copy=False)


_MAX_PICKLE = 256 << 20  # a state_dict's pickle holds ~100 bytes per tensor
_MAX_RATIO = 1100  # deflate never expands more than ~1032:1


def _check_member_size(info: zipfile.ZipInfo, path: str) -> None:
    """A member's stated size must be possible: stored members (torch writes no other)
    hold their bytes in the archive; compressed ones expand at most deflate's ratio."""
    limit = os.path.getsize(path) if info.compress_type == zipfile.ZIP_STORED else (
        _MAX_RATIO * max(info.compress_size, 1)
    )  # fmt: skip
    if info.file_size > limit:
        raise PthError(
            f"load_pth: {path!r}: member {info.filename} claims {info.file_size} bytes, more "
            f"than its archive can hold ({limit}); refused before reading it"
        )


def load_pth(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The name -> array mapping of a file written by ``torch.save(model.state_dict(), path)``.

    Reads PyTorch's zip format (1.6 and later) and its legacy format (before 1.6, as
    torchvision's ``googlenet-1378be20.pth`` of 2019) without importing torch, through a
    restricted unpickler (see the module docstring): a file naming anything but an ordered
    dict, the tensor-rebuild functions and storage types is refused without running it.
    Arrays are C-contiguous copies on the host; bfloat16 tensors come back as float32.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: neither format, a refused global, sizes that do not match the file, or
            a pickle that is not a mapping of names to tensors.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_pth: no file at {path!r}")
    try:
        if not zipfile.is_zipfile(path):
            obj = _load_legacy(path)
        else:
            obj = _load_zip(path)
    except PthError:
        raise
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, TypeError, KeyError,
            AttributeError, IndexError, ValueError) as e:  # fmt: skip
        raise PthError(f"load_pth: {path!r} is corrupt ({type(e).__name__}: {e})") from e
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]  # a training checkpoint {"state_dict": ..., ...}
    if not isinstance(obj, dict):
        raise PthError(f"load_pth: {path!r} holds a {type(obj).__name__}, not a state_dict")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, _TensorRef)]
    if bad:
        raise PthError(f"load_pth: {path!r}: entries that are not tensors: {bad[:5]}")
    return {k: v.array() for k, v in obj.items()}


def _load_zip(path: str) -> Any:
    """The zip format's pickle, its storages read (and checked) as it names them."""
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise PthError(f"load_pth: {path!r} is a zip archive without one <name>/data.pkl")
        prefix = pkl[0][: -len("data.pkl")]
        byteorder = "little"
        if f"{prefix}byteorder" in names:
            byteorder = archive.read(f"{prefix}byteorder").decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise PthError(f"load_pth: {path!r} has byteorder {byteorder!r:.20}")
        info = archive.getinfo(pkl[0])
        _check_member_size(info, path)
        if info.file_size > _MAX_PICKLE:
            raise PthError(f"load_pth: {path!r}: a {info.file_size}-byte data.pkl is no "
                           "state_dict's")  # fmt: skip

        def member(key: str, kind: _StorageType, numel: int) -> _Storage:
            name = f"{prefix}data/{key}"
            if name not in names:
                raise PthError(f"load_pth: {path!r} has no member {name} (truncated?)")
            info, nbytes = archive.getinfo(name), numel * kind.itemsize
            _check_member_size(info, path)
            if info.file_size != nbytes:
                raise PthError(
                    f"load_pth: {path!r}: storage {key} ({kind.name}) should hold {numel} "
                    f"elements ({nbytes} bytes) but its member has {info.file_size} bytes"
                )
            raw = archive.read(name)  # file_size bytes, checked above
            return _Storage(kind, numel, _elements(raw, kind, byteorder == "little"))

        data = io.BytesIO(archive.read(pkl[0]))  # its size checked above
        return _RestrictedUnpickler(data, path, member).load()


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
LEGACY_PROTOCOL = 1001


def _load_legacy(path: str) -> Any:
    """The legacy format (``torch.save`` before 1.6, e.g. torchvision's 2019 weights): five
    pickles in a row (magic number, protocol 1001, system info, the object, its storage
    keys), then each storage as an int64 element count and its elements, little-endian.
    The object's storages are read after it, each count checked against the pickle's and
    the bytes left in the file before anything is allocated."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(0)
        if head != b"\x80\x02":
            raise PthError(f"load_pth: {path!r} is neither a zip archive nor a legacy torch.save "
                           f"file (starts with {head!r})")  # fmt: skip
        magic = _RestrictedUnpickler(f, path).load()
        if magic != LEGACY_MAGIC:
            raise PthError(f"load_pth: {path!r} is a pickle, not a torch.save file")
        protocol = _RestrictedUnpickler(f, path).load()
        if protocol != LEGACY_PROTOCOL:
            raise PthError(f"load_pth: {path!r} has legacy protocol {protocol!r:.20}, not 1001")
        info = _RestrictedUnpickler(f, path).load()
        little = bool(info.get("little_endian", True)) if isinstance(info, dict) else True
        if not little:
            raise PthError(f"load_pth: {path!r} was saved big-endian (legacy), not read here")
        unpickler = _RestrictedUnpickler(f, path, lambda key, kind, n: _Storage(kind, n))
        obj = unpickler.load()
        keys = _RestrictedUnpickler(f, path).load()
        if not isinstance(keys, list) or set(keys) != set(unpickler.storages):
            raise PthError(f"load_pth: {path!r}: its storage list does not match its tensors")
        for key in keys:
            storage = unpickler.storages[key]
            raw = f.read(8)
            numel = int.from_bytes(raw, "little", signed=True) if len(raw) == 8 else -1
            nbytes = numel * storage.type.itemsize
            if numel != storage.numel or nbytes > size - f.tell():
                raise PthError(
                    f"load_pth: {path!r}: storage {key} ({storage.type.name}) should hold "
                    f"{storage.numel} elements; the file says {numel} and has "
                    f"{size - f.tell()} bytes left (truncated?)"
                )
            storage.array = _elements(f.read(nbytes), storage.type, little=True)
    return obj
