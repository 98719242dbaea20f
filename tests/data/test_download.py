"""download_url (checksums, temp file + rename, progress) and safe tar extraction."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from minigrad.data import download
from minigrad.data.download import ChecksumWarning, download_url, extract_archive, md5sum


def test_download_file_url_with_md5_and_progress(tmp_path, capsys):
    src = tmp_path / "src.bin"
    payload = bytes(range(256)) * 4000
    src.write_bytes(payload)
    md5 = hashlib.md5(payload).hexdigest()
    out = download_url(src.as_uri(), tmp_path / "dl" / "file.bin", md5)
    assert out.read_bytes() == payload and md5sum(out) == md5
    assert "file.bin" in capsys.readouterr().err  # progress goes to stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["file.bin"]


def test_download_md5_mismatch_deletes_the_temp_file(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello")
    dest = tmp_path / "dl" / "file.bin"
    with pytest.raises(ValueError, match=r"md5 5d41402a\w+ does not match the published 0{32}"):
        download_url(src.as_uri(), dest, "0" * 32, progress=False)
    assert list(dest.parent.iterdir()) == []


def test_download_unknown_md5_can_warn(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello")
    dest = tmp_path / "file.bin"
    with pytest.warns(ChecksumWarning, match="keeping it"):
        download_url(src.as_uri(), dest, ["0" * 32, "1" * 32], unknown_md5="warn", progress=False)
    assert dest.read_bytes() == b"hello"


def test_interrupted_download_leaves_no_file(tmp_path, monkeypatch):
    class Broken(io.BytesIO):
        def read(self, n=-1):
            if self.tell() >= 10:
                raise ConnectionResetError("connection reset by peer")
            return super().read(5)

    monkeypatch.setattr(download, "urlopen", lambda url: Broken(b"x" * 100))
    dest = tmp_path / "file.bin"
    with pytest.raises(download.DownloadError, match="connection reset by peer"):
        download_url("https://example.invalid/file.bin", dest, progress=False)
    assert list(tmp_path.iterdir()) == []


def make_tar(path, entries):
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
    return path


def test_extract_archive_puts_files_in_place(tmp_path):
    arc = make_tar(tmp_path / "a.tgz", [("top/sub/x.txt", "file", b"abc"), ("top/y", "file", b"")])
    extract_archive(arc, tmp_path / "out")
    assert (tmp_path / "out" / "top" / "sub" / "x.txt").read_bytes() == b"abc"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["top"]  # temp folder gone


@pytest.mark.parametrize(
    "entry,what",
    [
        (("../evil.txt", "file", b"x"), "unsafe path"),
        (("/tmp/evil.txt", "file", b"x"), "unsafe path"),
        (("top/link", "symlink", "/etc/passwd"), "link or special file"),
    ],
)
def test_extract_archive_refuses_unsafe_members(tmp_path, entry, what):
    arc = make_tar(tmp_path / "bad.tgz", [("top/ok.txt", "file", b"ok"), entry])
    with pytest.raises(ValueError, match=rf"bad.tgz has an? {what}"):
        extract_archive(arc, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_extract_truncated_archive(tmp_path):
    arc = make_tar(tmp_path / "a.tgz", [("top/x.bin", "file", bytes(range(256)) * 400)])
    arc.write_bytes(arc.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"a.tgz is truncated or corrupt.*download it again"):
        extract_archive(arc, tmp_path / "out")


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def test_a_tar_bomb_is_refused_before_the_member_that_would_fill_the_disk(tmp_path):
    """A 64 KiB archive holding 64 MiB of zeros (today: written out in full)."""
    arc = tmp_path / "bomb.tgz"
    with tarfile.open(arc, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("top/small.txt"), io.BytesIO(b""))
        info = tarfile.TarInfo("top/zeros.bin")
        info.size = 64 << 20
        tar.addfile(info, _Zeros(info.size))
    assert arc.stat().st_size < 1 << 20
    with pytest.raises(ValueError, match=r"bomb.tgz unpacks to more than \d+ bytes \(4x its size"):
        extract_archive(arc, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_default_root_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGRAD_DATA", str(tmp_path / "d"))
    assert download.default_root() == tmp_path / "d"
    monkeypatch.delenv("MINIGRAD_DATA")
    assert download.default_root().name == "minigrad"
