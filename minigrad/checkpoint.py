"""Checkpoints: nested dicts of arrays and plain values in ONE ``.npz`` file, written atomically.

    save_checkpoint("runs/c10/last.npz", model=model.state_dict(), optimizer=opt.state_dict(),
                    schedule=sched.state_dict(), ema=ema.state_dict(), epoch=7,
                    rng=mg.random.get_rng_state(), metrics={"val_acc": 0.91})
    ckpt = load_checkpoint("runs/c10/last.npz")
    model.load_state_dict(ckpt["model"])

Format: every array is one npz entry, named by its path in the nesting
(``model/inception3a.branch1.conv.weight``, ``optimizer/state/0/momentum_buffer``), so
``numpy.load`` alone can read the weights. One more entry, ``__minigrad_checkpoint__``,
holds JSON describing the nesting: dicts (with str or int keys), lists, tuples, None, bool,
int (any size, e.g. RNG states), float (incl. nan/inf), str, and references to the arrays.
NumPy scalars are stored as 0-d arrays and come back as NumPy scalars; CuPy arrays and
Tensors are saved as host arrays and come back as NumPy arrays. Nothing is pickled.

Writing goes to a temporary file in the same folder, which is flushed, fsync'ed and then
renamed over the target with ``os.replace`` (atomic on POSIX and Windows), so a crash or a
full disk mid-write leaves the previous checkpoint intact and no stray temporary file (a
process killed mid-write leaves one, named with its PID; the next save to the same path
removes it once that process has ended, never the temporary of a live one). A file that
is not an ``.npz`` (a text file under that name) is a ValueError naming it.

Reading trusts nothing in the file: the zip index and every entry's ``.npy`` header are
checked before any array is read (entries stored, not compressed; dtypes without objects;
declared sizes that add up to the file's), so a file never costs more memory than its own
size, and any damage (flipped bits, a cut, metadata nested too deep) is one ValueError
naming the file. See docs/files-and-safety.md.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import struct
import time
import tokenize
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from minigrad import backend
from minigrad.tensor import Tensor

__all__ = ["find_checkpoint", "load_checkpoint", "load_for_inference", "save_checkpoint"]

META_KEY = "__minigrad_checkpoint__"
FORMAT_VERSION = 1


def _encode(value: Any, path: str, arrays: dict[str, np.ndarray]) -> Any:
    """JSON description of ``value``; arrays go into ``arrays`` under a unique key."""
    if isinstance(value, Tensor):
        value = value.data
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return {"int": str(value)} if abs(value) >= 2**53 else value
    if isinstance(value, float):
        return value if np.isfinite(value) else {"float": repr(value)}
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(
                    f"save_checkpoint: dict keys must be str or int, got {k!r} at {path or '/'}"
                )
            items.append([k, _encode(v, f"{path}/{k}" if path else str(k), arrays)])
        return {"dict": items}
    if isinstance(value, (list, tuple)):
        kind = "list" if isinstance(value, list) else "tuple"
        return {kind: [_encode(v, f"{path}/{i}", arrays) for i, v in enumerate(value)]}
    if isinstance(value, np.generic) or hasattr(value, "shape"):
        scalar = isinstance(value, np.generic)
        arr = backend.as_numpy(value)
        if arr.dtype.kind not in "biufc":  # would need pickle (object) or be lossy
            raise TypeError(
                f"save_checkpoint: array at {path!r} has dtype {arr.dtype}; only bool, int, "
                "float and complex arrays can be stored"
            )
        key, n = path or "value", 1
        while key in arrays or key == META_KEY:
            key, n = f"{path}~{n}", n + 1
        arrays[key] = arr
        return {"scalar" if scalar else "array": key}
    raise TypeError(
        f"save_checkpoint: cannot store a {type(value).__name__} at {path!r} (use arrays, "
        "numbers, str, None, and dicts/lists/tuples of them)"
    )


#: how deep a checkpoint's nesting may go (save_checkpoint's callers use about 6 levels)
MAX_DEPTH = 64


def _decode(node: Any, arrays: Any, depth: int = 0) -> Any:
    if not isinstance(node, dict):
        return node  # None, bool, int, float, str
    if depth > MAX_DEPTH:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
    ((kind, v),) = node.items()
    if kind == "dict":
        return {k: _decode(x, arrays, depth + 1) for k, x in v}
    if kind == "list":
        return [_decode(x, arrays, depth + 1) for x in v]
    if kind == "tuple":
        return tuple(_decode(x, arrays, depth + 1) for x in v)
    if kind == "array":
        return arrays[v]
    if kind == "scalar":
        return arrays[v][()]
    if kind == "int":
        return int(v)
    if kind == "float":
        return float(v)
    raise ValueError(f"unknown node kind {kind!r}")


def save_checkpoint(path: str | os.PathLike[str], **parts: Any) -> None:
    """Write ``parts`` (nested dicts/lists of arrays and plain values) to one ``.npz`` file.

    The file is written exactly at ``path`` (no suffix is added) and replaced atomically. It
    gets the permissions of any new file of the process (``0o666`` less the umask), like the
    run's other files. Temporaries of earlier saves to the same ``path`` that a killed
    process left behind (``.NAME.npz.PID-*.tmp``, PID no longer running) are removed first;
    a live process's are left alone.

    Args:
        path: target file; its folder must exist.
        **parts: e.g. ``model=``, ``optimizer=``, ``schedule=``, ``ema=``, ``epoch=``,
            ``rng=``, ``metrics=``.

    Raises:
        TypeError: a value that cannot be stored without pickle (objects, object arrays).
        FileNotFoundError: the folder does not exist.
        OSError: writing failed (a full disk, a read-only folder): one message naming the
            file; the previous checkpoint at ``path`` is left as it was.
    """
    path = os.fspath(path)
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": "minigrad-checkpoint", "version": FORMAT_VERSION}
    meta["tree"] = _encode(dict(parts), "", arrays)
    text = json.dumps(meta, allow_nan=False)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save_checkpoint: the folder of {path!r} does not exist")
    base = os.path.basename(path)
    _remove_stale_temporaries(folder, base)
    tmp = ""
    try:
        f, tmp = _open_new(folder, base)
        with f:
            np.savez(f, **{META_KEY: np.array(text)}, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            reason = e.strerror or str(e)
            raise OSError(
                e.errno,
                f"save_checkpoint: cannot write {path!r}: {reason}; the previous checkpoint "
                "there (if any) is unchanged",
            ) from e
        raise
    _fsync_dir(folder)


def _open_new(folder: str, base: str) -> tuple[Any, str]:
    """A new temporary file ``.BASE.PID-RANDOM.tmp`` in ``folder``, opened for writing with
    the umask's permissions (``tempfile.mkstemp`` would make it 0600)."""
    while True:
        tmp = os.path.join(folder, f".{base}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o666)  # fmt: skip
        except FileExistsError:
            continue
        return os.fdopen(fd, "wb"), tmp


def _remove_stale_temporaries(folder: str, base: str) -> None:
    """Delete ``.BASE.PID-*.tmp`` left in ``folder`` by a save that was killed mid-write:
    only those of processes that no longer run (a live process's save is never touched)."""
    prefix = f".{base}."
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid, dash, _ = name[len(prefix) : -len(".tmp")].partition("-")
        tmp = os.path.join(folder, name)
        try:
            if dash and pid.isdigit():  # .BASE.PID-RANDOM.tmp: stale once PID has ended
                if not _process_alive(int(pid)):
                    os.unlink(tmp)
            elif time.time() - os.path.getmtime(tmp) > _LEGACY_STALE_S:
                os.unlink(tmp)  # an older minigrad's .BASE.RANDOM.tmp, an hour old
        except OSError:
            pass


_LEGACY_STALE_S = 3600  # a temporary without a PID in its name is stale after this long


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (on this machine); True when that cannot be told."""
    if os.name != "posix":
        return True  # pragma: no cover - no signal 0 to ask with
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # e.g. another user's process: it exists
    return True


def _fsync_dir(folder: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: what reading a damaged or hostile file can raise from zipfile, the .npy header parser
#: and json (a flipped bit in the zip index is a NotImplementedError, a deeply nested
#: metadata entry a RecursionError): each becomes one ValueError naming the file
_DAMAGE = (
    OSError, EOFError, ValueError, KeyError, TypeError, NotImplementedError, OverflowError,
    RecursionError, SyntaxError, struct.error, zlib.error, tokenize.TokenError,
    zipfile.BadZipFile, zipfile.LargeZipFile,
)  # fmt: skip


class _Refused(Exception):
    """A checkpoint that is readable but not what ``save_checkpoint`` writes (internal)."""


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a file written by :func:`save_checkpoint`; return ``parts`` with their nesting.

    An untrusted file cannot cost more memory than its own size: the zip index and every
    entry's ``.npy`` header (dtype and shape) are checked before any array is read, an
    entry must be stored uncompressed (as ``save_checkpoint`` writes it) with exactly the
    bytes its header declares, and the entries together must fit in the file, so a small
    file declaring gigabytes is refused without reading them.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: one line naming the file: it is not a readable ``.npz`` (corrupt,
            truncated, bytes flipped), or is an ``.npz`` that :func:`save_checkpoint` did
            not write (compressed or foreign entries, no metadata, metadata nested too deep).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_checkpoint: no checkpoint file at {path!r}")
    with open(path, "rb") as f:
        head = f.read(8)
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
        what = "an empty file" if not head else f"a file starting with {head!r}"
        raise ValueError(
            f"load_checkpoint: {path!r} is not an .npz file ({what}, not a zip archive); "
            "give the path of a checkpoint such as last.npz or best.npz"
        )
    if head.startswith(b"\x93NUMPY"):
        raise ValueError(
            f"load_checkpoint: {path!r} is corrupt or not an .npz file: it holds a single "
            ".npy array, not an .npz archive"
        )
    try:
        with zipfile.ZipFile(path) as z:
            entries = _check_entries(z, os.path.getsize(path))
            if META_KEY not in entries:
                raise _Refused(
                    f"is an .npz file but not a minigrad checkpoint (no {META_KEY!r} entry; "
                    f"its entries start with {sorted(entries)[:5]})"
                )
            arrays = {k: _read_entry(z, info) for k, info in entries.items()}
    except _Refused as e:
        raise ValueError(f"load_checkpoint: {path!r} {e}") from None
    except _DAMAGE as e:
        raise ValueError(
            f"load_checkpoint: {path!r} is corrupt, truncated or not an .npz file "
            f"({type(e).__name__}: {e}); use an earlier checkpoint"
        ) from e
    try:
        meta = json.loads(str(arrays.pop(META_KEY)))
        if meta.get("format") != "minigrad-checkpoint":
            raise ValueError("wrong format tag")
        if meta.get("version", 0) > FORMAT_VERSION:
            raise ValueError(
                f"written by a newer minigrad (format version {meta['version']}); upgrade"
            )
        return _decode(meta["tree"], arrays)
    except (*_DAMAGE, AttributeError) as e:  # AttributeError: a list where a dict belongs
        raise ValueError(
            f"load_checkpoint: {path!r} has an unreadable minigrad metadata entry: "
            f"{type(e).__name__}: {e}"
        ) from e


def _check_entries(z: zipfile.ZipFile, file_size: int) -> dict[str, zipfile.ZipInfo]:
    """Every entry of the archive, checked from the zip index and its ``.npy`` header only:
    ``{key: ZipInfo}``. Raises :class:`_Refused` for what save_checkpoint does not write;
    the zip and header parsers raise the rest."""
    entries: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in z.infolist():
        name = info.filename
        if not name.endswith(".npy") or name[:-4] in entries:
            raise _Refused(f"is not a minigrad checkpoint: unexpected entry {name!r}")
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            raise _Refused(
                f"is not a minigrad checkpoint: entry {name!r} is compressed or encrypted "
                "(save_checkpoint stores arrays as they are)"
            )
        total += info.file_size
        if info.file_size != info.compress_size or total > file_size:
            raise _Refused(
                f"is corrupt: its zip index declares {total} bytes of entries up to {name!r} "
                f"in a file of {file_size} bytes"
            )
        with z.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):  # what numpy writes for plain dtypes
                raise _Refused(f"is not a minigrad checkpoint: entry {name!r} is .npy {version}")
            read_header = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
            shape, _, dtype = read_header(f)
            header = f.tell()
        kind = "U" if name == META_KEY + ".npy" else "biufc"
        if dtype.hasobject or dtype.kind not in kind:
            raise _Refused(f"is not a minigrad checkpoint: entry {name!r} has dtype {dtype}")
        declared = math.prod(shape) * dtype.itemsize
        if header + declared != info.file_size:
            raise _Refused(
                f"is corrupt: entry {name!r} declares shape {shape} of {dtype} "
                f"({declared} bytes) but holds {info.file_size - header}"
            )
        entries[name[:-4]] = info
    return entries


def _read_entry(z: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One checked entry's array (exactly the bytes its header declared)."""
    with z.open(info) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def find_checkpoint(
    path: str | os.PathLike, names: tuple[str, ...] = ("best.npz", "last.npz")
) -> Path:
    """The checkpoint file ``path`` names: itself, or in a run folder the first of ``names``
    there (``eval``/``predict``/``study`` take ``best.npz``, else ``last.npz``; ``train
    --resume`` takes ``last.npz``).

    Raises:
        FileNotFoundError: no such file or folder, or a folder without any of ``names``.
    """
    path = Path(path)
    if path.is_dir():
        for name in names:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"{path} is a folder without {' or '.join(names)}")
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return path


def load_for_inference(
    path: str | os.PathLike, build_model: Callable[[dict[str, Any]], Any], device: str = "cpu"
) -> tuple[Any, dict[str, Any]]:
    """A trained model in eval mode on ``device``, and its run config, from a checkpoint.

    ``build_model(config)`` rebuilds the architecture from the checkpoint's run config.
    When the run kept an EMA of the weights (``--ema``), the averaged weights are loaded:
    they are what the run evaluated.

    Raises:
        ValueError: the checkpoint has no run config (it did not come from ``fit``).
    """
    ckpt = load_checkpoint(path)
    config = ckpt.get("config")
    if not isinstance(config, dict) or "num_classes" not in config:
        raise ValueError(f"load_for_inference: {path} has no run config (not from train?)")
    if not isinstance(ckpt.get("model"), dict):
        raise ValueError(f"load_for_inference: {path} has no model weights (not from train?)")
    model = build_model(dict(config))
    weights = dict(ckpt["model"])
    if ckpt.get("ema"):
        weights.update(ckpt["ema"]["shadow"])
        weights.update(ckpt["ema"].get("buffers") or {})
    model.load_state_dict(weights)
    return model.to(device).eval(), config
