"""Checkpoints under faults: permissions, stale temporaries, text files, a full disk."""

from __future__ import annotations

import errno
import os
import stat

import numpy as np
import pytest

from minigrad import checkpoint
from minigrad.checkpoint import load_checkpoint, save_checkpoint


def test_checkpoint_gets_the_umask_permissions_like_other_files(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "last.npz", epoch=1)
        (tmp_path / "metrics.json").write_text("[]")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "last.npz").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode) == 0o644


def _ended_pid() -> int:
    """The PID of a process that has ended."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_the_same_file_are_removed_on_the_next_save(tmp_path) -> None:
    dead = _ended_pid()
    stale = [tmp_path / f".last.npz.{dead}-k3j_x9qa.tmp", tmp_path / ".last.npz.0a1b2c3d.tmp"]
    for p in stale:
        p.write_bytes(b"PK\x03\x04 half a checkpoint")
    hour_ago = os.path.getmtime(stale[1]) - 2 * 3600  # an older minigrad's, without a PID
    os.utime(stale[1], (hour_ago, hour_ago))
    other = tmp_path / ".best.npz.zzzz.tmp"  # another file's temporary: not ours to touch
    other.write_bytes(b"")
    save_checkpoint(tmp_path / "last.npz", epoch=2)
    assert sorted(os.listdir(tmp_path)) == [".best.npz.zzzz.tmp", "last.npz"]
    assert load_checkpoint(tmp_path / "last.npz") == {"epoch": 2}


def test_a_live_processs_temporary_is_never_removed(tmp_path) -> None:
    """Issue 16: two savers in one folder: one's clean-up must not delete the other's
    in-progress temporary (named with its writer's PID, which still runs)."""
    live = tmp_path / f".last.npz.{os.getpid()}-inflight.tmp"
    recent = tmp_path / ".last.npz.0a1b2c3d.tmp"  # no PID and recent: it may be in use
    live.write_bytes(b"PK\x03\x04 being written")
    recent.write_bytes(b"PK\x03\x04 being written")
    save_checkpoint(tmp_path / "last.npz", epoch=3)
    assert live.exists() and recent.exists()
    assert load_checkpoint(tmp_path / "last.npz") == {"epoch": 3}


@pytest.mark.parametrize("content", [b"hello, this is text\n", b""])
def test_text_file_named_npz_is_a_clear_error(tmp_path, content) -> None:
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"model.npz' is not an .npz file") as info:
        load_checkpoint(path)
    assert "pickle" not in str(info.value)


class _FullDisk:
    """A file whose writes fail with ENOSPC once ``room`` bytes were written."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def write(self, data) -> int:
        n = len(memoryview(data).cast("B"))
        if n > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= n
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def test_disk_full_during_a_save_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "last.npz"
    save_checkpoint(path, epoch=1, w=np.ones(1000))
    real = checkpoint._open_new

    def full(folder, base):
        f, tmp = real(folder, base)
        return _FullDisk(f, room=2000), tmp

    monkeypatch.setattr(checkpoint, "_open_new", full)
    with pytest.raises(OSError, match=r"cannot write '.*last.npz': No space left") as info:
        save_checkpoint(path, epoch=2, w=np.zeros(1000))
    assert info.value.errno == errno.ENOSPC
    assert "previous checkpoint there (if any) is unchanged" in str(info.value)
    assert os.listdir(tmp_path) == ["last.npz"]  # the temporary is gone
    old = load_checkpoint(path)
    assert old["epoch"] == 1 and (old["w"] == 1).all()


def test_missing_folder_is_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="the folder of .*run/last.npz' does not exist"):
        save_checkpoint(tmp_path / "run" / "last.npz", epoch=1)
