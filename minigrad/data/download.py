"""Downloading and unpacking dataset files: checksums, atomic writes, safe extraction.

Every byte from the network goes through :func:`urlopen` (tests point it at ``file://`` URLs
or monkeypatch it), lands in a temporary file next to the target, is checked against its md5,
and only then is renamed into place: an interrupted or corrupt download never leaves a file
that looks finished.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

__all__ = [
    "ChecksumWarning",
    "DownloadError",
    "default_root",
    "download_url",
    "extract_archive",
    "md5sum",
    "urlopen",
]

_CHUNK = 1 << 20


class ChecksumWarning(UserWarning):
    """A file's md5 differs from the published one, but its format checks out (the message
    names the file, and the dataset file it really is when its md5 is another known one)."""


class DownloadError(OSError):
    """A download failed on the network side (no network, DNS, refused, reset, HTTP error).

    The message is one line: the URL, the error, and where to put the file by hand.
    """


def _download_error(url: str, path: Path, e: BaseException) -> DownloadError:
    reason = e.reason if isinstance(e, urllib.error.URLError) else e
    return DownloadError(
        f"cannot download {url} ({reason}); without a network, fetch it on a machine "
        f"that has one and copy it to {path}"
    )


def default_root() -> Path:
    """Where datasets go when no root is given: ``$MINIGRAD_DATA`` or ``~/.cache/minigrad``."""
    env = os.environ.get("MINIGRAD_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "minigrad"


def urlopen(url: str, timeout: float = 60.0) -> IO[bytes]:
    """Open ``url`` for reading: the one place that touches the network."""
    req = urllib.request.Request(url, headers={"User-Agent": "minigrad-data"})
    return urllib.request.urlopen(req, timeout=timeout)


def md5sum(path: str | Path) -> str:
    """The hex md5 of a file, read in 1 MiB chunks."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class _Progress:
    """A progress line on stderr, refreshed at most 4 times a second."""

    def __init__(self, name: str, total: int | None, enabled: bool) -> None:
        self.name, self.total, self.enabled = name, total, enabled
        self.done, self.last = 0, 0.0
        self.start = time.monotonic()

    def update(self, n: int, final: bool = False) -> None:
        self.done += n
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.25 and not final):
            return
        self.last = now
        mb = self.done / 1e6
        rate = mb / max(now - self.start, 1e-9)
        if self.total:
            pct = 100 * self.done / self.total
            msg = f"{self.name}: {mb:.1f}/{self.total / 1e6:.1f} MB ({pct:.0f}%), {rate:.1f} MB/s"
        else:
            msg = f"{self.name}: {mb:.1f} MB, {rate:.1f} MB/s"
        sys.stderr.write("\r" + msg + ("\n" if final else ""))
        sys.stderr.flush()


def download_url(
    url: str,
    path: str | Path,
    md5: str | Sequence[str] | None = None,
    unknown_md5: str = "error",
    progress: bool = True,
    sha256_prefix: str | None = None,
) -> Path:
    """Download ``url`` to ``path`` through a temporary file, checking the md5.

    Args:
        url: what to fetch (any scheme :func:`urlopen` handles, ``file://`` included).
        path: the final file; its folder is created.
        md5: the published hex digest, or several accepted ones; None skips the check.
        unknown_md5: "error" deletes the download and raises on a mismatch; "warn" keeps it
            and warns (for archives re-uploaded with new checksums, like Imagenette's).
        progress: print progress to stderr.
        sha256_prefix: the first hex digits of the file's SHA-256 (torchvision's weight files
            carry 8 in their names, ``googlenet-1378be20.pth``); a mismatch deletes the
            download and raises, whatever ``unknown_md5`` says.

    Returns:
        ``path``.

    Raises:
        ValueError: on a checksum mismatch (with ``unknown_md5="error"``).
        DownloadError: when the network fails (one line: the URL, the error, and where to
            put the file by hand); nothing is left at ``path``.
        OSError: when writing fails; nothing is left at ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    expected = [md5] if isinstance(md5, str) else list(md5 or [])
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    h = hashlib.md5(usedforsecurity=False)
    h256 = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                src = urlopen(url)
            except (OSError, ValueError) as e:  # URLError, HTTPError, timeouts; a bad URL
                raise _download_error(url, path, e) from None
            with src:
                length = getattr(src, "headers", {}).get("Content-Length")
                bar = _Progress(path.name, int(length) if length else None, progress)
                while chunk := _read(src, url, path):
                    out.write(chunk)
                    h.update(chunk)
                    h256.update(chunk)
                    bar.update(len(chunk))
                bar.update(0, final=True)
            out.flush()
            os.fsync(out.fileno())
        if sha256_prefix and not h256.hexdigest().startswith(sha256_prefix.lower()):
            raise ValueError(
                f"download of {url} to {path}: SHA-256 {h256.hexdigest()[:16]}... does not "
                f"start with {sha256_prefix}; the file was deleted, try again or fetch it by hand"
            )
        got = h.hexdigest()
        if expected and got not in expected:
            msg = (
                f"download of {url} to {path}: md5 {got} does not match the published "
                f"{' or '.join(expected)}"
            )
            if unknown_md5 == "warn":
                warnings.warn(msg + "; keeping it, its contents are checked next",
                              ChecksumWarning, stacklevel=2)  # fmt: skip
            else:
                raise ValueError(msg + "; the file was deleted, try again or fetch it by hand")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _read(src: IO[bytes], url: str, path: Path) -> bytes:
    """One chunk of the response; a network error mid-way becomes a :class:`DownloadError`."""
    try:
        return src.read(_CHUNK)
    except OSError as e:  # connection reset, timeout
        raise _download_error(url, path, e) from None


def _check_member(member: tarfile.TarInfo, dest: Path, archive: Path) -> None:
    """Refuse members that would write outside ``dest`` or are not plain files/folders."""
    name = member.name
    target = (dest / name).resolve()
    if os.path.isabs(name) or ".." in Path(name).parts or not target.is_relative_to(dest):
        raise ValueError(f"extract_archive: {archive} has an unsafe path {name!r}; not extracting")
    if not (member.isfile() or member.isdir()):
        raise ValueError(
            f"extract_archive: {archive} has a link or special file {name!r}; not extracting"
        )


#: the most an archive may unpack to, as a multiple of its own size
MAX_UNPACK_RATIO = 4


def extract_archive(archive: str | Path, dest: str | Path) -> Path:
    """Extract a .tar/.tar.gz/.tgz into ``dest`` safely and atomically per top-level entry.

    Members are unpacked into a temporary folder inside ``dest`` and the top-level entries
    renamed into place at the end, so an interrupted extraction leaves no half folder.
    Absolute paths, ``..``, links and device files are refused, and so is an archive whose
    members' declared sizes add up to more than ``MAX_UNPACK_RATIO`` times its own size (a
    tar bomb; the datasets' archives of JPEGs and pickles unpack to about 1x), before the
    member that crosses it is written.

    Raises:
        ValueError: when the archive is truncated or corrupt or has unsafe members; the
            message names the file and says to delete it and download again.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    limit = MAX_UNPACK_RATIO * archive.stat().st_size + (1 << 20)
    unpacked = 0
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest)).resolve()
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                for member in tar:
                    _check_member(member, tmp, archive)
                    unpacked += member.size
                    if unpacked > limit:
                        raise ValueError(
                            f"extract_archive: {archive} unpacks to more than {limit} bytes "
                            f"({MAX_UNPACK_RATIO}x its size) at {member.name!r}; it is not the "
                            "archive it should be, delete it and download it again"
                        )
                    if member.isdir():
                        (tmp / member.name).mkdir(parents=True, exist_ok=True)
                        continue
                    out_path = tmp / member.name
                    out_path.parent.mkdir(parents=True, exist_ok=True)
                    src = tar.extractfile(member)
                    assert src is not None  # a regular file always has data
                    with src, open(out_path, "wb") as out:
                        shutil.copyfileobj(src, out, _CHUNK)
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise ValueError(
                f"extract_archive: {archive} is truncated or corrupt ({type(e).__name__}: {e}); "
                "delete it and download it again"
            ) from e
        for entry in tmp.iterdir():
            final = dest / entry.name
            if final.is_dir():
                shutil.rmtree(final)
            os.replace(entry, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def read_members(
    archive: str | Path, members: Sequence[str], max_bytes: int | None = None
) -> dict[str, bytes]:
    """The bytes of the named members of a tar archive, in one pass, without extracting.

    Args:
        archive: the ``.tar``/``.tar.gz``.
        members: the names to read.
        max_bytes: the largest member accepted: one whose tar header declares more is
            refused before it is decompressed, so a small archive cannot make this read
            gigabytes into memory.

    Returns:
        member name -> bytes, for those of ``members`` the archive has.

    Raises:
        ValueError: naming the archive when it is truncated or corrupt, or a member is
            larger than ``max_bytes``.
    """
    wanted, found = set(members), {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for info in tar:
                if info.name in wanted and info.isfile():
                    if max_bytes is not None and info.size > max_bytes:
                        raise ValueError(
                            f"{archive}: member {info.name} declares {info.size} bytes, more "
                            f"than the {max_bytes} expected; it is not the file it should be, "
                            "delete it and download it again"
                        )
                    f = tar.extractfile(info)
                    assert f is not None  # a regular file always has data
                    found[info.name] = f.read()
                    if len(found) == len(wanted):
                        break
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise ValueError(
            f"{archive} is truncated or corrupt ({type(e).__name__}: {e}); "
            "delete it and download it again"
        ) from e
    return found


def describe_missing(what: str, paths: Sequence[Any], hint: str) -> str:
    """A 'files are missing' message: what, where it looked, and how to get them."""
    where = "\n  ".join(str(p) for p in paths)
    return f"{what} not found; looked for:\n  {where}\n{hint}"
