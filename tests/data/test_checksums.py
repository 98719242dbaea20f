"""Local dataset files are checked against the known md5s, once per file version."""

from __future__ import annotations

import gzip
import os
import shutil

import numpy as np
import pytest

from minigrad.data import MNIST, ChecksumWarning, checksums
from minigrad.data.checksums import CACHE_NAME


def _relabel(path, archives) -> None:
    """Rewrite an IDX label file with other (valid) labels: same format, another md5."""
    labels = np.frombuffer(gzip.decompress(path.read_bytes()), np.uint8, offset=8)
    path.write_bytes(gzip.compress(archives.idx_bytes((labels + 1) % 10, 2049)))


def test_matching_files_give_no_warning_and_fill_the_cache(tmp_path, archives) -> None:
    archives.write_mnist(tmp_path / "mnist")  # registers these files' md5s as MNIST's
    MNIST(tmp_path, train=False)  # filterwarnings=error: any warning fails here
    assert CACHE_NAME in os.listdir(tmp_path)


def test_modified_label_file_warns_naming_it(tmp_path, archives) -> None:
    archives.write_mnist(tmp_path / "mnist")
    _relabel(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", archives)
    with pytest.warns(ChecksumWarning, match=r"t10k-labels-idx1-ubyte\.gz: md5 .* differs") as rec:
        MNIST(tmp_path, train=False)
    assert len(rec) == 1
    assert "accepting it because its format checks out" in str(rec[0].message)


def test_other_datasets_file_is_named(tmp_path, archives) -> None:
    archives.write_mnist(tmp_path / "fashion-mnist", seed=7)  # registered as Fashion-MNIST's
    archives.write_mnist(tmp_path / "elsewhere" / "mnist", seed=8)  # registered as MNIST's
    user = tmp_path / "user"  # a Fashion-MNIST folder given as --dataset mnist --data-dir
    shutil.copytree(tmp_path / "fashion-mnist", user)
    with pytest.warns(ChecksumWarning) as rec:
        MNIST(user, train=True)
    messages = sorted(str(w.message) for w in rec)
    assert len(messages) == 2
    assert "train-images-idx3-ubyte.gz: md5" in messages[0]
    assert "this file is Fashion-MNIST's train-images-idx3-ubyte.gz" in messages[0]
    assert "this file is Fashion-MNIST's train-labels-idx1-ubyte.gz" in messages[1]


def test_test_labels_under_the_train_name_are_named(tmp_path, archives) -> None:
    archives.write_mnist(tmp_path / "mnist", n_train=4, n_test=4)
    folder = tmp_path / "mnist"
    shutil.copy(folder / "t10k-labels-idx1-ubyte.gz", folder / "train-labels-idx1-ubyte.gz")
    with pytest.warns(ChecksumWarning, match="this file is MNIST's t10k-labels-idx1-ubyte.gz"):
        MNIST(tmp_path, train=True)


def test_cache_hit_does_not_rehash_but_a_changed_file_does(tmp_path, archives, monkeypatch):
    archives.write_mnist(tmp_path / "mnist")
    calls = []
    real = checksums.md5sum
    monkeypatch.setattr(checksums, "md5sum", lambda p: calls.append(p) or real(p))
    MNIST(tmp_path, train=False)
    assert len(calls) == 2  # images and labels, hashed once
    MNIST(tmp_path, train=False)
    assert len(calls) == 2  # the second run reads the cache
    labels = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    _relabel(labels, archives)
    st = labels.stat()
    os.utime(labels, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a later mtime for sure
    with pytest.warns(ChecksumWarning, match="t10k-labels"):
        MNIST(tmp_path, train=False)
    assert [p.name for p in calls[2:]] == ["t10k-labels-idx1-ubyte.gz"]


def test_unwritable_cache_still_checks(tmp_path, archives, monkeypatch) -> None:
    archives.write_mnist(tmp_path / "mnist")
    _relabel(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", archives)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(checksums.os, "replace", refuse)
    with pytest.warns(ChecksumWarning, match="t10k-labels"):
        MNIST(tmp_path, train=False)
    assert not any(p.name.startswith(CACHE_NAME) for p in tmp_path.iterdir())
