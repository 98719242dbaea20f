"""CIFAR-10/100: tiny tarballs in the official format, read back; safety and error cases."""

from __future__ import annotations

import io
import pickle
import tarfile
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigrad.data import CIFAR10, CIFAR100, ChecksumWarning
from minigrad.data.cifar import load_pickle
from minigrad.data.download import extract_archive

pytestmark = pytest.mark.filterwarnings("ignore::minigrad.data.download.ChecksumWarning")


def expected(members, names, key="labels"):
    data = np.concatenate([members[m]["data"] for m in names]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([members[m][key] for m in names])
    return data, labels


@pytest.mark.parametrize("extracted", [False, True])
def test_cifar10_reads_tarball_and_folder(tmp_path, archives, extracted):
    path, members = archives.write_cifar10(tmp_path)
    if extracted:
        extract_archive(path, tmp_path)
        path.unlink()
        assert (tmp_path / "cifar-10-batches-py" / "data_batch_5").is_file()
    train = CIFAR10(tmp_path, train=True)
    test = CIFAR10(tmp_path, train=False)
    data, labels = expected(members, [f"data_batch_{i}" for i in range(1, 6)])
    assert len(train) == 15 and len(test) == 4
    np.testing.assert_array_equal(train.data, data)
    np.testing.assert_array_equal(train.targets, labels)
    img, lab = train[7]
    assert img.shape == (3, 32, 32) and img.dtype == np.float32 and isinstance(lab, int)
    # row-major R, G, B planes: pixel (c, y, x) is column c*1024 + y*32 + x
    raw = members["data_batch_3"]["data"][1]
    assert img[1, 2, 3] == pytest.approx(raw[1 * 1024 + 2 * 32 + 3] / 255)
    assert train.classes[0] == "airplane" and len(train.classes) == 10


def test_cifar10_root_may_be_the_extracted_folder(tmp_path, archives):
    path, members = archives.write_cifar10(tmp_path)
    extract_archive(path, tmp_path)
    test = CIFAR10(tmp_path / "cifar-10-batches-py", train=False)
    np.testing.assert_array_equal(test.targets, members["test_batch"]["labels"])


@pytest.mark.parametrize(
    "label,key,n", [("fine", "fine_labels", 100), ("coarse", "coarse_labels", 20)]
)
def test_cifar100_fine_and_coarse(tmp_path, archives, label, key, n):
    _, members = archives.write_cifar100(tmp_path)
    train = CIFAR100(tmp_path, train=True, label=label)
    test = CIFAR100(tmp_path, train=False, label=label)
    assert (len(train), len(test)) == (5, 4)
    np.testing.assert_array_equal(train.targets, members["train"][key])
    np.testing.assert_array_equal(test.data, members["test"]["data"].reshape(-1, 3, 32, 32))
    assert len(train.classes) == n and train.num_classes == n


def test_cifar100_bad_label_kind(tmp_path):
    with pytest.raises(ValueError, match="CIFAR100: label must be 'fine' or 'coarse'"):
        CIFAR100(tmp_path, label="medium")


def test_pickle_keys_as_bytes_or_str_both_load(archives):
    arr = np.arange(3072 * 2, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    py2 = archives.py2_pickle({"data": arr, "labels": [3, 4]})  # str keys under latin1
    py3_bytes_keys = pickle.dumps({b"data": arr, b"labels": [3, 4]}, protocol=4)
    for raw in (py2, py3_bytes_keys):
        batch = load_pickle(raw, "batch")
        assert set(batch) == {"data", "labels"}
        np.testing.assert_array_equal(batch["data"], arr)


class Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_malicious_pickle_is_refused(tmp_path, archives):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    good = archives.py2_pickle({"data": np.zeros((1, 3072), np.uint8), "labels": [0]})
    (folder / "test_batch").write_bytes(pickle.dumps({"data": Evil(), "labels": [0]}, protocol=2))
    (folder / "batches.meta").write_bytes(good)
    with pytest.raises(ValueError, match=r"test_batch: refusing to unpickle the global .*system"):
        CIFAR10(tmp_path, train=False)


def test_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"(?s)CIFAR10 files not found.*download=True"):
        CIFAR10(tmp_path)


def test_truncated_tarball_names_the_file(tmp_path, archives):
    path, _ = archives.write_cifar10(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"cifar-10-python.tar.gz is truncated or corrupt"):
        CIFAR10(tmp_path, train=True)


def test_truncated_member_names_the_file(tmp_path, archives):
    path, _ = archives.write_cifar10(tmp_path)
    extract_archive(path, tmp_path)
    path.unlink()
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:-200])
    with pytest.raises(ValueError, match=r"data_batch_2 is truncated or corrupt"):
        CIFAR10(tmp_path, train=True)


def test_wrong_shape_is_a_format_error(tmp_path, archives):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    bad = {"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}
    (folder / "test_batch").write_bytes(archives.py2_pickle(bad))
    with pytest.raises(ValueError, match=r"test_batch: 'data' has 100 columns, expected 3072"):
        CIFAR10(tmp_path, train=False)
    (folder / "test_batch").write_bytes(
        archives.py2_pickle({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]})
    )
    with pytest.raises(ValueError, match=r"test_batch: labels must lie in \[0, 10\)"):
        CIFAR10(tmp_path, train=False)
    (folder / "test_batch").write_bytes(
        archives.py2_pickle({"data": np.zeros((2, 3072), np.uint8), "labels": [0]})
    )
    with pytest.raises(ValueError, match=r"test_batch: 2 images but labels of shape \(1,\)"):
        CIFAR10(tmp_path, train=False)


@pytest.mark.filterwarnings("error::minigrad.data.download.ChecksumWarning")
def test_member_md5_mismatch_warns_but_loads(tmp_path, archives):
    archives.write_cifar10(tmp_path)
    with pytest.warns(
        ChecksumWarning, match=r"test_batch: md5 \w+ differs from the published 4035"
    ):
        test = CIFAR10(tmp_path, train=False)
    assert len(test) == 4


def test_download_fetches_checks_and_extracts(tmp_path, archives, monkeypatch):
    src = tmp_path / "mirror"
    src.mkdir()
    path, members = archives.write_cifar10(src)
    from minigrad.data import download

    monkeypatch.setattr(CIFAR10, "url", path.as_uri())
    monkeypatch.setattr(CIFAR10, "md5", download.md5sum(path))
    root = tmp_path / "root"
    test = CIFAR10(root, train=False, download=True)
    assert (root / "cifar-10-batches-py" / "test_batch").is_file()
    np.testing.assert_array_equal(test.targets, members["test_batch"]["labels"])


def test_download_with_wrong_md5_fails_and_leaves_nothing(tmp_path, archives, monkeypatch):
    src = tmp_path / "mirror"
    src.mkdir()
    path, _ = archives.write_cifar10(src)
    monkeypatch.setattr(CIFAR10, "url", path.as_uri())  # md5 stays the official one
    root = tmp_path / "root"
    with pytest.raises(ValueError, match=r"md5 \w+ does not match the published c58f3010"):
        CIFAR10(root, download=True)
    assert list(root.iterdir()) == []


def test_tar_member_of_wrong_type(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        data = b"not a pickle at all"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ValueError, match=r"test_batch is truncated or corrupt"):
        CIFAR10(tmp_path, train=False)


def test_tarball_without_a_member_names_it(tmp_path, archives):
    path = tmp_path / "cifar-10-python.tar.gz"
    good = archives.py2_pickle({"data": np.zeros((1, 3072), np.uint8), "labels": [0]})
    with tarfile.open(path, "w:gz") as tar:
        archives.add_bytes(tar, "cifar-10-batches-py/data_batch_1", good)
    with pytest.raises(
        FileNotFoundError, match=r"tar.gz:cifar-10-batches-py/data_batch_2 is missing"
    ):
        CIFAR10(tmp_path, train=True)


# ---------------------------------------------------- hostile files (issue 16, §4)
class _Zeros(io.RawIOBase):
    """``size`` zero bytes, read in chunks (the archive is written without holding them)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def _peak_bytes_of(fn) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_a_tar_member_larger_than_a_batch_is_refused_before_it_is_read(tmp_path):
    """65 MiB of zeros gzipped to ~64 KiB as test_batch: today it was read into memory
    whole before anything looked at it."""
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        info.size = 65 << 20
        tar.addfile(info, _Zeros(info.size))
    assert path.stat().st_size < 1 << 20
    with pytest.raises(ValueError, match=r"test_batch declares 68157440 bytes, more than the "):
        CIFAR10(tmp_path, train=False)
    peak = _peak_bytes_of(lambda: pytest.raises(ValueError, CIFAR10, tmp_path, train=False))
    assert peak < 8 << 20, f"{peak / 2**20:.0f} MiB"


def test_labels_that_are_a_list_of_lists_are_refused_without_building_them(tmp_path, archives):
    """A pickle's memo lets 2 x 1000 references to one 1000-long list cost a few KB; today
    np.asarray built the (2, 1000, 1000) array (16 MB here, as much as asked for in general)."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    shared = [[0] * 1000] * 1000
    batch = {"data": np.zeros((2, 3072), np.uint8), "labels": [shared, shared]}
    (folder / "test_batch").write_bytes(archives.py2_pickle(batch))
    assert (folder / "test_batch").stat().st_size < 64 << 10
    with pytest.raises(ValueError, match=r"test_batch: the labels are not a list of integers"):
        CIFAR10(tmp_path, train=False)
    peak = _peak_bytes_of(lambda: pytest.raises(ValueError, CIFAR10, tmp_path, train=False))
    assert peak < 4 << 20, f"{peak / 2**20:.0f} MiB"


@settings(max_examples=40)
@given(st.data())
def test_flipped_or_cut_batch_bytes_give_a_dataset_or_one_line(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py"
    folder.mkdir()
    batch = {"data": np.arange(2 * 3072).astype(np.uint8).reshape(2, 3072), "labels": [3, 7]}
    raw = bytearray(pickle.dumps(batch, protocol=2))
    if data.draw(st.booleans(), label="cut"):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="keep")]
    else:
        for _ in range(data.draw(st.integers(1, 3), label="flips")):
            i = data.draw(st.integers(0, len(raw) - 1), label="at")
            raw[i] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    (folder / "test_batch").write_bytes(bytes(raw))
    try:
        ds = CIFAR10(folder.parent, train=False)
    except ValueError as e:
        assert "test_batch" in str(e) and "\n" not in str(e)
    else:
        assert len(ds) == 2
