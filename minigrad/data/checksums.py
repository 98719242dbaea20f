"""Checking local dataset files against the published md5s, once per file version.

A file found on disk (not just downloaded) is hashed on first use and the digest cached in
``<root>/.md5-cache.json`` under its path relative to the dataset root, with its size and
modification time: a later run re-hashes only a file that changed. A digest that differs
from the published one gives a :class:`~minigrad.data.download.ChecksumWarning` naming the
file; when the digest is that of ANOTHER known file (Fashion-MNIST's labels under
``mnist/``, the test labels under the train name), the warning says which one it is.

The known digests are the datasets' own tables (``MNIST.md5``, ``CIFAR10.member_md5``,
...), which each dataset module registers (:func:`register_known`) and which are read when a
check runs, so tests can register the md5s of the small files they write.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from minigrad.data.download import ChecksumWarning, md5sum

__all__ = ["CACHE_NAME", "cached_md5", "check_file", "identify", "register_known"]

CACHE_NAME = ".md5-cache.json"


def _read_cache(path: Path) -> dict[str, dict]:
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def cached_md5(path: str | Path, root: str | Path) -> str:
    """The md5 of ``path``, from ``root/.md5-cache.json`` when the file's size and mtime are
    the ones recorded there, else hashed now and recorded (an unwritable root is skipped)."""
    path, root = Path(path), Path(root)
    st = path.stat()
    key = os.path.relpath(path.resolve(), root.resolve())
    cache_path = root / CACHE_NAME
    cache = _read_cache(cache_path)
    entry = cache.get(key)
    if (
        isinstance(entry, dict)
        and entry.get("size") == st.st_size
        and entry.get("mtime_ns") == st.st_mtime_ns
    ):
        return str(entry["md5"])
    digest = md5sum(path)
    cache[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "md5": digest}
    tmp = cache_path.with_name(f"{CACHE_NAME}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
        os.replace(tmp, cache_path)
    except OSError:  # a read-only data folder: check again next time
        tmp.unlink(missing_ok=True)
    return digest


#: the datasets' tables of known files, each a callable md5 -> "Dataset's file"; every dataset
#: module registers its own (the tables are read when a check runs, so patches apply)
_KNOWN_TABLES: list[Callable[[], dict[str, str]]] = []


def register_known(table: Callable[[], dict[str, str]]) -> None:
    """Add a dataset's known files (md5 -> "Dataset's file", a callable) to :func:`identify`."""
    _KNOWN_TABLES.append(table)


def _known() -> dict[str, str]:
    """md5 -> "Dataset's file" for every file whose published md5 we know."""
    known: dict[str, str] = {}
    for table in _KNOWN_TABLES:
        known.update(table())
    return known


def identify(md5: str) -> str | None:
    """Which known dataset file has this md5 (e.g. "Fashion-MNIST's t10k-labels-idx1-ubyte.gz")."""
    return _known().get(md5)


def mismatch_message(name: str, got: str, expected: Sequence[str], what: str) -> str:
    """The warning text for a file ``name`` whose md5 ``got`` is not ``what``'s published one."""
    msg = f"{name}: md5 {got} differs from the published {' or '.join(expected)} ({what})"
    other = identify(got)
    if other is not None:
        return msg + f"; this file is {other}: wrong folder or wrong dataset?"
    return msg + "; accepting it because its format checks out"


def check_file(
    path: str | Path, expected: str | Sequence[str], root: str | Path, what: str
) -> bool:
    """Warn (``ChecksumWarning``) when ``path``'s md5 is not among ``expected``.

    Args:
        path: the local file.
        expected: its published md5, or several accepted ones.
        root: the dataset root, where the digest cache lives.
        what: the file's role for the message, e.g. "MNIST's train-labels-idx1-ubyte.gz".

    Returns:
        Whether the md5 matched.
    """
    expected = [expected] if isinstance(expected, str) else list(expected)
    got = cached_md5(path, root)
    if got in expected:
        return True
    warnings.warn(mismatch_message(str(path), got, expected, what), ChecksumWarning, stacklevel=3)
    return False
